package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/freeport"
)

var cxlab string // the binary under test, built once

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cxlab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cxlab = filepath.Join(dir, "cxlab")
	build := exec.Command("go", "build", "-o", cxlab, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build cxlab: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// freeArgs puts every port on 0 so parallel runs never collide.
var freeArgs = []string{"--http-port", "0", "--redis-port", "0", "--postgres-port", "0", "--sip-port", "0", "--turn-port", "0", "--media-port", "0"}

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cxlab, args...)
	var o, e lockedBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("run %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func TestMalformedConfigExitsTwoWithOneLineNamingTheSetting(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("redis:\n  urll: redis://x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--config", bad}, "urll"},
		{[]string{"up", "--redis-url", "ftp://x"}, "--redis-url"},
		{[]string{"up", "--data-dir", "/proc/cxlab-cannot-live-here"}, "--data-dir"},
		{[]string{"up", "--nonsense"}, "nonsense"},
		{[]string{"up", "--ephemeral", "--seed", bad}, "seed (--seed)"},
	} {
		_, stderr, code := run(t, c.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %q", c.args, code, stderr, c.want)
		}
		if c.args[1] != "--nonsense" && len(lines) != 1 {
			t.Errorf("%v: want a one-line error, got %d lines: %q", c.args, len(lines), stderr)
		}
	}
}

func TestPortInUseNamesTheFlag(t *testing.T) {
	ln, err := (&net_listener{}).listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.close()
	args := append([]string{"up", "--ephemeral"}, freeArgs...)
	args = append(args, "--http-port", fmt.Sprint(ln.port))
	_, stderr, code := run(t, args...)
	if code == 0 || !strings.Contains(stderr, fmt.Sprintf("can't listen on --http-port %d: address already in use", ln.port)) {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestConfigPrintVersionDoctor(t *testing.T) {
	out, _, code := run(t, "config", "print", "--http-port", "9999")
	if code != 0 || !strings.Contains(out, "port: 9999") {
		t.Errorf("config print: exit %d\n%s", code, out)
	}
	out, _, code = run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "cxlab ") {
		t.Errorf("version: exit %d %q", code, out)
	}
	out, _, _ = run(t, append([]string{"doctor", "--ephemeral"}, freeArgs...)...)
	if !strings.Contains(out, "PostgreSQL") || !strings.Contains(out, "Ports") || !strings.Contains(out, "io_uring") {
		t.Errorf("doctor output lacks sections:\n%s", out)
	}
}

type upProcess struct {
	epFile    string
	cmd       *exec.Cmd
	exited    chan struct{}
	endpoints map[string]any
	stdout    *lockedBuffer
	stderr    *lockedBuffer
}

// lockedBuffer collects a child's output; the test reads it while exec's
// copying goroutine may still be writing.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// launch starts cmd with its output collected, killed (if still running)
// when the test ends.
func launch(t *testing.T, cmd *exec.Cmd) *upProcess {
	t.Helper()
	var o, e lockedBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &upProcess{cmd: cmd, stdout: &o, stderr: &e, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// startUp runs `cxlab up` and waits for its endpoints file (written once ready).
func startUp(t *testing.T, extra ...string) *upProcess {
	t.Helper()
	ep := filepath.Join(t.TempDir(), "endpoints.json")
	args := append(append([]string{"up", "--endpoints-file", ep}, freeArgs...), extra...)
	cmd := exec.Command(cxlab, args...)
	p := launch(t, cmd)
	p.epFile = ep
	o, e := p.stdout, p.stderr
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond) // polling a file the process writes, bounded by the deadline
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(ep); err == nil {
			if err := json.Unmarshal(b, &p.endpoints); err != nil {
				t.Fatalf("endpoints file is not JSON: %v\n%s", err, b)
			}
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("cxlab exited before ready (code %d)\nstdout:\n%s\nstderr:\n%s", cmd.ProcessState.ExitCode(), o.String(), e.String())
		case <-deadline:
			t.Fatalf("no endpoints file within 60 s\nstdout:\n%s\nstderr:\n%s", o.String(), e.String())
		case <-tick.C:
		}
	}
}

func (p *upProcess) url(key string) string { s, _ := p.endpoints[key].(string); return s }

func (p *upProcess) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("cxlab did not exit within %s\nstdout:\n%s\nstderr:\n%s", within, p.stdout, p.stderr)
		return -1
	}
}

// postgresOf lists live postgres processes whose command line mentions dir.
func postgresOf(dir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cl, "postgres") && strings.Contains(cl, dir) {
			out = append(out, e.Name()+": "+cl)
		}
	}
	return out
}

