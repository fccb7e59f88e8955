package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cxlab/cxlab/appliance/freeport"
)

// Embedded is the appliance's own PostgreSQL, run by a supervisor child
// process (this same executable, see RunSupervisorIfRequested) that stops it
// when the appliance stops or dies.
type Embedded struct {
	cfg Config
	log *slog.Logger

	failed chan error // see Failed

	mu       sync.Mutex
	starting bool
	run      *supervised // nil when not running
	dsn      string
	info     StartInfo
}

// supervised is one running supervisor child.
type supervised struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  io.Reader
	stderr  io.Reader
	pgdata  string
	exited  chan struct{}
	waitErr error // set before exited is closed

	lastErr    atomic.Value // string: the supervisor's last error-level log message
	restarting atomic.Bool  // a crash restart is under way
	restarts   atomic.Int64 // crash restarts completed
}

// exitError describes why the supervisor exited, with its last error message.
func (sv *supervised) exitError() error {
	if msg, _ := sv.lastErr.Load().(string); msg != "" {
		return fmt.Errorf("postgres: supervisor exited (%v): %s", sv.waitErr, msg) //nolint:errorlint // waitErr is nil on a clean exit and must print as <nil>
	}
	return fmt.Errorf("postgres: supervisor exited: %v", sv.waitErr) //nolint:errorlint // waitErr is nil on a clean exit and must print as <nil>
}

// StartInfo describes the last successful start, for banners and benchmarks.
type StartInfo struct {
	Port        int           // TCP port on 127.0.0.1
	Version     string        // PostgreSQL version, e.g. "15.18"
	BinariesDir string        // directory holding bin/postgres
	Source      string        // where the binaries came from: explicit, download, system
	RunAs       string        // account running postgres
	Initialised bool          // true when this start ran initdb
	Took        time.Duration // from Start to ready
}

// NewEmbedded returns an embedded PostgreSQL configured by cfg; Start runs it.
func NewEmbedded(cfg Config, log *slog.Logger) *Embedded {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Embedded{cfg: cfg, log: log.With("component", "postgres"), failed: make(chan error, 1)}
}

// Failed delivers, once, the error of a supervisor that exited while the
// component was running: it restarts a crashed postmaster itself, so this
// means it gave up (restart limit reached). The appliance should log it and
// stop rather than run without its database. Never closed.
func (e *Embedded) Failed() <-chan error { return e.failed }

// Name returns "postgres".
func (e *Embedded) Name() string { return "postgres" }

// DSN returns the URL of the appliance's database, valid after Start.
func (e *Embedded) DSN() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dsn
}

// Info describes the last successful start.
func (e *Embedded) Info() StartInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.info
}

// Start finds binaries, starts the supervisor and waits until postgres
// accepts connections to the appliance's database.
func (e *Embedded) Start(ctx context.Context) error {
	if os.Getenv(envSupervisor) != "" {
		// We are a supervisor child whose main forgot to hand over: starting
		// another one would recurse.
		return errors.New("postgres: this process was started as the postgres supervisor: call postgres.RunSupervisorIfRequested first in main and TestMain")
	}
	// The lock is not held while starting, so Ready and DSN answer meanwhile.
	e.mu.Lock()
	if e.run != nil || e.starting {
		e.mu.Unlock()
		return errors.New("postgres: already started")
	}
	e.starting = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.starting = false
		e.mu.Unlock()
	}()
	begin := time.Now()
	cfg := e.cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	root, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("postgres: %s %s: %w", FlagDataDir, cfg.DataDir, err)
	}
	l := newLayout(root)
	major, err := dataDirMajor(l.pgdata)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	fd := newFinder(cfg, l)
	fd.cluster = major
	bins, err := fd.find(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if major != 0 && major != bins.Major {
		// embedded-postgres would wipe a cluster of another version: refuse.
		return fmt.Errorf("postgres: %s holds a PostgreSQL %d cluster but the binaries at %s are PostgreSQL %s; "+
			"point %s at PostgreSQL %d binaries (e.g. /usr/lib/postgresql/%d) or move %s away to start afresh",
			l.pgdata, major, bins.Dir, bins.Version, FlagBinaries, major, major, l.pgdata)
	}
	if cfg.Port != 0 {
		port, err := pickPort(cfg.Port)
		if err != nil {
			if !staleServerOn(l.pgdata, cfg.Port) {
				return err
			}
			// A postmaster a killed run left on this data dir holds the port:
			// the supervisor stops it (recoverStale) before starting afresh.
			port = cfg.Port
		}
		return e.startOn(ctx, cfg, root, l, bins, port, begin)
	}
	// A port picked now may be taken by the time postgres binds it (initdb
	// runs in between): pick another and start again.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		err = e.startOn(ctx, cfg, root, l, bins, port, begin)
		if err == nil || !errors.Is(err, errPortTaken) || attempt == 3 {
			return err
		}
		e.log.Info("postgres: the port picked was taken before postgres could bind it; picking another", "port", port)
	}
}

// freePort picks the port for a start with port 0 (tests replace it).
var freePort = pickFreePort

