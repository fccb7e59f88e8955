package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// envSupervisor marks a process started by Embedded.Start as the supervisor.
const envSupervisor = "CXLAB_POSTGRES_SUPERVISOR"

// supervisorConfig is the first line the parent writes on the supervisor's
// stdin (not the environment, so the password never reaches postgres' environ).
type supervisorConfig struct {
	ParentPID    int           `json:"parent_pid"`
	DataDir      string        `json:"data_dir"`
	BinariesDir  string        `json:"binaries_dir"`
	Version      string        `json:"version"`
	Port         int           `json:"port"`
	User         string        `json:"user"`
	Password     string        `json:"password"`
	Database     string        `json:"database"`
	RunAsUser    string        `json:"run_as_user"`
	StartTimeout time.Duration `json:"start_timeout"`
	// MaxRestarts and RestartWindow bound restarts of a crashed postmaster
	// (see Config); MaxRestarts < 0 disables them.
	MaxRestarts   int           `json:"max_restarts"`
	RestartWindow time.Duration `json:"restart_window"`
}

// supervisorReport is a line the supervisor writes on stdout: first either
// readiness or the reason it could not start; later, crash restarts.
type supervisorReport struct {
	Ready       bool   `json:"ready,omitempty"`
	Error       string `json:"error,omitempty"`
	PostmasterP int    `json:"postmaster_pid,omitempty"`
	RunAs       string `json:"run_as,omitempty"`
	Initialised bool   `json:"initialised,omitempty"`
	// Restarting: the postmaster died and a restart is under way.
	Restarting bool `json:"restarting,omitempty"`
	// Restarted: the restart finished and postgres serves again.
	Restarted bool `json:"restarted,omitempty"`
}

// RunSupervisorIfRequested runs the postgres supervisor when this process was
// started as one by Embedded.Start, and reports ran=false otherwise. main()
// and TestMain must call it first and exit with exitCode when ran is true.
func RunSupervisorIfRequested() (ran bool, exitCode int) {
	if os.Getenv(envSupervisor) != "1" {
		return false, 0
	}
	// Children (initdb, pg_ctl, postgres) must not look like supervisors.
	_ = os.Unsetenv(envSupervisor)
	return true, runSupervisor(os.Stdin, os.Stdout, os.Stderr)
}

// runSupervisor starts postgres, reports on out, then stops postgres when
// signalled or when in reaches EOF (the parent died), and returns the exit code.
func runSupervisor(in io.Reader, out, errOut io.Writer) int {
	log := slog.New(slog.NewJSONHandler(errOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	// Once the parent is dead, writing our log or report to its pipes would
	// kill us by SIGPIPE before we stop postgres. Catching it (rather than
	// ignoring it, which exec would pass on to postgres) turns that into EPIPE.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	report := func(r supervisorReport) {
		_ = json.NewEncoder(out).Encode(r)
	}

	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		report(supervisorReport{Error: fmt.Sprintf("read supervisor config: %v", err)})
		return 2
	}
	var cfg supervisorConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		report(supervisorReport{Error: fmt.Sprintf("parse supervisor config: %v", err)})
		return 2
	}
	parentGone := make(chan struct{})
	go func() {
		// The parent never writes again: EOF means it closed the pipe or died.
		_, _ = io.Copy(io.Discard, br)
		close(parentGone)
	}()

	// Watched from now on, start included: a parent killed while postgres
	// starts must not leave it running.
	quit := make(chan struct{})
	var why atomic.Value
	go func() {
		select {
		case sig := <-sigs:
			why.Store("signal " + sig.String())
		case <-parentGone:
			why.Store("parent closed the pipe")
		}
		close(quit)
	}()
	s := &supervisor{cfg: cfg, l: newLayout(cfg.DataDir), log: log, quit: quit}
	rep, err := s.start()
	if err == nil && s.quitting() {
		err = errQuit
	}
	if err != nil {
		if !errors.Is(err, errQuit) {
			log.Error("postgres start failed", "err", err)
		} else {
			log.Info("stopping during start", "why", why.Load())
		}
		report(supervisorReport{Error: err.Error()})
		if s.stop() != 0 || !errors.Is(err, errQuit) {
			return 1
		}
		return 0
	}
	report(rep)
	return s.watch(rep.PostmasterP, func() string { w, _ := why.Load().(string); return w }, report)
}

