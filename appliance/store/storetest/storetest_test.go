package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestEachCallGetsAnIsolatedDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := Pool(t)
	b := Pool(t)
	if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (v int)"); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := b.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("a table created through one call is visible through another")
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var dsn string
	var open *pgx.Conn
	t.Run("inner", func(t *testing.T) {
		dsn = Postgres(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		open = conn // still connected when the drop runs
	})
	defer open.Close(context.Background())
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Fatal("the per-test database still exists after its test ended")
	}
}

func TestDBNameIsValidIdentifier(t *testing.T) {
	long := "TestSomething/with spaces and UPPER-case/" + string(make([]byte, 100))
	name := dbName(long, 7)
	if len(name) > 63 {
		t.Fatalf("%q is longer than 63 bytes", name)
	}
	for _, r := range name {
		if r != '_' && (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			t.Fatalf("%q contains %q", name, r)
		}
	}
}
