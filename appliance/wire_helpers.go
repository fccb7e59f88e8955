package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/cxlab/cxlab/mocks/tenant"
)

type loggerWith struct {
	a    *Appliance
	name string
}

func (l *loggerWith) get() *slog.Logger { return l.a.log.With("component", l.name) }

// seedComponent applies the user's --seed file after the demo tenant.
type seedComponent struct {
	store *tenant.Store
	path  string
}

func (s *seedComponent) Name() string { return "seed" }

func (s *seedComponent) Start(ctx context.Context) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("open --seed %s: %w", s.path, err)
	}
	defer f.Close()
	seed, err := tenant.ParseSeed(f)
	if err != nil {
		return fmt.Errorf("--seed %s: %w", s.path, err)
	}
	return s.store.Apply(ctx, seed)
}

func (s *seedComponent) Stop(context.Context) error { return nil }