// quitting reports whether the supervisor has been told to stop.
func (s *supervisor) quitting() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// lockDataDir holds an exclusive lock on the data dir for the supervisor's
// life (the kernel drops it when the process ends), waiting up to the start
// timeout for the supervisor of a killed run, which stops its postgres and
// exits, to let go: two at once would run initdb or postgres side by side.
func (s *supervisor) lockDataDir() error {
	if s.lock != nil { // a restart: held since the first start
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.l.root, "supervisor.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return s.accessError(s.l.root, err)
	}
	deadline := time.Now().Add(s.cfg.StartTimeout)
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			s.lock = f // kept open: closing it would release the lock
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return fmt.Errorf("the data dir %s is still held by the PostgreSQL supervisor of an earlier run: %w", s.l.root, err)
		}
		if !logged {
			s.log.Info("waiting for the PostgreSQL supervisor of an earlier run to stop", "dir", s.l.root)
			logged = true
		}
		select {
		case <-s.quit:
			_ = f.Close()
			return errQuit
		case <-time.After(20 * time.Millisecond): // polling a lock the kernel holds; bounded by the deadline
		}
	}
}

// watch polls the postmaster until quit closes (then stops postgres) and
// restarts it within the restart budget when it dies unexpectedly. It
// returns the supervisor's exit code.
func (s *supervisor) watch(pid int, why func() string, report func(supervisorReport)) int {
	// The postmaster is not our child (pg_ctl daemonised it): poll, cheaply.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var restarts []time.Time
	for {
		select {
		case <-s.quit:
			s.log.Info("stopping postgres", "reason", why())
			return s.stop()
		case <-tick.C:
		}
		if processAlive(pid) {
			continue
		}
		now := time.Now()
		restarts = within(restarts, now, s.cfg.RestartWindow)
		if len(restarts) >= max(s.cfg.MaxRestarts, 0) {
			s.log.Error(fmt.Sprintf("postmaster died unexpectedly; restart limit reached (%d within %s), giving up: restart cxlab",
				len(restarts), s.cfg.RestartWindow), "pid", pid)
			s.stop() // a failed restart may have left a postmaster behind
			return 1
		}
		restarts = append(restarts, now)
		report(supervisorReport{Restarting: true})
		s.log.Warn("postmaster died unexpectedly, restarting it", "pid", pid,
			"restart", len(restarts), "limit", s.cfg.MaxRestarts, "window", s.cfg.RestartWindow.String())
		t0 := time.Now()
		rep, err := s.start()
		if err != nil {
			select {
			case <-s.quit:
				s.log.Info("stopping postgres", "reason", why())
				return s.stop()
			default:
			}
			// Counted against the budget; the next tick tries again.
			s.log.Error("restart postgres failed", "err", err)
			continue
		}
		pid = rep.PostmasterP
		s.log.Warn("postgres restarted after a crash", "pid", pid, "took", time.Since(t0).String())
		report(supervisorReport{Restarted: true, PostmasterP: pid})
	}
}

// within drops the times older than window before now.
func within(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	out := ts[:0]
	for _, t := range ts {
		if now.Sub(t) < window {
			out = append(out, t)
		}
	}
	return out
}

// supervisor holds the state of one supervised postgres.
type supervisor struct {
	cfg     supervisorConfig
	l       layout
	log     *slog.Logger
	started bool
	quit    <-chan struct{} // closed when the supervisor must stop
	lock    *os.File        // the data dir's supervisor lock, held for life
}

