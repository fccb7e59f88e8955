package gauth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/tenant"
)

// isOps reports whether the request carries the ops Basic credentials.
func (s *Server) isOps(r *http.Request) bool {
	u, p, found := r.BasicAuth()
	if !found {
		return false
	}
	uok := subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.OpsUser)) == 1
	pok := subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.OpsPassword)) == 1
	return uok && pok
}

// opsAuth guards admin routes with the ops Basic credentials.
func (s *Server) opsAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.isOps(c.Request()) {
			c.Response().Header().Set("WWW-Authenticate", `Basic realm="gauth-ops"`)
			return envelope(c, http.StatusUnauthorized, "ops credentials required", nil)
		}
		return next(c)
	}
}

func (s *Server) opsGetFailures(c echo.Context) error { return ok(c, s.CurrentFailures()) }

func (s *Server) opsPutFailures(c echo.Context) error {
	var f Failures
	if done, err := decodeJSON(c, &f); !done {
		return err
	}
	if err := s.SetFailures(f); err != nil {
		return envelope(c, http.StatusBadRequest, err.Error(), nil)
	}
	s.log.Info("failure injection changed", "mode", f.Mode, "delayMs", f.DelayMs)
	return ok(c, s.CurrentFailures())
}

func (s *Server) opsResetDemo(c echo.Context) error {
	if err := s.tenants.ResetDemo(c.Request().Context()); err != nil {
		return s.storeError(c, "reset demo", err)
	}
	s.log.Info("demo tenant reset")
	return ok(c, map[string]string{"contactCenterId": string(tenant.DemoCCID)})
}

