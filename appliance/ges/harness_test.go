package ges

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const (
	demoKey    = "cxlab-demo-api-key-0000000000000000"
	demoTenant = TenantID("9350e2fc-a1dd-4c65-8d40-1f75a2e080dd")
	otherKey   = "other-tenant-key"
	otherTen   = TenantID("11111111-2222-3333-4444-555555555555")
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// wednesday10NY is Wednesday 2026-03-04 10:00 in New York (15:00 UTC): CB_Sales is open.
var wednesday10NY = time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)

// demoServices are the contract's CB_Sales and CB_Support.
func demoServices() []ServiceConfig {
	week := map[string][]OpenClose{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri"} {
		week[d] = []OpenClose{{Open: "08:00", Close: "20:00"}}
	}
	return []ServiceConfig{
		{Name: "CB_Sales", VirtualQueue: "VQ_Sales", TimeZone: "America/New_York",
			BusinessHours:   BusinessHours{Weekly: week, Holidays: []string{"2026-12-25", "2027-01-01"}},
			SlotDurationMin: 15, CapacityPerSlot: 10, ImmediateEnabled: true, ScheduledEnabled: true,
			MaxDialAttempts: 3, RetryDelaySec: 30, DialInNumber: "+18005550100"},
		{Name: "CB_Support", VirtualQueue: "VQ_Support", TimeZone: "UTC", BusinessHours: AlwaysOpen(),
			SlotDurationMin: 30, CapacityPerSlot: 5, ImmediateEnabled: true, ScheduledEnabled: true,
			MaxDialAttempts: 2, RetryDelaySec: 20, DialInNumber: "+18005550101"},
	}
}

// env is one GES on real PostgreSQL and a TCP miniredis, served over loopback HTTP.
type env struct {
	t        testing.TB
	svc      *Service
	pool     *pgxpool.Pool
	mr       *miniredis.Miniredis
	rdb      *redis.Client
	plat     *StaticPlatform
	clk      *testClock
	srv      *httptest.Server
	url      string
	hc       *http.Client
	key      *rsa.PrivateKey
	reg      *prometheus.Registry
	ln       net.Listener
	cfg      Config
	services []ServiceConfig
	// platform, when set, serves the service instead of plat.
	platform Platform
}

type envOpt func(*env)

func withConfig(c Config) envOpt { return func(e *env) { e.cfg = c } }

// withPlatform serves the env's GES from p instead of its StaticPlatform.
func withPlatform(p Platform) envOpt { return func(e *env) { e.platform = p } }

// testLogger shows logs only when a test fails (go test prints t.Log output then).
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GES_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if _, fuzz := t.(*testing.F); fuzz {
		// f.Log panics when called while a fuzz input runs (the batcher logs
		// from its own goroutine); the target's own checks judge each input.
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, clk: &testClock{t: wednesday10NY}, plat: NewStaticPlatform(), reg: prometheus.NewRegistry(),
		services: demoServices()}
	for _, o := range opts {
		o(e)
	}
	e.plat.AddTenant(demoKey, demoTenant, e.services, []CallInGroup{{Name: "technical_help",
		AccessNumber: "+18005550199", AccessCodeEnabled: true, ExpirySec: 600, VirtualQueue: "VQ_Support"},
		{Name: "billing_help", AccessNumber: "+18005550198", ExpirySec: 300}})
	e.plat.AddTenant(otherKey, otherTen, demoServices(), nil)
	// Goroutines alive once the package's shared PostgreSQL server runs are
	// not the env's. Registered before the env's own cleanups, the pool's
	// included, the check runs once they have stopped: a pool connection
	// whose write was slow (a loaded box) keeps pgx's background reader
	// parked in a read until the pool closes it.
	storetest.Postgres(t)
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	e.pool = testPool(t)
	e.mr = miniredis.RunT(t)
	e.rdb = redis.NewClient(&redis.Options{Addr: e.mr.Addr()})
	t.Cleanup(func() { e.rdb.Close() })
	var err error
	e.key, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + e.ln.Addr().String()
	e.svc = e.newService()
	ech := echo.New()
	e.svc.Mount(ech)
	pub := jose.JSONWebKey{Key: &e.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}
	ech.GET("/auth/v3/.well-known/jwks.json", func(c echo.Context) error {
		return c.JSON(http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	})
	e.srv = httptest.NewUnstartedServer(ech)
	e.srv.Listener.Close()
	e.srv.Listener = e.ln
	e.srv.Start()
	e.hc = &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(func() { e.hc.CloseIdleConnections(); e.srv.Close() })
	return e
}

