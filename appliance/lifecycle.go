package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Component is one part of the appliance with a start/stop lifecycle.
// Stop must be idempotent and safe to call on a component whose Start failed.
type Component interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Readier is implemented by components that can tell whether they serve
// right now (an external store that went away reports it here).
type Readier interface {
	Ready(ctx context.Context) error
}

// ComponentStatus is one line of /readyz.
type ComponentStatus struct {
	Name    string    `json:"name"`
	Ready   bool      `json:"ready"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started,omitempty"`
}

// lifecycle starts components in declared order and stops the started ones in
// reverse, on failure of a later one or on shutdown.
type lifecycle struct {
	log        *slog.Logger
	components []Component

	mu      sync.Mutex
	started []Component
	since   map[string]time.Time
	stopped bool
}

func newLifecycle(log *slog.Logger, cs []Component) *lifecycle {
	return &lifecycle{log: log, components: cs, since: map[string]time.Time{}}
}

// start runs each Start in order; on the first error it stops what started, in
// reverse, and returns an error naming the component.
func (l *lifecycle) start(ctx context.Context, stopTimeout time.Duration) error {
	for _, c := range l.components {
		t0 := time.Now()
		err := ctx.Err() // stopped (a signal) between two components: start no more
		tried := err == nil
		if tried {
			err = c.Start(ctx)
		}
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			if tried {
				_ = c.Stop(stopCtx)
			}
			if stopErr := l.stop(stopCtx); stopErr != nil {
				l.log.Warn("rollback after failed start was not clean", "err", stopErr)
			}
			return fmt.Errorf("start %s: %w", c.Name(), err)
		}
		l.log.Debug("component started", "name", c.Name(), "took", time.Since(t0))
		l.mu.Lock()
		l.started = append(l.started, c)
		l.since[c.Name()] = time.Now()
		l.mu.Unlock()
	}
	return nil
}

// stop stops started components in reverse order. It is idempotent.
func (l *lifecycle) stop(ctx context.Context) error {
	l.mu.Lock()
	started := l.started
	l.started = nil
	l.stopped = true
	l.mu.Unlock()
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		c := started[i]
		t0 := time.Now()
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", c.Name(), err))
		}
		took := time.Since(t0)
		if took > time.Second {
			// The whole stop has a 5 s budget: a slow component is worth a line.
			l.log.Warn("slow component stop", "name", c.Name(), "took", took)
		} else {
			l.log.Debug("component stopped", "name", c.Name(), "took", took)
		}
	}
	return errors.Join(errs...)
}

// status reports every component; a component is ready when it has started and
// its Ready check (if any) passes.
func (l *lifecycle) status(ctx context.Context) (all bool, out []ComponentStatus) {
	l.mu.Lock()
	since := make(map[string]time.Time, len(l.since))
	for k, v := range l.since {
		since[k] = v
	}
	started := map[string]bool{}
	for _, c := range l.started {
		started[c.Name()] = true
	}
	l.mu.Unlock()
	all = true
	for _, c := range l.components {
		st := ComponentStatus{Name: c.Name(), Started: since[c.Name()]}
		switch {
		case !started[c.Name()]:
			st.Error = "not started"
		default:
			st.Ready = true
			if r, ok := c.(Readier); ok {
				if err := r.Ready(ctx); err != nil {
					st.Ready, st.Error = false, err.Error()
				}
			}
		}
		all = all && st.Ready
		out = append(out, st)
	}
	return all, out
}