// start prepares directories (dropping root), recovers stale state, runs
// initdb on first use and starts postgres through embedded-postgres.
func (s *supervisor) start() (supervisorReport, error) {
	rep := supervisorReport{}
	runAs, err := s.dropRoot()
	if err != nil {
		return rep, err
	}
	rep.RunAs = runAs
	for _, d := range []string{s.l.root, s.l.tmp} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return rep, s.accessError(d, err)
		}
	}
	if err := s.lockDataDir(); err != nil {
		return rep, err
	}
	if s.l.sock != s.l.run {
		if err := ensureSocketDir(s.l.sock); err != nil {
			return rep, err
		}
	}
	if _, err := os.Stat(filepath.Join(s.cfg.BinariesDir, "bin", "pg_ctl")); err != nil {
		return rep, fmt.Errorf("postgres runs as %s and can't reach %s %s: %w", runAs, FlagBinaries, s.cfg.BinariesDir, err)
	}
	// embedded-postgres leaves a temp log per start in TMPDIR; keep them here.
	if err := cleanDir(s.l.tmp); err != nil {
		return rep, err
	}
	_ = os.Setenv("TMPDIR", s.l.tmp)
	_ = os.Setenv("HOME", s.l.root)

	if err := recoverStale(s.l, s.cfg.BinariesDir, s.log, s.quit); err != nil {
		return rep, err
	}
	if s.quitting() {
		return rep, errQuit
	}
	if _, err := os.Stat(filepath.Join(s.l.pgdata, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := s.initdb(); err != nil {
			return rep, err
		}
		rep.Initialised = true
	}

	ep := embeddedpostgres.NewDatabase(embeddedpostgres.DefaultConfig().
		Version(embeddedpostgres.PostgresVersion(s.cfg.Version)).
		Port(uint32(s.cfg.Port)).
		Username(s.cfg.User).
		Password(s.cfg.Password).
		// The library health-checks this database; ours is created below.
		Database("postgres").
		BinariesPath(s.cfg.BinariesDir).
		DataPath(s.l.pgdata).
		RuntimePath(s.l.run).
		CachePath(s.l.tmp).
		StartTimeout(s.cfg.StartTimeout).
		StartParameters(startParameters(s.l, s.cfg.Version)).
		Logger(&lineLogger{log: s.log, msg: "pg_ctl"}))
	if s.quitting() { // initdb is done: the next start need not redo it
		return rep, errQuit
	}
	// Set before Start: a failed Start may still leave a postmaster to stop.
	s.started = true
	if err := ep.Start(); err != nil {
		return rep, fmt.Errorf("start postgres: %w", err)
	}
	pid, err := postmasterPID(s.l.pgdata)
	if err != nil {
		return rep, err
	}
	rep.PostmasterP = pid
	if err := s.ensureDatabase(); err != nil {
		return rep, err
	}
	rep.Ready = true
	return rep, nil
}

// dropRoot, when running as root, hands the data dir to the unprivileged
// account and switches this process to it (PostgreSQL refuses to run as
// root). Doing it here rather than with exec's Credential means the
// appliance's executable need not be reachable by that account.
func (s *supervisor) dropRoot() (string, error) {
	if os.Geteuid() != 0 {
		if err := makeRoot(s.l.root); err != nil {
			return "", err
		}
		u, err := user.Current()
		if err != nil {
			return strconv.Itoa(os.Geteuid()), nil //nolint:nilerr // the name is only informative
		}
		return u.Username, nil
	}
	u, err := lookupRunAs(s.cfg.RunAsUser)
	if err != nil {
		return "", err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := makeRoot(s.l.root); err != nil {
		return "", err
	}
	if err := chownTree(s.l.root, uid, gid); err != nil {
		return "", err
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return "", fmt.Errorf("drop root: setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return "", fmt.Errorf("drop root: setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return "", fmt.Errorf("drop root: setuid %d: %w", uid, err)
	}
	// The kernel clears the parent-death signal on a credential change: re-arm
	// it, then check the parent did not die in between.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		return "", fmt.Errorf("drop root: set parent-death signal: %w", err)
	}
	if os.Getppid() != s.cfg.ParentPID {
		return "", errors.New("parent exited during start")
	}
	s.log.Debug("running as unprivileged user", "user", u.Username, "uid", uid)
	return u.Username, nil
}

// makeRoot creates the data dir private (0700) and any missing parents
// traversable (0755), so the run-as user can reach it when we are root.
func makeRoot(root string) error {
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return fmt.Errorf("create %s %s: %w", FlagDataDir, root, err)
	}
	if err := os.Mkdir(root, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s %s: %w", FlagDataDir, root, err)
	}
	return nil
}

