package gauth

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors of the package's own Environment Service store; storeError maps them
// (with the tenant store's) to HTTP statuses.
var (
	errNotFound = errors.New("not found")
	errConflict = errors.New("already exists")
	errInvalid  = errors.New("invalid")
)

// mapPgError turns unique and foreign-key violations into errConflict and
// errNotFound, and values PostgreSQL cannot store (NUL, bad escapes) into
// errInvalid, so that none of them answers 500.
func mapPgError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return errors.Join(errConflict, err)
		case "23503":
			return errors.Join(errNotFound, err)
		case "22P02", "22021", "22P05": // invalid text representation, bytes not UTF-8 (or NUL), unsupported \u escape in jsonb
			return errors.Join(errInvalid, err)
		}
	}
	return err
}
