// Package gws emulates the parts of Genesys Web Services that CX Lab's
// services read: the Configuration API v3 (persons, DNs, agent groups,
// application options, callback services, Click-to-Call-In groups), the
// Statistics API (get-statistic-ex), the Workspace API v3 an agent desktop
// uses (session, voice channel, agent state and call control, CometD
// notifications: workspace.go, cometd.go), and the legacy 8.5 /api/v2 me,
// settings and version routes. Callers present GAuth tokens, verified locally against
// GAuth's JWKS with revocation checked through GAuth userinfo (see verifier).
//
// Tenant isolation: a token bound to a contact center (user tokens, tenant-bound
// clients) reads only its own tenant; asking for another with ?ccid= is 403.
// Clients bound to no tenant (service clients) name the tenant with ?ccid= (or
// ?sip_domain=); persons may also be searched by user_name across tenants.
package gws

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/cxlab/cxlab/mocks/internal/failures"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/mocks/tenant"
)

// QueueStats is the live state of one virtual queue.
type QueueStats struct {
	ReadyAgents    int
	LoggedInAgents int
	BusyAgents     int
	WaitingCalls   int
	// AverageHandlingTime and ExpectedWaitTime are in seconds.
	AverageHandlingTime float64
	ExpectedWaitTime    float64
}

// LiveStats supplies statistics values; the composition root wires it to the
// Voice emulator.
type LiveStats interface {
	QueueStats(ctx context.Context, ccid tenant.CCID, virtualQueue string) (QueueStats, error)
}

// NoStats is the LiveStats used when Voice is absent: every value is zero.
type NoStats struct{}

// QueueStats returns zeros.
func (NoStats) QueueStats(context.Context, tenant.CCID, string) (QueueStats, error) {
	return QueueStats{}, nil
}

var _ LiveStats = NoStats{}

// Config configures the GWS emulator.
type Config struct {
	// AuthURL returns GAuth's base URL (the appliance base URL in one process);
	// tokens must have issuer AuthURL()+"/auth/v3". Required.
	AuthURL func() string
	// PublicURL returns GWS's own base URL, used in /api/v2 uri fields.
	// Default: AuthURL.
	PublicURL func() string
	// RevocationCheckTTL is how long a positive GAuth userinfo answer is
	// trusted per token. Default 5s; negative disables caching.
	RevocationCheckTTL time.Duration
	// HTTPClient talks to GAuth. Default: a client with a 5s timeout.
	HTTPClient *http.Client
	// OpsUser and OpsPassword guard /configuration/v3/ops. Default "ops"/"ops".
	OpsUser     string
	OpsPassword string
	// MaxBodyBytes limits request bodies. Default 64 KiB.
	MaxBodyBytes int64
	// Version is what /api/v2/diagnostics/version reports. Default "8.5.2-cxlab".
	Version string
	// Workspace tunes the Workspace API v3 and its CometD notifications
	// (workspace.go); its zero value has no Voice behind it.
	Workspace WorkspaceConfig
}

// Failure modes injectable through /configuration/v3/ops/emulator/failures.
const (
	FailNone = failures.None
	FailDown = failures.Down
	FailSlow = failures.Slow
)

// Failures is the injected failure state.
type Failures = failures.Mode

// Server is the GWS emulator component.
type Server struct {
	cfg      Config
	tenants  *tenant.Store
	stats    LiveStats
	log      *slog.Logger
	clk      clock.Clock
	verifier *verifier
	ownHTTP  bool
	requests *prometheus.CounterVec

	failures failures.Injector
}

