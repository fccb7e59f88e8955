// Command soak runs CX Lab at moderate load for a while and prints its memory
// and goroutines over time, to show they stay flat. Not part of CI.
//
//	go run ./scripts/soak -bin bin/cxlab -duration 30m
//
// Load: two headless agents answer every callback, the second through TURN
// only (iceTransportPolicy relay: each of its calls allocates on the TURN
// server and frees the allocation when it ends); a client books an immediate
// callback every 8 s to a simulated customer who hangs up after 5 s (the
// per-number limit of 5 active callbacks is never reached), and retrieves
// callbacks at 20 req/s. Everything is on loopback and stops by itself.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway/agent"
	"github.com/cxlab/cxlab/scripts/internal/scrape"
)

const apiKey = "cxlab-demo-api-key-0000000000000000"

func main() {
	bin := flag.String("bin", "bin/cxlab", "cxlab binary")
	duration := flag.Duration("duration", 30*time.Minute, "how long to run (bounded: at most 2h)")
	every := flag.Duration("every", 30*time.Second, "sampling interval")
	flag.Parse()
	if *duration > 2*time.Hour {
		*duration = 2 * time.Hour
	}
	if err := run(*bin, *duration, *every); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(bin string, duration, every time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), duration+2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "cxlab-soak-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	_ = os.Chmod(dir, 0o711)
	ep := filepath.Join(dir, "endpoints.json")
	cmd := exec.CommandContext(ctx, bin, "up", "--data-dir", filepath.Join(dir, "data"), "--endpoints-file", ep,
		"--http-port", "0", "--redis-port", "0", "--postgres-port", "0", "--sip-port", "0", "--turn-port", "0", "--media-port", "0")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	var endpoints map[string]any
	for deadline := time.Now().Add(60 * time.Second); ; {
		if b, err := os.ReadFile(ep); err == nil && json.Unmarshal(b, &endpoints) == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cxlab not ready within 60 s")
		}
		time.Sleep(50 * time.Millisecond) // waiting for the endpoints file; bounded
	}
	base := strings.TrimSuffix(endpoints["console_url"].(string), "/")
	api := endpoints["ges_api_url"].(string)
	hc := &http.Client{Timeout: 10 * time.Second}

	var relayed *agent.Agent
	for i, user := range []string{"agent3", "agent4"} {
		relayOnly := i == 1
		ag := agent.New(agent.Config{URL: base, Token: agent.PasswordGrant(hc, base, "cxlab-console", "console-secret", user, "agent123"),
			AutoAnswer: true, PlayHz: 1000, RelayOnly: relayOnly})
		if relayOnly {
			relayed = ag
		}
		if err := ag.SignIn(ctx); err != nil {
			return fmt.Errorf("agent sign-in: %w", err)
		}
		go func() { _ = ag.Run(ctx) }()
		if err := ag.SetState(ctx, "Ready"); err != nil {
			return err
		}
	}

	var created, failed atomic.Int64
	var lastID atomic.Value
	lastID.Store("")
	go func() { // book a callback every 8 s
		t := time.NewTicker(8 * time.Second)
		defer t.Stop()
		for ctx.Err() == nil {
			<-t.C
			id, err := post(ctx, hc, api+"/callbacks/create", `{"serviceName":"CB_Support","phoneNumber":"+12025550106"}`)
			if err != nil {
				failed.Add(1)
				continue
			}
			created.Add(1)
			lastID.Store(id)
		}
	}()
	go func() { // retrieve at 20 req/s
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			<-t.C
			if id := lastID.Load().(string); id != "" {
				if _, err := post(ctx, hc, api+"/callbacks/retrieve", `{"id":"`+id+`"}`); err != nil {
					failed.Add(1)
				}
			}
		}
	}()

	fmt.Printf("%-10s %12s %11s %11s %10s %12s %13s %7s\n", "ELAPSED", "CXLAB RSS MB", "GO HEAP MB", "GOROUTINES", "CALLBACKS",
		"TURN ALLOCS", "RELAY AUDIO S", "ERRORS")
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		m := metrics(ctx, hc, base)
		fmt.Printf("%-10s %12.1f %11.1f %11d %10d %12d %13d %7d\n", time.Since(start).Round(time.Second), float64(rss(cmd.Process.Pid))/1e6,
			m.heap/1e6, m.goroutines, created.Load(), m.turnAllocs, relayed.Heard().AudioMS/1000, failed.Load())
		if time.Since(start) >= duration {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func post(ctx context.Context, hc *http.Client, url, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("x-api-key", apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Data struct{ ID string } `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return out.Data.ID, nil
}

// sample is what the soak reads off /metrics.
type sample struct {
	heap       float64 // go_memstats_heap_inuse_bytes
	goroutines int     // go_goroutines
	turnAllocs int     // cxlab_turn_allocations: live TURN allocations
}

func metrics(ctx context.Context, hc *http.Client, base string) (m sample) {
	fams, err := scrape.Families(ctx, hc, base+"/metrics")
	if err != nil {
		return m // a missed sample shows as zeros in its row
	}
	return sample{
		heap:       scrape.Value(fams, "go_memstats_heap_inuse_bytes"),
		goroutines: int(scrape.Value(fams, "go_goroutines")),
		turnAllocs: int(scrape.Value(fams, "cxlab_turn_allocations")),
	}
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
