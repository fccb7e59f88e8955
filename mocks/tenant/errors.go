package tenant

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrNotFound means the object does not exist (in that tenant).
	ErrNotFound = errors.New("not found")
	// ErrConflict means the object clashes with an existing one (a unique name,
	// a dbid held by another tenant).
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the object fails validation.
	ErrInvalid = errors.New("invalid")
)

// mapPgError turns unique and foreign-key violations into ErrConflict and
// ErrNotFound so HTTP layers can answer 409/404 without knowing Postgres codes.
func mapPgError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return errors.Join(ErrConflict, err)
		case "23503":
			return errors.Join(ErrNotFound, err)
		case "22P02":
			return errors.Join(ErrInvalid, err)
		}
	}
	return err
}
