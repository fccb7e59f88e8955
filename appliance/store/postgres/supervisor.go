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
}

// supervisorReport is the one line the supervisor writes on stdout: either
// readiness or the reason it could not start.
type supervisorReport struct {
	Ready       bool   `json:"ready,omitempty"`
	Error       string `json:"error,omitempty"`
	PostmasterP int    `json:"postmaster_pid,omitempty"`
	RunAs       string `json:"run_as,omitempty"`
	Initialised bool   `json:"initialised,omitempty"`
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

	s := &supervisor{cfg: cfg, l: newLayout(cfg.DataDir), log: log}
	rep, err := s.start()
	if err != nil {
		log.Error("postgres start failed", "err", err)
		report(supervisorReport{Error: err.Error()})
		s.stop()
		return 1
	}
	report(rep)

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case sig := <-sigs:
			log.Info("stopping postgres", "signal", sig.String())
			return s.stop()
		case <-parentGone:
			log.Info("stopping postgres: parent closed the pipe")
			return s.stop()
		case <-tick.C:
			if !processAlive(rep.PostmasterP) {
				log.Error("postmaster exited unexpectedly", "pid", rep.PostmasterP)
				return 1
			}
		}
	}
}

// supervisor holds the state of one supervised postgres.
type supervisor struct {
	cfg     supervisorConfig
	l       layout
	log     *slog.Logger
	started bool
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
	if _, err := os.Stat(filepath.Join(s.cfg.BinariesDir, "bin", "pg_ctl")); err != nil {
		return rep, fmt.Errorf("postgres runs as %s and can't reach %s %s: %w", runAs, FlagBinaries, s.cfg.BinariesDir, err)
	}
	// embedded-postgres leaves a temp log per start in TMPDIR; keep them here.
	if err := cleanDir(s.l.tmp); err != nil {
		return rep, err
	}
	_ = os.Setenv("TMPDIR", s.l.tmp)
	_ = os.Setenv("HOME", s.l.root)

	if err := recoverStale(s.l, s.cfg.BinariesDir, s.log); err != nil {
		return rep, err
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
		StartParameters(startParameters(s.l)).
		Logger(&lineLogger{log: s.log, msg: "pg_ctl"}))
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
		who := strconv.Itoa(os.Geteuid())
		if u, uerr := user.Current(); uerr == nil {
			who = u.Username
		}
		return fmt.Errorf("postgres runs as user %s, which can't reach %s (%s %s): %w; choose a %s that user can traverse (not under /root) or chmod o+x its parent directories",
			who, dir, FlagDataDir, s.l.root, err, FlagDataDir)
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
	cc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", s.l.run, s.cfg.Port, s.cfg.User))
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

// stop shuts postgres down: fast (rolls back sessions, checkpoints), then
// immediate if fast did not finish in time. pg_ctl daemonised postgres, so
// nothing else will stop it.
func (s *supervisor) stop() int {
	if !s.started {
		return 0
	}
	if _, err := os.Stat(filepath.Join(s.l.pgdata, "postmaster.pid")); err != nil {
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
// process is removed. The next start then works by itself.
func recoverStale(l layout, binDir string, log *slog.Logger) error {
	pidFile := filepath.Join(l.pgdata, "postmaster.pid")
	if pid, err := postmasterPID(l.pgdata); err == nil {
		if processAlive(pid) && servesDataDir(pid, l.pgdata) {
			log.Warn("stopping postgres left running by a previous run", "pid", pid)
			if err := pgCtlStop(binDir, l.pgdata, "immediate", 10*time.Second); err != nil {
				return fmt.Errorf("stop stale postgres (pid %d) on %s: %w", pid, l.pgdata, err)
			}
		} else if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", pidFile, err)
		} else {
			log.Info("removed stale postmaster.pid", "pid", pid)
		}
	}
	locks, _ := filepath.Glob(filepath.Join(l.run, ".s.PGSQL.*.lock"))
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
func startParameters(l layout) map[string]string {
	return map[string]string{
		"listen_addresses":                 "127.0.0.1",
		"unix_socket_directories":          l.run,
		"unix_socket_permissions":          "0700",
		"max_connections":                  "50",
		"shared_buffers":                   "16MB",
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