// errPortTaken marks a start that failed because postgres could not bind its
// port.
var errPortTaken = errors.New("port taken")

// startOn spawns the supervisor for postgres on port and waits for its report.
func (e *Embedded) startOn(ctx context.Context, cfg Config, root string, l layout, bins binaries, port int, begin time.Time) error {
	sv, err := e.spawn()
	if err != nil {
		return err
	}
	sv.pgdata = l.pgdata
	reports := make(chan supervisorReport, 1)
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); readReports(sv.stdout, reports, e.onRestartReport(sv)) }()
	go func() { defer readers.Done(); forwardLogs(e.log, sv.stderr, &sv.lastErr) }()
	go func() {
		readers.Wait()
		sv.waitErr = sv.cmd.Wait()
		close(sv.exited)
	}()

	sc := supervisorConfig{
		ParentPID: os.Getpid(), DataDir: root, BinariesDir: bins.Dir, Version: bins.Version, Port: port,
		User: cfg.User, Password: cfg.Password, Database: cfg.Database, RunAsUser: cfg.RunAsUser,
		StartTimeout: cfg.StartTimeout, MaxRestarts: cfg.MaxRestarts, RestartWindow: cfg.RestartWindow,
	}
	line, _ := json.Marshal(sc)
	if _, err := sv.stdin.Write(append(line, '\n')); err != nil {
		_ = terminateBounded(sv)
		return fmt.Errorf("postgres: send supervisor config: %w", err)
	}

	timer := time.NewTimer(cfg.StartTimeout + 5*time.Second)
	defer timer.Stop()
	var rep supervisorReport
	select {
	case r, ok := <-reports:
		if !ok {
			<-sv.exited
			return fmt.Errorf("postgres: supervisor exited without reporting (%v); is postgres.RunSupervisorIfRequested called first in main/TestMain?", sv.waitErr) //nolint:errorlint // waitErr is nil on a clean exit and must print as <nil>
		}
		rep = r
	case <-timer.C:
		_ = terminateBounded(sv)
		return fmt.Errorf("postgres: not ready within %s", cfg.StartTimeout)
	case <-ctx.Done():
		_ = terminateBounded(sv)
		return fmt.Errorf("postgres: start: %w", ctx.Err())
	}
	if !rep.Ready {
		_ = terminateBounded(sv)
		// Our postmaster is gone now: if the port is busy, another holds it.
		if _, perr := pickPort(port); perr != nil || strings.Contains(rep.Error, "already listening on port") {
			return fmt.Errorf("postgres: %s: %w", rep.Error, errPortTaken)
		}
		return fmt.Errorf("postgres: %s", rep.Error)
	}

	dsn := (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(cfg.User, cfg.Password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + cfg.Database,
		RawQuery: "sslmode=disable",
	}).String()
	info := StartInfo{
		Port: port, Version: bins.Version, BinariesDir: bins.Dir, Source: bins.Source,
		RunAs: rep.RunAs, Initialised: rep.Initialised, Took: time.Since(begin),
	}
	e.mu.Lock()
	e.run, e.dsn, e.info = sv, dsn, info
	e.mu.Unlock()
	go e.watch(sv)
	e.log.Info("postgres ready", "port", port, "version", bins.Version, "binaries", bins.Dir,
		"source", bins.Source, "run_as", rep.RunAs, "initdb", rep.Initialised, "took", info.Took.String())
	return nil
}

