package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/cxlab/cxlab/appliance/config"
)

// Run starts the appliance, announces it (banner, endpoints file), waits for
// ctx to end (a signal), then stops within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	t0 := time.Now()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.EndpointsFile != "" {
		// A file that cannot be written is found now, not after every
		// component has started.
		probe, err := os.CreateTemp(filepath.Dir(cfg.EndpointsFile), ".endpoints-*.json")
		if err != nil {
			return fmt.Errorf("%w: endpoints file (--endpoints-file) %s: can't write in %s: %w", config.ErrInvalid,
				cfg.EndpointsFile, filepath.Dir(cfg.EndpointsFile), errors.Unwrap(err))
		}
		_ = probe.Close()
		_ = os.Remove(probe.Name())
	}
	a, err := New(cfg, stderr)
	if err != nil {
		// Not ours to remove: a running appliance may have written it (this
		// run found its data dir or ports taken).
		return err
	}
	// The endpoints file describes a running appliance: one left by an
	// earlier run names ports nobody serves, and a script waiting for the
	// file to appear would go on at once. Now that this run holds its data
	// dir and ports, it goes, and again when this run ends.
	if cfg.EndpointsFile != "" {
		if err := os.Remove(cfg.EndpointsFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return errors.Join(fmt.Errorf("%w: endpoints file (--endpoints-file): can't remove the previous one: %w", config.ErrInvalid, err), a.stopBounded())
		}
		ownedEndpointsFile.Store(&cfg.EndpointsFile)
		defer func() {
			ownedEndpointsFile.Store(nil)
			_ = os.Remove(cfg.EndpointsFile)
		}()
	}
	if err := a.Start(ctx); err != nil {
		if ctx.Err() != nil { // a signal during start: what started is stopped again
			_, _ = fmt.Fprintln(stdout, "Stopped before ready (signal)")
			return nil
		}
		return err
	}
	e := a.Endpoints()
	if cfg.EndpointsFile != "" {
		if err := writeEndpointsFile(cfg.EndpointsFile, e); err != nil {
			return errors.Join(err, a.stopBounded())
		}
	}
	printBanner(stdout, e, time.Since(t0).Round(time.Millisecond).String())
	a.log.Info("ready", "url", a.http.URL(), "took", time.Since(t0))
	select {
	case <-ctx.Done():
		_, _ = fmt.Fprintln(stdout, "Stopping CX Lab (press Ctrl-C again to force)...")
		return a.stopBounded()
	case err := <-a.fatal():
		// The embedded PostgreSQL crashed more often than its supervisor may
		// restart it: a lab that can't keep its store says so and exits.
		a.log.Error("fatal", "err", err)
		return errors.Join(fmt.Errorf("postgres gave up: %w", err), a.stopBounded())
	}
}

// ownedEndpointsFile is the endpoints file a running Run owns (nil before it
// holds its data dir and ports, and after it ends).
var ownedEndpointsFile atomic.Pointer[string]

// RemoveEndpointsFile removes the endpoints file of the Run under way, if it
// owns one: what a process exiting without stopping (a second signal) must
// still undo, since the file tells scripts the appliance is up.
func RemoveEndpointsFile() {
	if p := ownedEndpointsFile.Load(); p != nil {
		_ = os.Remove(*p)
	}
}

func (a *Appliance) stopBounded() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	t0 := time.Now()
	err := a.Stop(ctx)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	a.log.Info("stopped", "took", time.Since(t0))
	return nil
}
