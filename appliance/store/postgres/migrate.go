package postgres

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// Migrate applies the goose migrations in migrations (SQL files at its root,
// e.g. an embed.FS sub-tree) to schema, creating the schema if missing. Each
// schema keeps its own version table, <schema>.goose_db_version, so packages
// migrate independently. Unqualified names in the SQL land in schema.
// Processes migrating the same schema at once take turns on an advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, migrations fs.FS) error {
	if !isIdent(schema) {
		return fmt.Errorf("migrate: schema %q must match [a-z_][a-z0-9_]*", schema)
	}
	// A dedicated *sql.DB with search_path set: the pool's own connections
	// keep their settings.
	cc := pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["search_path"] = schema
	var opts []stdlib.OptionOpenDB
	if bc := pool.Config().BeforeConnect; bc != nil {
		// A pool built before its server runs (the appliance's) learns where
		// to connect in BeforeConnect; the migration connection must too.
		opts = append(opts, stdlib.OptionBeforeConnect(bc))
	}
	db := stdlib.OpenDB(*cc, opts...)
	defer func() { _ = db.Close() }()

	// One session holds the lock for the whole run. pg_advisory_lock blocks
	// until the holder finishes, so a waiting process starts at once then
	// (goose's own locker polls every few seconds).
	lockConn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	defer func() { _ = lockConn.Close() }()
	const lockSQL = "SELECT pg_advisory_lock(hashtextextended('cxlab.migrate.' || $1, 0))"
	if _, err := lockConn.ExecContext(ctx, lockSQL, schema); err != nil {
		return fmt.Errorf("migrate %s: take lock: %w", schema, err)
	}
	defer func() {
		_, _ = lockConn.ExecContext(context.WithoutCancel(ctx),
			"SELECT pg_advisory_unlock(hashtextextended('cxlab.migrate.' || $1, 0))", schema)
	}()

	if _, err := lockConn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("migrate %s: create schema: %w", schema, err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithTableName(schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	return nil
}
