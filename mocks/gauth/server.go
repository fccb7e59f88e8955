// Package gauth emulates Genesys Authentication (GAuth): the OAuth 2.0
// authorization server under /auth/v3 (login page, authorization-code with
// PKCE, implicit, password, client credentials, refresh-token rotation,
// jwt-bearer and token-exchange grants, userinfo, sign-out) and the Environment
// Service under /environment/v3 (environments, contact centers and their
// settings, Engagement API keys).
//
// Unlike real GAuth, whose access tokens are opaque, access tokens here are
// RS256 JWTs, and the server publishes OIDC discovery and a JWKS (an addition
// to the real product) so resource servers such as the GWS emulator and
// github.com/coreos/go-oidc verify them locally. State (signing key, issued
// tokens, revocations, codes, login sessions, environments, contact center
// settings) lives in PostgreSQL schema "gauth"; the tenant model comes from
// mocks/tenant.
package gauth

import (
	"context"
	"crypto"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cxlab/cxlab/mocks/internal/failures"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/httpd"
	"github.com/cxlab/cxlab/appliance/store/postgres"
	"github.com/cxlab/cxlab/mocks/tenant"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// TrustedIssuer is an outside token issuer whose JWTs the jwt-bearer and
// token-exchange grants accept as assertions (RFC 7523): the JWT must carry
// iss = Issuer, be signed by Key (RSA, ECDSA or Ed25519 public key), be
// unexpired, have an aud naming this server's issuer or token endpoint, and a
// sub that is a user login ("tenant\user" or a user name).
type TrustedIssuer struct {
	Issuer string
	Key    crypto.PublicKey
}

// Config configures the GAuth emulator.
type Config struct {
	// PublicURL returns the appliance's base URL (scheme://host:port, no
	// trailing slash), known once the HTTP listener is bound. Required.
	PublicURL func() string
	// CodeTTL is how long an authorization code stays valid. Default 60s.
	CodeTTL time.Duration
	// LoginSessionTTL is how long the login page's SSO cookie lasts. Default 8h.
	LoginSessionTTL time.Duration
	// UserinfoJWTTTL is the lifetime of the X-GWS-User JWT. Default 30m,
	// what Workspace's exchange-token tells its clients (expires_in 1800).
	UserinfoJWTTTL time.Duration
	// OpsUser and OpsPassword guard /auth/v3/ops and the Environment admin
	// routes (HTTP Basic). Default "ops" / "ops".
	OpsUser     string
	OpsPassword string
	// MaxBodyBytes limits request bodies. Default 64 KiB.
	MaxBodyBytes int64
	// TrustedIssuers are outside assertion issuers. Default none.
	TrustedIssuers []TrustedIssuer
	// PurgeInterval is how often expired tokens, codes and login sessions are
	// deleted. Default 10m.
	PurgeInterval time.Duration
	// PurgeAfter is how long after expiry they are kept (the ops token list
	// still shows them meanwhile). Default 24h.
	PurgeAfter time.Duration
	// RefreshReuseGrace is how long after a refresh token's rotation a reuse
	// of it gets fresh tokens instead of revoking the session (two tabs
	// refreshing at once); negative disables it. Default 5s.
	RefreshReuseGrace time.Duration
}

func (c *Config) defaults() {
	if c.CodeTTL <= 0 {
		c.CodeTTL = 60 * time.Second
	}
	if c.LoginSessionTTL <= 0 {
		c.LoginSessionTTL = 8 * time.Hour
	}
	if c.UserinfoJWTTTL <= 0 {
		c.UserinfoJWTTTL = 30 * time.Minute
	}
	if c.OpsUser == "" {
		c.OpsUser = "ops"
	}
	if c.OpsPassword == "" {
		c.OpsPassword = "ops"
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.PurgeInterval <= 0 {
		c.PurgeInterval = 10 * time.Minute
	}
	if c.PurgeAfter <= 0 {
		c.PurgeAfter = 24 * time.Hour
	}
	if c.RefreshReuseGrace == 0 {
		c.RefreshReuseGrace = 5 * time.Second
	}
}

// Failure modes injectable through /auth/v3/ops/emulator/failures.
const (
	FailNone = failures.None
	FailDown = failures.Down
	FailSlow = failures.Slow
)

// Failures is the injected failure state.
type Failures = failures.Mode

// Server is the GAuth emulator component.
type Server struct {
	cfg     Config
	tenants *tenant.Store
	pool    *pgxpool.Pool
	log     *slog.Logger
	clk     clock.Clock
	metrics metrics

	keysMu sync.RWMutex
	keys   *keySet

	failures failures.Injector

	lifeMu sync.Mutex
	stop   chan struct{} // closed by Stop; nil before Start
	done   chan struct{} // closed when the purger returns
}

type metrics struct {
	issued *prometheus.CounterVec
	errors *prometheus.CounterVec
}

// New builds the emulator. reg may be nil (metrics then stay unregistered).
func New(cfg Config, tenants *tenant.Store, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer, clk clock.Clock) (*Server, error) {
	if cfg.PublicURL == nil {
		return nil, errors.New("gauth: PublicURL is required")
	}
	if tenants == nil || pool == nil {
		return nil, errors.New("gauth: tenant store and pool are required")
	}
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.System{}
	}
	m := metrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlab_gauth_tokens_issued_total", Help: "Access tokens issued by the GAuth emulator, by grant type.",
		}, []string{"grant"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cxlab_gauth_token_errors_total", Help: "Token endpoint and authorize errors, by OAuth error code.",
		}, []string{"error"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.issued, m.errors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("gauth: register metrics: %w", err)
			}
		}
	}
	return &Server{cfg: cfg, tenants: tenants, pool: pool, log: log.With("component", "gauth"), clk: clk,
		metrics: m}, nil
}