// lookupRunAs resolves the account postgres runs as when we are root.
func lookupRunAs(name string) (*user.User, error) {
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("postgres can't run as root and the run-as user %q does not exist: %w", name, err)
		}
		return u, nil
	}
	for _, n := range []string{"postgres", "nobody"} {
		if u, err := user.Lookup(n); err == nil {
			return u, nil
		}
	}
	return nil, errors.New("postgres can't run as root and neither user postgres nor nobody exists; set the run-as user")
}

// chownTree gives root and its content to uid:gid. The walk is skipped when
// root already belongs to uid (the common warm start).
func chownTree(root string, uid, gid int) error {
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil {
		return fmt.Errorf("stat %s %s: %w", FlagDataDir, root, err)
	}
	if int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("chown %s %s to uid %d: %w", FlagDataDir, root, uid, err)
	}
	return nil
}

// accessError explains a permission failure on the data dir in terms of the
// setting the user can change.
func (s *supervisor) accessError(dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		// Not user.Current: it caches the first answer, given while still root.
		who := strconv.Itoa(os.Geteuid())
		if u, uerr := user.LookupId(who); uerr == nil {
			who = u.Username
		}
		return fmt.Errorf("postgres runs as user %s, which can't reach %s: %w; choose a %s that user can traverse (not under /root) or chmod o+x its parent directories",
			who, dir, err, FlagDataDir)
	}
	return fmt.Errorf("prepare %s: %w", dir, err)
}

// initdb creates the cluster in a temp dir and renames it into place, so a
// crash during initdb never leaves a half-made cluster that looks valid. It
// skips initdb's per-file fsync (-N) and flushes the filesystem once with
// syncfs instead: the same durability as PostgreSQL 16's --sync-method=syncfs,
// at a fraction of the time.
func (s *supervisor) initdb() error {
	start := time.Now()
	tmp := s.l.pgdata + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := os.RemoveAll(s.l.pgdata); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	pwfile := filepath.Join(s.l.tmp, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.cfg.Password), 0o600); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	defer func() { _ = os.Remove(pwfile) }() // best effort
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.cfg.BinariesDir, "bin", "initdb"),
		"-D", tmp, "-U", s.cfg.User, "--pwfile="+pwfile,
		// Local socket (0700, owned by the run-as user): trust; TCP: password.
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	var outBuf strings.Builder
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Run(); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("initdb: %w: %s", err, strings.TrimSpace(outBuf.String()))
	}
	if err := s.finishCluster(tmp); err != nil {
		return err
	}
	s.log.Info("initialised cluster", "dir", s.l.pgdata, "took", time.Since(start).String())
	return nil
}

// finishCluster makes the new cluster in tmp durable and moves it into place.
func (s *supervisor) finishCluster(tmp string) error {
	if err := syncfs(tmp); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := os.Rename(tmp, s.l.pgdata); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := fsyncDir(s.l.root); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// ensureDatabase creates the appliance's database on first start, over the
// unix socket.
func (s *supervisor) ensureDatabase() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	defer cancel()
	cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", connValue(s.l.sock), s.cfg.Port, s.cfg.User))
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.cfg.Database).Scan(&exists); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.cfg.Database}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", s.cfg.Database, err)
	}
	return nil
}

// connValue quotes v for a keyword/value connection string, so that a path
// with spaces or quotes stays one value.
func connValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// stop shuts postgres down: fast (rolls back sessions, checkpoints), then
// immediate if fast did not finish in time. pg_ctl daemonised postgres, so
// nothing else will stop it.
func (s *supervisor) stop() int {
	if !s.started {
		return 0
	}
	if s.l.sock != s.l.run {
		// Empty once postgres has removed its socket and lock.
		defer func() { _ = os.Remove(s.l.sock) }()
	}
	// Nothing to stop when no postmaster runs (it crashed and was not
	// restarted); pg_ctl would only complain about the stale pid file.
	if pid, err := postmasterPID(s.l.pgdata); err != nil || !processAlive(pid) {
		return 0
	}
	if err := pgCtlStop(s.cfg.BinariesDir, s.l.pgdata, "fast", 20*time.Second); err != nil {
		s.log.Warn("fast stop failed, stopping immediately", "err", err)
		if err := pgCtlStop(s.cfg.BinariesDir, s.l.pgdata, "immediate", 10*time.Second); err != nil {
			s.log.Error("immediate stop failed", "err", err)
			return 1
		}
	}
	return 0
}