// IssuedToken is one row of /auth/v3/ops/tokens (never the token text).
type IssuedToken struct {
	JTI       uuid.UUID  `json:"jti"`
	Kind      string     `json:"kind"`
	ClientID  string     `json:"clientId"`
	UserName  string     `json:"userName,omitempty"`
	CCID      string     `json:"contactCenterId,omitempty"`
	Grant     string     `json:"grantType"`
	IssuedAt  time.Time  `json:"issuedAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// opsTokens lists unexpired tokens, newest first (at most 1000).
func (s *Server) opsTokens(c echo.Context) error {
	ctx := c.Request().Context()
	rows, err := s.pool.Query(ctx, `SELECT jti, kind, client_id, user_name, ccid, grant_type, issued_at, expires_at, revoked_at
FROM gauth.tokens WHERE expires_at > $1 ORDER BY issued_at DESC, jti LIMIT 1000`, s.clk.Now())
	if err != nil {
		return err
	}
	defer rows.Close()
	out := []IssuedToken{}
	for rows.Next() {
		var t IssuedToken
		if err := rows.Scan(&t.JTI, &t.Kind, &t.ClientID, &t.UserName, &t.CCID, &t.Grant, &t.IssuedAt, &t.ExpiresAt, &t.RevokedAt); err != nil {
			return err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return ok(c, map[string]any{"tokens": out})
}

// clientBody is GAuth's ops client model (B.6).
type clientBody struct {
	Name                          string   `json:"name"`
	Description                   string   `json:"description,omitempty"`
	ClientID                      string   `json:"client_id"`
	ClientSecret                  string   `json:"client_secret,omitempty"`
	ClientType                    string   `json:"clientType,omitempty"`
	InternalClient                bool     `json:"internalClient"`
	Authorities                   []string `json:"authorities"`
	Scope                         []string `json:"scope"`
	AuthorizedGrantTypes          []string `json:"authorizedGrantTypes"`
	RedirectURIs                  []string `json:"redirectURIs"`
	AccessTokenExpirationTimeout  int      `json:"accessTokenExpirationTimeout"`
	RefreshTokenExpirationTimeout int      `json:"refreshTokenExpirationTimeout"`
	ContactCenterIDs              []string `json:"contactCenterIds"`
}

func toClientBody(cl tenant.Client) clientBody {
	b := clientBody{Name: cl.Name, ClientID: cl.ID, ClientType: "CONFIDENTIAL", InternalClient: true, Authorities: cl.Authorities,
		Scope: cl.Scopes, AuthorizedGrantTypes: cl.GrantTypes, RedirectURIs: cl.RedirectURIs,
		AccessTokenExpirationTimeout: int(cl.AccessTokenTTL / time.Second), RefreshTokenExpirationTimeout: int(cl.RefreshTokenTTL / time.Second),
		ContactCenterIDs: []string{}}
	if cl.CCID != "" {
		b.ContactCenterIDs = []string{string(cl.CCID)}
	}
	return b
}

// maxLifetimeSec is the longest token lifetime a client may have: the tenant
// directory keeps lifetimes as PostgreSQL integer (int4) seconds.
const maxLifetimeSec = math.MaxInt32

func (b clientBody) toClient() (tenant.Client, error) {
	// Checked before any arithmetic: a larger value overflowed the column
	// (500) or wrapped time.Duration to a negative (a misleading 400).
	for _, f := range []struct {
		name string
		sec  int
		def  time.Duration
	}{
		{"accessTokenExpirationTimeout", b.AccessTokenExpirationTimeout, tenant.DefaultAccessTokenTTL},
		{"refreshTokenExpirationTimeout", b.RefreshTokenExpirationTimeout, tenant.DefaultRefreshTokenTTL},
	} {
		if f.sec < 0 || f.sec > maxLifetimeSec {
			return tenant.Client{}, fmt.Errorf("%s must be between 1 and %d seconds (0 or absent: the default, %d)",
				f.name, maxLifetimeSec, int64(f.def/time.Second))
		}
	}
	cl := tenant.Client{ID: b.ClientID, Name: b.Name, GrantTypes: b.AuthorizedGrantTypes, RedirectURIs: b.RedirectURIs,
		AccessTokenTTL: time.Duration(b.AccessTokenExpirationTimeout) * time.Second, RefreshTokenTTL: time.Duration(b.RefreshTokenExpirationTimeout) * time.Second,
		Authorities: b.Authorities, Scopes: b.Scope}
	if cl.AccessTokenTTL == 0 {
		cl.AccessTokenTTL = tenant.DefaultAccessTokenTTL
	}
	if cl.RefreshTokenTTL == 0 {
		cl.RefreshTokenTTL = tenant.DefaultRefreshTokenTTL
	}
	if len(cl.Scopes) == 0 {
		cl.Scopes = []string{"*"}
	}
	for _, g := range cl.GrantTypes {
		if !knownGrants[g] && g != GrantImplicit {
			return cl, errors.New("unknown grant type " + g)
		}
	}
	switch len(b.ContactCenterIDs) {
	case 0:
	case 1:
		cl.CCID = tenant.CCID(b.ContactCenterIDs[0])
	default:
		return cl, errors.New("a client is bound to at most one contact center")
	}
	return cl, nil
}

func (s *Server) opsListClients(c echo.Context) error {
	cls, err := s.tenants.Clients(c.Request().Context())
	if err != nil {
		return s.storeError(c, "list clients", err)
	}
	out := make([]clientBody, 0, len(cls))
	for _, cl := range cls {
		out = append(out, toClientBody(cl))
	}
	return ok(c, out)
}

func (s *Server) opsGetClient(c echo.Context) error {
	cl, err := s.tenants.Client(c.Request().Context(), c.Param("id"))
	if err != nil {
		return s.storeError(c, "get client", err)
	}
	return ok(c, toClientBody(cl))
}

func (s *Server) opsCreateClient(c echo.Context) error {
	var b clientBody
	if done, err := decodeJSON(c, &b); !done {
		return err
	}
	if b.ClientID == "" || b.ClientSecret == "" {
		return envelope(c, http.StatusBadRequest, "client_id and client_secret are required", nil)
	}
	ctx := c.Request().Context()
	if _, err := s.tenants.Client(ctx, b.ClientID); err == nil {
		return envelope(c, http.StatusConflict, "client "+b.ClientID+" already exists", nil)
	}
	return s.putClient(c, b)
}

func (s *Server) opsUpdateClient(c echo.Context) error {
	var b clientBody
	if done, err := decodeJSON(c, &b); !done {
		return err
	}
	if b.ClientID != "" && b.ClientID != c.Param("id") {
		return envelope(c, http.StatusBadRequest, "client_id in body differs from the path", nil)
	}
	b.ClientID = c.Param("id")
	if _, err := s.tenants.Client(c.Request().Context(), b.ClientID); err != nil {
		return s.storeError(c, "update client", err)
	}
	return s.putClient(c, b)
}

func (s *Server) putClient(c echo.Context, b clientBody) error {
	cl, err := b.toClient()
	if err != nil {
		return envelope(c, http.StatusBadRequest, err.Error(), nil)
	}
	out, err := s.tenants.PutClient(c.Request().Context(), cl, b.ClientSecret)
	if err != nil {
		return s.storeError(c, "put client", err)
	}
	return ok(c, toClientBody(out))
}

func (s *Server) opsDeleteClient(c echo.Context) error {
	if err := s.tenants.DeleteClient(c.Request().Context(), c.Param("id")); err != nil {
		return s.storeError(c, "delete client", err)
	}
	return ok(c, nil)
}
