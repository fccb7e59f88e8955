// Command bench prints CX Lab's benchmark table and writes it as JSON so runs
// can be compared. Every figure states its conditions; every run is bounded in
// time and talks to loopback only.
//
//	go run ./scripts/bench -bin bin/cxlab -out .artifacts/bench.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Row is one measured figure.
type Row struct {
	Area       string  `json:"area"`
	Figure     string  `json:"figure"`
	Value      float64 `json:"value"`
	Unit       string  `json:"unit"`
	Target     string  `json:"target,omitempty"`
	Reference  string  `json:"reference,omitempty"` // the real product's figure, when seed 004/000 gives one
	Ratio      string  `json:"ratio,omitempty"`
	Conditions string  `json:"conditions"`
}

// Report is the JSON document written by -out.
type Report struct {
	When    time.Time `json:"when"`
	Host    string    `json:"host"`
	CPUs    int       `json:"cpus"`
	Version string    `json:"version"`
	Rows    []Row     `json:"rows"`
}

func main() {
	bin := flag.String("bin", "bin/cxlab", "cxlab binary to measure")
	out := flag.String("out", "", "write the report as JSON here too")
	runs := flag.Int("runs", 5, "repetitions of each start measurement (median reported)")
	only := flag.String("only", "", "comma-separated areas to run (startup,ges,...); empty runs all")
	counts := flag.String("calls", "", "comma-separated concurrent call counts for the calls area, ascending; empty: "+fmt.Sprint(callCounts))
	flag.Parse()
	if *counts != "" {
		callCounts = nil
		for f := range strings.SplitSeq(*counts, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 || (len(callCounts) > 0 && n <= callCounts[len(callCounts)-1]) {
				fmt.Fprintf(os.Stderr, "bench: -calls %q: want ascending positive counts\n", *counts)
				os.Exit(2)
			}
			callCounts = append(callCounts, n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	rep := Report{When: time.Now().UTC(), CPUs: runtime.NumCPU()}
	rep.Host, _ = os.Hostname()
	if v, err := exec.CommandContext(ctx, *bin, "version").Output(); err == nil {
		rep.Version = strings.TrimSpace(string(v))
	}
	want := func(area string) bool { return *only == "" || strings.Contains(","+*only+",", ","+area+",") }
	// An area that fails is reported and the others still run: a full run
	// takes minutes, and one area's failure (a peer tool's hiccup under load,
	// say) should not throw the rest away. The exit status tells.
	var failed []string
	for _, a := range areas {
		if !want(a.name) {
			continue
		}
		// The last area's files (startup's five initdb runs, say) would
		// otherwise be written back during this one's window.
		syscall.Sync()
		rows, err := a.run(ctx, *bin, *runs)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench %s: %v\n", a.name, err)
			failed = append(failed, a.name)
			continue
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	print(rep)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("\nwritten to %s\n", *out)
	}
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "bench: failed areas: %s\n", strings.Join(failed, ", "))
		os.Exit(1)
	}
}

type area struct {
	name string
	run  func(ctx context.Context, bin string, runs int) ([]Row, error)
}

var areas = []area{{"startup", startup}, {"ges", gesThroughput}, {"storage", storage}, {"agents", agents}, {"calls", calls}, {"logs", logGrowth}, {"turn", turnVsCoturn}}

func print(rep Report) {
	fmt.Printf("CX Lab bench  %s  %s  %d CPUs  %s\n\n", rep.Version, rep.Host, rep.CPUs, rep.When.Format(time.RFC3339))
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "AREA\tFIGURE\tVALUE\tTARGET\tREFERENCE\tRATIO\tCONDITIONS")
	for _, r := range rep.Rows {
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", r.Area, r.Figure, fmtNum(r.Value), r.Unit, r.Target, r.Reference, r.Ratio, r.Conditions)
	}
	_ = tw.Flush()
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// upArgs puts every port on 0 so the bench never collides with a running lab.
var upArgs = []string{"--http-port", "0", "--redis-port", "0", "--postgres-port", "0", "--sip-port", "0", "--turn-port", "0", "--media-port", "0"}

// instance is one `cxlab up` process.
type instance struct {
	cmd       *exec.Cmd
	exited    chan struct{}
	endpoints map[string]any
	readyIn   time.Duration
}

// consoleURL is the instance's console base URL, without a trailing slash
// (the gateway, GAuth and /debug/pprof live under it).
func (in *instance) consoleURL() string {
	u, _ := in.endpoints["console_url"].(string)
	return strings.TrimSuffix(u, "/")
}

// startInstance runs cxlab up on dataDir and returns once the endpoints file
// exists (cxlab writes it only when every component is ready).
func startInstance(ctx context.Context, bin, dataDir string, extra ...string) (*instance, error) {
	ep := filepath.Join(dataDir, "..", filepath.Base(dataDir)+".endpoints.json")
	_ = os.Remove(ep)
	args := append(append([]string{"up", "--data-dir", dataDir, "--endpoints-file", ep}, upArgs...), extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	in := &instance{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(in.exited) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		if b, err := os.ReadFile(ep); err == nil {
			in.readyIn = time.Since(t0)
			if err := json.Unmarshal(b, &in.endpoints); err != nil {
				in.stop()
				return nil, fmt.Errorf("endpoints file: %w", err)
			}
			return in, nil
		}
		select {
		case <-in.exited:
			return nil, fmt.Errorf("cxlab exited before ready (code %d)", cmd.ProcessState.ExitCode())
		case <-deadline:
			in.stop()
			return nil, errors.New("not ready within 60 s")
		case <-tick.C:
		}
	}
}

func (in *instance) stop() {
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.exited:
	case <-time.After(10 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
	}
}

// rssTree sums the resident set of pid and all its descendants (the postgres
// processes are children of the supervisor, reparented to init when pg_ctl
// daemonizes them, so they are found by their data dir too).
func rssTree(pid int, dataDir string) (kb int) {
	seen := map[int]bool{}
	for _, p := range procs() {
		if p.pid == pid || descends(p.pid, pid) || strings.Contains(p.cmdline, dataDir) {
			if !seen[p.pid] {
				seen[p.pid] = true
				kb += p.rssKB
			}
		}
	}
	return kb
}

type proc struct {
	pid, ppid, rssKB int
	cmdline          string
}

func procs() []proc {
	var out []proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		p := proc{pid: pid}
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "PPid:" {
				p.ppid, _ = strconv.Atoi(f[1])
			}
			if len(f) >= 2 && f[0] == "VmRSS:" {
				p.rssKB, _ = strconv.Atoi(f[1])
			}
		}
		cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		p.cmdline = strings.ReplaceAll(string(cl), "\x00", " ")
		out = append(out, p)
	}
	return out
}

func descends(pid, ancestor int) bool {
	parents := map[int]int{}
	for _, p := range procs() {
		parents[p.pid] = p.ppid
	}
	for i := 0; i < 64 && pid > 1; i++ {
		pid = parents[pid]
		if pid == ancestor {
			return true
		}
	}
	return false
}
