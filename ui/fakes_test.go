package ui

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

const testCCID = "9350e2fc-a1dd-4c65-8d40-1f75a2e080dd"

// fakeGAuth plays the parts of GAuth the UI uses: the sign-in form endpoint,
// the authorization endpoint (for a signed-in browser), the token endpoint
// with client authentication and PKCE, and userinfo.
type fakeGAuth struct {
	mu       sync.Mutex
	sessions map[string]string // login session cookie -> user
	codes    map[string]fakeCode
	tokens   map[string]string // access token -> user
	users    map[string]string // user -> password
	clients  map[string]string // client -> secret
}

type fakeCode struct {
	user, client, redirect, challenge string
}

func newFakeGAuth() *fakeGAuth {
	return &fakeGAuth{sessions: map[string]string{}, codes: map[string]fakeCode{}, tokens: map[string]string{},
		users:   map[string]string{"agent1": "agent123", "supervisor": "super123"},
		clients: map[string]string{"cxlab-console": "console-secret", "ges_client": "ges-secret"}}
}

func (g *fakeGAuth) mount(e *echo.Echo) {
	e.POST("/auth/v3/sign-in", func(c echo.Context) error {
		u, p := c.FormValue("username"), c.FormValue("password")
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.users[u] == "" || g.users[u] != p {
			return c.JSON(http.StatusUnauthorized, map[string]any{"status": map[string]any{"code": 401, "message": "bad credentials"}})
		}
		sid := randomString(16)
		g.sessions[sid] = u
		c.SetCookie(&http.Cookie{Name: "GAUTH_SESSION", Value: sid, Path: "/auth/v3", HttpOnly: true})
		return c.JSON(http.StatusOK, map[string]any{"status": map[string]any{"code": 0}})
	})
	e.GET("/auth/v3/oauth/authorize", func(c echo.Context) error {
		ck, err := c.Cookie("GAUTH_SESSION")
		g.mu.Lock()
		defer g.mu.Unlock()
		if err != nil || g.sessions[ck.Value] == "" {
			return c.HTML(http.StatusOK, `<form id="gauth-login">GAuth login page</form>`)
		}
		if c.QueryParam("code_challenge_method") != "S256" || len(c.QueryParam("code_challenge")) < 43 {
			return c.String(http.StatusBadRequest, "PKCE S256 required by this fake")
		}
		code := randomString(16)
		g.codes[code] = fakeCode{user: g.sessions[ck.Value], client: c.QueryParam("client_id"),
			redirect: c.QueryParam("redirect_uri"), challenge: c.QueryParam("code_challenge")}
		v := url.Values{"code": {code}, "state": {c.QueryParam("state")}}
		return c.Redirect(http.StatusFound, c.QueryParam("redirect_uri")+"?"+v.Encode())
	})
	e.POST("/auth/v3/oauth/token", func(c echo.Context) error {
		id, secret, ok := c.Request().BasicAuth()
		g.mu.Lock()
		defer g.mu.Unlock()
		if !ok || g.clients[id] == "" || g.clients[id] != secret {
			return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		}
		code, found := g.codes[c.FormValue("code")]
		delete(g.codes, c.FormValue("code"))
		sum := sha256.Sum256([]byte(c.FormValue("code_verifier")))
		switch {
		case !found, code.client != id, code.redirect != c.FormValue("redirect_uri"):
			return c.JSON(http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "bad code"})
		case base64.RawURLEncoding.EncodeToString(sum[:]) != code.challenge:
			return c.JSON(http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "PKCE verification failed"})
		}
		tok := "tok-" + randomString(16)
		g.tokens[tok] = code.user
		return c.JSON(http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3600})
	})
	e.GET("/auth/v3/userinfo", func(c echo.Context) error {
		user := g.user(strings.TrimPrefix(c.Request().Header.Get("Authorization"), "Bearer "))
		if user == "" {
			return c.NoContent(http.StatusUnauthorized)
		}
		auth := []string{"ROLE_AGENT"}
		if user == "supervisor" {
			auth = []string{"ROLE_SUPERVISOR", "ROLE_AGENT"}
		}
		return c.JSON(http.StatusOK, map[string]any{"authorities": auth, "cmeUserName": user, "loginName": user, "contactCenterId": testCCID})
	})
}

func (g *fakeGAuth) user(token string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tokens[token]
}

// issueCode plays a signed-in browser at the authorization endpoint: it
// returns a code bound to the client, redirect URI and PKCE challenge.
func (g *fakeGAuth) issueCode(user, client, redirect, challenge string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	code := randomString(16)
	g.codes[code] = fakeCode{user: user, client: client, redirect: redirect, challenge: challenge}
	return code
}