// Name implements the component contract.
func (s *Server) Name() string { return "gauth" }

// Start migrates schema "gauth" and loads the signing key, creating it on the
// very first start so tokens survive restarts.
func (s *Server) Start(ctx context.Context) error {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("gauth start: %w", err)
	}
	if err := postgres.Migrate(ctx, s.pool, "gauth", sub); err != nil {
		return fmt.Errorf("gauth start: migrate: %w", err)
	}
	ks, err := loadOrCreateKeys(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("gauth start: %w", err)
	}
	s.keysMu.Lock()
	s.keys = ks
	s.keysMu.Unlock()
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.stop == nil {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.purger(s.stop, s.done)
	}
	return nil
}

// Stop ends the purger. It is idempotent.
func (s *Server) Stop(ctx context.Context) error {
	s.lifeMu.Lock()
	stop, done := s.stop, s.done
	if stop != nil {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}
	s.lifeMu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gauth stop: %w", ctx.Err())
	}
}

// purger deletes what expired more than PurgeAfter ago, every PurgeInterval:
// without it every token ever issued stayed in PostgreSQL.
func (s *Server) purger(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := s.PurgeExpired(ctx)
		cancel()
		switch {
		case err != nil:
			s.log.Warn("purge expired tokens", "err", err)
		case n > 0:
			s.log.Info("purged expired tokens, codes and login sessions", "count", n)
		}
	}
}

