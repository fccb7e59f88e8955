package appliance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cxlab/cxlab/appliance/httpd"
	"github.com/cxlab/cxlab/appliance/store/postgres"
)

// pgStore is the PostgreSQL the appliance runs or uses.
type pgStore interface {
	Component
	Readier
	DSN() string
}

func (a *Appliance) newPostgres() (pgStore, error) {
	cfg := a.cfg
	if cfg.Postgres.URL != "" {
		return postgres.NewExternal(cfg.Postgres.URL, 5*time.Second, a.log.With("component", "postgres")), nil
	}
	// Port 0 is resolved by the embedded server as it starts (PostgreSQL is a
	// child process and can't take a caller-owned socket); a set port is
	// checked here so a busy one fails before anything starts.
	// (A postgres a killed run left on this data dir is stopped by the start.)
	dataDir := a.dir.sub("postgres")
	if port := cfg.Postgres.Port; port != 0 && !postgres.StaleServerOn(dataDir, port) {
		if err := checkTCPPortFree(port); err != nil {
			return nil, err
		}
	}
	return postgres.NewEmbedded(postgres.Config{
		DataDir:     dataDir,
		Port:        cfg.Postgres.Port,
		BinariesDir: cfg.Postgres.Binaries,
		RunAsUser:   cfg.Postgres.RunAsUser,
	}, a.log.With("component", "postgres")), nil
}

func checkTCPPortFree(port int) error {
	ln, err := httpd.Listen("127.0.0.1", port, "--postgres-port")
	if err != nil {
		return err
	}
	return ln.Close()
}

// newPool builds the shared pool before PostgreSQL runs: the embedded server's
// DSN is known only once it has started, so each new connection reads it then.
func newPool(pg pgStore) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig("postgres://127.0.0.1/")
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	pc.MaxConns = 24
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	// Every execution is planned with its own parameters and the table as it
	// is now. A lab starts with empty tables; a generic plan cached then (a
	// sequential scan is cheapest on an empty table) was kept while a table
	// grew to tens of thousands of callbacks, and PostgreSQL spent a whole
	// core scanning it for primary-key lookups.
	pc.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	pc.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		dsn := pg.DSN()
		if dsn == "" {
			return errors.New("postgres is not running")
		}
		real, err := pgx.ParseConfig(dsn)
		if err != nil {
			return fmt.Errorf("postgres DSN: %w", err)
		}
		// Only where to connect and as whom: runtime parameters set by the
		// caller (a migration's search_path) stay.
		cc.Host, cc.Port, cc.Database = real.Host, real.Port, real.Database
		cc.User, cc.Password = real.User, real.Password
		cc.TLSConfig, cc.Fallbacks = real.TLSConfig, real.Fallbacks
		return nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	return pool, nil
}

// poolComponent checks the shared pool once PostgreSQL is up and closes it
// before PostgreSQL stops.
type poolComponent struct{ pool *pgxpool.Pool }

func (p *poolComponent) Name() string { return "postgres-pool" }

func (p *poolComponent) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.pool.Ping(ctx); err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	return nil
}

func (p *poolComponent) Stop(context.Context) error {
	p.pool.Close()
	return nil
}

// fatal delivers an error when a component can no longer work and the
// appliance must exit (today: the embedded PostgreSQL past its restart limit).
func (a *Appliance) fatal() <-chan error {
	if f, ok := a.pg.(interface{ Failed() <-chan error }); ok {
		return f.Failed()
	}
	return nil
}
