package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	apiKey      = "cxlab-demo-api-key-0000000000000000"
	concurrency = 32
	loadFor     = 5 * time.Second
)

// gesThroughput measures create, retrieve and availability at 32 concurrent
// clients against a cxlab with embedded stores.
func gesThroughput(ctx context.Context, bin string, _ int) ([]Row, error) {
	root, err := os.MkdirTemp("", "cxlab-bench-ges-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711)
	in, err := startInstance(ctx, bin, filepath.Join(root, "data"))
	if err != nil {
		return nil, err
	}
	defer in.stop()
	api, _ := in.endpoints["ges_api_url"].(string)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency * 2}, Timeout: 10 * time.Second}

	// Immediate callbacks on the 24x7 service: the create path (validation,
	// durable commit, hand-over to ORS), with no slot capacity in the way (a
	// scheduled run would measure a full schedule: CB_Support takes 5 per
	// 30-min slot). Distinct numbers keep the per-number limit out of it; no
	// agent is Ready, so nothing is dialed.
	var n atomic.Int64
	create := func() (string, error) {
		i := n.Add(1)
		body := fmt.Sprintf(`{"serviceName":"CB_Support","phoneNumber":"+1202%07d"}`, 5550000+i%1000000)
		var out struct {
			Data struct{ ID string } `json:"data"`
		}
		code, err := post(ctx, hc, api+"/callbacks/create", body, &out)
		if err != nil || code != 200 {
			return "", fmt.Errorf("create: %d %w", code, err)
		}
		return out.Data.ID, nil
	}
	ids := make(chan string, 1<<16)
	createRes := load(ctx, func() error {
		id, err := create()
		if err == nil {
			select {
			case ids <- id:
			default:
			}
		}
		return err
	})
	close(ids)
	var idList []string
	for id := range ids {
		idList = append(idList, id)
	}
	if len(idList) == 0 {
		return nil, fmt.Errorf("no callback created (%d errors)", createRes.errors)
	}
	var k atomic.Int64
	retrieveRes := load(ctx, func() error {
		id := idList[int(k.Add(1))%len(idList)]
		code, err := post(ctx, hc, api+"/callbacks/retrieve", `{"id":"`+id+`"}`, nil)
		if err != nil || code != 200 {
			return fmt.Errorf("retrieve: %d %w", code, err)
		}
		return nil
	})
	availRes := load(ctx, func() error {
		code, err := get(ctx, hc, api+"/callbacks/availability/CB_Support?numberOfDays=1&maxTimeSlots=10")
		if err != nil || code != 200 {
			return fmt.Errorf("availability: %d %w", code, err)
		}
		return nil
	})
	cond := fmt.Sprintf("%d concurrent HTTP clients for %s each, keep-alive, embedded stores, same 2-core box as the load", concurrency, loadFor)
	var rows []Row
	for _, r := range []struct {
		name   string
		res    loadResult
		target string
	}{{"create", createRes, ">= 3000/s, p99 <= 10 ms"}, {"retrieve", retrieveRes, "faster than create"}, {"availability", availRes, ""}} {
		rows = append(rows,
			Row{Area: "engagement API", Figure: r.name + " throughput", Value: r.res.perSec, Unit: "req/s", Target: firstPart(r.target), Conditions: cond + fmt.Sprintf(", %d errors", r.res.errors)},
			Row{Area: "engagement API", Figure: r.name + " latency p50 / p99", Value: r.res.p50, Unit: fmt.Sprintf("ms / %.1f ms", r.res.p99), Target: secondPart(r.target), Conditions: cond},
		)
	}
	return rows, nil
}

func firstPart(s string) string {
	before, _, _ := strings.Cut(s, ", ")
	return before
}

func secondPart(s string) string {
	_, after, _ := strings.Cut(s, ", ")
	return after
}

type loadResult struct {
	perSec, p50, p99 float64
	errors           int64
}

// load runs op from `concurrency` goroutines for loadFor and reports
// throughput and latency percentiles in milliseconds.
func load(ctx context.Context, op func() error) loadResult {
	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  atomic.Int64
		wg    sync.WaitGroup
		start = time.Now()
		stop  = start.Add(loadFor)
	)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(stop) && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(); err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return ms(lat[int(float64(len(lat)-1)*p)])
	}
	return loadResult{perSec: float64(len(lat)) / el.Seconds(), p50: pct(0.50), p99: pct(0.99), errors: errs.Load()}
}

func post(ctx context.Context, hc *http.Client, url, body string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	return do(hc, req, out)
}

func get(ctx context.Context, hc *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("x-api-key", apiKey)
	return do(hc, req, nil)
}

func do(hc *http.Client, req *http.Request, out any) (int, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return resp.StatusCode, err
		}
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(out); err != nil {
			return resp.StatusCode, err
		}
		return resp.StatusCode, nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
