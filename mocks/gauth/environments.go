package gauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// environment is an Environment Service environment (B.7): the Configuration
// Server connection GAuth authenticates a contact center's persons against.
// It has no password field: the password is stored hashed and never served.
type environment struct {
	ID                 string         `json:"id"`
	Username           string         `json:"username"`
	ConnectionProtocol string         `json:"connectionProtocol"`
	LocalTimeout       int            `json:"localTimeout"`
	RemoteTimeout      int            `json:"remoteTimeout"`
	Tenant             string         `json:"tenant"`
	AppName            string         `json:"appName"`
	TraceMode          string         `json:"traceMode"`
	TLSEnabled         bool           `json:"tlsEnabled"`
	ConfigServers      []configServer `json:"configServers"`
	CreatedAt          time.Time      `json:"createdAt"`
}

// configServer is one Configuration Server of an environment.
type configServer struct {
	PrimaryAddress string `json:"primaryAddress"`
	PrimaryPort    int    `json:"primaryPort"`
	ReadOnly       bool   `json:"readOnly"`
	Locations      string `json:"locations"`
}

// environmentIn is the POST body. Pointers tell an absent field from a zero.
type environmentIn struct {
	ID                 *string            `json:"id"`
	Username           *string            `json:"username"`
	Password           *string            `json:"password"`
	ConnectionProtocol *string            `json:"connectionProtocol"`
	LocalTimeout       *int64             `json:"localTimeout"`
	RemoteTimeout      *int64             `json:"remoteTimeout"`
	Tenant             *string            `json:"tenant"`
	AppName            *string            `json:"appName"`
	TraceMode          *string            `json:"traceMode"`
	TLSEnabled         *flexBool          `json:"tlsEnabled"`
	ConfigServers      *[]*configServerIn `json:"configServers"`
}

type configServerIn struct {
	PrimaryAddress *string   `json:"primaryAddress"`
	PrimaryPort    *int64    `json:"primaryPort"`
	ReadOnly       *flexBool `json:"readOnly"`
	Locations      *string   `json:"locations"`
}

// flexBool is a JSON boolean that also accepts "true" and "false": Genesys'
// own provisioning scripts send shared:"true", which GAuth (Java) coerces.
type flexBool bool

func (b *flexBool) UnmarshalJSON(raw []byte) error {
	switch strings.TrimSpace(string(raw)) {
	case "true", `"true"`:
		*b = true
	case "false", `"false"`:
		*b = false
	case "null":
	default:
		// A type error, so that decodeJSON names the field.
		return &json.UnmarshalTypeError{Value: jsonValueKind(raw), Type: reflect.TypeFor[bool]()}
	}
	return nil
}

// jsonValueKind names the JSON type of raw, as encoding/json's errors do.
func jsonValueKind(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	switch {
	case strings.HasPrefix(s, `"`):
		return "string"
	case strings.HasPrefix(s, "{"):
		return "object"
	case strings.HasPrefix(s, "["):
		return "array"
	default:
		return "number"
	}
}

// Environment defaults: the values of Genesys' own provisioning example (B.7).
const (
	defaultEnvironmentID = "cxlab-env" // the built-in environment, created by the migration
	defaultConnProtocol  = "addp"
	defaultLocalTimeout  = 60
	defaultRemoteTimeout = 90
	defaultCfgTenant     = "Environment"
	defaultCfgAppName    = "Cloud"
	defaultTraceMode     = "CFGTMBoth"
)

// traceModes are Configuration Server's CfgTraceMode values.
var traceModes = []string{"CFGTMNoTraceMode", "CFGTMLocal", "CFGTMRemote", "CFGTMBoth"}

// idRe is what an environment id or setting name may be: it goes in a path
// segment.
var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// maxPasswordBytes is bcrypt's limit.
const maxPasswordBytes = 72

