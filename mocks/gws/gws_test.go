package gws_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/store/storetest"
	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/gws"
	"github.com/cxlab/cxlab/mocks/tenant"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const (
	demoCCID = "9350e2fc-a1dd-4c65-8d40-1f75a2e080dd"
	acmeCCID = "0b6f3c1e-7d2a-4f55-9a4e-2c9d8e1f0a11"
)

// fakeStats records which tenant asked and answers per queue.
type fakeStats struct {
	mu    sync.Mutex
	asked []string
	fail  bool
}

func (f *fakeStats) QueueStats(_ context.Context, ccid tenant.CCID, vq string) (gws.QueueStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, string(ccid)+"/"+vq)
	if f.fail {
		return gws.QueueStats{}, errors.New("voice unreachable")
	}
	if vq == "VQ_Sales" {
		return gws.QueueStats{ReadyAgents: 2, LoggedInAgents: 3, BusyAgents: 1, WaitingCalls: 4, AverageHandlingTime: 180, ExpectedWaitTime: 45.5}, nil
	}
	return gws.QueueStats{}, nil
}

type env struct {
	t     testing.TB
	base  string
	clk   *clock.Lab
	stats *fakeStats
	gauth *gauth.Server
	gws   *gws.Server
	hc    *http.Client
	ctx   context.Context
}

// seededStore is a started tenant store on pool holding the demo tenant and
// the second tenant of ../tenant/testdata/second.yaml.
func seededStore(ctx context.Context, t testing.TB, pool *pgxpool.Pool) *tenant.Store {
	t.Helper()
	store := tenant.NewStore(pool, nil)
	if err := store.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../tenant/testdata/second.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seed, err := tenant.ParseSeed(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(ctx, seed); err != nil {
		t.Fatal(err)
	}
	return store
}

// newEnv runs GAuth and GWS on one echo server, as the appliance does.
func newEnv(t testing.TB) *env {
	var ignore goleak.Option
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	pool := storetest.Pool(t)
	ignore = goleak.IgnoreCurrent()
	store := seededStore(ctx, t, pool)

	e := &env{t: t, clk: clock.NewLab(), stats: &fakeStats{}}
	ec := echo.New()
	hs := httptest.NewUnstartedServer(ec)
	e.base = "http://" + hs.Listener.Addr().String()
	url := func() string { return e.base }
	var err error
	if e.gauth, err = gauth.New(gauth.Config{PublicURL: url}, store, pool, nil, nil, e.clk); err != nil {
		t.Fatal(err)
	}
	if err := e.gauth.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.gauth.Stop(context.Background()) })
	if e.gws, err = gws.New(gws.Config{AuthURL: url}, store, e.stats, nil, nil, e.clk); err != nil {
		t.Fatal(err)
	}
	if err := e.gws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.gauth.Mount(ec)
	e.gws.Mount(ec)
	hs.Start()
	t.Cleanup(hs.Close)
	t.Cleanup(func() { _ = e.gws.Stop(context.Background()) })
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.hc = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	e.ctx = context.WithValue(ctx, oauth2.HTTPClient, e.hc)
	return e
}

