// Package apptest starts the real appliance inside a Go test: every port is 0,
// state is ephemeral, readiness is awaited (never slept for), and the
// appliance is stopped at test cleanup. Its logs are shown only when the test fails.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance"
	"github.com/cxlab/cxlab/appliance/config"
	"github.com/cxlab/cxlab/appliance/internal/syncbuf"
	"github.com/cxlab/cxlab/appliance/store/postgres"
	"github.com/cxlab/cxlab/appliance/store/redisstore"
)

// Main must be called from TestMain of every package using Start: the
// appliance re-executes the test binary to supervise PostgreSQL.
func Main(m *testing.M) {
	if ran, code := postgres.RunSupervisorIfRequested(); ran {
		os.Exit(code)
	}
	redisstore.RouteLibraryLogs(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// Stack is a running appliance and its endpoints.
type Stack struct {
	*appliance.Appliance
	Endpoints appliance.Endpoints
	// URL is the base URL of the HTTP server.
	URL string
}

// Option changes the test configuration before start.
type Option func(*config.Config)

// WithConfig applies f to the configuration.
func WithConfig(f func(*config.Config)) Option { return Option(f) }

// Config returns the configuration apptest starts with: every port 0,
// ephemeral state, files logged at debug.
func Config() config.Config {
	cfg := config.Default()
	cfg.Ephemeral = true
	cfg.HTTP.Port, cfg.Redis.Port, cfg.Postgres.Port = 0, 0, 0
	cfg.SIP.Port, cfg.TURN.Port, cfg.Gateway.MediaPort = 0, 0, 0
	cfg.TURN.MinRelayPort, cfg.TURN.MaxRelayPort = 0, 0
	cfg.Log.Level = "debug"
	cfg.Log.ConsoleLevel = "info"
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// Start starts the appliance and waits until /readyz says ready.
func Start(t testing.TB, opts ...Option) *Stack {
	t.Helper()
	cfg := Config()
	for _, o := range opts {
		o(&cfg)
	}
	logs := &syncbuf.Buffer{}
	a, err := appliance.New(cfg, logs)
	if err != nil {
		t.Fatalf("apptest: new appliance: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("apptest: start appliance: %v\nlogs:\n%s", err, logs.String())
	}
	s := &Stack{Appliance: a, Endpoints: a.Endpoints(), URL: a.URL()}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := a.Stop(stopCtx); err != nil {
			t.Errorf("apptest: stop appliance: %v", err)
		}
		if t.Failed() {
			t.Logf("appliance logs (stderr, level >= info):\n%s", logs.String())
		}
	})
	if err := WaitReady(ctx, s.URL); err != nil {
		t.Fatalf("apptest: %v\nlogs:\n%s", err, logs.String())
	}
	return s
}

// WaitReady polls /readyz until it answers 200 or ctx ends.
func WaitReady(ctx context.Context, baseURL string) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = body.String()
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("appliance not ready: %s", last)
		case <-tick.C:
		}
	}
}

// GetJSON fetches url and decodes a JSON body into v, returning the status.
func GetJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
	}
	return resp.StatusCode
}
