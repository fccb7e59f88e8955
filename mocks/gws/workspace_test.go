package gws_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/store/storetest"
	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/gws"
	"github.com/cxlab/cxlab/mocks/tenant"
)

// fakeVoice is Voice as the Workspace API sees it: DN states, calls, the
// operations asked for, and watchers fed the way Voice feeds them (dropped
// and closed when full).
type fakeVoice struct {
	mu       sync.Mutex
	states   map[string]string
	calls    map[string]gws.VoiceCall
	ops      []string
	watchers map[chan gws.VoiceEvent]string
}

func newFakeVoice() *fakeVoice {
	return &fakeVoice{states: map[string]string{"7001": "NotReady"}, calls: map[string]gws.VoiceCall{},
		watchers: map[chan gws.VoiceEvent]string{}}
}

func (f *fakeVoice) AgentDN(_ context.Context, _ tenant.CCID, dn string) (gws.VoiceDN, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return gws.VoiceDN{Number: dn, State: f.states[dn]}, nil
}

func (f *fakeVoice) SetAgentState(_ context.Context, _ tenant.CCID, dn, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, dn+" "+state)
	f.states[dn] = state
	f.emitLocked(dn, gws.VoiceEvent{DN: &gws.VoiceDN{Number: dn, State: state}})
	return nil
}

func (f *fakeVoice) CallsAt(_ context.Context, _ tenant.CCID, dn string) ([]gws.VoiceCall, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []gws.VoiceCall
	for _, c := range f.calls {
		if c.AgentDN == dn {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeVoice) ControlCall(_ context.Context, _ tenant.CCID, dn, id, op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, found := f.calls[id]
	if !found || c.AgentDN != dn {
		return fmt.Errorf("%w: %s", gws.ErrVoiceNotFound, id)
	}
	next := map[string]string{"answer": "connected", "hold": "held", "retrieve": "connected", "release": "ended"}[op]
	if op == "answer" && c.State != "ringing" {
		return fmt.Errorf("%w: call is %s", gws.ErrVoiceRefused, c.State)
	}
	f.ops = append(f.ops, op+" "+id)
	c.State = next
	if next == "ended" {
		delete(f.calls, id)
	} else {
		f.calls[id] = c
	}
	f.emitLocked(dn, gws.VoiceEvent{Call: &c})
	return nil
}

func (f *fakeVoice) Watch(_ tenant.CCID, dn string, buffer int) (<-chan gws.VoiceEvent, func()) {
	ch := make(chan gws.VoiceEvent, buffer)
	f.mu.Lock()
	f.watchers[ch] = dn
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, found := f.watchers[ch]; found {
			delete(f.watchers, ch)
			close(ch)
		}
	}
}

func (f *fakeVoice) ring(id, dn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := gws.VoiceCall{ID: id, Kind: "inbound", State: "ringing", From: "+12025550100", To: "+18005550100", AgentDN: dn,
		UserData: map[string]string{"account": "42"}}
	f.calls[id] = c
	f.emitLocked(dn, gws.VoiceEvent{Call: &c})
}

// dial has the agent at dn place a call to number, as the softphone does,
// in state (dialing, then connected).
func (f *fakeVoice) dial(id, dn, number, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := gws.VoiceCall{ID: id, Kind: "outbound", State: state, From: dn, To: number, AgentDN: dn}
	f.calls[id] = c
	f.emitLocked(dn, gws.VoiceEvent{Call: &c})
}

// attach adds a key to a live call's user data, as an INFO-MAP does.
func (f *fakeVoice) attach(id, key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls[id]
	c.UserData = maps.Clone(c.UserData)
	c.UserData[key] = value
	f.calls[id] = c
	f.emitLocked(c.AgentDN, gws.VoiceEvent{Call: &c})
}

func (f *fakeVoice) emitLocked(dn string, e gws.VoiceEvent) {
	for ch, w := range f.watchers {
		if w != dn {
			continue
		}
		select {
		case ch <- e:
		default:
			delete(f.watchers, ch)
			close(ch)
		}
	}
}

func (f *fakeVoice) opsDone() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ops...)
}

