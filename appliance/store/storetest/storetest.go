// Package storetest gives other packages' tests a real PostgreSQL: one shared
// embedded server per test binary, and a fresh database per test.
//
// Wire it from TestMain:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cxlab/cxlab/appliance/store/postgres"
)

// shared is the one server of this test binary. A test binary is one process
// that Main owns from start to exit, so this is the single place where
// package-level state is the right shape.
var shared struct {
	mainRan atomic.Bool
	once    sync.Once
	pg      *postgres.Embedded
	dir     string
	err     error
	seq     atomic.Int64
}

// Main runs the postgres supervisor when this process is one, else runs the
// tests and stops the shared server. Call it from TestMain.
func Main(m *testing.M) {
	if ran, code := postgres.RunSupervisorIfRequested(); ran {
		os.Exit(code)
	}
	shared.mainRan.Store(true)
	code := m.Run()
	if shared.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.pg.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "storetest: stop postgres:", err)
		}
		cancel()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// Postgres returns the DSN of a database created for this test (dropped when
// it ends), on the binary's shared embedded server, started on first use.
func Postgres(t testing.TB) (dsn string) {
	t.Helper()
	if !shared.mainRan.Load() {
		t.Fatal("storetest: call storetest.Main(m) from this package's TestMain")
	}
	shared.once.Do(start)
	if shared.err != nil {
		t.Fatalf("storetest: %v", shared.err)
	}
	admin := shared.pg.DSN()
	name := dbName(t.Name(), shared.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("storetest: connect: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("storetest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Pool returns a pool on a fresh database for this test, closed when it ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dsn := Postgres(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	cfg.MaxConns = 8
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	// Registered after Postgres' cleanup, so it runs first (LIFO): the pool
	// closes before its database is dropped.
	t.Cleanup(pool.Close)
	return pool
}

func start() {
	dir, err := os.MkdirTemp("", "cxlab-storetest-")
	if err != nil {
		shared.err = err
		return
	}
	shared.dir = dir
	// MkdirTemp makes 0700; when tests run as root, postgres runs as an
	// unprivileged user that must traverse this directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		shared.err = err
		return
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	pg := postgres.NewEmbedded(postgres.Config{DataDir: dir + "/postgres"}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := pg.Start(ctx); err != nil {
		shared.err = err
		return
	}
	shared.pg = pg
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// dbName makes a valid, unique, recognisable database name from a test name.
func dbName(test string, seq int64) string {
	s := unsafeChars.ReplaceAllString(strings.ToLower(test), "_")
	suffix := fmt.Sprintf("_%d_%d", os.Getpid(), seq)
	if max := 63 - len("t_") - len(suffix); len(s) > max {
		s = s[:max]
	}
	return "t_" + s + suffix
}
