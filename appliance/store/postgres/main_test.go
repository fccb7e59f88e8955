package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// envTestHelper makes the test binary act as a stand-in appliance that starts
// postgres on the given data dir and then waits to be killed.
const envTestHelper = "CXLAB_PG_TEST_HELPER"

func TestMain(m *testing.M) {
	if ran, code := RunSupervisorIfRequested(); ran {
		os.Exit(code)
	}
	if dir := os.Getenv(envTestHelper); dir != "" {
		os.Exit(runHelper(dir))
	}
	goleak.VerifyTestMain(m)
}

func runHelper(dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := NewEmbedded(Config{DataDir: dir}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err := e.Start(ctx); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready")
	select {} // until killed
}

// tempDir returns a directory the unprivileged run-as user can traverse
// (t.TempDir is 0700, which matters when tests run as root).
func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cxlab-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// testLogger shows the component's logs only when a test fails (t.Log).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// startEmbedded starts a server on dir and stops it when the test ends.
func startEmbedded(t testing.TB, cfg Config) *Embedded {
	t.Helper()
	e := NewEmbedded(cfg, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return e
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