func waitNoPostgres(t *testing.T, dir string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := postgresOf(dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres processes outlived cxlab: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUpEphemeralServesAndStopsCleanlyOnSIGTERM(t *testing.T) {
	p := startUp(t, "--ephemeral")
	for _, k := range []string{"redis_url", "postgres_url", "metrics_url", "ready_url", "data_dir"} {
		if p.url(k) == "" {
			t.Errorf("endpoints file lacks %s: %v", k, p.endpoints)
		}
	}
	resp, err := http.Get(p.url("ready_url"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	if !strings.Contains(p.stdout.String(), "not for production") && !strings.Contains(p.stdout.String(), "Not for production") {
		t.Errorf("banner lacks the not-for-production warning:\n%s", p.stdout)
	}
	dataDir := p.url("data_dir")
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(t, 6*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr)
	}
	t.Logf("graceful stop took %s", time.Since(t0))
	waitNoPostgres(t, dataDir, 2*time.Second)
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("ephemeral data dir %s still exists after exit", dataDir)
	}
}

// A second `cxlab up` that cannot start (the data dir is in use) leaves the
// endpoints file of the running one alone.
func TestFailedSecondStartKeepsTheRunningOnesEndpointsFile(t *testing.T) {
	dataDir := pgDataDir(t, "cxlab-twice-")
	p := startUp(t, "--data-dir", dataDir)
	_, stderr, code := run(t, append([]string{"up", "--data-dir", dataDir, "--endpoints-file", p.epFile}, freeArgs...)...)
	if code == 0 || !strings.Contains(stderr, "in use") {
		t.Fatalf("second up on the same data dir: exit %d %q, want a failure saying it is in use", code, stderr)
	}
	if _, err := os.Stat(p.epFile); err != nil {
		t.Errorf("the running appliance's endpoints file is gone after a failed second start: %v", err)
	}
}

// A second signal exits at once (130) but still removes the endpoints file:
// a script waiting for it would otherwise take the dead appliance for up.
func TestSecondSignalExitsAtOnceWithoutTheEndpointsFile(t *testing.T) {
	p := startUp(t, "--ephemeral")
	dataDir := p.url("data_dir")
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	// The second once the first is taken (two pending at once are one signal).
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stdout.String(), "Stopping CX Lab") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling the child's output, bounded by the deadline
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(t, 6*time.Second); code != 130 || !strings.Contains(p.stderr.String(), "second signal") {
		t.Fatalf("exit %d after two SIGTERMs, want 130 saying so\n%s", code, p.stderr)
	}
	if _, err := os.Stat(p.epFile); !os.IsNotExist(err) {
		t.Errorf("endpoints file %s left after a forced exit (%v)", p.epFile, err)
	}
	waitNoPostgres(t, dataDir, 5*time.Second)
	_ = os.RemoveAll(dataDir)
}

// A signal while the appliance starts stops what started, and it is not a
// failure: exit 0, no PostgreSQL left.
func TestSignalDuringStartStopsCleanly(t *testing.T) {
	dataDir := pgDataDir(t, "cxlab-early-")
	cmd := exec.Command(cxlab, append([]string{"up", "--data-dir", dataDir}, freeArgs...)...)
	p := launch(t, cmd)
	o, e := p.stdout, p.stderr
	// PostgreSQL is the first component: once its server runs, start is
	// under way (cxlab's own command line names the data dir and postgres too).
	pgServer := func() bool {
		for _, cl := range postgresOf(dataDir) {
			if _, rest, _ := strings.Cut(cl, ": "); strings.Contains(strings.Fields(rest)[0], "bin/postgres") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(60 * time.Second)
	for !pgServer() {
		if time.Now().After(deadline) {
			t.Fatalf("no postgres for %s within 60 s\n%s", dataDir, e.String())
		}
		time.Sleep(5 * time.Millisecond) // polling the process table, bounded by the deadline
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after a SIGTERM during start\nstdout:\n%s\nstderr:\n%s", code, o.String(), e.String())
	}
	if !strings.Contains(o.String(), "Stopped before ready") {
		t.Logf("the appliance was ready before the signal landed:\n%s", o.String())
	}
	waitNoPostgres(t, dataDir, 5*time.Second)
}

// pgDataDir is a data dir for one test, removed after it. Not t.TempDir():
// its 0700 parents would keep the unprivileged postgres user out.
func pgDataDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o711)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// fixedPostgresPort is the arguments for dataDir with a set PostgreSQL port,
// as by default: a killed run's postgres may hold it.
func fixedPostgresPort(t *testing.T, dataDir string) []string {
	t.Helper()
	port, err := freeport.Pick("127.0.0.1", freeport.TCP, 1)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--data-dir", dataDir, "--postgres-port", strconv.Itoa(port)}
}

// childrenOf lists the pids whose parent is pid.
func childrenOf(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			c, _ := strconv.Atoi(e.Name())
			out = append(out, c)
		}
	}
	return out
}

