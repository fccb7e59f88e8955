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
	// keep their settings. It connects only when first used.
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
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithTableName(schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	// A warm start finds every migration applied: one query on a pooled
	// connection says so, where the run below opens two new connections
	// (a PostgreSQL backend each) and takes the lock.
	if applied(ctx, pool, schema, p.ListSources()) {
		return nil
	}

	// One session holds the lock for the whole run: a pooled one, so that
	// only goose's connection is new. pg_advisory_lock blocks until the
	// holder finishes, so a waiting process starts at once then (goose's own
	// locker polls every few seconds).
	lockConn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	defer lockConn.Release()
	const lockSQL = "SELECT pg_advisory_lock(hashtextextended('cxlab.migrate.' || $1, 0))"
	if _, err := lockConn.Exec(ctx, lockSQL, schema); err != nil {
		return fmt.Errorf("migrate %s: take lock: %w", schema, err)
	}
	defer func() {
		ctx := context.WithoutCancel(ctx)
		if _, err := lockConn.Exec(ctx, "SELECT pg_advisory_unlock(hashtextextended('cxlab.migrate.' || $1, 0))", schema); err != nil {
			// A session that may still hold the lock must not go back to
			// the pool: closing it releases the lock.
			_ = lockConn.Conn().Close(ctx)
		}
	}()

	if _, err := lockConn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("migrate %s: create schema: %w", schema, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	return nil
}

// applied reports whether schema's version table records every source as
// applied (its latest row for each version says so). No table yet, or any
// error, answers false: the full run decides.
func applied(ctx context.Context, pool *pgxpool.Pool, schema string, sources []*goose.Source) bool {
	// Asked first so that a first start leaves no "relation does not exist"
	// error in PostgreSQL's log.
	var exists bool
	if pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+".goose_db_version").Scan(&exists) != nil || !exists {
		return false
	}
	rows, err := pool.Query(ctx, `SELECT DISTINCT ON (version_id) version_id, is_applied
		FROM `+schema+`.goose_db_version ORDER BY version_id, id DESC`)
	if err != nil {
		return false
	}
	done := map[int64]bool{}
	for rows.Next() {
		var v int64
		var ok bool
		if rows.Scan(&v, &ok) != nil {
			rows.Close()
			return false
		}
		done[v] = ok
	}
	if rows.Err() != nil {
		return false
	}
	for _, src := range sources {
		if !done[src.Version] {
			return false
		}
	}
	return true
}
