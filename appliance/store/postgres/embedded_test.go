package postgres

import (
	"bufio"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(t testing.TB, dsn, sql string, args ...any) string {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var out string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&out); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func exec1(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// procUID returns the real uid of pid from /proc.
func procUID(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatal("no Uid in status")
	return -1
}

func TestStartStop(t *testing.T) {
	dir := tempDir(t)
	e := NewEmbedded(Config{DataDir: filepath.Join(dir, "pg")}, testLogger(t))
	ctx := testCtx(t)
	if err := e.Ready(ctx); err == nil {
		t.Fatal("Ready before Start: want an error")
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if got := query(t, e.DSN(), "SELECT current_user || '@' || current_database()"); got != "cxlab@cxlab" {
		t.Fatalf("connected as %q, want cxlab@cxlab", got)
	}
	if !strings.HasPrefix(e.DSN(), "postgres://cxlab:cxlab@127.0.0.1:") {
		t.Fatalf("DSN %q", e.DSN())
	}
	pgdata := filepath.Join(dir, "pg", "pgdata")
	pid, err := postmasterPID(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && procUID(t, pid) == 0 {
		t.Fatal("postgres runs as root")
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// pg_ctl stop -w returns when the pid file is gone, a moment before the
	// postmaster process has finished exiting.
	for deadline := time.Now().Add(2 * time.Second); processAlive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still alive 2 s after Stop", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling process exit; bounded
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := e.Ready(ctx); err == nil {
		t.Fatal("Ready after Stop: want an error")
	}
}

// A data dir too deep for a unix socket in it (CI workspaces often are) still
// starts: the socket goes to a short private directory, gone after Stop. So
// does one whose path holds a space and a quote, as a CI job's name may.
func TestAwkwardDataDirs(t *testing.T) {
	for _, tc := range []struct {
		name string
		sub  []string
		deep bool
	}{
		{"deep", []string{strings.Repeat("workspace-", 8), strings.Repeat("job-", 10)}, true},
		{"space and quote", []string{"nightly job's run"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(append([]string{tempDir(t)}, tc.sub...)...)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			l := newLayout(filepath.Join(dir, "pg"))
			if deep := len(l.run+"/.s.PGSQL.5432") > maxSocketPath; deep != tc.deep {
				t.Fatalf("%s: too long for a socket %v, want %v", l.run, deep, tc.deep)
			}
			if len(l.sock+"/.s.PGSQL.65535") > maxSocketPath || l.sock != newLayout(l.root).sock {
				t.Fatalf("socket dir %q: want one short enough and the same for every start of the data dir", l.sock)
			}
			e := startEmbedded(t, Config{DataDir: l.root})
			if got := query(t, e.DSN(), "SELECT current_setting('unix_socket_directories')"); got != l.sock {
				t.Fatalf("unix_socket_directories = %q, want %q", got, l.sock)
			}
			fi, err := os.Stat(l.sock)
			if err != nil {
				t.Fatal(err)
			}
			// The socket itself is 0700 (unix_socket_permissions) either way.
			if tc.deep && fi.Mode().Perm() != 0o700 {
				t.Errorf("short socket directory mode %v, want 0700", fi.Mode().Perm())
			}
			if err := e.Stop(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(l.sock); tc.deep && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("short socket directory left after Stop: %v", err)
			}
		})
	}
}

// The short socket directory sits where every user can write: one that is
// not this user's private directory is refused, not used.
func TestSocketDirMustBePrivate(t *testing.T) {
	base := tempDir(t)
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(open, 0o777)
	link := filepath.Join(base, "link")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{open, link} {
		if err := ensureSocketDir(dir); err == nil || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("ensureSocketDir(%s) = %v, want a refusal naming the fix", dir, err)
		}
	}
	fresh := filepath.Join(base, "fresh")
	if err := ensureSocketDir(fresh); err != nil {
		t.Fatal(err)
	}
	if err := ensureSocketDir(fresh); err != nil {
		t.Errorf("second start on the same socket dir: %v", err)
	}
}

func TestWarmRestartKeepsData(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	ctx := testCtx(t)
	e := NewEmbedded(Config{DataDir: dir}, testLogger(t))
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.Info().Initialised {
		t.Fatal("first start did not report initdb")
	}
	exec1(t, e.DSN(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := startEmbedded(t, Config{DataDir: dir})
	if e2.Info().Initialised {
		t.Fatal("warm start ran initdb again")
	}
	if got := query(t, e2.DSN(), "SELECT v FROM kept"); got != "survives" {
		t.Fatalf("got %q", got)
	}
}

// TestParentKilled starts postgres from a helper process standing in for the
// appliance, kills it with SIGKILL and expects postgres to go away by itself.
func TestParentKilled(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(exe, "-test.run=^$")
	helper.Env = append(os.Environ(), envTestHelper+"="+dir)
	helper.Stderr = testWriter{t}
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = helper.Process.Kill()
		_ = helper.Wait()
		t.Fatalf("helper: %q %v", line, err)
	}
	pgdata := filepath.Join(dir, "pgdata")
	pid, err := postmasterPID(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitFor(t, 30*time.Second, "postmaster to exit after its appliance was killed", func() bool {
		return !processAlive(pid)
	})
	if _, err := os.Stat(filepath.Join(pgdata, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("postmaster.pid left behind: %v", err)
	}
	e := startEmbedded(t, Config{DataDir: dir})
	if err := e.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestStaleLivePostmaster kills only the supervisor, leaving a postmaster
// running on the data dir; the next start must stop it and take over.
func TestStaleLivePostmaster(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	ctx := testCtx(t)
	e := NewEmbedded(Config{DataDir: dir}, testLogger(t))
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pgdata := filepath.Join(dir, "pgdata")
	pid, err := postmasterPID(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(e.DSN())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	sv := e.run
	_ = syscall.Kill(sv.cmd.Process.Pid, syscall.SIGKILL)
	<-sv.exited
	e.mu.Lock()
	e.run = nil // the component is gone as if the appliance crashed
	e.mu.Unlock()
	if !processAlive(pid) {
		t.Fatal("test setup: postmaster should outlive a SIGKILLed supervisor")
	}
	// The next start asks for the same port, as a start on the default port
	// does: the stale postmaster still holds it.
	e2 := startEmbedded(t, Config{DataDir: dir, Port: port})
	for deadline := time.Now().Add(2 * time.Second); processAlive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("stale postmaster %d still running 2 s after the new start", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling process exit; bounded
	}
	if err := e2.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStalePidFileOfDeadProcess(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	ctx := testCtx(t)
	e := NewEmbedded(Config{DataDir: dir}, testLogger(t))
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pgdata := filepath.Join(dir, "pgdata")
	pidFile, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// A pid that surely is dead: a process we ran and reaped.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(pidFile), "\n")
	stale := strconv.Itoa(dead.Process.Pid) + "\n" + rest
	writeStale := func() {
		t.Helper()
		if err := os.WriteFile(filepath.Join(pgdata, "postmaster.pid"), []byte(stale), 0o600); err != nil {
			t.Fatal(err)
		}
		// Owned as the postgres account would own it (we may be root).
		var st syscall.Stat_t
		if err := syscall.Stat(pgdata, &st); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(filepath.Join(pgdata, "postmaster.pid"), int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	writeStale()
	if err := recoverStale(newLayout(dir), "/nonexistent", testLogger(t), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pgdata, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale postmaster.pid of a dead process not removed: %v", err)
	}
	writeStale()
	e2 := startEmbedded(t, Config{DataDir: dir})
	if err := e2.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStaleSocketLock(t *testing.T) {
	l := newLayout(tempDir(t))
	if err := os.MkdirAll(l.run, 0o700); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	staleLock := filepath.Join(l.run, ".s.PGSQL.5999.lock")
	liveLock := filepath.Join(l.run, ".s.PGSQL.6000.lock")
	_ = os.WriteFile(staleLock, []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o600)
	_ = os.WriteFile(liveLock, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	if err := recoverStale(l, "/nonexistent", testLogger(t), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staleLock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock of a dead process kept: %v", err)
	}
	if _, err := os.Stat(liveLock); err != nil {
		t.Errorf("lock of a live process removed: %v", err)
	}
}

// Run as root, postgres runs as an unprivileged user; a data dir that user
// cannot reach (under /root, say) fails at once, naming that user and the fix.
func TestUnreachableDataDirNamesRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands postgres to another user; run as root (CI does)")
	}
	private := tempDir(t)
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	e := NewEmbedded(Config{DataDir: filepath.Join(private, "data", "postgres")}, testLogger(t))
	err := e.Start(testCtx(t))
	if err == nil {
		_ = e.Stop(testCtx(t))
		t.Fatal("start on a data dir postgres' user cannot reach: want an error")
	}
	runAs, lerr := lookupRunAs("")
	if lerr != nil {
		t.Fatal(lerr)
	}
	for _, want := range []string{"postgres runs as user " + runAs.Username + ",", "can't reach " + private, "choose a " + FlagDataDir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestMissingBinariesNamesAllFixes(t *testing.T) {
	t.Setenv("PATH", tempDir(t)) // no pg_config
	closed := closedPort(t)
	e := NewEmbedded(Config{
		DataDir:       filepath.Join(tempDir(t), "pg"),
		CacheDir:      tempDir(t),
		RepositoryURL: "http://127.0.0.1:" + strconv.Itoa(closed),
		systemRoots:   []string{tempDir(t)},
	}, testLogger(t))
	err := e.Start(testCtx(t))
	if err == nil {
		_ = e.Stop(testCtx(t))
		t.Fatal("start without binaries succeeded")
	}
	msg := err.Error()
	for _, want := range []string{FlagBinaries, EnvBinaries, "network access", "apt-get install postgresql"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestMajorVersionMismatchRefused(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	pgdata := filepath.Join(dir, "pgdata")
	if err := os.MkdirAll(pgdata, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pgdata, "PG_VERSION"), []byte("9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(pgdata, "precious")
	if err := os.WriteFile(marker, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := NewEmbedded(Config{DataDir: dir}, testLogger(t))
	err := e.Start(testCtx(t))
	if err == nil {
		_ = e.Stop(testCtx(t))
		t.Fatal("started on a cluster of another major version")
	}
	if !strings.Contains(err.Error(), "PostgreSQL 9 cluster") || !strings.Contains(err.Error(), FlagBinaries) {
		t.Fatalf("unclear error: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("data dir was touched: %v", err)
	}
}

// busyPort returns a loopback port a listener holds until the test ends.
func busyPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestPortBusyNamesFlag(t *testing.T) {
	port := busyPort(t)
	e := NewEmbedded(Config{DataDir: filepath.Join(tempDir(t), "pg"), Port: port}, testLogger(t))
	err := e.Start(testCtx(t))
	if err == nil {
		_ = e.Stop(testCtx(t))
		t.Fatal("started on a busy port")
	}
	if want := "can't listen on " + FlagPort + " " + strconv.Itoa(port); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

// A port picked free but taken before postgres binds it (a busy test run's
// outgoing connections take ports all the time) does not fail the start:
// another is picked.
func TestPickedPortTakenBeforeBind(t *testing.T) {
	taken := busyPort(t)
	picks := 0
	freePort = func() (int, error) {
		picks++
		if picks == 1 {
			return taken, nil
		}
		return pickFreePort()
	}
	t.Cleanup(func() { freePort = pickFreePort })

	e := NewEmbedded(Config{DataDir: filepath.Join(tempDir(t), "pg")}, testLogger(t))
	if err := e.Start(testCtx(t)); err != nil {
		t.Fatalf("start with the first picked port taken: %v", err)
	}
	defer func() { _ = e.Stop(testCtx(t)) }()
	if picks != 2 {
		t.Fatalf("%d ports picked, want 2", picks)
	}
	if port := e.Info().Port; port == taken {
		t.Fatalf("postgres reports the taken port %d", port)
	}
	if got := query(t, e.DSN(), "SELECT current_database()"); got != "cxlab" {
		t.Fatalf("database %q", got)
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// One supervisor at a time on a data dir: a second waits for the first to
// let go (a killed run's supervisor finishing its start), gives up after the
// start timeout naming why, and stops waiting when told to quit.
func TestSupervisorLockWaitsForTheEarlierOne(t *testing.T) {
	dir := t.TempDir()
	newSup := func(quit <-chan struct{}) *supervisor {
		return &supervisor{cfg: supervisorConfig{StartTimeout: 300 * time.Millisecond}, l: newLayout(dir), log: testLogger(t), quit: quit}
	}
	first := newSup(nil)
	if err := first.lockDataDir(); err != nil {
		t.Fatal(err)
	}
	if err := first.lockDataDir(); err != nil { // a restart keeps its lock
		t.Fatalf("second lock by the same supervisor: %v", err)
	}
	if err := newSup(nil).lockDataDir(); err == nil || !strings.Contains(err.Error(), "still held by the PostgreSQL supervisor of an earlier run") {
		t.Fatalf("lock held elsewhere: %v", err)
	}
	quit := make(chan struct{})
	close(quit)
	if err := newSup(quit).lockDataDir(); !errors.Is(err, errQuit) {
		t.Fatalf("lock while quitting: %v, want errQuit", err)
	}
	second := newSup(nil)
	second.cfg.StartTimeout = 10 * time.Second
	got := make(chan error, 1)
	go func() { got <- second.lockDataDir() }()
	_ = first.lock.Close() // the earlier supervisor exits
	if err := <-got; err != nil {
		t.Fatalf("lock once the earlier supervisor let go: %v", err)
	}
	_ = second.lock.Close()
}
