package gauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// setting is a contact center setting of the Environment Service (B.7), such
// as cors-origins. Value is any JSON, kept as sent (Genesys sends a string).
type setting struct {
	Name      string          `json:"name"`
	Location  string          `json:"location"`
	Shared    bool            `json:"shared"`
	Value     json.RawMessage `json:"value"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// settingIn is the POST body {name, location?, shared?, value}; shared may be
// a boolean or "true"/"false" (Genesys' scripts send the string).
type settingIn struct {
	Name     *string         `json:"name"`
	Location *string         `json:"location"`
	Shared   *flexBool       `json:"shared"`
	Value    json.RawMessage `json:"value"`
}

func (in settingIn) toSetting() (setting, error) {
	st := setting{Location: deref(in.Location, ""), Shared: bool(deref(in.Shared, false)), Value: in.Value}
	name, err := required("name", in.Name)
	if err != nil {
		return st, err
	}
	if !idRe.MatchString(name) {
		return st, errors.New("name must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
	}
	st.Name = name
	if strings.ContainsRune(st.Location, 0) {
		return st, errors.New("location must not contain NUL")
	}
	if len(st.Value) == 0 || string(st.Value) == "null" {
		return st, errors.New("value is required")
	}
	return st, nil
}

// ---- store ----

const settingCols = `name, location, shared, value, updated_at`

func scanSetting(row pgx.Row) (setting, error) {
	var st setting
	err := row.Scan(&st.Name, &st.Location, &st.Shared, &st.Value, &st.UpdatedAt)
	return st, err
}

func (s *Server) settings(ctx context.Context, ccid tenant.CCID) ([]setting, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+settingCols+` FROM gauth.cc_settings WHERE ccid = $1 ORDER BY name`, string(ccid))
	if err != nil {
		return nil, fmt.Errorf("list settings: %w", tenant.MapPgError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (setting, error) { return scanSetting(r) })
	if err != nil {
		return nil, fmt.Errorf("list settings: %w", err)
	}
	return out, nil
}

func (s *Server) setting(ctx context.Context, ccid tenant.CCID, name string) (setting, error) {
	if !idRe.MatchString(name) {
		return setting{}, fmt.Errorf("get setting %q: %w", name, tenant.ErrNotFound)
	}
	st, err := scanSetting(s.pool.QueryRow(ctx, `SELECT `+settingCols+` FROM gauth.cc_settings WHERE ccid = $1 AND name = $2`, string(ccid), name))
	if errors.Is(err, pgx.ErrNoRows) {
		return setting{}, fmt.Errorf("get setting %q: %w", name, tenant.ErrNotFound)
	}
	if err != nil {
		return setting{}, fmt.Errorf("get setting: %w", tenant.MapPgError(err))
	}
	return st, nil
}

// putSetting creates or replaces the setting of that name and reports
// whether it was created.
func (s *Server) putSetting(ctx context.Context, ccid tenant.CCID, st setting) (setting, bool, error) {
	var out setting
	var created bool
	err := s.pool.QueryRow(ctx, `
INSERT INTO gauth.cc_settings (ccid, name, location, shared, value, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (ccid, name) DO UPDATE SET location = EXCLUDED.location, shared = EXCLUDED.shared,
  value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
RETURNING `+settingCols+`, xmax = 0`, string(ccid), st.Name, st.Location, st.Shared, st.Value, s.clk.Now()).
		Scan(&out.Name, &out.Location, &out.Shared, &out.Value, &out.UpdatedAt, &created)
	if err != nil {
		return setting{}, false, fmt.Errorf("put setting: %w", tenant.MapPgError(err))
	}
	return out, created, nil
}

func (s *Server) deleteSetting(ctx context.Context, ccid tenant.CCID, name string) error {
	if !idRe.MatchString(name) {
		return fmt.Errorf("delete setting %q: %w", name, tenant.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM gauth.cc_settings WHERE ccid = $1 AND name = $2`, string(ccid), name)
	if err != nil {
		return fmt.Errorf("delete setting: %w", tenant.MapPgError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete setting %q: %w", name, tenant.ErrNotFound)
	}
	return nil
}

// ---- handlers ----

// settingsAccess identifies the caller and checks that it may read the
// contact center's settings (any caller scoped to it, as GET
// contact-centers/{ccid}: others get 404) or, with write, change them (ops or a
// supervisor/admin of it, as the API key routes: others get 403), and that the
// contact center exists.
func (s *Server) settingsAccess(c echo.Context, op string, write bool) (tenant.CCID, error, bool) {
	k, err, good := s.identify(c)
	if !good {
		return "", err, false
	}
	id := tenant.CCID(c.Param("ccid"))
	if write && !k.canAdmin(id) {
		return "", envelope(c, http.StatusForbidden, "ops credentials or a supervisor of this contact center required", nil), false
	}
	if scope := k.tenantScope(); scope != "" && scope != id {
		return "", envelope(c, http.StatusNotFound, op+": not found", nil), false
	}
	if _, err := s.tenants.ContactCenter(c.Request().Context(), id); err != nil {
		return "", s.storeError(c, op, err), false
	}
	return id, nil, true
}

func (s *Server) envListSettings(c echo.Context) error {
	id, err, good := s.settingsAccess(c, "list settings", false)
	if !good {
		return err
	}
	sts, err := s.settings(c.Request().Context(), id)
	if err != nil {
		return s.storeError(c, "list settings", err)
	}
	return ok(c, sts)
}

func (s *Server) envGetSetting(c echo.Context) error {
	id, err, good := s.settingsAccess(c, "get setting", false)
	if !good {
		return err
	}
	st, err := s.setting(c.Request().Context(), id, c.Param("name"))
	if err != nil {
		return s.storeError(c, "get setting", err)
	}
	return ok(c, st)
}

// envPutSetting creates (201) or replaces (200) the setting named in the body.
func (s *Server) envPutSetting(c echo.Context) error {
	id, err, good := s.settingsAccess(c, "put setting", true)
	if !good {
		return err
	}
	var in settingIn
	if done, err := decodeJSON(c, &in); !done {
		return err
	}
	st, err := in.toSetting()
	if err != nil {
		return envelope(c, http.StatusBadRequest, err.Error(), nil)
	}
	out, created, err := s.putSetting(c.Request().Context(), id, st)
	if err != nil {
		return s.storeError(c, "put setting", err)
	}
	s.log.Info("contact center setting saved", "ccid", id, "name", out.Name, "created", created)
	if !created {
		return ok(c, out)
	}
	c.Response().Header().Set("Location", "/environment/v3/contact-centers/"+string(id)+"/settings/"+out.Name)
	return envelope(c, http.StatusCreated, "created", out)
}

func (s *Server) envDeleteSetting(c echo.Context) error {
	id, err, good := s.settingsAccess(c, "delete setting", true)
	if !good {
		return err
	}
	if err := s.deleteSetting(c.Request().Context(), id, c.Param("name")); err != nil {
		return s.storeError(c, "delete setting", err)
	}
	s.log.Info("contact center setting deleted", "ccid", id, "name", c.Param("name"))
	return ok(c, nil)
}