func (e *env) user(login, pass string) string {
	e.t.Helper()
	cfg := oauth2.Config{ClientID: "cxlab-console", ClientSecret: "console-secret",
		Endpoint: oauth2.Endpoint{TokenURL: e.base + "/auth/v3/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := cfg.PasswordCredentialsToken(e.ctx, login, pass)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.AccessToken
}

func (e *env) service(id, secret string) string {
	e.t.Helper()
	tok, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.base + "/auth/v3/oauth/token"}).Token(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.AccessToken
}

func (e *env) call(method, path, token, body string) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(e.ctx, method, e.base+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatalf("%s %s: %d non-JSON %q", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// objects returns data.<key> as a list of objects.
func objects(m map[string]any, key string) []map[string]any {
	data, _ := m["data"].(map[string]any)
	list, _ := data[key].([]any)
	out := []map[string]any{}
	for _, o := range list {
		out = append(out, o.(map[string]any))
	}
	return out
}

func TestConfigurationForAgentToken(t *testing.T) {
	e := newEnv(t)
	tok := e.user("agent1", "agent123")

	code, m := e.call("GET", "/configuration/v3/objects/persons?user_name=agent1", tok, "")
	ps := objects(m, "objects")
	if code != 200 || len(ps) != 1 {
		t.Fatalf("persons: %d %v", code, m)
	}
	p := ps[0]
	if p["dbid"] != float64(101) || p["userName"] != "agent1" || p["contactCenterId"] != demoCCID || p["dn"] != "7001" ||
		p["sipDomain"] != "demo.cxlab.local" || len(p["skills"].([]any)) != 2 || p["roles"].([]any)[0] != "agent" || p["firstName"] == "" {
		t.Fatalf("person = %v", p)
	}

	code, m = e.call("GET", "/configuration/v3/callback-services", tok, "")
	svcs := objects(m, "services")
	if code != 200 || len(svcs) != 2 || m["status"].(map[string]any)["code"] != float64(0) {
		t.Fatalf("callback services: %d %v", code, m)
	}
	sales := svcs[0]
	bh := sales["businessHours"].(map[string]any)
	weekly := bh["weekly"].(map[string]any)
	mon := weekly["mon"].([]any)[0].(map[string]any)
	if sales["name"] != "CB_Sales" || sales["virtualQueue"] != "VQ_Sales" || sales["timeZone"] != "America/New_York" ||
		mon["open"] != "08:00" || mon["close"] != "20:00" || weekly["sat"] != nil || len(bh["holidays"].([]any)) != 2 ||
		sales["slotDurationMin"] != float64(15) || sales["capacityPerSlot"] != float64(10) || sales["immediateEnabled"] != true ||
		sales["scheduledEnabled"] != true || sales["maxDialAttempts"] != float64(3) || sales["retryDelaySec"] != float64(30) ||
		sales["dialInNumber"] != "+18005550100" {
		t.Fatalf("CB_Sales = %v", sales)
	}

	code, m = e.call("GET", "/configuration/v3/callin-groups", tok, "")
	if g := objects(m, "groups"); code != 200 || len(g) != 1 || g[0]["name"] != "technical_help" || g[0]["accessNumber"] != "+18005550199" ||
		g[0]["accessCodeEnabled"] != true || g[0]["expirySec"] != float64(600) || g[0]["virtualQueue"] != "VQ_Support" {
		t.Fatalf("callin groups: %d %v", code, m)
	}

	// Persons never see DN passwords; services do.
	code, m = e.call("GET", "/configuration/v3/objects/dns?number=7003", tok, "")
	if d := objects(m, "objects"); code != 200 || len(d) != 1 || d[0]["userName"] != "agent3" || d[0]["sipPassword"] != nil {
		t.Fatalf("dns for agent: %d %v", code, m)
	}
	voice := e.service("ors_client", "ors-secret")
	code, m = e.call("GET", "/configuration/v3/objects/dns?sip_domain=demo.cxlab.local&number=7001", voice, "")
	if d := objects(m, "objects"); code != 200 || len(d) != 1 || d[0]["sipPassword"] != "dnpass" || d[0]["personDbid"] != float64(101) {
		t.Fatalf("dns for voice: %d %v", code, m)
	}

	code, m = e.call("GET", "/configuration/v3/objects/agent-groups?person_dbid:int=103", tok, "")
	if g := objects(m, "objects"); code != 200 || len(g) != 1 || g[0]["name"] != "Support" {
		t.Fatalf("agent groups of agent3: %d %v", code, m)
	}
	code, m = e.call("GET", "/configuration/v3/system/application", tok, "")
	if opts := m["data"].(map[string]any)["options"].(map[string]any); code != 200 || opts["general-settings.countryCode"] != "US" {
		t.Fatalf("application options: %d %v", code, m)
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	acme := e.user(`acme\agent1`, "acme123")
	if code, m := e.call("GET", "/configuration/v3/callback-services?ccid="+demoCCID, acme, ""); code != 403 || m["status"].(map[string]any)["code"] != float64(403) {
		t.Fatalf("acme reading demo services: %d %v", code, m)
	}
	code, m := e.call("GET", "/configuration/v3/callback-services", acme, "")
	if s := objects(m, "services"); code != 200 || len(s) != 1 || s[0]["name"] != "CB_Acme" {
		t.Fatalf("acme services: %d %v", code, m)
	}
	if code, m := e.call("GET", "/configuration/v3/objects/persons?user_name=agent2", acme, ""); code != 200 || len(objects(m, "objects")) != 0 {
		t.Fatalf("acme finding demo agent2: %d %v", code, m)
	}
	if code, m := e.call("GET", "/configuration/v3/objects/agent-groups?person_dbid:int=101", acme, ""); code != 200 || len(objects(m, "objects")) != 0 {
		t.Fatalf("acme reading demo groups: %d %v", code, m)
	}
	bound := e.service("acme-client", "acme-secret")
	if code, _ := e.call("GET", "/configuration/v3/objects/dns?ccid="+demoCCID, bound, ""); code != 403 {
		t.Fatalf("bound client reading demo dns: %d", code)
	}
	if code, _ := e.call("POST", "/statistics/v3/operations/get-statistic-ex?ccid="+demoCCID, acme,
		`{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrentReadyAgents"}]}}`); code != 403 {
		t.Fatalf("acme reading demo statistics: %d", code)
	}

	// Unbound service clients must name the tenant, except for person search.
	ges := e.service("ges_client", "ges-secret")
	if code, _ := e.call("GET", "/configuration/v3/callback-services", ges, ""); code != 400 {
		t.Fatalf("service without ccid: %d", code)
	}
	if code, m := e.call("GET", "/configuration/v3/callback-services?ccid="+acmeCCID, ges, ""); code != 200 || len(objects(m, "services")) != 1 {
		t.Fatalf("service with acme ccid: %d %v", code, m)
	}
	if code, _ := e.call("GET", "/configuration/v3/callback-services?ccid=11111111-2222-3333-4444-555555555555", ges, ""); code != 404 {
		t.Fatalf("unknown ccid: %d", code)
	}
	if code, _ := e.call("GET", "/configuration/v3/callback-services?ccid=garbage", ges, ""); code != 404 {
		t.Fatalf("malformed ccid: %d", code)
	}
	if code, m := e.call("GET", "/configuration/v3/objects/persons?user_name=agent1", ges, ""); code != 200 || len(objects(m, "objects")) != 2 {
		t.Fatalf("service person search across tenants: %d %v", code, m)
	}
}

func TestStatistics(t *testing.T) {
	e := newEnv(t)
	ges := e.service("ges_client", "ges-secret")
	body := `{"data":{"statistics":[
		{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrentReadyAgents"},
		{"objectId":"VQ_Sales","objectType":"Queue","name":"ExpectedWaitTime"},
		{"objectId":"VQ_Sales","objectType":"Queue","name":"AverageHandlingTime"},
		{"objectId":"VQ_Support","objectType":"Queue","name":"CurrentWaitingCalls"}]}}`
	code, m := e.call("POST", "/statistics/v3/operations/get-statistic-ex?ccid="+demoCCID, ges, body)
	st := objects(m, "statistics")
	if code != 200 || len(st) != 4 {
		t.Fatalf("statistics: %d %v", code, m)
	}
	want := []float64{2, 45.5, 180, 0}
	for i, s := range st {
		if s["value"] != want[i] || s["objectType"] != "Queue" || s["timestamp"] != float64(e.clk.Now().UnixMilli()) && s["timestamp"].(float64) <= 0 {
			t.Errorf("statistic %d = %v, want value %v", i, s, want[i])
		}
	}
	if st[0]["name"] != "CurrentReadyAgents" || st[0]["objectId"] != "VQ_Sales" {
		t.Errorf("first statistic = %v", st[0])
	}
	e.stats.mu.Lock()
	asked := strings.Join(e.stats.asked, ",")
	e.stats.mu.Unlock()
	if asked != demoCCID+"/VQ_Sales,"+demoCCID+"/VQ_Support" {
		t.Errorf("live stats asked %s (one call per queue expected)", asked)
	}
	// A user token reads its own tenant without ccid.
	if code, _ := e.call("POST", "/statistics/v3/operations/get-statistic-ex", e.user("supervisor", "super123"), body); code != 200 {
		t.Fatalf("supervisor statistics: %d", code)
	}

	bad := map[string]string{
		"empty":        `{"data":{"statistics":[]}}`,
		"unknown name": `{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"Magic"}]}}`,
		"agent object": `{"data":{"statistics":[{"objectId":"agent1","objectType":"Agent","name":"CurrentReadyAgents"}]}}`,
		"no objectId":  `{"data":{"statistics":[{"objectType":"Queue","name":"CurrentReadyAgents"}]}}`,
		"malformed":    `{"data":`,
		"wrong types":  `{"data":{"statistics":"all"}}`,
	}
	for name, b := range bad {
		if code, m := e.call("POST", "/statistics/v3/operations/get-statistic-ex?ccid="+demoCCID, ges, b); code != 400 || m["status"].(map[string]any)["code"] != float64(400) {
			t.Errorf("%s: %d %v", name, code, m)
		}
	}
	huge := `{"data":{"statistics":[` + strings.Repeat(`{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrentReadyAgents"},`, 2000) + `{}]}}`
	if code, _ := e.call("POST", "/statistics/v3/operations/get-statistic-ex?ccid="+demoCCID, ges, huge); code != 413 {
		t.Errorf("huge body: %d", code)
	}
	e.stats.mu.Lock()
	e.stats.fail = true
	e.stats.mu.Unlock()
	if code, _ := e.call("POST", "/statistics/v3/operations/get-statistic-ex?ccid="+demoCCID, ges, body); code != 503 {
		t.Errorf("voice down: %d", code)
	}
}

func TestTokenChecks(t *testing.T) {
	e := newEnv(t)
	tok := e.user("agent2", "agent123")
	path := "/configuration/v3/callback-services"
	if code, _ := e.call("GET", path, tok, ""); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	for name, bad := range map[string]string{"none": "", "garbage": "abc", "jwt-shaped": "a.b.c"} {
		if code, m := e.call("GET", path, bad, ""); code != 401 || m["status"] == nil {
			t.Errorf("%s token: %d %v", name, code, m)
		}
	}
	// Revocation reaches GWS once the cached userinfo answer ages out.
	if code, _ := e.call("POST", "/auth/v3/sign-out", tok, ""); code != 200 {
		t.Fatalf("sign-out: %d", code)
	}
	e.clk.Advance(6 * time.Second)
	if code, _ := e.call("GET", path, tok, ""); code != 401 {
		t.Fatalf("revoked token accepted: %d", code)
	}
	// Expiry is checked locally against the lab clock.
	tok = e.user("agent2", "agent123")
	e.clk.Advance(43201 * time.Second)
	if code, _ := e.call("GET", path, tok, ""); code != 401 {
		t.Fatalf("expired token accepted: %d", code)
	}

	// GAuth down: a token GWS has not checked yet cannot be verified (503).
	tok = e.user("agent2", "agent123")
	if err := e.gauth.SetFailures(gauth.Failures{Mode: gauth.FailDown}); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.call("GET", path, tok, ""); code != 503 {
		t.Fatalf("GAuth down: %d", code)
	}
	_ = e.gauth.SetFailures(gauth.Failures{Mode: gauth.FailNone})

	// GWS's own failure injection, driven over HTTP with ops credentials.
	put := func(body string, auth bool) int {
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodPut, e.base+"/configuration/v3/ops/emulator/failures", strings.NewReader(body))
		if auth {
			req.SetBasicAuth("ops", "ops")
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if put(`{"mode":"down"}`, false) != 401 || put(`{"mode":"nope"}`, true) != 400 || put(`{"mode":"down"}`, true) != 200 {
		t.Fatal("failure control")
	}
	if code, _ := e.call("GET", path, tok, ""); code != 503 {
		t.Fatalf("GWS down: %d", code)
	}
	if put(`{"data":{"mode":"none"}}`, true) != 200 {
		t.Fatal("reset failures")
	}
	if code, _ := e.call("GET", path, tok, ""); code != 200 {
		t.Fatalf("after recovery: %d", code)
	}
}

func TestLegacyV2(t *testing.T) {
	e := newEnv(t)
	tok := e.user("agent1", "agent123")
	code, m := e.call("GET", "/api/v2/me", tok, "")
	u, _ := m["user"].(map[string]any)
	if code != 200 || m["statusCode"] != float64(0) || u["userName"] != "agent1" || u["path"] != "/users/101" || u["roles"].([]any)[0] != "ROLE_AGENT" {
		t.Fatalf("me: %d %v", code, m)
	}
	code, m = e.call("GET", "/api/v2/settings/general-settings", tok, "")
	if s, _ := m["settings"].(map[string]any); code != 200 || s["countryCode"] != "US" {
		t.Fatalf("settings: %d %v", code, m)
	}
	if code, m := e.call("GET", "/api/v2/settings/nope", tok, ""); code != 404 || m["statusCode"] != float64(3) {
		t.Fatalf("unknown settings group: %d %v", code, m)
	}
	if code, m := e.call("GET", "/api/v2/diagnostics/version", tok, ""); code != 200 || m["version"] == "" {
		t.Fatalf("version: %d %v", code, m)
	}
	if code, m := e.call("GET", "/api/v2/me", "", ""); code != 401 || m["statusCode"] != float64(20) {
		t.Fatalf("me without token: %d %v", code, m)
	}
	if code, _ := e.call("GET", "/api/v2/me", e.service("ges_client", "ges-secret"), ""); code != 403 {
		t.Fatalf("me with a client token: %d", code)
	}
}
