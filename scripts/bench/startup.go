package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// startup measures cold start (fresh data dir, initdb included) and warm start
// (existing data dir) to ready, and idle RSS of cxlab plus its PostgreSQL.
func startup(ctx context.Context, bin string, runs int) ([]Row, error) {
	root, err := os.MkdirTemp("", "cxlab-bench-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711) // the postgres user must traverse it when we run as root
	var cold, warm []time.Duration
	var rss []int
	for i := 0; i < runs; i++ {
		dir := filepath.Join(root, fmt.Sprintf("run%d", i))
		in, err := startInstance(ctx, bin, dir)
		if err != nil {
			return nil, fmt.Errorf("cold start: %w", err)
		}
		cold = append(cold, in.readyIn)
		in.stop()
		in, err = startInstance(ctx, bin, dir)
		if err != nil {
			return nil, fmt.Errorf("warm start: %w", err)
		}
		warm = append(warm, in.readyIn)
		// Idle RSS after the start settles: sample for 3 s, keep the last.
		time.Sleep(3 * time.Second) // letting the idle state settle is what is measured here
		rss = append(rss, rssTree(in.cmd.Process.Pid, dir))
		in.stop()
	}
	cond := fmt.Sprintf("median of %d, 2-core box, embedded Redis + PostgreSQL, all components", runs)
	return []Row{
		{Area: "startup", Figure: "cold start to ready (initdb included)", Value: ms(median(cold)), Unit: "ms", Target: "<= 2000 ms", Conditions: cond},
		{Area: "startup", Figure: "warm start to ready", Value: ms(median(warm)), Unit: "ms", Target: "<= 700 ms", Conditions: cond},
		{Area: "startup", Figure: "idle RSS, cxlab + postgres processes", Value: float64(medianInt(rss)) / 1024, Unit: "MB", Target: "<= 120 MB", Conditions: cond + ", 3 s after ready"},
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianInt(v []int) int {
	s := append([]int{}, v...)
	sort.Ints(s)
	return s[len(s)/2]
}
