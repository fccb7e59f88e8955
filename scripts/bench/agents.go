package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// agents measures gateway sign-in rate (HTTP sign-in + SIP REGISTER with
// digest to Voice) and memory per signed-in agent at 100 and 1,000 agents.
func agents(ctx context.Context, bin string, _ int) ([]Row, error) {
	root, err := os.MkdirTemp("", "cxlab-bench-agents-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711)
	const total = 2000
	seed := filepath.Join(root, "agents.yaml")
	if err := writeAgentSeed(seed, total); err != nil {
		return nil, err
	}
	in, err := startInstance(ctx, bin, filepath.Join(root, "data"), "--seed", seed)
	if err != nil {
		return nil, err
	}
	defer in.stop()
	base := in.consoleURL()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 15 * time.Second}
	pid := in.cmd.Process.Pid

	var rows []Row
	signed := 0
	before := processRSS(pid)
	for _, upTo := range []int{100, 1000, total} {
		n := upTo - signed
		t0 := time.Now()
		var failed atomic.Int64
		var wg sync.WaitGroup
		next := make(chan int)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/webrtc/sign_in", strings.NewReader(fmt.Sprintf("%d:dnpass", 20000+i)))
					resp, err := hc.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					if resp.StatusCode != 200 {
						failed.Add(1)
					}
					_ = resp.Body.Close()
				}
			}()
		}
		for i := signed; i < upTo; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		took := time.Since(t0)
		signed = upTo
		time.Sleep(2 * time.Second) // let the heap settle before reading RSS
		rss := processRSS(pid)
		cond := fmt.Sprintf("%d agents signed in (DN:password, SIP REGISTER with digest to Voice), 16 concurrent clients; %d failed", upTo, failed.Load())
		rows = append(rows,
			Row{Area: "agents", Figure: fmt.Sprintf("sign-in rate, agents %d-%d", upTo-n+1, upTo), Value: float64(n) / took.Seconds(), Unit: "sign-ins/s", Conditions: cond},
			Row{Area: "agents", Figure: fmt.Sprintf("memory per signed-in agent at %d", upTo), Value: float64(rss-before) / float64(upTo) / 1024, Unit: "kB",
				Target: "<= 100 kB", Conditions: cond + "; cxlab RSS delta, postgres excluded"},
		)
	}
	return rows, nil
}

// writeAgentSeed adds n DNs (20000...) with SIP password dnpass to the demo tenant.
func writeAgentSeed(path string, n int) error {
	var b strings.Builder
	b.WriteString("contactCenters:\n  - id: 9350e2fc-a1dd-4c65-8d40-1f75a2e080dd\n    name: demo\n    sipDomain: demo.cxlab.local\n    dns:\n")
	for i := range n {
		fmt.Fprintf(&b, "      - {number: \"%d\", type: Extension, sipPassword: dnpass}\n", 20000+i)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// processRSS is the resident set of one process, in bytes.
func processRSS(pid int) int64 {
	for _, p := range procs() {
		if p.pid == pid {
			return int64(p.rssKB) * 1024
		}
	}
	return 0
}