// New builds the emulator. stats nil means NoStats; reg may be nil.
func New(cfg Config, tenants *tenant.Store, stats LiveStats, log *slog.Logger, reg prometheus.Registerer, clk clock.Clock) (*Server, error) {
	if cfg.AuthURL == nil {
		return nil, errors.New("gws: AuthURL is required")
	}
	if tenants == nil {
		return nil, errors.New("gws: tenant store is required")
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = cfg.AuthURL
	}
	if cfg.RevocationCheckTTL == 0 {
		cfg.RevocationCheckTTL = 5 * time.Second
	}
	own := false
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		own = true
	}
	if cfg.OpsUser == "" {
		cfg.OpsUser = "ops"
	}
	if cfg.OpsPassword == "" {
		cfg.OpsPassword = "ops"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.Version == "" {
		cfg.Version = "8.5.2-cxlab"
	}
	if stats == nil {
		stats = NoStats{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.System{}
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cxlab_gws_requests_total", Help: "Requests served by the GWS emulator, by API and HTTP status.",
	}, []string{"api", "code"})
	if reg != nil {
		if err := reg.Register(requests); err != nil {
			return nil, fmt.Errorf("gws: register metrics: %w", err)
		}
	}
	return &Server{cfg: cfg, tenants: tenants, stats: stats, log: log.With("component", "gws"), clk: clk,
		verifier: newVerifier(cfg.AuthURL, cfg.RevocationCheckTTL, cfg.HTTPClient, clk), ownHTTP: own,
		requests: requests}, nil
}

// Name implements the component contract.
func (s *Server) Name() string { return "gws" }

// Start implements the component contract; GWS keeps no state of its own.
func (s *Server) Start(context.Context) error { return nil }

// Stop closes idle connections to GAuth. Idempotent.
func (s *Server) Stop(context.Context) error {
	if s.ownHTTP {
		s.cfg.HTTPClient.CloseIdleConnections()
	}
	return nil
}

// SetFailures changes the injected failure mode (also exposed over HTTP).
func (s *Server) SetFailures(f Failures) error { return s.failures.Set(f) }

// CurrentFailures returns the injected failure mode.
func (s *Server) CurrentFailures() Failures { return s.failures.Current() }

// Mount registers every GWS route on e.
func (s *Server) Mount(e *echo.Echo) {
	lim := s.limitBody
	e.GET("/configuration/v3/ops/emulator/failures", s.getFailures, lim, s.opsAuth)
	e.PUT("/configuration/v3/ops/emulator/failures", s.putFailures, lim, s.opsAuth)
	s.mountTenantOps(e, s.opsAuth)

	cfg := []echo.MiddlewareFunc{s.count("configuration"), s.injectFailures, lim, s.authenticate(v3Error)}
	e.GET("/configuration/v3/objects/persons", s.persons, cfg...)
	e.GET("/configuration/v3/objects/dns", s.dns, cfg...)
	e.GET("/configuration/v3/objects/agent-groups", s.agentGroups, cfg...)
	e.GET("/configuration/v3/system/application", s.application, cfg...)
	e.GET("/configuration/v3/callback-services", s.callbackServices, cfg...)
	e.GET("/configuration/v3/callin-groups", s.callinGroups, cfg...)

	e.POST("/statistics/v3/operations/get-statistic-ex", s.getStatisticEx, s.count("statistics"), s.injectFailures, lim, s.authenticate(v3Error))

	v2 := []echo.MiddlewareFunc{s.count("v2"), s.injectFailures, lim, s.authenticate(v2Error)}
	e.GET("/api/v2/me", s.me, v2...)
	e.GET("/api/v2/settings/:group", s.settings, v2...)
	e.GET("/api/v2/diagnostics/version", s.version, v2...)

	s.mountWorkspace(e)
}

// ---- middleware and responses ----

type status struct {
	Code    int    `json:"code"`
	Message string `json:"message,omitempty"`
}

// v3Error writes the v3 envelope; the envelope code is the HTTP status.
func v3Error(c echo.Context, httpStatus int, msg string) error {
	return c.JSON(httpStatus, map[string]any{"status": status{Code: httpStatus, Message: msg}})
}

func v3OK(c echo.Context, data any) error {
	return c.JSON(http.StatusOK, map[string]any{"status": status{Code: 0, Message: "OK"}, "data": data})
}