// toEnvironment validates the body and returns the environment and its
// password. Required are what GAuth needs to open its Configuration Server
// connection: username, password, and configServers with at least one entry,
// each with primaryAddress and primaryPort. Every other field is optional and
// defaults to Genesys' example: id a new UUID, connectionProtocol "addp",
// localTimeout 60, remoteTimeout 90, tenant "Environment", appName "Cloud",
// traceMode "CFGTMBoth", tlsEnabled, readOnly false, locations "".
func (in environmentIn) toEnvironment() (environment, string, error) {
	env := environment{ID: deref(in.ID, ""), ConnectionProtocol: deref(in.ConnectionProtocol, defaultConnProtocol),
		Tenant: deref(in.Tenant, defaultCfgTenant), AppName: deref(in.AppName, defaultCfgAppName),
		TraceMode: deref(in.TraceMode, defaultTraceMode), TLSEnabled: bool(deref(in.TLSEnabled, false)),
		ConfigServers: []configServer{}}
	if env.ID == "" {
		env.ID = uuid.NewString()
	} else if !idRe.MatchString(env.ID) {
		return env, "", errors.New("id must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
	}
	var err error
	if env.Username, err = required("username", in.Username); err != nil {
		return env, "", err
	}
	password, err := required("password", in.Password)
	if err != nil {
		return env, "", err
	}
	if len(password) > maxPasswordBytes {
		return env, "", fmt.Errorf("password must be at most %d bytes", maxPasswordBytes)
	}
	if env.LocalTimeout, err = timeout("localTimeout", in.LocalTimeout, defaultLocalTimeout); err != nil {
		return env, "", err
	}
	if env.RemoteTimeout, err = timeout("remoteTimeout", in.RemoteTimeout, defaultRemoteTimeout); err != nil {
		return env, "", err
	}
	if !slices.Contains(traceModes, env.TraceMode) {
		return env, "", fmt.Errorf("traceMode must be one of %s", strings.Join(traceModes, ", "))
	}
	for _, f := range []struct{ name, v string }{{"connectionProtocol", env.ConnectionProtocol}, {"tenant", env.Tenant}, {"appName", env.AppName}} {
		if strings.ContainsRune(f.v, 0) {
			return env, "", errors.New(f.name + " must not contain NUL")
		}
	}
	if in.ConfigServers == nil || len(*in.ConfigServers) == 0 {
		return env, "", errors.New("configServers is required (at least one)")
	}
	for i, cs := range *in.ConfigServers {
		if cs == nil {
			cs = &configServerIn{}
		}
		name := fmt.Sprintf("configServers[%d].", i)
		out := configServer{ReadOnly: bool(deref(cs.ReadOnly, false)), Locations: deref(cs.Locations, "")}
		if out.PrimaryAddress, err = required(name+"primaryAddress", cs.PrimaryAddress); err != nil {
			return env, "", err
		}
		if cs.PrimaryPort == nil {
			return env, "", errors.New(name + "primaryPort is required")
		}
		if p := *cs.PrimaryPort; p < 1 || p > math.MaxUint16 {
			return env, "", fmt.Errorf("%sprimaryPort must be between 1 and %d", name, math.MaxUint16)
		}
		out.PrimaryPort = int(*cs.PrimaryPort)
		if strings.ContainsRune(out.Locations, 0) {
			return env, "", errors.New(name + "locations must not contain NUL")
		}
		env.ConfigServers = append(env.ConfigServers, out)
	}
	return env, password, nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// required returns a required, non-empty string field.
func required(field string, v *string) (string, error) {
	if v == nil || *v == "" {
		return "", errors.New(field + " is required")
	}
	if strings.ContainsRune(*v, 0) {
		return "", errors.New(field + " must not contain NUL")
	}
	return *v, nil
}

// timeout returns a timeout in seconds; the column is an int4.
func timeout(field string, v *int64, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v < 0 || *v > math.MaxInt32 {
		return 0, fmt.Errorf("%s must be between 0 and %d seconds", field, math.MaxInt32)
	}
	return int(*v), nil
}

// ---- store ----

const envCols = `id, username, connection_protocol, local_timeout, remote_timeout, tenant, app_name, trace_mode, tls_enabled, config_servers, created_at`

func scanEnvironment(row pgx.Row) (environment, error) {
	var e environment
	err := row.Scan(&e.ID, &e.Username, &e.ConnectionProtocol, &e.LocalTimeout, &e.RemoteTimeout, &e.Tenant, &e.AppName,
		&e.TraceMode, &e.TLSEnabled, &e.ConfigServers, &e.CreatedAt)
	if e.ConfigServers == nil {
		e.ConfigServers = []configServer{}
	}
	return e, err
}

// insertEnvironment stores a new environment; an existing id is tenant.ErrConflict.
func (s *Server) insertEnvironment(ctx context.Context, e environment, password string) (environment, error) {
	hash, err := tenant.HashSecret(password)
	if err != nil {
		return environment{}, fmt.Errorf("insert environment: %w", err)
	}
	out, err := scanEnvironment(s.pool.QueryRow(ctx, `
INSERT INTO gauth.environments (id, username, password_hash, connection_protocol, local_timeout, remote_timeout, tenant, app_name, trace_mode, tls_enabled, config_servers, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO NOTHING
RETURNING `+envCols, e.ID, e.Username, hash, e.ConnectionProtocol, e.LocalTimeout, e.RemoteTimeout, e.Tenant, e.AppName,
		e.TraceMode, e.TLSEnabled, e.ConfigServers, s.clk.Now()))
	if errors.Is(err, pgx.ErrNoRows) {
		return environment{}, fmt.Errorf("insert environment %q: %w", e.ID, tenant.ErrConflict)
	}
	if err != nil {
		return environment{}, fmt.Errorf("insert environment: %w", tenant.MapPgError(err))
	}
	return out, nil
}

func (s *Server) environments(ctx context.Context) ([]environment, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+envCols+` FROM gauth.environments ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", tenant.MapPgError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (environment, error) { return scanEnvironment(r) })
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	return out, nil
}

func (s *Server) environment(ctx context.Context, id string) (environment, error) {
	if !idRe.MatchString(id) {
		return environment{}, fmt.Errorf("get environment %q: %w", id, tenant.ErrNotFound)
	}
	e, err := scanEnvironment(s.pool.QueryRow(ctx, `SELECT `+envCols+` FROM gauth.environments WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return environment{}, fmt.Errorf("get environment %q: %w", id, tenant.ErrNotFound)
	}
	if err != nil {
		return environment{}, fmt.Errorf("get environment: %w", tenant.MapPgError(err))
	}
	return e, nil
}

func (s *Server) deleteEnvironment(ctx context.Context, id string) error {
	if !idRe.MatchString(id) {
		return fmt.Errorf("delete environment %q: %w", id, tenant.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM gauth.environments WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete environment: %w", tenant.MapPgError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete environment %q: %w", id, tenant.ErrNotFound)
	}
	return nil
}

// ---- handlers (ops only: environments are deployment-wide, not a tenant's) ----

func (s *Server) envListEnvironments(c echo.Context) error {
	envs, err := s.environments(c.Request().Context())
	if err != nil {
		return s.storeError(c, "list environments", err)
	}
	return ok(c, envs)
}

func (s *Server) envGetEnvironment(c echo.Context) error {
	e, err := s.environment(c.Request().Context(), c.Param("id"))
	if err != nil {
		return s.storeError(c, "get environment", err)
	}
	return ok(c, e)
}

// envCreateEnvironment answers 201 with the envelope plus "path":
// "/environments/<id>", where Genesys' scripts read the new id from
// (`jq .path | cut -d/ -f3`).
func (s *Server) envCreateEnvironment(c echo.Context) error {
	var in environmentIn
	if done, err := decodeJSON(c, &in); !done {
		return err
	}
	env, password, err := in.toEnvironment()
	if err != nil {
		return envelope(c, http.StatusBadRequest, err.Error(), nil)
	}
	out, err := s.insertEnvironment(c.Request().Context(), env, password)
	if errors.Is(err, tenant.ErrConflict) {
		return envelope(c, http.StatusConflict, "environment "+env.ID+" already exists", nil)
	}
	if err != nil {
		return s.storeError(c, "create environment", err)
	}
	s.log.Info("environment created", "id", out.ID)
	c.Response().Header().Set("Location", "/environment/v3/environments/"+out.ID)
	return c.JSON(http.StatusCreated, struct {
		Status status      `json:"status"`
		Path   string      `json:"path"`
		Data   environment `json:"data"`
	}{Status: status{Code: 0, Message: "created"}, Path: "/environments/" + out.ID, Data: out})
}

// envDeleteEnvironment refuses (409) to delete an environment a contact
// center still names, which would leave its environmentId dangling.
func (s *Server) envDeleteEnvironment(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := s.environment(ctx, id); err != nil {
		return s.storeError(c, "delete environment", err)
	}
	ccs, err := s.tenants.ContactCenters(ctx)
	if err != nil {
		return s.storeError(c, "delete environment", err)
	}
	var users []string
	for _, cc := range ccs {
		if cc.EnvironmentID == id {
			users = append(users, cc.Name)
		}
	}
	if len(users) > 0 {
		return envelope(c, http.StatusConflict, "environment "+id+" is used by contact centers "+strings.Join(users, ", "), nil)
	}
	if err := s.deleteEnvironment(ctx, id); err != nil {
		return s.storeError(c, "delete environment", err)
	}
	s.log.Info("environment deleted", "id", id)
	return ok(c, nil)
}
