package postgres

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killPostmaster kill -9s the postmaster serving pgdata and returns its pid.
func killPostmaster(t *testing.T, pgdata string) int {
	t.Helper()
	pid, err := postmasterPID(pgdata)
	if err != nil {
		t.Fatal(err)
	}
	if !servesDataDir(pid, pgdata) {
		t.Fatalf("pid %d in postmaster.pid is not our postmaster", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 postmaster %d: %v", pid, err)
	}
	return pid
}

// readyWithin polls e.Ready until it answers as wanted (nil when ready is
// true) or the deadline passes, and returns the last error.
func readyWithin(t *testing.T, e *Embedded, ready bool, within time.Duration) error {
	t.Helper()
	var last error
	waitFor(t, within, map[bool]string{true: "postgres ready", false: "postgres not ready"}[ready], func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		last = e.Ready(ctx)
		return (last == nil) == ready
	})
	return last
}

func TestPostmasterKilledIsRestarted(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	e := startEmbedded(t, Config{DataDir: dir})
	pgdata := filepath.Join(dir, "pgdata")
	dumpServerLogOnFailure(t, pgdata)
	exec1(t, e.DSN(), "CREATE TABLE kept (v int); INSERT INTO kept SELECT generate_series(1, 1000)")
	// The restart waits on the segment named in postmaster.pid: check that we
	// read PostgreSQL's format and the kernel's table right.
	key, id, ok := postmasterShmem(pgdata)
	if !ok {
		t.Fatal("no shared memory segment found in postmaster.pid")
	}
	if n, found := shmemAttached(key, id); !found || n == 0 {
		t.Fatalf("segment %s/%d of a running postgres: found %v, %d attached", key, id, found, n)
	}

	for round := 1; round <= 2; round++ {
		old := killPostmaster(t, pgdata)
		t0 := time.Now()
		err := readyWithin(t, e, false, 10*time.Second)
		t.Logf("round %d: not ready after kill -9: %v", round, err)
		waitFor(t, 60*time.Second, "the supervisor to report the restart", func() bool { return e.Restarts() == round })
		readyWithin(t, e, true, 10*time.Second)
		t.Logf("round %d: ready again %s after kill -9", round, time.Since(t0).Round(time.Millisecond))
		pid, err := postmasterPID(pgdata)
		if err != nil {
			t.Fatal(err)
		}
		if pid == old || !processAlive(pid) {
			t.Fatalf("round %d: postmaster pid %d (killed %d) is not a new live process", round, pid, old)
		}
		if got := query(t, e.DSN(), "SELECT count(*)::text FROM kept"); got != "1000" {
			t.Fatalf("round %d: %s committed rows after crash recovery, want 1000", round, got)
		}
		// Writable again, not only readable.
		exec1(t, e.DSN(), "INSERT INTO kept VALUES (0); DELETE FROM kept WHERE v = 0")
	}
	select {
	case err := <-e.Failed():
		t.Fatalf("Failed delivered %v although restarts are within the limit", err)
	default:
	}
}

func TestRestartLimitGivesUp(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	e := startEmbedded(t, Config{DataDir: dir, MaxRestarts: 1, RestartWindow: time.Hour})
	pgdata := filepath.Join(dir, "pgdata")
	dumpServerLogOnFailure(t, pgdata)

	killPostmaster(t, pgdata)
	waitFor(t, 60*time.Second, "the supervisor to report the restart", func() bool { return e.Restarts() == 1 })
	second := killPostmaster(t, pgdata)

	var err error
	select {
	case err = <-e.Failed():
	case <-time.After(60 * time.Second):
		t.Fatal("Failed did not deliver after the restart limit was reached")
	}
	if !strings.Contains(err.Error(), "restart limit reached") {
		t.Fatalf("Failed: %v; want it to say the restart limit was reached", err)
	}
	rerr := e.Ready(testCtx(t))
	if rerr == nil || !strings.Contains(rerr.Error(), "restart limit reached") {
		t.Fatalf("Ready after giving up: %v; want the restart-limit error", rerr)
	}
	if pid, perr := postmasterPID(pgdata); perr == nil && pid != second && processAlive(pid) {
		t.Fatalf("a postmaster (%d) runs after the supervisor gave up", pid)
	}
	// Stop still works (the lifecycle calls it on shutdown) and the data dir
	// starts again afterwards.
	if err := e.Stop(testCtx(t)); err != nil {
		t.Fatalf("Stop after giving up: %v", err)
	}
	e2 := startEmbedded(t, Config{DataDir: dir})
	if err := e2.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRestartsDisabled(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	e := startEmbedded(t, Config{DataDir: dir, MaxRestarts: -1})
	killPostmaster(t, filepath.Join(dir, "pgdata"))
	select {
	case err := <-e.Failed():
		if !strings.Contains(err.Error(), "restart limit reached (0 within") {
			t.Fatalf("Failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Failed did not deliver with restarts disabled")
	}
}

func TestWithinWindow(t *testing.T) {
	now := time.Unix(1000, 0)
	ts := []time.Time{now.Add(-10 * time.Minute), now.Add(-4 * time.Minute), now.Add(-time.Second)}
	got := within(ts, now, 5*time.Minute)
	if len(got) != 2 || !got[0].Equal(now.Add(-4*time.Minute)) {
		t.Fatalf("within: %v", got)
	}
}

// dumpServerLogOnFailure shows postgres' own log when the test fails.
func dumpServerLogOnFailure(t *testing.T, pgdata string) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("CXLAB_DUMP_PG_LOG") == "" {
			return
		}
		files, _ := filepath.Glob(filepath.Join(pgdata, "log", "*"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			t.Logf("%s:\n%s", f, b)
		}
	})
}