// v2Error writes the 8.5 shape: statusCode 20 is "access denied" (401/403);
// other codes are this emulator's choice (3 not found, 4 bad request, 1 other).
func v2Error(c echo.Context, httpStatus int, msg string) error {
	code := 1
	switch httpStatus {
	case http.StatusUnauthorized, http.StatusForbidden:
		code = 20
	case http.StatusNotFound:
		code = 3
	case http.StatusBadRequest:
		code = 4
	}
	return c.JSON(httpStatus, map[string]any{"statusCode": code, "statusMessage": msg})
}

type errorWriter func(c echo.Context, httpStatus int, msg string) error

func (s *Server) count(api string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			code := c.Response().Status
			if err != nil {
				var he *echo.HTTPError
				if errors.As(err, &he) {
					code = he.Code
				} else {
					code = http.StatusInternalServerError
				}
			}
			s.requests.WithLabelValues(api, fmt.Sprint(code)).Inc()
			return err
		}
	}
}

func (s *Server) injectFailures(next echo.HandlerFunc) echo.HandlerFunc {
	return s.failures.Middleware(func(c echo.Context) error {
		return v3Error(c, http.StatusServiceUnavailable, "GWS is down (injected failure)")
	})(next)
}

func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if r := c.Request(); r.Body != nil {
			r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes)
		}
		return next(c)
	}
}

const principalKey = "gws.principal"

// authenticate verifies the Bearer token and stores the Principal.
func (s *Server) authenticate(fail errorWriter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get("Authorization")
			scheme, raw, found := strings.Cut(h, " ")
			if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="gws"`)
				return fail(c, http.StatusUnauthorized, "Access denied: Bearer token required")
			}
			p, err := s.verifier.verify(c.Request().Context(), strings.TrimSpace(raw))
			if err != nil {
				if errors.Is(err, errUnauthorized) {
					c.Response().Header().Set("WWW-Authenticate", `Bearer realm="gws", error="invalid_token"`)
					return fail(c, http.StatusUnauthorized, "Access denied: invalid token")
				}
				s.log.Warn("cannot verify token with GAuth", "err", err)
				return fail(c, http.StatusServiceUnavailable, "authentication service unavailable")
			}
			c.Set(principalKey, p)
			return next(c)
		}
	}
}

func principal(c echo.Context) Principal {
	p, _ := c.Get(principalKey).(Principal)
	return p
}

func (s *Server) opsAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, p, found := c.Request().BasicAuth()
		if !found || subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.OpsUser)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.OpsPassword)) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Basic realm="gws-ops"`)
			return v3Error(c, http.StatusUnauthorized, "ops credentials required")
		}
		return next(c)
	}
}

func (s *Server) getFailures(c echo.Context) error { return v3OK(c, s.CurrentFailures()) }

func (s *Server) putFailures(c echo.Context) error {
	// Both the bare object and the {"data":{...}} envelope are accepted.
	var body struct {
		Failures
		Data *Failures `json:"data"`
	}
	if done, err := decodeJSON(c, &body); !done {
		return err
	}
	f := body.Failures
	if body.Data != nil {
		f = *body.Data
	}
	if err := s.SetFailures(f); err != nil {
		return v3Error(c, http.StatusBadRequest, err.Error())
	}
	s.log.Info("failure injection changed", "mode", f.Mode, "delayMs", f.DelayMs)
	return v3OK(c, s.CurrentFailures())
}

// storeError maps tenant store errors to the v3 envelope in one place.
func (s *Server) storeError(c echo.Context, op string, err error) error {
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		return v3Error(c, http.StatusNotFound, op+": not found")
	case errors.Is(err, tenant.ErrInvalid):
		return v3Error(c, http.StatusBadRequest, op+": invalid identifier")
	}
	s.log.Error(op, "err", err)
	return v3Error(c, http.StatusInternalServerError, op+": internal error")
}
