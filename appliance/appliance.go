// Package appliance is the composition root: it turns one Config into the
// running stack (stores, emulators, Engagement service, gateway, console),
// starts the components in a declared order and stops them in reverse.
package appliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/config"
	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/ges"
	"github.com/cxlab/cxlab/appliance/httpd"
	"github.com/cxlab/cxlab/appliance/store/redisstore"
	"github.com/cxlab/cxlab/appliance/telemetry"
	"github.com/cxlab/cxlab/appliance/turn"
	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/gws"
	"github.com/cxlab/cxlab/mocks/voice"
)

// Version is set at build time with -ldflags "-X github.com/cxlab/cxlab/appliance.Version=...".
var Version = "dev"

// Appliance is one running CX Lab.
type Appliance struct {
	cfg   config.Config
	log   *slog.Logger
	logs  *telemetry.Logs
	reg   *prometheus.Registry
	clock *clock.Lab
	// sharedClock keeps clock in step with the appliances sharing an external Redis.
	sharedClock *clock.Shared
	dir         *dataDir
	http        *httpd.Server
	// selfHTTP is the transport of the services' calls to each other through
	// the base URL: it trusts the appliance's own self-signed certificate.
	selfHTTP *http.Transport
	redis    redisstore.Store
	pg       pgStore
	pool     *pgxpool.Pool
	lc       *lifecycle
	started  time.Time

	// services, kept for the console's query interfaces
	ges     *ges.Service
	gateway *gateway.Server
	gauth   *gauth.Server
	gws     *gws.Server
	voice   *voice.Server
	turn    *turn.Server

	endpointHooks []func(*Endpoints, string)

	endpointsMu sync.Mutex
	endpoints   Endpoints
}

// New builds the appliance: it opens the data dir and the HTTP listener and
// constructs every component, but starts nothing. Errors wrapping
// config.ErrInvalid are the user's to fix.
func New(cfg config.Config, stderr io.Writer) (_ *Appliance, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := openDataDir(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = dir.close()
		}
	}()
	logs, err := telemetry.NewLogs(telemetry.LogConfig{
		Dir:          dir.sub("logs"),
		FileLevel:    telemetry.ParseLevel(cfg.Log.Level),
		ConsoleLevel: telemetry.ParseLevel(cfg.Log.ConsoleLevel),
		Console:      stderr,
		MaxSizeMB:    cfg.Log.MaxSizeMB,
		MaxFiles:     cfg.Log.MaxFiles,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: data_dir (--data-dir): %w", config.ErrInvalid, err)
	}
	a := &Appliance{cfg: cfg, log: logs.Logger(), logs: logs, reg: telemetry.NewRegistry(), clock: clock.NewLab(), dir: dir}
	for _, d := range dir.swept {
		a.log.Info("removed an ephemeral data dir a killed cxlab left (its PostgreSQL stopped)", "dir", d)
	}
	if err := a.wire(); err != nil {
		a.closeEarly()
		return nil, err
	}
	return a, nil
}

// wire constructs every component in start order. It is the one place that
// knows how the parts fit together.
func (a *Appliance) wire() error {
	cfg := a.cfg
	// sipgo logs some transport events (TCP connection bookkeeping) through
	// its package-level logger, slog.Default unless set: into sip.log with
	// everything else, not raw onto stderr. One appliance per process in
	// production; in tests the last one started owns it.
	sip.SetDefaultLogger(slog.New(sipgoLogs{a.log.With("component", "sip").Handler()}))
	var tlsCert *tls.Certificate
	if cfg.HTTP.TLS == "on" || (cfg.HTTP.TLS == "auto" && !config.IsLoopback(cfg.HTTP.Host)) {
		c, err := httpd.SelfSigned(a.dir.sub("tls"), cfg.HTTP.Host)
		if err != nil {
			return err
		}
		tlsCert = &c
	}
	h, err := httpd.New(httpd.Config{Host: cfg.HTTP.Host, Port: cfg.HTTP.Port, Setting: "--http-port", TLS: tlsCert, CORSOrigins: cfg.HTTP.CORSOrigins},
		a.log.With("component", "http"), a.reg, a.ready)
	if err != nil {
		return err
	}
	a.http = h
	a.selfHTTP = selfTransport(tlsCert)

	if cfg.Redis.URL != "" {
		r, err := redisstore.NewExternal(cfg.Redis.URL)
		if err != nil {
			return fmt.Errorf("%w: %w", config.ErrInvalid, err)
		}
		a.redis = r
		// Appliances sharing this Redis share the lab clock.
		a.sharedClock = clock.NewShared(a.clock, r.Client(), a.log.With("component", "clock"))
	} else {
		r := redisstore.NewEmbedded(cfg.Redis.Host, cfg.Redis.Port, "--redis-port", a.clock, a.log.With("component", "redis"))
		a.clock.OnAdvance(func(time.Time) { r.Sync() })
		a.redis = r
	}
	pg, err := a.newPostgres()
	if err != nil {
		return err
	}
	a.pg = pg
	pool, err := newPool(pg)
	if err != nil {
		return err
	}
	a.pool = pool

	components := []Component{a.redis}
	if a.sharedClock != nil {
		components = append(components, a.sharedClock)
	}
	components = append(components, a.pg, &poolComponent{pool: pool})
	services, err := a.wireServices()
	if err != nil {
		return err
	}
	components = append(components, a.http)
	components = append(components, services...)
	a.lc = newLifecycle(a.log, components)
	return nil
}

// Start starts every component in order; on failure the started ones are
// stopped in reverse and the error names the component.
func (a *Appliance) Start(ctx context.Context) error {
	a.started = time.Now()
	if err := a.lc.start(ctx, a.cfg.ShutdownTimeout); err != nil {
		a.closeEarly()
		return err
	}
	a.buildEndpoints()
	return nil
}

// Stop stops every started component in reverse order, within ctx.
func (a *Appliance) Stop(ctx context.Context) error {
	err := a.lc.stop(ctx)
	a.closeEarly()
	return err
}

// closeEarly releases what New acquired (listener, pool, data dir, logs).
func (a *Appliance) closeEarly() {
	if a.http != nil {
		_ = a.http.Stop(context.Background())
	}
	if a.pool != nil {
		a.pool.Close()
	}
	if a.logs != nil {
		_ = a.logs.Close()
	}
	if a.dir != nil {
		if err := a.dir.close(); err != nil {
			a.log.Warn("remove ephemeral data dir", "err", err)
		}
	}
}

// Clock is the movable lab clock shared by all components.
func (a *Appliance) Clock() *clock.Lab { return a.clock }

// Registry is the Prometheus registry.
func (a *Appliance) Registry() *prometheus.Registry { return a.reg }

// Logger is the root logger.
func (a *Appliance) Logger() *slog.Logger { return a.log }

// DataDir is the directory holding the appliance's state.
func (a *Appliance) DataDir() string { return a.dir.path }

func (a *Appliance) ready(ctx context.Context) (bool, any) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ok, st := a.lc.status(ctx)
	status := "ready"
	if !ok {
		status = "not ready"
	}
	return ok, map[string]any{"status": status, "components": st}
}

// ErrNotReady is returned by WaitReady when the appliance never became ready.
var ErrNotReady = errors.New("appliance not ready")

// URL is the base URL of the HTTP server.
func (a *Appliance) URL() string { return a.http.URL() }