// pgCtlStop runs pg_ctl stop in the given mode and waits up to timeout.
func pgCtlStop(binDir, pgdata, mode string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "bin", "pg_ctl"), "stop", "-D", pgdata,
		"-m", mode, "-w", "-t", strconv.Itoa(int(timeout.Seconds()))).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w: %s", mode, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// recoverStale clears what a killed run left behind: a live postmaster still
// serving this data dir is stopped; a pid file or socket lock of a dead
// process is removed, once the dead postmaster's orphaned children have let go
// of its shared memory (removing the pid file earlier would defeat
// PostgreSQL's own interlock against two servers on one data dir). The next
// start then works by itself. quit (may be nil) abandons the wait.
func recoverStale(l layout, binDir string, log *slog.Logger, quit <-chan struct{}) error {
	pidFile := filepath.Join(l.pgdata, "postmaster.pid")
	if pid, err := postmasterPID(l.pgdata); err == nil {
		if processAlive(pid) && servesDataDir(pid, l.pgdata) {
			log.Warn("stopping postgres left running by a previous run", "pid", pid)
			if err := pgCtlStop(binDir, l.pgdata, "immediate", 10*time.Second); err != nil {
				return fmt.Errorf("stop stale postgres (pid %d) on %s: %w", pid, l.pgdata, err)
			}
		} else if err := waitShmemDetached(l.pgdata, orphanWait, quit); err != nil {
			return err
		} else if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", pidFile, err)
		} else {
			log.Info("removed stale postmaster.pid", "pid", pid)
		}
	}
	locks, _ := filepath.Glob(filepath.Join(l.sock, ".s.PGSQL.*.lock"))
	for _, lock := range locks {
		b, err := os.ReadFile(lock)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err == nil && pid > 0 && processAlive(pid) {
			continue
		}
		_ = os.Remove(lock)
		_ = os.Remove(strings.TrimSuffix(lock, ".lock"))
		log.Info("removed stale socket lock", "file", lock)
	}
	return nil
}

// orphanWait bounds the wait for a dead postmaster's children to exit: they
// notice the death at their next wait and go, normally within milliseconds.
const orphanWait = 30 * time.Second

// errQuit reports that a wait was abandoned because the supervisor must stop.
var errQuit = errors.New("supervisor stopping")

// waitShmemDetached waits until no process is attached to the System V
// shared memory segment named in pgdata/postmaster.pid (a dead postmaster's
// backends, checkpointer and so on still are until they notice its death).
// A missing pid file or segment means there is nothing to wait for.
func waitShmemDetached(pgdata string, timeout time.Duration, quit <-chan struct{}) error {
	key, id, ok := postmasterShmem(pgdata)
	if !ok {
		return nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		n, found := shmemAttached(key, id)
		if !found || n == 0 {
			return nil
		}
		select {
		case <-quit:
			return errQuit
		case <-deadline.C:
			return fmt.Errorf("processes of a dead postgres still use %s (%d attached to shared memory segment %d after %s); stop them and start again",
				pgdata, n, id, timeout)
		case <-tick.C:
		}
	}
}

// postmasterShmem reads the shared memory segment's key and id from line 7
// of postmaster.pid ("key id"); both must match, since ids are reused.
func postmasterShmem(pgdata string) (key string, id int, ok bool) {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return "", 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return "", 0, false
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return "", 0, false
	}
	id, err = strconv.Atoi(f[1])
	if err != nil || id < 0 {
		return "", 0, false
	}
	return f[0], id, true
}

