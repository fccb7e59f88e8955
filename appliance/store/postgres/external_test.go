package postgres

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExternalAgainstEmbeddedSeesOutageAndRecovery(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	ctx := testCtx(t)
	e := NewEmbedded(Config{DataDir: dir}, testLogger(t))
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	port := e.Info().Port
	x := NewExternal(e.DSN(), 2*time.Second, testLogger(t))
	if err := x.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := x.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := x.Ready(ctx); err == nil {
		t.Fatal("Ready during an outage: want an error")
	}
	startEmbedded(t, Config{DataDir: dir, Port: port})
	if err := x.Ready(ctx); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
	if err := x.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestExternalClosedPortFailsClearlyWithoutPassword(t *testing.T) {
	port := closedPort(t)
	dsn := "postgres://app:s3cr3t-pw@127.0.0.1:" + strconv.Itoa(port) + "/appdb?sslmode=disable"
	x := NewExternal(dsn, 2*time.Second, testLogger(t))
	err := x.Start(testCtx(t))
	if err == nil {
		t.Fatal("Start against a closed port succeeded")
	}
	want := "can't reach PostgreSQL at postgres://app@127.0.0.1:" + strconv.Itoa(port) + "/appdb: "
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q does not start with %q", err, want)
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@db.example:6543/x?sslmode=require": "postgres://u@db.example:6543/x",
		"host=h port=5433 user=u password=pw dbname=d":      "postgres://u@h:5433/d",
		"postgres://u:pw@[::1":                              "(unparsable --postgres-url)",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