// fakeCallbacks is an in-memory Engagement service with GES's rules for the
// UI: PROCESSING and COMPLETED callbacks can't be cancelled, recreate needs a
// finished callback, scheduled creates need a free slot.
type fakeCallbacks struct {
	mu    sync.Mutex
	clk   *fakeClock
	items map[string]*Callback
	next  int
	slots map[time.Time]int // booked per slot start
}

func newFakeCallbacks(clk *fakeClock) *fakeCallbacks {
	return &fakeCallbacks{clk: clk, items: map[string]*Callback{}, slots: map[time.Time]int{}}
}

var _ Callbacks = (*fakeCallbacks)(nil)

func (f *fakeCallbacks) add(state, service, phone string, desired time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	id := fmt.Sprintf("%08x-0000-4000-8000-%012d", f.next, f.next)
	f.items[id] = &Callback{ID: id, State: state, Service: service, VirtualQueue: "VQ_" + strings.TrimPrefix(service, "CB_"),
		PhoneNumber: phone, DesiredTime: desired, CreatedAt: f.clk.Now(), UpdatedAt: f.clk.Now(), UserData: map[string]any{"acct": "42"}}
	if state == StateCompleted {
		f.items[id].Reason = "AGENT_CONNECTED"
	}
	return id
}

func (f *fakeCallbacks) get(id string) Callback {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.items[id]
}

func (f *fakeCallbacks) List(_ context.Context, q CallbackQuery) (CallbackPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []Callback
	for _, c := range f.items {
		if (!q.From.IsZero() && c.DesiredTime.Before(q.From)) || (!q.To.IsZero() && !c.DesiredTime.Before(q.To)) {
			continue
		}
		if len(q.States) > 0 && !containsString(q.States, c.State) {
			continue
		}
		if len(q.Services) > 0 && !containsString(q.Services, c.Service) {
			continue
		}
		if q.Search != "" && !strings.HasPrefix(c.ID, q.Search) && !strings.Contains(c.PhoneNumber, q.Search) {
			continue
		}
		all = append(all, *c)
	}
	key := func(c Callback) string {
		switch q.SortBy {
		case "phoneNumber":
			return c.PhoneNumber
		case "state":
			return c.State
		case "id":
			return c.ID
		}
		return c.DesiredTime.Format(time.RFC3339Nano)
	}
	sort.Slice(all, func(i, j int) bool {
		if q.Desc {
			return key(all[i]) > key(all[j])
		}
		return key(all[i]) < key(all[j])
	})
	size := q.PageSize
	pages := (len(all) + size - 1) / size
	start := min((q.Page-1)*size, len(all))
	end := min(start+size, len(all))
	return CallbackPage{Items: all[start:end], Total: len(all), Page: q.Page, Pages: pages}, nil
}

func (f *fakeCallbacks) Get(_ context.Context, _, id string) (Callback, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.items[id]
	if !ok {
		return Callback{}, ErrNotFound
	}
	return *c, nil
}

func (f *fakeCallbacks) Create(_ context.Context, _ string, req CreateCallback) (string, error) {
	if !strings.HasPrefix(req.PhoneNumber, "+") {
		return "", errors.New("phoneNumber must be an E.164 number such as +12025550100")
	}
	desired := f.clk.Now()
	state := StateQueued
	if req.Desired != nil {
		f.mu.Lock()
		full := f.slots[*req.Desired] >= 5
		if !full {
			f.slots[*req.Desired]++
		}
		f.mu.Unlock()
		if full {
			return "", errors.New("no capacity in the desired time slot")
		}
		desired, state = *req.Desired, StateScheduled
	}
	return f.add(state, req.Service, req.PhoneNumber, desired), nil
}

func (f *fakeCallbacks) CancelByAdmin(_ context.Context, _ string, ids []string) map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	failed := map[string]error{}
	for _, id := range ids {
		c, ok := f.items[id]
		switch {
		case !ok:
			failed[id] = errors.New("callback not found")
		case c.State == StateProcessing:
			failed[id] = errors.New("a callback in PROCESSING cannot be cancelled")
		case c.State == StateCompleted:
			failed[id] = errors.New("callback already completed")
		default:
			c.State, c.Reason, c.UpdatedAt = StateCompleted, "CANCELLED_BY_ADMIN", f.clk.Now()
		}
	}
	return failed
}