// shmemAttached returns the number of processes attached to segment key/id,
// from /proc/sysvipc/shm (columns: key shmid perms size cpid lpid nattch ...).
func shmemAttached(key string, id int) (nattch int, found bool) {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return 0, false
	}
	want := strconv.Itoa(id)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] != key || f[1] != want {
			continue
		}
		n, err := strconv.Atoi(f[6])
		if err != nil {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// postmasterPID reads the pid from pgdata/postmaster.pid.
func postmasterPID(pgdata string) (int, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("read postmaster.pid: bad pid %q", first)
	}
	return pid, nil
}

// processAlive reports whether pid exists (EPERM: it exists, another user's)
// and is not a zombie: a daemonised postmaster is reparented to init, which
// in some containers is slow to reap it.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

// servesDataDir reports whether pid is a postgres started on pgdata (pg_ctl
// passes -D <pgdata> on its command line), guarding against pid reuse.
func servesDataDir(pid int, pgdata string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "postgres" {
		return false
	}
	for _, a := range args[1:] {
		if filepath.Clean(a) == filepath.Clean(pgdata) {
			return true
		}
	}
	return false
}

// startParameters tunes postgres for a small lab: little memory, few
// processes, fast start; fsync and synchronous_commit stay on so that an
// acknowledged write survives a crash of the appliance.
func startParameters(l layout, version string) map[string]string {
	p := map[string]string{
		"listen_addresses":                 "127.0.0.1",
		"unix_socket_directories":          l.sock,
		"unix_socket_permissions":          "0700",
		"max_connections":                  "50",
		"shared_buffers":                   "128MB",
		"wal_buffers":                      "16MB",
		"work_mem":                         "2MB",
		"maintenance_work_mem":             "16MB",
		"huge_pages":                       "off",
		"jit":                              "off",
		"fsync":                            "on",
		"synchronous_commit":               "on",
		"full_page_writes":                 "on",
		"wal_level":                        "minimal",
		"max_wal_senders":                  "0",
		"max_replication_slots":            "0",
		"max_logical_replication_workers":  "0",
		"max_worker_processes":             "2",
		"max_parallel_workers":             "0",
		"max_parallel_workers_per_gather":  "0",
		"max_parallel_maintenance_workers": "0",
		"autovacuum_max_workers":           "1",
		"min_wal_size":                     "32MB",
		"max_wal_size":                     "256MB",
		"logging_collector":                "on",
		"log_directory":                    "log",
		"log_filename":                     "postgresql-%H.log",
		"log_rotation_age":                 "60",
		"log_rotation_size":                "10MB",
		"log_truncate_on_rotation":         "on",
	}
	// Crash recovery first fsyncs every file of the cluster, one by one: seconds
	// on a slow disk. One syncfs is as durable and much faster (PostgreSQL 14+).
	if major, _ := strconv.Atoi(strings.SplitN(version, ".", 2)[0]); major >= 14 {
		p["recovery_init_sync_method"] = "syncfs"
	}
	return p
}

// syncfs flushes the whole filesystem holding dir in one call.
func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

// fsyncDir makes a rename inside dir durable.
func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// cleanDir empties dir, keeping dir itself.
func cleanDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
	}
	return nil
}

// lineLogger turns the library's output (pg_ctl's messages) into log lines.
type lineLogger struct {
	log *slog.Logger
	msg string
	buf []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.log.Debug(w.msg, "line", line)
		}
		w.buf = w.buf[i+1:]
	}
}

// StopOrphan stops the postmaster serving pgdata, if one runs and it serves
// that directory, with an immediate shutdown (SIGQUIT), and waits up to
// timeout for it to exit. It is for a data dir whose appliance and
// supervisor were both killed (SIGKILL to the whole process group): pg_ctl
// daemonised the postmaster, so nothing else would ever stop it.
func StopOrphan(pgdata string, timeout time.Duration) bool {
	pid, err := postmasterPID(pgdata)
	if err != nil || !processAlive(pid) || !servesDataDir(pid, pgdata) {
		return false
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	for deadline := time.Now().Add(timeout); processAlive(pid) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // a process we did not start: poll its exit, bounded
	}
	return !processAlive(pid)
}
