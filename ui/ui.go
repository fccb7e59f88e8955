// Package ui is the web front of CX Lab: the console at "/", the agent softphone
// at /softphone/, the customer page at /customer/ and the GES callback UI at
// /ges/. Pages are rendered on the server with templ; the little live behaviour
// they need (long-polling the gateway, WebRTC, polling a callback) is in small
// hand-written scripts embedded in the binary, so the appliance works offline.
//
// The UI imports no other service's package: the browser talks to the
// gateway, GAuth, Voice and the Engagement API over HTTP on the same origin, and
// the server-rendered pages read live state through the interfaces in
// sources.go, which the composition root satisfies.
package ui

//go:generate go tool templ generate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/appliance/clock"
)

// Config of the web UI. The zero value plus Default() is the demo setup.
type Config struct {
	// GAuthURL is the GAuth base URL the server uses to exchange codes and read
	// userinfo. Default "": the origin of the request being served (one appliance
	// serves GAuth and the UI on the same port).
	GAuthURL string
	// ConsoleClientID is the OAuth client of the softphone. Default "cxlab-console".
	ConsoleClientID string
	// ConsoleClientSecret is its secret, kept on the server (the browser sends the
	// PKCE verifier, the server adds the secret). Default "console-secret".
	ConsoleClientSecret string
	// GESClientID is the OAuth client of the /ges/ UI login. Default "ges_client".
	GESClientID string
	// GESClientSecret is its secret. Default "ges-secret".
	GESClientSecret string
	// APIKey is the Engagement API key the customer page uses. Default
	// "cxlab-demo-api-key-0000000000000000" (a public demo value).
	APIKey string
	// DefaultService is the customer page's preselected callback service. Default "CB_Support".
	DefaultService string
	// DefaultPhone is the customer page's preset number. Default "+12025550100".
	DefaultPhone string
	// SessionIdle ends a /ges/ UI session after this much inactivity. Default 20m (seed 004).
	SessionIdle time.Duration
	// QueueSampleEvery is how often the console samples queue EWT for its chart. Default 5s.
	QueueSampleEvery time.Duration
	// Version is shown in page footers. Default "dev".
	Version string
}

// Default returns the demo configuration.
func Default() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.ConsoleClientID, "cxlab-console")
	def(&c.ConsoleClientSecret, "console-secret")
	def(&c.GESClientID, "ges_client")
	def(&c.GESClientSecret, "ges-secret")
	def(&c.APIKey, "cxlab-demo-api-key-0000000000000000")
	def(&c.DefaultService, "CB_Support")
	def(&c.DefaultPhone, "+12025550100")
	def(&c.Version, "dev")
	if c.SessionIdle <= 0 {
		c.SessionIdle = 20 * time.Minute
	}
	if c.QueueSampleEvery <= 0 {
		c.QueueSampleEvery = 5 * time.Second
	}
	c.GAuthURL = strings.TrimRight(c.GAuthURL, "/")
	return c
}

// Deps are the UI's collaborators. Every field may be nil: the page section
// that needs it then says it is not available in this process.
type Deps struct {
	// Callbacks backs the /ges/ UI (see ui/gesadapter for the GES implementation).
	Callbacks Callbacks
	// Console feeds the console pages.
	Console ConsoleSources
	// HTTPClient makes the server-side OAuth calls. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
}

// UI is the web UI component ("ui").
type UI struct {
	cfg      Config
	log      *slog.Logger
	clock    clock.Clock // lab time: business time, which the console can move
	wall     clock.Clock // wall time: uptimes and durations
	flashKey []byte      // signs the console's status messages
	deps     Deps
	sessions *sessions
	pending  *pendingLogins
	ewt      *ewtHistory
	assets   *assetSet

	mu      sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// New builds the UI. log and clk may be nil (discard, wall clock).
func New(cfg Config, deps Deps, log *slog.Logger, clk clock.Clock) (*UI, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.System{}
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	assets, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("ui assets: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("ui flash key: %w", err)
	}
	u := &UI{
		cfg:      cfg,
		log:      log.With("component", "ui"),
		clock:    clk,
		wall:     clock.System{},
		flashKey: key,
		deps:     deps,
		sessions: newSessions(clk, cfg.SessionIdle),
		pending:  newPendingLogins(clk),
		ewt:      newEWTHistory(120),
		assets:   assets,
	}
	u.sessions.ended = u.signOutGAuth
	return u, nil
}

// Name implements the component contract.
func (u *UI) Name() string { return "ui" }

// Start runs the console's queue sampler (the EWT chart needs history).
func (u *UI) Start(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cancel != nil {
		return errors.New("ui: already started")
	}
	if u.stopped {
		return errors.New("ui: stopped")
	}
	// The sampler outlives Start's ctx (which only bounds starting).
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	u.cancel = cancel
	u.done = make(chan struct{})
	go u.sampleQueues(runCtx, u.done)
	return nil
}

// Stop ends the sampler; it is idempotent.
func (u *UI) Stop(ctx context.Context) error {
	u.mu.Lock()
	cancel, done := u.cancel, u.done
	u.cancel, u.stopped = nil, true
	u.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop ui: %w", ctx.Err())
	}
}

// Ready is nil once the UI can serve (it has no dependency of its own).
func (u *UI) Ready(context.Context) error { return nil }

// Mount registers every UI route on the appliance's echo server.
func (u *UI) Mount(e *echo.Echo) {
	e.GET(assetPrefix+":name", u.serveAsset)
	e.GET("/favicon.ico", serveFavicon)
	u.mountSoftphone(e)
	u.mountCustomer(e)
	u.mountGES(e)
	u.mountConsole(e)
}

// sampleQueues records each queue's EWT every QueueSampleEvery.
func (u *UI) sampleQueues(ctx context.Context, done chan struct{}) {
	defer close(done)
	if u.deps.Console.Queues == nil {
		return
	}
	t := time.NewTicker(u.cfg.QueueSampleEvery)
	defer t.Stop()
	for {
		u.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (u *UI) sampleOnce(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	qs, err := u.deps.Console.Queues(sctx)
	if err != nil {
		u.log.Debug("sample queues", "err", err)
		return
	}
	now := u.clock.Now()
	for _, q := range qs {
		u.ewt.add(q.Name, now, q.EWTSeconds)
	}
}

// origin is the scheme://host the browser used for this request.
func origin(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host
}

// gauthBase is where server-side GAuth calls go.
func (u *UI) gauthBase(c echo.Context) string {
	if u.cfg.GAuthURL != "" {
		return u.cfg.GAuthURL
	}
	return origin(c)
}

// noStore marks dynamic pages as uncacheable and unframeable.
func noStore(c echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
}
