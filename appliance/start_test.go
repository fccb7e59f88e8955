package appliance_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance"
	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/config"
)

// startErr starts an appliance expected to fail, and stops it if it did not.
func startErr(t *testing.T, cfg config.Config) (*appliance.Appliance, error) {
	t.Helper()
	a, err := appliance.New(cfg, io.Discard)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	return a, nil
}

// The endpoints file describes a running appliance. A script waits for it to
// appear (README, "Using CX Lab in CI"): one left by an earlier run must not
// look like this run being ready, and the file goes when the run ends.
func TestEndpointsFileIsOnlyThereWhileRunning(t *testing.T) {
	epFile := filepath.Join(t.TempDir(), "endpoints.json")
	stale := `{"console_url": "http://127.0.0.1:1/"}`
	if err := os.WriteFile(epFile, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := apptest.Config()
	cfg.EndpointsFile = epFile
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		done <- appliance.Run(ctx, cfg, io.Discard, io.Discard)
	}()
	<-started
	var ep struct {
		ConsoleURL string `json:"console_url"`
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		// Until Run removes the stale file (before anything else) it may
		// still be read; the next content must be this run's.
		if b, err := os.ReadFile(epFile); err == nil && string(b) != stale {
			if err := json.Unmarshal(b, &ep); err != nil {
				t.Fatalf("endpoints file is not JSON: %v", err)
			}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("cxlab up ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no endpoints file after 90s")
		}
	}
	if ep.ConsoleURL == "" || ep.ConsoleURL == "http://127.0.0.1:1/" {
		t.Fatalf("console_url %q is not this run's", ep.ConsoleURL)
	}
	res, err := http.Get(ep.ConsoleURL)
	if err != nil {
		t.Fatalf("console_url %s: %v", ep.ConsoleURL, err)
	}
	_ = res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(epFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoints file still there after the run ended (stat: %v)", err)
	}
}

// An endpoints file that cannot be written is a configuration error found
// before anything starts, not after PostgreSQL and every component did.
func TestUnwritableEndpointsFileIsRefusedFirst(t *testing.T) {
	cfg := apptest.Config()
	cfg.EndpointsFile = filepath.Join(t.TempDir(), "no-such-dir", "endpoints.json")
	t0 := time.Now()
	err := appliance.Run(t.Context(), cfg, io.Discard, io.Discard)
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "--endpoints-file") {
		t.Fatalf("Run with an endpoints file in a missing directory: %v, want an invalid-config error naming --endpoints-file", err)
	}
	t.Logf("refused after %s", time.Since(t0))
}
