package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// External is a PostgreSQL server the appliance does not run (--postgres-url).
type External struct {
	dsn     string
	timeout time.Duration
	log     *slog.Logger
}

// NewExternal returns the component for the server at dsn (URL or key=value
// form). timeout bounds each ping; 0 means 5s.
func NewExternal(dsn string, timeout time.Duration, log *slog.Logger) *External {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &External{dsn: dsn, timeout: timeout, log: log.With("component", "postgres")}
}

// Name returns "postgres".
func (x *External) Name() string { return "postgres" }

// DSN returns the configured DSN (with its password: for clients, not logs).
func (x *External) DSN() string { return x.dsn }

// Start checks that the server answers, so that a wrong URL fails at once.
func (x *External) Start(ctx context.Context) error {
	if err := x.ping(ctx); err != nil {
		return err
	}
	x.log.Info("postgres reachable", "dsn", RedactDSN(x.dsn))
	return nil
}

// Stop does nothing: the server is not ours. It exists for the lifecycle.
func (x *External) Stop(context.Context) error { return nil }

// Ready pings the server, so /readyz shows an outage and its recovery.
func (x *External) Ready(ctx context.Context) error { return x.ping(ctx) }

func (x *External) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	if err := ping(ctx, x.dsn); err != nil {
		return fmt.Errorf("can't reach PostgreSQL at %s: %w", RedactDSN(x.dsn), err)
	}
	return nil
}

// RedactDSN renders dsn as postgres://user@host:port/db, without password or
// parameters, for logs and errors.
func RedactDSN(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// Never echo an unparsable DSN: it may hold a password.
		return "(unparsable " + FlagURL + ")"
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.User(cfg.User),
		Host:   net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))),
		Path:   "/" + cfg.Database,
	}
	return u.String()
}