func (f *fakeCallbacks) Recreate(ctx context.Context, tenant, id string, desired *time.Time) (string, error) {
	old, err := f.Get(ctx, tenant, id)
	if err != nil {
		return "", err
	}
	if old.State != StateCompleted { // as the Engagement service refuses it
		return "", errors.New("callback " + id + " is " + old.State + "; only a COMPLETED callback can be recreated")
	}
	return f.Create(ctx, tenant, CreateCallback{Service: old.Service, PhoneNumber: old.PhoneNumber, Desired: desired})
}

func (f *fakeCallbacks) ExportCSV(ctx context.Context, q CallbackQuery, w io.Writer) error {
	q.Page, q.PageSize = 1, 100000
	p, err := f.List(ctx, q)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "state", "reason", "phoneNumber", "serviceName"})
	for _, c := range p.Items {
		_ = cw.Write([]string{c.ID, c.State, c.Reason, c.PhoneNumber, c.Service})
	}
	cw.Flush()
	return cw.Error()
}

func (f *fakeCallbacks) Availability(_ context.Context, _, service string, from, to time.Time) (Availability, error) {
	if service == "" {
		return Availability{}, errors.New("unknown callback service")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out Availability
	out.DurationMin = 30
	for t := from.Truncate(30 * time.Minute); t.Before(to); t = t.Add(30 * time.Minute) {
		out.Slots = append(out.Slots, Slot{Start: t.UTC(), Capacity: 5 - f.slots[t.UTC()], Total: 5})
	}
	return out, nil
}

func (f *fakeCallbacks) Services(context.Context, string) ([]ServiceInfo, error) {
	week := map[string][]OpenClose{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri"} {
		week[d] = []OpenClose{{"08:00", "20:00"}}
	}
	return []ServiceInfo{
		{Name: "CB_Sales", VirtualQueue: "VQ_Sales", TimeZone: "America/New_York", Weekly: week, Holidays: []string{"2026-12-25"},
			SlotDurationMin: 15, CapacityPerSlot: 10, ImmediateEnabled: true, ScheduledEnabled: true, MaxDialAttempts: 3, RetryDelaySec: 30, DialInNumber: "+18005550100"},
		{Name: "CB_Support", VirtualQueue: "VQ_Support", TimeZone: "UTC", SlotDurationMin: 30, CapacityPerSlot: 5,
			Weekly: map[string][]OpenClose{"mon": {{"00:00", "24:00"}}}, ImmediateEnabled: true, ScheduledEnabled: true, MaxDialAttempts: 2, RetryDelaySec: 20},
	}, nil
}

func (f *fakeCallbacks) CallIns(_ context.Context, _, search string, _ int) ([]CallIn, error) {
	all := []CallIn{{ID: "c0ffee00-0000-4000-8000-000000000001", GroupName: "technical_help", ToPhoneNumber: "+18005550199",
		FromPhoneNumber: "+12025550142", AccessCode: "1234", CreatedAt: f.clk.Now().Add(-time.Minute), ExpiresAt: f.clk.Now().Add(9 * time.Minute)}}
	var out []CallIn
	for _, c := range all {
		if search == "" || strings.Contains(c.ID, search) || strings.Contains(c.FromPhoneNumber, search) {
			out = append(out, c)
		}
	}
	return out, nil
}

// testServer serves the UI (and any extra routes) on a loopback port.
type testServer struct {
	*httptest.Server
	ui    *UI
	clk   *fakeClock // the lab clock
	wall  *fakeClock // the wall clock
	gauth *fakeGAuth
}

func newTestServer(t *testing.T, cfg Config, deps Deps, extra ...func(*echo.Echo)) *testServer {
	t.Helper()
	clk := &fakeClock{now: time.Date(2026, 5, 28, 15, 30, 0, 0, time.UTC)}
	cfg.Version = "test"
	u, err := New(cfg, deps, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	wall := &fakeClock{now: clk.now}
	u.wall = wall
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	u.Mount(e)
	g := newFakeGAuth()
	g.mount(e)
	for _, f := range extra {
		f(e)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, ui: u, clk: clk, wall: wall, gauth: g}
}

// client returns an HTTP client with a cookie jar that does not follow redirects.
func (ts *testServer) client(t *testing.T) *http.Client {
	t.Helper()
	jar := newJar()
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches a path and returns status, body and response.
func get(t *testing.T, c *http.Client, u string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, c, req)
}

// do sends req and returns status, body and response.
func do(t *testing.T, c *http.Client, req *http.Request) (int, string, *http.Response) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values) (int, string, *http.Response) {
	t.Helper()
	resp, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}
