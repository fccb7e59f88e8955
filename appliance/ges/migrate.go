package ges

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cxlab/cxlab/appliance/store/postgres"
)

// migrate applies the embedded migrations into schema "ges".
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return postgres.Migrate(ctx, pool, "ges", sub)
}
