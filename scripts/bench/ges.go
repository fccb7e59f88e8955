package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cxlab/cxlab/scripts/internal/scrape"
)

const (
	apiKey      = "cxlab-demo-api-key-0000000000000000"
	concurrency = 32
	loadFor     = 5 * time.Second
	// targetRate is issue 4's create rate, offered open loop to read the
	// latency a client sees at that rate rather than at saturation.
	targetRate = 3000
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
	// The tenant throttle (default 5,000 creates/s with a burst of 5,000)
	// would cap the closed loop and answer the excess 429: lift it, so that
	// "most req/s" is what the service can do.
	up := append([]string{"--ges-tenant-creates-per-sec", "1000000", "--ges-tenant-create-burst", "1000000"},
		strings.Fields(os.Getenv("CXLAB_BENCH_UP_ARGS"))...)
	dataDir := filepath.Join(root, "data") // its PostgreSQL's command line names it (see pgCPU)
	in, err := startInstance(ctx, bin, dataDir, up...)
	if err != nil {
		return nil, err
	}
	defer in.stop()
	apiURL, _ := in.endpoints["ges_api_url"].(string)
	api, err := loadBase(apiURL)
	if err != nil {
		return nil, err
	}

	// Immediate callbacks on the 24x7 service: the create path (validation,
	// durable commit, hand-over to ORS), with no slot capacity in the way (a
	// scheduled run would measure a full schedule: CB_Support takes 5 per
	// 30-min slot). Distinct numbers keep the per-number limit out of it; no
	// agent is Ready, so nothing is dialed.
	var n atomic.Int64
	create := func(c *loadConn) (string, error) {
		i := n.Add(1)
		body := fmt.Sprintf(`{"serviceName":"CB_Support","phoneNumber":"+1202%07d"}`, 5550000+i%1000000)
		var out struct {
			Data struct{ ID string } `json:"data"`
		}
		code, err := c.post(ctx, "/callbacks/create", body, &out)
		if err != nil || code != 200 {
			return "", fmt.Errorf("create: %d %w", code, err)
		}
		return out.Data.ID, nil
	}
	ids := make(chan string, 1<<16)
	keep := func(id string, err error) error {
		if err == nil {
			select {
			case ids <- id:
			default:
			}
		}
		return err
	}
	createMax := load(ctx, api, func(c *loadConn) error { return keep(create(c)) })
	profiled := profileCPU(ctx, in.consoleURL(), loadFor, "ges-create-open")
	if os.Getenv("CXLAB_BENCH_TRACE") != "" { // an execution trace of the same window
		traced := fetchProfile(ctx, in.consoleURL(), fmt.Sprintf("trace?seconds=%d", int(loadFor/time.Second)), "ges-create-open-trace")
		defer traced()
	}
	metricsURL, _ := in.endpoints["metrics_url"].(string)
	before, err := createTimings(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	cx0, pg0, gen0, t0 := processCPU(in.cmd.Process.Pid), pgCPU(dataDir), processCPU(os.Getpid()), time.Now()
	createAt := paced(ctx, api, targetRate, "create", func(c *loadConn) error { return keep(create(c)) })
	cores := func(d time.Duration) float64 { return d.Seconds() / time.Since(t0).Seconds() }
	used := fmt.Sprintf("; cores used: cxlab %.2f, its PostgreSQL %.2f, the load generator %.2f",
		cores(processCPU(in.cmd.Process.Pid)-cx0), cores(pgCPU(dataDir)-pg0), cores(processCPU(os.Getpid())-gen0))
	after, err := createTimings(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	profiled()
	fetchProfile(ctx, in.consoleURL(), "heap", "ges-heap")()
	close(ids)
	var idList []string
	for id := range ids {
		idList = append(idList, id)
	}
	if len(idList) == 0 {
		return nil, fmt.Errorf("no callback created (%d errors)", createMax.errors)
	}
	var k atomic.Int64
	retrieve := func(c *loadConn) error {
		id := idList[int(k.Add(1))%len(idList)]
		code, err := c.post(ctx, "/callbacks/retrieve", `{"id":"`+id+`"}`, nil)
		if err != nil || code != 200 {
			return fmt.Errorf("retrieve: %d %w", code, err)
		}
		return nil
	}
	retrieveMax := load(ctx, api, retrieve)
	retrieveAt := paced(ctx, api, targetRate, "retrieve", retrieve)
	availMax := load(ctx, api, func(c *loadConn) error {
		code, err := c.get(ctx, "/callbacks/availability/CB_Support?numberOfDays=1&maxTimeSlots=10")
		if err != nil || code != 200 {
			return fmt.Errorf("availability: %d %w", code, err)
		}
		return nil
	})
	closed := fmt.Sprintf("closed loop: %d clients each sending its next request when the last is answered, for %s; keep-alive, embedded stores, tenant throttle lifted, the load generator on the same 2 cores", concurrency, loadFor)
	open := fmt.Sprintf("open loop: %d req/s offered for %s over %d keep-alive connections; latency from each request's scheduled send time (no coordinated omission)", targetRate, loadFor, concurrency)
	row := func(fig string, v float64, unit, target, cond string, errs int64) Row {
		return Row{Area: "engagement API", Figure: fig, Value: v, Unit: unit, Target: target, Conditions: cond + fmt.Sprintf(", %d errors", errs)}
	}
	return []Row{
		row("create: most req/s", createMax.perSec, "req/s", ">= 3000/s", closed, createMax.errors),
		row("create: latency p50 / p99 at most req/s", createMax.p50, fmt.Sprintf("ms / %.1f ms", createMax.p99), "", closed, createMax.errors),
		row(fmt.Sprintf("create: latency p50 / p99 at %d/s", targetRate), createAt.p50, fmt.Sprintf("ms / %.1f ms", createAt.p99), "p99 <= 10 ms",
			open+fmt.Sprintf("; %.0f req/s achieved; the generator began 99%% of requests within %.1f ms of their scheduled time", createAt.perSec, createAt.lagP99)+used, createAt.errors),
		row(fmt.Sprintf("create at %d/s: share the server answered within 10 ms", targetRate), after.sub(before).within10msPct(), "%", ">= 99%",
			open+"; from cxlab's ges_http_request_duration_seconds (handler start to end: the client's queueing and the kernel are outside it)", createAt.errors),
		row("retrieve: most req/s", retrieveMax.perSec, "req/s", "faster than create", closed, retrieveMax.errors),
		row(fmt.Sprintf("retrieve: latency p50 / p99 at %d/s", targetRate), retrieveAt.p50, fmt.Sprintf("ms / %.1f ms", retrieveAt.p99), "", open+fmt.Sprintf("; %.0f req/s achieved", retrieveAt.perSec), retrieveAt.errors),
		row("availability: most req/s", availMax.perSec, "req/s", "", closed, availMax.errors),
	}, nil
}

type loadResult struct {
	perSec, p50, p99 float64
	// lagP99 is how late (99th percentile, ms) the load generator began a
	// request after its scheduled send time: its own share of the latency
	// when the two cores are busy. Open loop only.
	lagP99 float64
	errors int64
}

// load runs op from `concurrency` goroutines, each sending its next request
// when the last one is answered (closed loop), for loadFor.
func load(ctx context.Context, base *url.URL, op func(*loadConn) error) loadResult {
	start := time.Now()
	stop := start.Add(loadFor)
	samples := workers(base, op, func() (time.Time, bool) {
		now := time.Now()
		return now, now.Before(stop) && ctx.Err() == nil
	})
	return summarize(samples, time.Since(start))
}

// paced offers rate requests per second for loadFor (open loop) through
// `concurrency` workers. Each request has a scheduled send time; its latency
// counts from then, so a stall that delays later sends shows in their latency
// instead of thinning the load. With CXLAB_BENCH_PROFILE=dir, every
// request's send time, lateness and latency go to dir/ges-<label>-requests.csv:
// slow requests come in episodes, and the file shows when and how long.
func paced(ctx context.Context, base *url.URL, rate int, label string, op func(*loadConn) error) loadResult {
	sched := make(chan time.Time, rate) // a second of backlog at most
	start := time.Now()
	done := make(chan struct{})
	var samples []sample
	go func() {
		defer close(done)
		samples = workers(base, op, func() (time.Time, bool) {
			at, ok := <-sched
			return at, ok
		})
	}()
	total := int(float64(rate) * loadFor.Seconds())
	interval := time.Second / time.Duration(rate)
	for sent := 0; sent < total && ctx.Err() == nil; {
		// Release each request at its scheduled time (a coarser tick would
		// send them in bursts, each up to a tick late), and every request
		// already due after a late wake-up.
		if wait := time.Until(start.Add(time.Duration(sent) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		due := min(total, int(time.Since(start)/interval)+1)
		for ; sent < due; sent++ {
			sched <- start.Add(time.Duration(sent) * interval)
		}
	}
	close(sched)
	<-done
	r := summarize(samples, time.Since(start))
	lag := make([]time.Duration, len(samples))
	for i, s := range samples {
		lag[i] = s.late
	}
	r.lagP99 = percentile(lag, 0.99)
	writeRequests(label, samples)
	return r
}

// sample is one request: when it was to be sent, how late it began, and its
// latency from the send time; ok is false when it failed.
type sample struct {
	at        time.Time
	late, lat time.Duration
	ok        bool
}

// writeRequests writes samples as CSV to CXLAB_BENCH_PROFILE, when set.
func writeRequests(label string, samples []sample) {
	dir := os.Getenv("CXLAB_BENCH_PROFILE")
	if dir == "" {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].at.Before(samples[j].at) })
	var b strings.Builder
	b.WriteString("send_time_unix_us,late_us,latency_us,ok\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%d,%d,%d,%t\n", s.at.UnixMicro(), s.late.Microseconds(), s.lat.Microseconds(), s.ok)
	}
	f := filepath.Join(dir, "ges-"+label+"-requests.csv")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil { //nolint:gosec // a report for the user
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
}

// workers runs op from `concurrency` goroutines, each with a connection of
// its own to base, while next hands out send times, and returns a sample of
// each request.
func workers(base *url.URL, op func(*loadConn) error, next func() (time.Time, bool)) []sample {
	var (
		mu  sync.Mutex
		all []sample
		wg  sync.WaitGroup
	)
	for range concurrency {
		c := &loadConn{base: base}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			var mine []sample
			for at, ok := next(); ok; at, ok = next() {
				s := sample{at: at, late: time.Since(at)}
				s.ok = op(c) == nil
				s.lat = time.Since(at)
				mine = append(mine, s)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all
}

// summarize gives the rate and latency percentiles of the successful
// requests, and counts the failed ones.
func summarize(samples []sample, el time.Duration) loadResult {
	var lat []time.Duration
	var errs int64
	for _, s := range samples {
		if !s.ok {
			errs++
			continue
		}
		lat = append(lat, s.lat)
	}
	return loadResult{perSec: float64(len(lat)) / el.Seconds(), p50: percentile(lat, 0.50), p99: percentile(lat, 0.99), errors: errs}
}

// percentile sorts ds and returns its p-th percentile in milliseconds (0 when empty).
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ms(ds[int(float64(len(ds)-1)*p)])
}

func post(ctx context.Context, hc *http.Client, url, body string, out any) (int, error) {
	req, err := apiRequest(ctx, http.MethodPost, url, body)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	return resp.StatusCode, readBody(resp, out)
}

// apiRequest is a request to the Engagement API with the demo key; a
// non-empty body is sent as JSON.
func apiRequest(ctx context.Context, method, url, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("x-api-key", apiKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// readBody reads resp's whole body (so that its connection can carry the
// next request) and decodes it as JSON into out unless out is nil.
func readBody(resp *http.Response, out any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// handlerTimings is the create path's ges_http_request_duration_seconds
// histogram: its count and the count at or under 10 ms.
type handlerTimings struct{ count, within10ms uint64 }

func (t handlerTimings) sub(o handlerTimings) handlerTimings {
	return handlerTimings{t.count - o.count, t.within10ms - o.within10ms}
}

func (t handlerTimings) within10msPct() float64 {
	if t.count == 0 {
		return 0
	}
	return 100 * float64(t.within10ms) / float64(t.count)
}

// createTimings scrapes cxlab's metrics for the create endpoint's histogram.
func createTimings(ctx context.Context, metricsURL string) (handlerTimings, error) {
	fams, err := scrape.Families(ctx, http.DefaultClient, metricsURL)
	if err != nil {
		return handlerTimings{}, err
	}
	const name = "ges_http_request_duration_seconds"
	for _, m := range fams[name].GetMetric() {
		if !scrape.HasLabel(m, "path", "/engagement/v3/callbacks/create") {
			continue
		}
		h := m.GetHistogram()
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 0.01 {
				return handlerTimings{count: h.GetSampleCount(), within10ms: b.GetCumulativeCount()}, nil
			}
		}
		return handlerTimings{}, fmt.Errorf("%s has no 10-ms bucket", name)
	}
	return handlerTimings{}, nil // no create served yet
}