// spawn re-executes this binary as the supervisor. Setpgid keeps a terminal's
// Ctrl-C away from it (the appliance orders shutdown itself); Pdeathsig and
// the stdin pipe both tell it when the appliance dies, even by kill -9.
func (e *Embedded) spawn() (*supervised, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("postgres: find own executable for the supervisor: %w", err)
	}
	var args []string
	if testing.Testing() {
		// Should a TestMain not hand over to the supervisor, run no tests.
		args = []string{"-test.run=^$", "-test.bench=^$", "-test.fuzz=^$"}
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envSupervisor+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("postgres: supervisor pipe: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("postgres: supervisor pipe: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("postgres: supervisor pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("postgres: start supervisor %s: %w", exe, err)
	}
	return &supervised{cmd: cmd, stdin: stdin, stdout: stdout, stderr: stderr, exited: make(chan struct{})}, nil
}

// onRestartReport tracks the supervisor's crash restarts for Ready and
// Restarts.
func (e *Embedded) onRestartReport(sv *supervised) func(supervisorReport) {
	return func(rep supervisorReport) {
		// The supervisor logs the details; this is state only.
		switch {
		case rep.Restarting:
			sv.restarting.Store(true)
		case rep.Restarted:
			sv.restarts.Add(1)
			sv.restarting.Store(false)
		}
	}
}

// Restarts returns how many times the supervisor restarted a crashed
// postmaster since Start.
func (e *Embedded) Restarts() int {
	e.mu.Lock()
	sv := e.run
	e.mu.Unlock()
	if sv == nil {
		return 0
	}
	return int(sv.restarts.Load())
}

// watch reports a supervisor that exits on its own (not asked by Stop).
func (e *Embedded) watch(sv *supervised) {
	<-sv.exited
	e.mu.Lock()
	current := e.run == sv
	e.mu.Unlock()
	if !current {
		return // Stop took it away first: an ordered shutdown
	}
	err := sv.exitError()
	e.log.Error("postgres is gone for good: restart cxlab", "err", err)
	select {
	case e.failed <- err:
	default:
	}
}

// Stop stops postgres (fast shutdown) and waits for the supervisor, killing
// it when ctx ends first. Stop is idempotent.
func (e *Embedded) Stop(ctx context.Context) error {
	e.mu.Lock()
	sv := e.run
	e.run = nil
	e.mu.Unlock()
	if sv == nil {
		return nil
	}
	if err := terminate(ctx, sv); err != nil {
		return err
	}
	e.log.Info("postgres stopped")
	return nil
}

// Ready reports nil when the supervisor runs and the database answers.
func (e *Embedded) Ready(ctx context.Context) error {
	e.mu.Lock()
	sv, dsn := e.run, e.dsn
	e.mu.Unlock()
	if sv == nil {
		return errors.New("postgres: not running")
	}
	select {
	case <-sv.exited:
		return sv.exitError()
	default:
	}
	if sv.restarting.Load() {
		return errors.New("postgres: restarting after a crash")
	}
	if err := ping(ctx, dsn); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// terminate asks the supervisor to stop postgres (stdin closed plus SIGTERM)
// and waits; when ctx ends first it kills the supervisor's process group.
func terminate(ctx context.Context, sv *supervised) error {
	_ = sv.stdin.Close()
	_ = sv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sv.exited:
		return nil
	case <-ctx.Done():
		_ = syscall.Kill(-sv.cmd.Process.Pid, syscall.SIGKILL)
		// pg_ctl daemonised postgres out of the supervisor's group: ask the
		// postmaster for an immediate shutdown (SIGQUIT) ourselves.
		if pid, err := postmasterPID(sv.pgdata); err == nil && servesDataDir(pid, sv.pgdata) {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
		<-sv.exited
		return fmt.Errorf("postgres: stop: %w (supervisor killed)", ctx.Err())
	}
}

// terminateBounded stops a supervisor whose start failed, within 30s.
func terminateBounded(sv *supervised) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return terminate(ctx, sv)
}

// readReports sends the supervisor's start report on reports, or closes
// reports when the supervisor exits without one; later reports (crash
// restarts) go to later.
func readReports(r io.Reader, reports chan<- supervisorReport, later func(supervisorReport)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	sent := false
	for sc.Scan() {
		var rep supervisorReport
		if json.Unmarshal(sc.Bytes(), &rep) != nil {
			continue
		}
		switch {
		case sent:
			later(rep)
		case rep.Ready || rep.Error != "":
			reports <- rep
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, r)
	if !sent {
		close(reports)
	}
}

// forwardLogs re-logs the supervisor's JSON log lines through log and keeps
// the last error-level message in lastErr.
func forwardLogs(log *slog.Logger, r io.Reader, lastErr *atomic.Value) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			log.Info("supervisor output", "line", sc.Text())
			continue
		}
		var level slog.Level
		if s, ok := rec["level"].(string); ok {
			_ = level.UnmarshalText([]byte(s))
		}
		msg, _ := rec["msg"].(string)
		if level >= slog.LevelError {
			full := msg
			if ev, ok := rec["err"].(string); ok {
				full += ": " + ev
			}
			lastErr.Store(full)
		}
		attrs := make([]any, 0, 2*len(rec))
		for k, v := range rec {
			if k != "time" && k != "level" && k != "msg" {
				attrs = append(attrs, k, v)
			}
		}
		log.Log(context.Background(), level, msg, attrs...)
	}
	_, _ = io.Copy(io.Discard, r)
}

// StaleServerOn reports whether port is held by a postmaster an earlier,
// killed run left on the embedded server's data dir dataDir: its next start
// stops that server and takes the port.
func StaleServerOn(dataDir string, port int) bool {
	root, err := filepath.Abs(dataDir)
	if err != nil {
		return false
	}
	return staleServerOn(newLayout(root).pgdata, port)
}

// staleServerOn reports whether a live postmaster serving pgdata, left by an
// earlier run, listens on port (the port line of its postmaster.pid).
func staleServerOn(pgdata string, port int) bool {
	pid, err := postmasterPID(pgdata)
	if err != nil || port == 0 || !processAlive(pid) || !servesDataDir(pid, pgdata) {
		return false
	}
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) > 3 && strings.TrimSpace(lines[3]) == strconv.Itoa(port)
}

// pickPort checks that port is free on loopback (or picks a free one for 0).
// Postgres binds it a moment later; the window is small and a clash fails
// start with postgres' own error.
func pickPort(port int) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, fmt.Errorf("can't listen on %s %d: %w", FlagPort, port, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pickFreePort picks a loopback port free now, below the ephemeral range
// where it can (see freeport).
func pickFreePort() (int, error) { return freeport.Pick("127.0.0.1", freeport.TCP, 1) }

// ping opens one connection to dsn and pings it, bounded to a few seconds.
func ping(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	return conn.Ping(ctx)
}
