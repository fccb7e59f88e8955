package appliance_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance"
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
