package gauth_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/store/storetest"
	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/tenant"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const (
	demoCCID = "9350e2fc-a1dd-4c65-8d40-1f75a2e080dd"
	acmeCCID = "0b6f3c1e-7d2a-4f55-9a4e-2c9d8e1f0a11"
)

// env is one GAuth emulator on a real HTTP server and a fresh database.
type env struct {
	t      testing.TB
	pool   *pgxpool.Pool
	store  *tenant.Store
	srv    *gauth.Server
	reg    *prometheus.Registry
	hs     *httptest.Server
	clk    *clock.Lab
	base   string
	client *http.Client
	ctx    context.Context
	// handler is swapped by start, as a process restart would swap servers.
	handler atomic.Pointer[echo.Echo]
}

func newEnv(t testing.TB, mutate ...func(*gauth.Config)) *env {
	t.Helper()
	// Registered first so it runs last; the baseline is taken after the shared
	// Postgres server (started lazily by the first test) is up.
	var ignore goleak.Option
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)

	pool := storetest.Pool(t)
	ignore = goleak.IgnoreCurrent()
	store := tenant.NewStore(pool, nil)
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	seedFile(t, store, "../tenant/testdata/second.yaml")

	e := &env{t: t, pool: pool, store: store, clk: clock.NewLab(), reg: prometheus.NewRegistry()}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.handler.Load().ServeHTTP(w, r)
	}))
	e.base = "http://" + hs.Listener.Addr().String()
	e.start(mutate...)
	hs.Start()
	t.Cleanup(hs.Close)
	e.hs = hs
	tr := &http.Transport{}
	e.client = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	e.ctx = oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, e.client), e.client)
	return e
}

// start (re)builds the server on the same database, as a restart would.
func (e *env) start(mutate ...func(*gauth.Config)) {
	e.t.Helper()
	cfg := gauth.Config{PublicURL: func() string { return e.base }}
	for _, m := range mutate {
		m(&cfg)
	}
	// Metrics of the first instance go to e.reg for assertions.
	reg := e.reg
	if e.srv != nil {
		reg = prometheus.NewRegistry()
	}
	srv, err := gauth.New(cfg, e.store, e.pool, nil, reg, e.clk)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	ec := echo.New()
	srv.Mount(ec)
	e.handler.Store(ec)
	e.srv = srv
}

func seedFile(t testing.TB, s *tenant.Store, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seed, err := tenant.ParseSeed(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(context.Background(), seed); err != nil {
		t.Fatal(err)
	}
}

func (e *env) oauthConfig(id, secret, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: redirect, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: e.base + "/auth/v3/oauth/authorize", TokenURL: e.base + "/auth/v3/oauth/token",
			AuthStyle: oauth2.AuthStyleInHeader}}
}

// password returns a token of a person through cxlab-console's password grant.
func (e *env) password(user, pass string) *oauth2.Token {
	e.t.Helper()
	tok, err := e.oauthConfig("cxlab-console", "console-secret", "").PasswordCredentialsToken(e.ctx, user, pass)
	if err != nil {
		e.t.Fatalf("password grant for %s: %v", user, err)
	}
	return tok
}

// do sends a request and returns status, headers and body.
func (e *env) do(method, path string, hdr map[string]string, body io.Reader) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.base+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *env) get(path, token string) (int, []byte) {
	e.t.Helper()
	code, _, b := e.do(http.MethodGet, path, map[string]string{"Authorization": "Bearer " + token}, nil)
	return code, b
}

// postForm posts a token request with Basic client auth.
func (e *env) postForm(id, secret string, form url.Values) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, e.base+"/auth/v3/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header, m
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return m
}

// browser is a user agent with a cookie jar that does not follow redirects.
type browser struct {
	e  *env
	hc *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &browser{e: e, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var (
	csrfRe   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	actionRe = regexp.MustCompile(`action="([^"]+)"`)
)

// authorize opens authURL; when the login page shows, signs in as user.
// It returns the final response (a redirect when all went well).
func (b *browser) authorize(authURL, user, pass string) (*http.Response, string) {
	t := b.e.t
	t.Helper()
	resp, err := b.hc.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp, string(body)
	}
	csrf, action := csrfRe.FindSubmatch(body), actionRe.FindSubmatch(body)
	if csrf == nil || action == nil {
		t.Fatalf("login page without form: %s", body)
	}
	form := url.Values{"username": {user}, "password": {pass}, "csrf": {string(csrf[1])}}
	resp, err = b.hc.PostForm(b.e.base+html.UnescapeString(string(action[1])), form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// redirectParams returns the query (or fragment) parameters of a redirect.
func redirectParams(t *testing.T, resp *http.Response, fragment bool) (*url.URL, url.Values) {
	t.Helper()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("want 302, got %d", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	raw := u.RawQuery
	if fragment {
		raw = u.Fragment
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u, v
}
