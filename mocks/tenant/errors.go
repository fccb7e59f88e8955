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

// MapPgError turns unique and foreign-key violations into ErrConflict and
// ErrNotFound, and malformed input into ErrInvalid, so HTTP layers can answer
// 409/404/400 without knowing Postgres codes. Stores beside this one (GAuth's
// Environment Service) use it too.
func MapPgError(err error) error { return mapPgError(err) }

func mapPgError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return errors.Join(ErrConflict, err)
		case "23503":
			return errors.Join(ErrNotFound, err)
		case "22P02", "22021", "22P05": // invalid text representation, bytes invalid in UTF-8 (or NUL), unsupported \u escape in jsonb
			return errors.Join(ErrInvalid, err)
		}
	}
	return err
}

// isUnstorable reports whether PostgreSQL refused a parameter because its
// bytes are not UTF-8 (or hold NUL). A lookup by such a key finds nothing:
// nothing stored can equal it.
func isUnstorable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22021"
}