// wsEnv is GAuth and GWS (Workspace backed by a fakeVoice) on one server.
type wsEnv struct {
	t     *testing.T
	base  string
	voice *fakeVoice
	ctx   context.Context
	tr    *http.Transport
}

func newWorkspaceEnv(t *testing.T, cfg gws.WorkspaceConfig) *wsEnv {
	var ignore goleak.Option
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	pool := storetest.Pool(t)
	ignore = goleak.IgnoreCurrent()
	store := seededStore(ctx, t, pool)
	e := &wsEnv{t: t, voice: newFakeVoice(), ctx: ctx, tr: &http.Transport{}}
	cfg.Voice = e.voice
	ec := echo.New()
	hs := httptest.NewUnstartedServer(ec)
	e.base = "http://" + hs.Listener.Addr().String()
	url := func() string { return e.base }
	clk := clock.NewLab()
	ga, err := gauth.New(gauth.Config{PublicURL: url}, store, pool, nil, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ga.Stop(context.Background()) })
	w, err := gws.New(gws.Config{AuthURL: url, MaxBodyBytes: 4096, Workspace: cfg}, store, nil, nil, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	ga.Mount(ec)
	w.Mount(ec)
	hs.Start()
	t.Cleanup(hs.Close)
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	t.Cleanup(e.tr.CloseIdleConnections)
	return e
}

