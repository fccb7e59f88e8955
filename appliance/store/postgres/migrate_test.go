package postgres

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"
)

var testMigrations = fstest.MapFS{
	"00001_items.sql": {Data: []byte(`-- +goose Up
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
-- +goose Down
DROP TABLE items;
`)},
	"00002_seed.sql": {Data: []byte(`-- +goose Up
INSERT INTO items VALUES (1, 'first');
-- +goose Down
DELETE FROM items WHERE id = 1;
`)},
}

func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(testCtx(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrate(t *testing.T) {
	e := startEmbedded(t, Config{DataDir: filepath.Join(tempDir(t), "pg")})
	ctx := testCtx(t)

	t.Run("idempotent", func(t *testing.T) {
		pool := newPool(t, e.DSN())
		for i := 0; i < 2; i++ {
			if err := Migrate(ctx, pool, "ges", testMigrations); err != nil {
				t.Fatalf("run %d: %v", i+1, err)
			}
		}
		if got := query(t, e.DSN(), "SELECT name FROM ges.items WHERE id = 1"); got != "first" {
			t.Fatalf("got %q", got)
		}
		if got := query(t, e.DSN(), "SELECT max(version_id)::text FROM ges.goose_db_version"); got != "2" {
			t.Fatalf("version %s, want 2", got)
		}
		// The pool's own sessions keep the default search_path.
		if got := query(t, e.DSN(), "SELECT current_setting('search_path')"); got != `"$user", public` {
			t.Fatalf("search_path leaked: %q", got)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		// Separate pools stand in for separate processes.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			pool := newPool(t, e.DSN())
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = Migrate(ctx, pool, "tenant", testMigrations)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("migrator %d: %v", i, err)
			}
		}
		if got := query(t, e.DSN(), "SELECT count(*)::text FROM tenant.goose_db_version WHERE version_id > 0"); got != "2" {
			t.Fatalf("%s migrations recorded, want 2 (each applied once)", got)
		}
		if got := query(t, e.DSN(), "SELECT count(*)::text FROM tenant.items"); got != "1" {
			t.Fatalf("%s seed rows, want 1", got)
		}
	})

	t.Run("a later release's migration", func(t *testing.T) {
		// The first start applies 1 and 2; a later build brings 3. The
		// check that lets a warm start skip the migration run must see it.
		pool := newPool(t, e.DSN())
		if err := Migrate(ctx, pool, "gauth", testMigrations); err != nil {
			t.Fatal(err)
		}
		later := fstest.MapFS{"00003_more.sql": {Data: []byte(`-- +goose Up
INSERT INTO items VALUES (2, 'second');
-- +goose Down
DELETE FROM items WHERE id = 2;
`)}}
		for name, f := range testMigrations {
			later[name] = f
		}
		if err := Migrate(ctx, pool, "gauth", later); err != nil {
			t.Fatal(err)
		}
		if got := query(t, e.DSN(), "SELECT string_agg(name, ',' ORDER BY id) FROM gauth.items"); got != "first,second" {
			t.Fatalf("items %q after the later migration, want first,second", got)
		}
		if err := Migrate(ctx, pool, "gauth", later); err != nil { // up to date: nothing to do
			t.Fatal(err)
		}
		if got := query(t, e.DSN(), "SELECT count(*)::text FROM gauth.goose_db_version WHERE version_id > 0"); got != "3" {
			t.Fatalf("%s migrations recorded, want 3", got)
		}
	})

	t.Run("bad schema name", func(t *testing.T) {
		pool := newPool(t, e.DSN())
		if err := Migrate(context.Background(), pool, "x; DROP TABLE y", testMigrations); err == nil {
			t.Fatal("accepted an unsafe schema name")
		}
	})
}
