package appliance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/cxlab/cxlab/appliance/config"
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
	seed  tenant.Seed
}

// newSeedComponent reads the --seed file now, so that one that does not
// parse is a configuration error (exit 2) before anything starts.
func newSeedComponent(store *tenant.Store, path string) (*seedComponent, error) {
	f, err := os.Open(path) //nolint:gosec // the user names the seed file
	if err != nil {
		return nil, fmt.Errorf("%w: seed (--seed) %s: %w", config.ErrInvalid, path, err)
	}
	defer f.Close()
	seed, err := tenant.ParseSeed(f)
	if err != nil {
		return nil, fmt.Errorf("%w: seed (--seed) %s: %w", config.ErrInvalid, path, err)
	}
	return &seedComponent{store: store, seed: seed}, nil
}

func (s *seedComponent) Name() string { return "seed" }

func (s *seedComponent) Start(ctx context.Context) error { return s.store.Apply(ctx, s.seed) }

func (s *seedComponent) Stop(context.Context) error { return nil }

// selfTransport is an HTTP transport for calls to the appliance's own base
// URL. With TLS on (a non-loopback bind) the base URL serves a self-signed
// certificate, which the services' clients must trust: without it every call
// to GAuth failed certificate verification and the APIs answered 503.
func selfTransport(cert *tls.Certificate) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Every ORS session reports to GES on its own goroutine: keep enough idle
	// connections that a burst of reports does not dial anew for each.
	tr.MaxIdleConnsPerHost = 64
	if cert == nil || len(cert.Certificate) == 0 {
		return tr
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
		pool.AddCert(leaf)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr
}

// selfClient is a client of the appliance's own base URL with timeout.
func (a *Appliance) selfClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: a.selfHTTP}
}
