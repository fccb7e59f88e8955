package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// Log-growth conditions: agents idle-polling for logsIdle, then logsCalls
// concurrent calls of logsCallLength each (half of them relayed through TURN).
const (
	logsAgents     = 20
	logsIdle       = 90 * time.Second
	logsCalls      = 10
	logsCallLength = 10 * time.Second
)

// logGrowth measures how fast the gateway's and TURN's log files grow at the
// default log level: per signed-in idle agent (extrapolated to an hour) and
// per call (the call phase's growth less the idle rate over it).
func logGrowth(ctx context.Context, bin string, _ int) ([]Row, error) {
	root, err := os.MkdirTemp("", "cxlab-bench-logs-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711)
	seed := filepath.Join(root, "agents.yaml")
	if err := writeAgentSeed(seed, logsAgents); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(root, "data")
	in, err := startInstance(ctx, bin, dataDir, "--seed", seed)
	if err != nil {
		return nil, err
	}
	defer in.stop()
	base := in.consoleURL()
	logDir := filepath.Join(dataDir, "logs")

	actx, stop := context.WithCancel(ctx)
	defer stop()
	agents := make([]*agent.Agent, 0, logsAgents)
	for i := range logsAgents {
		a := agent.New(agent.Config{URL: base, DN: strconv.Itoa(20000 + i), Password: "dnpass", PlayHz: 1000,
			RelayOnly: i%2 == 1, BindIP: "127.0.0.1", HTTPClient: &http.Client{Timeout: 40 * time.Second}})
		if err := a.SignIn(ctx); err != nil {
			return nil, fmt.Errorf("sign in agent %d: %w", i, err)
		}
		go func() { _ = a.Run(actx) }()
		agents = append(agents, a)
	}

	// Idle: every agent long-polls; nothing else happens.
	s0, t0 := logSizes(logDir), time.Now()
	time.Sleep(logsIdle) // the growth over this window is what is measured
	s1, idle := logSizes(logDir), time.Since(t0)
	idleGrowth := s1.sub(s0)
	idleRate := float64(idleGrowth.total()) / idle.Seconds() // bytes/s, all agents

	// Calls: logsCalls agents call the simulated customer, talk, hang up.
	t1 := time.Now()
	for i := range logsCalls {
		if err := agents[i].Call(ctx, "+12025550100"); err != nil {
			return nil, fmt.Errorf("agent %d call: %w", i, err)
		}
	}
	time.Sleep(logsCallLength) // the calls' fixed length
	for i := range logsCalls {
		if err := agents[i].Hangup(ctx); err != nil {
			return nil, fmt.Errorf("agent %d hang up: %w", i, err)
		}
	}
	// Let the gateway log the calls' ends before reading the files.
	deadline := time.Now().Add(10 * time.Second)
	for countCallEnds(logDir) < logsCalls && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // polling the log file; bounded
	}
	s2, phase := logSizes(logDir), time.Since(t1)
	callGrowth := s2.sub(s1)
	perCall := (float64(callGrowth.total()) - idleRate*phase.Seconds()) / logsCalls

	perAgentHour := idleRate * 3600 / logsAgents / 1e3
	cond := fmt.Sprintf("%d agents signed in (DN:password), long-polling; default log level; gateway*.log + turn*.log in <data-dir>/logs over a %s idle window, extrapolated; idle growth %s",
		logsAgents, logsIdle, idleGrowth)
	callCond := fmt.Sprintf("%d concurrent calls of %s (Opus agents -> +12025550100, every other one relay-only through TURN), sign-in excluded, idle rate subtracted; call-phase growth %s",
		logsCalls, logsCallLength, callGrowth)
	return []Row{
		{Area: "logs", Figure: "gateway+TURN log growth per idle agent", Value: perAgentHour, Unit: "kB/h", Target: "<= 500 kB/h (0.5 MB) per agent", Conditions: cond},
		{Area: "logs", Figure: "gateway+TURN log growth per call", Value: math.Max(0, perCall) / 1e3, Unit: "kB", Target: "<= 200 kB (0.2 MB) per call", Conditions: callCond},
	}, nil
}

// logSet is the size of each measured log file.
type logSet map[string]int64

// logSizes reads the sizes of the gateway's and TURN's log files (rotated
// ones included, so rotation does not hide growth).
func logSizes(dir string) logSet {
	out := logSet{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "gateway") && !strings.HasPrefix(n, "turn") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out[n] = fi.Size()
		}
	}
	return out
}

func (s logSet) sub(prev logSet) logSet {
	out := logSet{}
	for n, v := range s {
		out[n] = v - prev[n]
	}
	return out
}

func (s logSet) total() (t int64) {
	for _, v := range s {
		t += v
	}
	return t
}

func (s logSet) String() string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s +%d B", n, s[n])
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// countCallEnds counts the gateway's "call ended" lines.
func countCallEnds(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "gateway.log"))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "call ended")
}