// PurgeExpired deletes tokens, authorization codes and login sessions that
// expired more than Config.PurgeAfter ago by the lab clock, and returns how
// many rows went.
func (s *Server) PurgeExpired(ctx context.Context) (int64, error) {
	cutoff := s.clk.Now().Add(-s.cfg.PurgeAfter)
	var total int64
	for _, table := range []string{"gauth.tokens", "gauth.auth_codes", "gauth.login_sessions"} {
		tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE expires_at < $1`, cutoff)
		if err != nil {
			return total, fmt.Errorf("purge %s: %w", table, err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}

// Ready reports nil once the signing key is loaded.
func (s *Server) Ready(context.Context) error {
	if s.keySet() == nil {
		return errors.New("gauth: signing key not loaded")
	}
	return nil
}

func (s *Server) keySet() *keySet {
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	return s.keys
}

// Issuer is the token issuer, <base>/auth/v3.
func (s *Server) Issuer() string { return strings.TrimRight(s.cfg.PublicURL(), "/") + "/auth/v3" }

// SetFailures changes the injected failure mode (also exposed over HTTP).
func (s *Server) SetFailures(f Failures) error { return s.failures.Set(f) }

// CurrentFailures returns the injected failure mode.
func (s *Server) CurrentFailures() Failures { return s.failures.Current() }

// Mount registers every GAuth and Environment route on e.
func (s *Server) Mount(e *echo.Echo) {
	inj, lim := s.injectFailures, s.limitBody
	// OAuth and userinfo endpoints answer errors in the RFC 6749 shape, the
	// authorization page as an HTML page.
	injOAuth, injPage := s.injectFailuresOAuth, s.injectFailuresPage
	// Control surface: never subject to injected failures, or "down" could not be undone.
	e.GET("/auth/v3/ops/emulator/failures", s.opsGetFailures, lim, s.opsAuth)
	e.PUT("/auth/v3/ops/emulator/failures", s.opsPutFailures, lim, s.opsAuth)
	e.POST("/auth/v3/ops/emulator/reset-demo", s.opsResetDemo, lim, s.opsAuth)

	e.GET("/auth/v3/oauth/authorize", s.authorize, injPage, lim)
	e.POST("/auth/v3/oauth/authorize", s.authorize, injPage, lim)
	e.POST("/auth/v3/oauth/token", s.token, injOAuth, lim)
	e.GET("/auth/v3/userinfo", s.userinfo, injOAuth, lim)
	e.GET("/auth/v3/openid/userinfo", s.openidUserinfo, injOAuth, lim)
	e.GET("/auth/v3/jwt-userinfo", s.jwtUserinfo, injOAuth, lim)
	e.GET("/auth/v3/oauth/convert-token", s.convertToken, injOAuth, lim)
	e.POST("/auth/v3/change-password", s.changePassword, inj, lim)
	e.GET("/auth/v3/sign-out", s.signOut, inj, lim)
	e.POST("/auth/v3/sign-out", s.signOut, inj, lim)
	e.POST("/auth/v3/sign-in", s.signIn, inj, lim)
	e.GET("/auth/v3/ping", s.ping, inj, lim)
	e.POST("/auth/v3/auth-scheme", s.authScheme, inj, lim)
	e.GET("/auth/v3/.well-known/openid-configuration", s.discovery, inj, lim)
	e.GET("/auth/v3/.well-known/jwks.json", s.jwks, inj, lim)

	e.GET("/auth/v3/ops/tokens", s.opsTokens, inj, lim, s.opsAuth)
	e.GET("/auth/v3/ops/clients", s.opsListClients, inj, lim, s.opsAuth)
	e.POST("/auth/v3/ops/clients", s.opsCreateClient, inj, lim, s.opsAuth)
	e.GET("/auth/v3/ops/clients/:id", s.opsGetClient, inj, lim, s.opsAuth)
	e.PUT("/auth/v3/ops/clients/:id", s.opsUpdateClient, inj, lim, s.opsAuth)
	e.DELETE("/auth/v3/ops/clients/:id", s.opsDeleteClient, inj, lim, s.opsAuth)

	e.GET("/environment/v3/environments", s.envListEnvironments, inj, lim, s.opsAuth)
	e.POST("/environment/v3/environments", s.envCreateEnvironment, inj, lim, s.opsAuth)
	e.GET("/environment/v3/environments/:id", s.envGetEnvironment, inj, lim, s.opsAuth)
	e.DELETE("/environment/v3/environments/:id", s.envDeleteEnvironment, inj, lim, s.opsAuth)
	e.GET("/environment/v3/contact-centers", s.envListCC, inj, lim)
	e.POST("/environment/v3/contact-centers", s.envCreateCC, inj, lim, s.opsAuth)
	e.GET("/environment/v3/contact-centers/:ccid", s.envGetCC, inj, lim)
	e.GET("/environment/v3/contact-centers/:ccid/settings", s.envListSettings, inj, lim)
	e.POST("/environment/v3/contact-centers/:ccid/settings", s.envPutSetting, inj, lim)
	e.GET("/environment/v3/contact-centers/:ccid/settings/:name", s.envGetSetting, inj, lim)
	e.DELETE("/environment/v3/contact-centers/:ccid/settings/:name", s.envDeleteSetting, inj, lim)
	e.GET("/environment/v3/contact-centers/:ccid/api-keys", s.envListKeys, inj, lim)
	e.POST("/environment/v3/contact-centers/:ccid/api-keys", s.envCreateKey, inj, lim)
	e.DELETE("/environment/v3/contact-centers/:ccid/api-keys/:key", s.envDeleteKey, inj, lim)
	e.GET("/environment/v3/api-keys/:key", s.envLookupKey, inj, lim)

	// A wrong method or path answers as its neighbours do: the OAuth
	// endpoints in the RFC 6749 shape, the others in the envelope.
	for _, prefix := range []string{"/auth/v3", "/environment/v3"} {
		httpd.Unmatched(e, prefix, func(c echo.Context, status int, msg string) error {
			if strings.HasPrefix(c.Request().URL.Path, "/auth/v3/oauth/") {
				return c.JSON(status, map[string]string{"error": "invalid_request", "error_description": msg})
			}
			return envelope(c, status, msg, nil)
		})
	}
}

// injectFailures applies the "down" and "slow" failure modes.
func (s *Server) injectFailures(next echo.HandlerFunc) echo.HandlerFunc {
	return s.failures.Middleware(func(c echo.Context) error {
		return envelope(c, http.StatusServiceUnavailable, downDesc, nil)
	})(next)
}

const downDesc = "GAuth is down (injected failure)"

// injectFailuresOAuth is injectFailures answering "down" as an RFC 6749
// error: temporarily_unavailable.
func (s *Server) injectFailuresOAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return s.failures.Middleware(func(c echo.Context) error {
		return s.writeOAuthError(c, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: downDesc})
	})(next)
}

// injectFailuresPage is injectFailures answering "down" with the error page.
func (s *Server) injectFailuresPage(next echo.HandlerFunc) echo.HandlerFunc {
	return s.failures.Middleware(func(c echo.Context) error {
		s.metrics.errors.WithLabelValues("temporarily_unavailable").Inc()
		return renderHTML(c, http.StatusServiceUnavailable, errorPage, map[string]string{"Code": "temporarily_unavailable", "Desc": downDesc})
	})(next)
}

// limitBody caps request bodies at MaxBodyBytes; handlers map the resulting
// *http.MaxBytesError to 413 in their own error shape.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body != nil {
			r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes)
		}
		return next(c)
	}
}