// When cxlab and its PostgreSQL supervisor are both killed, PostgreSQL lives
// on holding its port; the next start on that data dir and port stops it and
// starts, instead of refusing the port.
func TestPostgresLeftByKilledRunIsStoppedByNextStart(t *testing.T) {
	dataDir := pgDataDir(t, "cxlab-orphan-")
	args := fixedPostgresPort(t, dataDir)
	p := startUp(t, args...)
	victims := append(childrenOf(p.cmd.Process.Pid), p.cmd.Process.Pid)
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = p.waitExit(t, 5*time.Second)
	if len(postgresOf(filepath.Join(dataDir, "postgres"))) == 0 {
		t.Skip("postgres went down with its supervisor: nothing left over to test")
	}
	t.Cleanup(func() { waitNoPostgres(t, dataDir, 10*time.Second) })
	p2 := startUp(t, args...)
	_ = p2.cmd.Process.Signal(syscall.SIGINT)
	if code := p2.waitExit(t, 6*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, p2.stderr)
	}
}

// cxlab killed as its PostgreSQL supervisor begins (initdb ahead): the
// supervisor finishes what it is doing, stops, and the start made at once
// after the kill waits for it instead of running a second initdb beside it.
func TestKill9DuringInitdbThenImmediateRestart(t *testing.T) {
	dataDir := pgDataDir(t, "cxlab-initdb-")
	args := fixedPostgresPort(t, dataDir)
	p := launch(t, exec.Command(cxlab, append(append([]string{"up"}, freeArgs...), args...)...))
	deadline := time.Now().Add(60 * time.Second)
	for len(childrenOf(p.cmd.Process.Pid)) == 0 { // the supervisor
		if time.Now().After(deadline) {
			t.Fatalf("no PostgreSQL supervisor for %s within 60 s\n%s", dataDir, p.stderr)
		}
		time.Sleep(2 * time.Millisecond) // polling the process table, bounded by the deadline
	}
	_ = p.cmd.Process.Kill()
	_ = p.waitExit(t, 5*time.Second)
	p2 := startUp(t, args...)
	_ = p2.cmd.Process.Signal(syscall.SIGINT)
	if code := p2.waitExit(t, 6*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, p2.stderr)
	}
	waitNoPostgres(t, dataDir, 5*time.Second)
}

func TestKill9LeavesNoPostgresAndNextStartRecovers(t *testing.T) {
	dataDir := pgDataDir(t, "cxlab-kill9-")
	p := startUp(t, "--data-dir", dataDir)
	_ = p.cmd.Process.Kill()
	_ = p.waitExit(t, 5*time.Second)
	waitNoPostgres(t, dataDir, 5*time.Second)

	p2 := startUp(t, "--data-dir", dataDir)
	resp, err := http.Get(p2.url("ready_url"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("second start not ready: %v %v", resp, err)
	}
	resp.Body.Close()
	_ = p2.cmd.Process.Signal(syscall.SIGINT)
	if code := p2.waitExit(t, 6*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, p2.stderr)
	}
	waitNoPostgres(t, dataDir, 2*time.Second)
}

// TestUpAsUnprivilegedUser: started by a normal user (here nobody, when the
// test runs as root), cxlab runs PostgreSQL as that user and stops cleanly.
func TestUpAsUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the other tests already run as a normal user")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// nobody must reach the binary and a place for the endpoints file.
	if err := os.Chmod(filepath.Dir(cxlab), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cxlab-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ep := filepath.Join(dir, "endpoints.json")
	cmd := exec.Command(cxlab, append([]string{"up", "--ephemeral", "--endpoints-file", ep}, freeArgs...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	p := launch(t, cmd)
	e := p.stderr
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(ep); err == nil && json.Unmarshal(b, &p.endpoints) == nil {
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("cxlab as nobody exited before ready:\n%s", e.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cxlab as nobody not ready within 60 s:\n%s", e.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a file the process writes; bounded
	}
	resp, err := http.Get(p.url("ready_url"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	_ = resp.Body.Close()
	dataDir := p.url("data_dir")
	for _, entry := range postgresOf(dataDir) {
		pid, _, _ := strings.Cut(entry, ":")
		if st, err := os.Stat("/proc/" + pid); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != uid {
				t.Errorf("postgres runs as uid %d, want nobody (%d)", sys.Uid, uid)
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(t, 6*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, e.String())
	}
	waitNoPostgres(t, dataDir, 2*time.Second)
}
