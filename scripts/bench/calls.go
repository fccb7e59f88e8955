package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway/agent"
	"github.com/cxlab/cxlab/appliance/media"
)

// calls measures the appliance's CPU per transcoded call: N headless agents
// (Opus, in this bench process) each call the simulated customer
// +12025550100 (G.711, inside cxlab) through the gateway; cxlab's CPU time
// over a window is divided by N. The codec-only cost of one call (Opus decode +
// G.711 encode and back, 50 frames/s each way) is measured in the same run.
func calls(ctx context.Context, bin string, _ int) ([]Row, error) {
	root, err := os.MkdirTemp("", "cxlab-bench-calls-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711)
	seed := filepath.Join(root, "agents.yaml")
	if err := writeAgentSeed(seed, 64); err != nil {
		return nil, err
	}
	in, err := startInstance(ctx, bin, filepath.Join(root, "data"), "--seed", seed)
	if err != nil {
		return nil, err
	}
	defer in.stop()
	base := strings.TrimSuffix(in.endpoints["console_url"].(string), "/")
	pid := in.cmd.Process.Pid
	codec, err := codecOnlyPerCallSecond()
	if err != nil {
		return nil, err
	}

	var rows []Row
	var agents []*agent.Agent
	var stops []context.CancelFunc
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	for _, n := range []int{10, 30} {
		for len(agents) < n {
			i := len(agents)
			a := agent.New(agent.Config{URL: base, DN: strconv.Itoa(20000 + i), Password: "dnpass", PlayHz: 1000,
				HTTPClient: &http.Client{Timeout: 40 * time.Second}})
			if err := a.SignIn(ctx); err != nil {
				return nil, fmt.Errorf("sign in agent %d: %w", i, err)
			}
			actx, stop := context.WithCancel(ctx)
			stops = append(stops, stop)
			go func() { _ = a.Run(actx) }()
			if err := a.Call(ctx, "+12025550100"); err != nil {
				return nil, fmt.Errorf("agent %d call: %w", i, err)
			}
			agents = append(agents, a)
		}
		// Every call must carry the customer's tone before the window starts.
		deadline := time.Now().Add(30 * time.Second)
		for _, a := range agents {
			for {
				h := a.Heard()
				if h.AudioMS > 300 && math.Abs(h.DominantHz-440) < 30 {
					break
				}
				if time.Now().After(deadline) {
					return nil, fmt.Errorf("a call carried no audio within 30 s (heard %+v)", h)
				}
				time.Sleep(50 * time.Millisecond) // polling media analysis; bounded
			}
		}
		const window = 10 * time.Second
		c0, t0 := processCPU(pid), time.Now()
		time.Sleep(window) // the CPU used over this window is what is measured
		used := processCPU(pid) - c0
		perCall := used.Seconds() / time.Since(t0).Seconds() / float64(n) * 1000 // ms CPU per call-second
		cond := fmt.Sprintf("%d concurrent calls, browser leg Opus (pion agents in the bench process) <-> cxlab gateway <-> PCMU <-> simulated customer in cxlab, 10 s window", n)
		rows = append(rows,
			Row{Area: "gateway", Figure: fmt.Sprintf("cxlab CPU per transcoded call, %d calls", n), Value: perCall, Unit: "ms/s", Conditions: cond + "; includes the simulated customer's media and analysis"},
			Row{Area: "gateway", Figure: fmt.Sprintf("calls per core, %d calls", n), Value: 1000 / perCall, Unit: "calls", Target: ">= 150", Conditions: cond},
			Row{Area: "gateway", Figure: fmt.Sprintf("overhead vs codec-only, %d calls", n), Value: perCall / codec, Unit: "x", Target: "<= 1.3x",
				Conditions: fmt.Sprintf("codec-only (Opus<->G.711 both directions, this run): %.2f ms per call-second", codec)},
		)
	}
	return rows, nil
}

// codecOnlyPerCallSecond times one call's transcoding work on this box, as
// the codec-only reference: the browser's Opus packets (pre-encoded) decoded
// to PCMU and PCMU encoded to Opus, 50 frames each way per second of call.
// Single goroutine, measured before the calls start so nothing competes.
func codecOnlyPerCallSecond() (float64, error) {
	tc, err := media.NewTranscoder(media.PCMU, media.OpusConfig{})
	if err != nil {
		return 0, err
	}
	enc, err := media.NewOpusEncoder(media.OpusConfig{})
	if err != nil {
		return 0, err
	}
	src := media.NewSine(1000, -20, time.Hour)
	pcm := make([]int16, media.FrameSamples)
	var pkts [][]byte
	for range 50 {
		media.ReadFrame(src, pcm)
		p, err := enc.Encode(pcm, make([]byte, media.MaxOpusPacket))
		if err != nil {
			return 0, err
		}
		pkts = append(pkts, p)
	}
	g711 := make([]byte, media.FrameSamples)
	opusOut := make([]byte, media.MaxOpusPacket)
	const seconds = 20
	t0 := time.Now()
	for i := range seconds * 50 {
		out, err := tc.OpusToG711(pkts[i%len(pkts)], g711)
		if err != nil {
			return 0, err
		}
		if _, err := tc.G711ToOpus(out, opusOut); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(t0).Microseconds()) / 1000 / seconds, nil
}

// processCPU is utime+stime of a process.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ = 100
}