// newService builds and starts a Service on the env's stores (a second node or a restart).
func (e *env) newService() *Service {
	e.t.Helper()
	var plat Platform = e.plat
	if e.platform != nil {
		plat = e.platform
	}
	svc, err := New(e.cfg, e.pool, e.rdb, plat, e.clk, testLogger(e.t), e.reg, e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Stop(ctx); err != nil {
			e.t.Error(err)
		}
	})
	return svc
}

// token signs a GAuth-style service token for clientID.
func (e *env) token(clientID string) string {
	e.t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: e.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clk.Now()
	raw, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: e.url + "/auth/v3", Subject: clientID,
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).
		Claims(map[string]any{"client_id": clientID}).Serialize()
	if err != nil {
		e.t.Fatal(err)
	}
	return raw
}

// resp is a decoded GES envelope.
type resp struct {
	code   int
	header http.Header
	Status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		CorrID  string `json:"corrId"`
	} `json:"status"`
	Data json.RawMessage `json:"data"`
}

// do sends a request; hdr entries "K: V" are added as headers.
func (e *env) do(method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	res, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var r resp
	if err := json.Unmarshal(raw, &r); err != nil {
		e.t.Fatalf("%s %s: non-JSON answer %d: %s", method, path, res.StatusCode, raw)
	}
	r.code, r.header = res.StatusCode, res.Header
	return r
}

// api calls the v3 API with the demo key.
func (e *env) api(method, path string, body any, hdr ...string) resp {
	return e.do(method, path, body, append([]string{"X-API-Key: " + demoKey}, hdr...)...)
}

// create books a callback and returns its id, failing the test on error.
func (e *env) create(body map[string]any) CallbackID {
	e.t.Helper()
	r := e.api("POST", "/engagement/v3/callbacks/create", body)
	if r.code != 200 {
		e.t.Fatalf("create: %d %s", r.code, r.Status.Message)
	}
	var d struct{ ID string }
	json.Unmarshal(r.Data, &d)
	return CallbackID(d.ID)
}

// retrieve returns the wire view of a callback.
func (e *env) retrieve(id CallbackID) map[string]any {
	e.t.Helper()
	r := e.api("POST", "/engagement/v3/callbacks/retrieve", map[string]any{"id": id})
	if r.code != 200 {
		e.t.Fatalf("retrieve: %d %s", r.code, r.Status.Message)
	}
	var m map[string]any
	json.Unmarshal(r.Data, &m)
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// report posts an ORS state report with a token of clientID.
func (e *env) report(id CallbackID, clientID string, body map[string]any) resp {
	e.t.Helper()
	return e.do("POST", "/engagement/internal/v1/callbacks/"+string(id)+"/state", body, "Authorization: Bearer "+e.token(clientID))
}

// streamEntries returns the NewCallbackStream entries.
// entryOf decodes a NewCallbackStream entry's one field, callback.
func entryOf(t *testing.T, m redis.XMessage) map[string]any {
	t.Helper()
	var v map[string]any
	raw, _ := m.Values["callback"].(string)
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatalf("stream entry %s: callback %q: %v", m.ID, raw, err)
	}
	return v
}

func (e *env) streamEntries() []redis.XMessage {
	e.t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), StreamName, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return msgs
}

// testPool is storetest.Pool with a no-op BeforeConnect hook: postgres.Migrate
// currently passes the pool's BeforeConnect to stdlib unchecked and panics on nil.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(storetest.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.BeforeConnect = func(context.Context, *pgx.ConnConfig) error { return nil }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