func (e *wsEnv) token(user, pass string) string {
	e.t.Helper()
	cfg := oauth2.Config{ClientID: "cxlab-console", ClientSecret: "console-secret",
		Endpoint: oauth2.Endpoint{TokenURL: e.base + "/auth/v3/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := cfg.PasswordCredentialsToken(context.WithValue(e.ctx, oauth2.HTTPClient, &http.Client{Transport: e.tr}), user, pass)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.AccessToken
}

// wsClient is one desktop: a cookie jar and a tiny Bayeux client.
type wsClient struct {
	e        *wsEnv
	hc       *http.Client
	clientID string
}

func (e *wsEnv) desktop(user, pass string) *wsClient {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	d := &wsClient{e: e, hc: &http.Client{Jar: jar, Transport: e.tr, Timeout: 20 * time.Second}}
	code, m := d.do("POST", "/workspace/v3/initialize-workspace", "Bearer "+e.token(user, pass), "")
	if code != 200 || m["status"].(map[string]any)["code"] != float64(1) {
		e.t.Fatalf("initialize-workspace: %d %v", code, m)
	}
	return d
}

func (d *wsClient) do(method, path, authz, body string) (int, map[string]any) {
	d.e.t.Helper()
	req, _ := http.NewRequestWithContext(d.e.ctx, method, d.e.base+path, strings.NewReader(body))
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		d.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		d.e.t.Fatalf("%s %s: %d non-JSON %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// bayeux posts a batch (msgs with clientId filled in) and returns the replies.
func (d *wsClient) bayeux(msgs ...map[string]any) []map[string]any {
	d.e.t.Helper()
	for _, m := range msgs {
		if _, set := m["clientId"]; !set && m["channel"] != "/meta/handshake" {
			m["clientId"] = d.clientID
		}
	}
	b, _ := json.Marshal(msgs)
	req, _ := http.NewRequestWithContext(d.e.ctx, http.MethodPost, d.e.base+"/workspace/v3/notifications/connect", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		d.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		d.e.t.Fatalf("bayeux %s: HTTP %d", b, resp.StatusCode)
	}
	return out
}

func (d *wsClient) handshake() {
	d.e.t.Helper()
	r := d.bayeux(map[string]any{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}, "id": "1"})
	if len(r) != 1 || r[0]["successful"] != true || r[0]["clientId"] == "" || r[0]["id"] != "1" || r[0]["version"] != "1.0" {
		d.e.t.Fatalf("handshake: %v", r)
	}
	d.clientID = r[0]["clientId"].(string)
}

// connect long-polls once and returns the notifications' data, failing on an
// unsuccessful connect.
func (d *wsClient) connect() []map[string]any {
	d.e.t.Helper()
	var data []map[string]any
	for _, r := range d.bayeux(map[string]any{"channel": "/meta/connect", "connectionType": "long-polling"}) {
		switch {
		case r["channel"] == "/meta/connect" && r["successful"] != true:
			d.e.t.Fatalf("connect: %v", r)
		case r["data"] != nil:
			data = append(data, r["data"].(map[string]any))
		}
	}
	return data
}

// next long-polls until a notification matches (each connect is bounded by
// LongPoll, the whole wait by within).
func (d *wsClient) next(within time.Duration, what string, match func(map[string]any) bool) map[string]any {
	d.e.t.Helper()
	deadline := time.Now().Add(within)
	var seen []map[string]any
	for time.Now().Before(deadline) {
		for _, m := range d.connect() {
			seen = append(seen, m)
			if match(m) {
				return m
			}
		}
	}
	d.e.t.Fatalf("no %s within %s; saw %v", what, within, seen)
	return nil
}

func isDN(state string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		dn, _ := m["dn"].(map[string]any)
		return m["messageType"] == "DnStateChanged" && dn["agentState"] == state
	}
}

func isCall(id, state string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		c, _ := m["call"].(map[string]any)
		return m["messageType"] == "CallStateChanged" && c["id"] == id && c["state"] == state
	}
}

// TestWorkspaceAgentDesktopFlow walks a desktop through the Workspace API:
// session, initialization over CometD, activation, Ready, a ringing call
// pushed to a held long-poll, answer, hold, retrieve, release, logout.
func TestWorkspaceAgentDesktopFlow(t *testing.T) {
	e := newWorkspaceEnv(t, gws.WorkspaceConfig{LongPoll: 2 * time.Second})
	anon := &wsClient{e: e, hc: &http.Client{Transport: e.tr}}
	if code, m := anon.do("POST", "/workspace/v3/initialize-workspace", "", ""); code != 401 || m["status"].(map[string]any)["code"] != float64(401) {
		t.Fatalf("initialize without a token: %d %v", code, m)
	}
	if code, m := anon.do("POST", "/workspace/v3/initialize-workspace", "Bearer not-a-jwt", ""); code != 401 {
		t.Fatalf("initialize with a bad token: %d %v", code, m)
	}
	for _, path := range []string{"/workspace/v3/current-session", "/workspace/v3/voice/ready", "/workspace/v3/notifications"} {
		method := map[bool]string{true: "GET", false: "POST"}[path == "/workspace/v3/current-session"]
		if code, _ := anon.do(method, path, "", "[]"); code != 401 {
			t.Fatalf("%s without a session: %d", path, code)
		}
	}

	d := e.desktop("agent1", "agent123")
	code, m := d.do("GET", "/workspace/v3/current-session", "", "")
	user, _ := m["data"].(map[string]any)["user"].(map[string]any)
	if code != 200 || user["userName"] != "agent1" || user["agentLogin"] != "7001" || user["activeSession"] != nil {
		t.Fatalf("current-session: %d %v", code, m)
	}
	if code, m := d.do("GET", "/workspace/v3/configuration?types=settings", "", ""); code != 200 || m["data"].(map[string]any)["settings"] == nil {
		t.Fatalf("configuration: %d %v", code, m)
	}
	code, m = d.do("GET", "/workspace/v3/security/exchange-token", "", "")
	jwt, _ := m["data"].(map[string]any)["access_token"].(string)
	if code != 200 || strings.Count(jwt, ".") != 2 {
		t.Fatalf("exchange-token: %d %v", code, m)
	}
	// expires_in is what the token lives: 1800 s, as the simulator says.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[1])
	var claims struct{ Iat, Exp float64 }
	_ = json.Unmarshal(payload, &claims)
	if in := m["data"].(map[string]any)["expires_in"]; in != float64(1800) || claims.Exp-claims.Iat != 1800 {
		t.Fatalf("exchange-token expires_in %v, the JWT lives %v s", in, claims.Exp-claims.Iat)
	}

	// Once the session's GAuth token is revoked, exchange-token says so
	// with a 401, not as an upstream failure.
	tok := e.token("agent1", "agent123")
	jar, _ := cookiejar.New(nil)
	revoked := &wsClient{e: e, hc: &http.Client{Jar: jar, Transport: e.tr, Timeout: 20 * time.Second}}
	if code, m := revoked.do("POST", "/workspace/v3/initialize-workspace", "Bearer "+tok, ""); code != 200 {
		t.Fatalf("initialize-workspace: %d %v", code, m)
	}
	if code, _ := revoked.do("POST", "/auth/v3/sign-out", "Bearer "+tok, ""); code != 200 {
		t.Fatalf("sign-out: %d", code)
	}
	if code, m := revoked.do("GET", "/workspace/v3/security/exchange-token", "", ""); code != 401 || m["status"].(map[string]any)["code"] != float64(401) {
		t.Fatalf("exchange-token with a revoked token: %d %v", code, m)
	}
	if code, _ := d.do("POST", "/workspace/v3/voice/ready", "", ""); code != 409 {
		t.Fatalf("ready before activation: %d, want 409", code)
	}

	d.handshake()
	sub := d.bayeux(map[string]any{"channel": "/meta/subscribe", "subscription": []string{"/workspace/v3/initialization", "/workspace/v3/voice"}, "id": "2"})
	if len(sub) != 1 || sub[0]["successful"] != true || sub[0]["id"] != "2" {
		t.Fatalf("subscribe: %v", sub)
	}
	init := d.next(5*time.Second, "WorkspaceInitializationComplete", func(m map[string]any) bool { return m["state"] == "Complete" })
	if init["messageType"] != "WorkspaceInitializationComplete" || init["data"].(map[string]any)["user"].(map[string]any)["userName"] != "agent1" {
		t.Fatalf("initialization = %v", init)
	}

	for body, want := range map[string]int{
		`{"data":`:                       400,
		`{"data":{"dn":"9999"}}`:         404,
		`{"data":{"dn":"7002"}}`:         403, // agent2's
		`{"data":{"channels":["chat"]}}`: 400,
	} {
		if code, m := d.do("POST", "/workspace/v3/activate-channels", "", body); code != want || m["status"].(map[string]any)["code"] != float64(want) {
			t.Fatalf("activate-channels %s: %d %v, want %d", body, code, m, want)
		}
	}
	if code, m := d.do("POST", "/workspace/v3/activate-channels", "", `{"data":{"agentId":"7001","dn":"7001"}}`); code != 200 {
		t.Fatalf("activate-channels: %d %v", code, m)
	}
	d.next(5*time.Second, "DnStateChanged NotReady", isDN("NotReady"))

	if code, _ := d.do("POST", "/workspace/v3/voice/ready", "", ""); code != 200 {
		t.Fatalf("ready: %d", code)
	}
	dn := d.next(5*time.Second, "DnStateChanged Ready", isDN("Ready"))["dn"].(map[string]any)
	if dn["number"] != "7001" || dn["capabilities"].([]any)[0] != "not-ready" {
		t.Fatalf("dn = %v", dn)
	}

	e.voice.ring("call-1", "7001")
	ring := d.next(5*time.Second, "CallStateChanged Ringing", isCall("call-1", "Ringing"))
	call := ring["call"].(map[string]any)
	if call["phoneNumber"] != "7001" || call["callType"] != "Inbound" || call["ani"] != "+12025550100" ||
		call["capabilities"].([]any)[0] != "answer" || call["userData"].([]any)[0].(map[string]any)["value"] != "42" {
		t.Fatalf("ringing call = %v", call)
	}

	for path, want := range map[string]int{
		"/workspace/v3/voice/calls/nope/answer":   404,
		"/workspace/v3/voice/calls/call-1/bounce": 404,
		"/workspace/v3/voice/make-call":           501,
		"/workspace/v3/voice/login":               404, // not emulated: said in the envelope
		"/workspace/v3/voice/set-dnd-on":          404,
	} {
		if code, m := d.do("POST", path, "", `{"data":{}}`); code != want || m["status"] == nil {
			t.Fatalf("%s: %d %v, want %d", path, code, m, want)
		}
	}
	for _, step := range []struct{ op, state string }{{"answer", "Established"}, {"hold", "Held"}, {"retrieve", "Established"}, {"release", "Released"}} {
		if code, m := d.do("POST", "/workspace/v3/voice/calls/call-1/"+step.op, "", ""); code != 200 || m["status"].(map[string]any)["code"] != float64(1) {
			t.Fatalf("%s: %d %v", step.op, code, m)
		}
		d.next(5*time.Second, "CallStateChanged "+step.state, isCall("call-1", step.state))
		if step.op == "answer" {
			// User data attached during the call reaches the desktop.
			e.voice.attach("call-1", "order", "A-7")
			m := d.next(5*time.Second, "CallStateChanged AttachedDataChanged", func(m map[string]any) bool {
				return m["notificationType"] == "AttachedDataChanged"
			})
			call := m["call"].(map[string]any)
			if ud := fmt.Sprint(call["userData"]); call["state"] != "Established" || !strings.Contains(ud, "order") || !strings.Contains(ud, "A-7") {
				t.Fatalf("AttachedDataChanged call = %v", call)
			}
		}
	}
	if code, _ := d.do("POST", "/workspace/v3/voice/calls/call-1/answer", "", ""); code != 404 {
		t.Fatalf("answer of a released call: %d", code)
	}
	if got := strings.Join(e.voice.opsDone(), ","); got != "7001 Ready,answer call-1,hold call-1,retrieve call-1,release call-1" {
		t.Fatalf("voice was asked %s", got)
	}
	// A call the agent dials to a customer shows as Dialing, then Established,
	// with the customer as the other party.
	e.voice.dial("call-2", "7001", "+12025550103", "dialing")
	m = d.next(5*time.Second, "CallStateChanged Dialing", isCall("call-2", "Dialing"))
	if p := m["call"].(map[string]any)["participants"].([]any)[0].(map[string]any); p["number"] != "+12025550103" || p["role"] != "RoleDestination" {
		t.Fatalf("dialled call's participant = %v", p)
	}
	e.voice.dial("call-2", "7001", "+12025550103", "connected")
	d.next(5*time.Second, "CallStateChanged Established", isCall("call-2", "Established"))
	e.voice.mu.Lock()
	delete(e.voice.calls, "call-2")
	e.voice.mu.Unlock()
	// The desktop asking for wrap-up (not-ready with agentWorkMode
	// AfterCallWork, as workspace-client-js sends it) keeps Voice's wrap-up
	// rather than ending it; a plain not-ready ends it.
	e.voice.mu.Lock()
	e.voice.states["7001"] = "AfterCallWork"
	e.voice.mu.Unlock()
	acw := `{"data":{"agentWorkMode":"AfterCallWork"},"reasonCode":"Lunch"}`
	if code, _ := d.do("POST", "/workspace/v3/voice/not-ready", "", acw); code != 200 {
		t.Fatalf("not-ready AfterCallWork: %d", code)
	}
	if st, _ := e.voice.AgentDN(e.ctx, "", "7001"); st.State != "AfterCallWork" {
		t.Fatalf("not-ready AfterCallWork during wrap-up left the DN %s, want AfterCallWork", st.State)
	}
	// A body that is not JSON is refused and changes nothing.
	if code, m := d.do("POST", "/workspace/v3/voice/not-ready", "", `[[[`); code != 400 || m["status"].(map[string]any)["code"] != float64(400) {
		t.Fatalf("not-ready with a body that is not JSON: %d %v", code, m)
	}
	if st, _ := e.voice.AgentDN(e.ctx, "", "7001"); st.State != "AfterCallWork" {
		t.Fatalf("a refused not-ready left the DN %s", st.State)
	}
	if code, _ := d.do("POST", "/workspace/v3/voice/not-ready", "", `{"data":{}}`); code != 200 {
		t.Fatalf("not-ready: %d", code)
	}
	if st, _ := e.voice.AgentDN(e.ctx, "", "7001"); st.State != "NotReady" {
		t.Fatalf("plain not-ready during wrap-up left the DN %s, want NotReady", st.State)
	}
	// Outside a call too, wrap-up asked for is wrap-up (until Ready); a work
	// mode the API does not have is refused.
	if code, _ := d.do("POST", "/workspace/v3/voice/not-ready", "", acw); code != 200 {
		t.Fatalf("not-ready AfterCallWork: %d", code)
	}
	if st, _ := e.voice.AgentDN(e.ctx, "", "7001"); st.State != "AfterCallWork" {
		t.Fatalf("not-ready AfterCallWork outside a call left the DN %s, want AfterCallWork", st.State)
	}
	if code, m := d.do("POST", "/workspace/v3/voice/not-ready", "", `{"data":{"agentWorkMode":"Bogus"}}`); code != 400 || !strings.Contains(fmt.Sprint(m["status"]), "AfterCallWork") {
		t.Fatalf("not-ready with agentWorkMode Bogus: %d %v", code, m)
	}

	if code, _ := d.do("POST", "/workspace/v3/logout", "", ""); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if code, _ := d.do("GET", "/workspace/v3/current-session", "", ""); code != 401 {
		t.Fatalf("current-session after logout: %d", code)
	}
}

// TestCometDTransport checks the Bayeux rules a CometD client relies on.
func TestCometDTransport(t *testing.T) {
	e := newWorkspaceEnv(t, gws.WorkspaceConfig{LongPoll: 300 * time.Millisecond, QueueLimit: 4, ClientTimeout: 200 * time.Millisecond})
	d := e.desktop("agent1", "agent123")

	r := d.bayeux(map[string]any{"channel": "/meta/connect", "clientId": "forged", "id": "7"})
	if r[0]["successful"] != false || r[0]["error"] != "402::Unknown client" || r[0]["advice"].(map[string]any)["reconnect"] != "handshake" || r[0]["id"] != "7" {
		t.Fatalf("unknown client: %v", r)
	}
	r = d.bayeux(map[string]any{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"websocket"}})
	if r[0]["successful"] != false || !strings.HasPrefix(r[0]["error"].(string), "301::") {
		t.Fatalf("websocket-only handshake: %v", r)
	}
	d.handshake()
	// A batch: a publish (denied), an unknown channel, then the first connect,
	// answered at once.
	r = d.bayeux(map[string]any{"channel": "/workspace/v3/voice", "data": map[string]any{}},
		map[string]any{"channel": "/meta/subscribe", "subscription": "/workspace/v3/media"},
		map[string]any{"channel": "/meta/connect", "connectionType": "long-polling"})
	if len(r) != 3 || !strings.HasPrefix(r[0]["error"].(string), "403::") || !strings.HasPrefix(r[1]["error"].(string), "403::") ||
		r[2]["successful"] != true || r[2]["advice"].(map[string]any)["timeout"] != float64(300) {
		t.Fatalf("batch: %v", r)
	}
	// A held connect with nothing to say returns after LongPoll, empty.
	if got := d.connect(); len(got) != 0 {
		t.Fatalf("idle connect delivered %v", got)
	}

	for body, want := range map[string]int{`not json`: 400, `[]`: 400, `[` + strings.Repeat(`{"channel":"/meta/connect"},`, 70) + `{}]`: 400,
		`[{"channel":"/meta/handshake","ext":"` + strings.Repeat("x", 5000) + `"}]`: 413} {
		if code, m := d.do("POST", "/workspace/v3/notifications", "", body); code != want || m["status"] == nil {
			t.Fatalf("body %.30q: %d %v, want %d", body, code, m, want)
		}
	}

	// A client that falls QueueLimit behind Voice is dropped and told to
	// handshake again; the new client gets a fresh picture.
	if code, _ := d.do("POST", "/workspace/v3/activate-channels", "", `{}`); code != 200 {
		t.Fatalf("activate-channels: %d", code)
	}
	d.bayeux(map[string]any{"channel": "/meta/subscribe", "subscription": "/workspace/v3/voice"})
	for i := range 10 {
		_ = e.voice.SetAgentState(e.ctx, "", "7001", []string{"Ready", "NotReady"}[i%2])
	}
	r = d.bayeux(map[string]any{"channel": "/meta/connect", "connectionType": "long-polling"})
	if last := r[len(r)-1]; last["error"] != "402::Unknown client" {
		t.Fatalf("connect after overflow: %v", r)
	}
	d.handshake()
	d.bayeux(map[string]any{"channel": "/meta/subscribe", "subscription": "/workspace/v3/voice"})
	if got := d.connect(); len(got) != 1 || !isDN("NotReady")(got[0]) {
		t.Fatalf("resync delivered %v, want the DN NotReady", got)
	}

	// Disconnect forgets the client; a client that stops connecting expires.
	if r := d.bayeux(map[string]any{"channel": "/meta/disconnect"}); r[0]["successful"] != true {
		t.Fatalf("disconnect: %v", r)
	}
	if r := d.bayeux(map[string]any{"channel": "/meta/connect"}); r[0]["error"] != "402::Unknown client" {
		t.Fatalf("connect after disconnect: %v", r)
	}
	// A connect held while the client disconnects ends as a real CometD
	// server ends it: successful, advice reconnect "none" (a 402 there makes
	// the CometD client abort its disconnect in flight). Which request
	// reaches the server first is up to the network: a connect that comes in
	// after the disconnect gets 402 and the round is tried again.
	held := false
	for range 50 {
		d.handshake()
		d.connect() // the first connect is answered at once; the next is held
		got := make(chan []map[string]any, 1)
		go func() {
			got <- d.bayeux(map[string]any{"channel": "/meta/connect", "connectionType": "long-polling"})
		}()
		if r := d.bayeux(map[string]any{"channel": "/meta/disconnect"}); r[0]["successful"] != true {
			t.Fatalf("disconnect: %v", r)
		}
		r := <-got
		last := r[len(r)-1]
		if last["error"] == "402::Unknown client" {
			continue // the connect came after the disconnect
		}
		advice, _ := last["advice"].(map[string]any)
		if last["successful"] != true || advice["reconnect"] != "none" {
			t.Fatalf("connect held across the disconnect: %v, want successful with advice reconnect none", last)
		}
		held = true
		break
	}
	if !held {
		t.Fatal("no connect was held when the disconnect came, in 50 rounds")
	}
	d.handshake()
	stale := d.clientID
	time.Sleep(400 * time.Millisecond) // not readiness: ClientTimeout (200 ms) of wall time must pass
	d.handshake()                      // handshakes sweep expired clients
	d.clientID = stale
	if r := d.bayeux(map[string]any{"channel": "/meta/connect"}); r[0]["error"] != "402::Unknown client" {
		t.Fatalf("an idle client did not expire: %v", r)
	}
}
