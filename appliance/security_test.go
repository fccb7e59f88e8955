package appliance_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance"
	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/cli"
	"github.com/cxlab/cxlab/appliance/config"
	"github.com/cxlab/cxlab/appliance/internal/syncbuf"
)

// The second tenant of mocks/tenant/testdata/second.yaml.
const (
	secondSeed = "../mocks/tenant/testdata/second.yaml"
	acmeKey    = "acme-api-key-1111111111111111"
	acmeCCID   = "0b6f3c1e-7d2a-4f55-9a4e-2c9d8e1f0a11"
	demoCCID   = "9350e2fc-a1dd-4c65-8d40-1f75a2e080dd"
	// accessTTL is GAuth's access-token lifetime for the demo clients (tenant.DefaultAccessTokenTTL).
	accessTTL = 12 * time.Hour
)

// demoMarkers are strings of the demo tenant that must never reach another
// tenant's caller or an unauthenticated one.
var demoMarkers = []string{demoCCID, "agent2", "Ann Lee", "7002", "CB_Sales", "VQ_Sales"}

// noLeaks fails the test if goroutines outlive it, once its cleanups (the
// appliance's stop among them) have run. Keep-alive client connections of
// net/http are idle-pool goroutines, not leaks of the appliance.
func noLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun")}
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		noRedirects.CloseIdleConnections()
		goleak.VerifyNone(t, opts...)
	})
}

// reqOpt changes a request before it is sent.
type reqOpt func(*http.Request)

func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func bearer(tok string) reqOpt  { return header("Authorization", "Bearer "+tok) }
func basic(u, p string) reqOpt  { return func(r *http.Request) { r.SetBasicAuth(u, p) } }

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{Timeout: 20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// send makes one request and returns status and body.
func send(t *testing.T, method, u, body string, opts ...reqOpt) (int, string) {
	t.Helper()
	return sendWith(t, noRedirects, method, u, body, opts...)
}

// sendWith is send through hc.
func sendWith(t *testing.T, hc *http.Client, method, u, body string, opts ...reqOpt) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// grant gets an access token from GAuth's token endpoint with client Basic auth.
func grant(t *testing.T, s *apptest.Stack, client, secret string, form url.Values) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL+"/auth/v3/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("grant %v for %s: %d %v", form, client, resp.StatusCode, err)
	}
	return tr.AccessToken
}

// uuidPattern matches a UUID: corrIds, callback ids and other random ids.
var uuidPattern = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// scrubIDs blanks every UUID of body but the demo tenant's: a random one (a
// corrId, say) may contain a marker such as "7002" by chance.
func scrubIDs(body string) string {
	return uuidPattern.ReplaceAllStringFunc(body, func(id string) string {
		if strings.EqualFold(id, demoCCID) {
			return id
		}
		return "<id>"
	})
}

// authCase is one request that must be refused with want and must not leak.
type authCase struct {
	name         string
	method, path string
	body         string
	opts         []reqOpt
	want         int
	// leak lists strings the answer must not contain (demoMarkers when nil).
	leak []string
}

func (c authCase) run(t *testing.T, base string) {
	t.Helper()
	code, body := send(t, c.method, base+c.path, c.body, c.opts...)
	if code != c.want {
		t.Errorf("%s %s %s: status %d, want %d (%.200s)", c.name, c.method, c.path, code, c.want, body)
	}
	leak := c.leak
	if leak == nil {
		leak = demoMarkers
	}
	scrubbed := scrubIDs(body)
	for _, m := range leak {
		if strings.Contains(scrubbed, m) {
			t.Errorf("%s %s %s: answer leaks %q: %.300s", c.name, c.method, c.path, m, body)
		}
	}
}

// gesRoutes are every Engagement v3 route that takes an API key, with a valid body.
var gesRoutes = []struct{ method, path, body string }{
	{"POST", "/engagement/v3/callbacks/create", `{"serviceName":"CB_Support","phoneNumber":"+12025550100"}`},
	{"POST", "/engagement/v3/callbacks/cancel", `{"id":"00000000-0000-4000-8000-000000000000"}`},
	{"POST", "/engagement/v3/callbacks/retrieve", `{"id":"00000000-0000-4000-8000-000000000000"}`},
	{"GET", "/engagement/v3/callbacks/availability/CB_Sales", ""},
	{"GET", "/engagement/v3/callbacks/queue-status/VQ_Sales", ""},
	{"GET", "/engagement/v3/callbacks/open-for/CB_Sales", ""},
	{"GET", "/engagement/v3/estimated-wait-time?virtual-queues=VQ_Sales", ""},
	{"GET", "/engagement/v3/estimated-wait-time/virtual-queues/VQ_Sales", ""},
	{"POST", "/engagement/v3/call-in/requests/create", `{"groupName":"technical_help","fromPhoneNumber":"+12025550100"}`},
	{"POST", "/engagement/v3/statistics/operations/get-statistic-ex",
		`{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrNumberWaitingCalls"}]}}`},
}

// gwsRoutes are the GWS routes that take a Bearer token; ?ccid= names the demo tenant.
var gwsRoutes = []struct{ method, path, body string }{
	{"GET", "/configuration/v3/objects/persons?ccid=" + demoCCID, ""},
	{"GET", "/configuration/v3/objects/dns?ccid=" + demoCCID, ""},
	{"GET", "/configuration/v3/objects/agent-groups?ccid=" + demoCCID, ""},
	{"GET", "/configuration/v3/system/application?ccid=" + demoCCID + "&name=ORS", ""},
	{"GET", "/configuration/v3/callback-services?ccid=" + demoCCID, ""},
	{"GET", "/configuration/v3/callin-groups?ccid=" + demoCCID, ""},
	{"POST", "/statistics/v3/operations/get-statistic-ex?ccid=" + demoCCID,
		`{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrNumberWaitingCalls"}]}}`},
}

// gwsV2Routes are the GWS v2 routes (Bearer, tenant from the token).
var gwsV2Routes = []string{"/api/v2/me", "/api/v2/settings/general", "/api/v2/diagnostics/version"}

// voiceRoutes are the Voice agent API routes (Bearer).
var voiceRoutes = []struct{ method, path, body string }{
	{"GET", "/voice/v1/agents/me", ""},
	{"PUT", "/voice/v1/agents/me/state", `{"state":"Ready"}`},
	{"GET", "/voice/v1/agents", ""},
	{"POST", "/voice/v1/calls/no-such-call/answer", ""},
	{"POST", "/voice/v1/calls/no-such-call/hangup", ""},
}

// opsRoutes are the emulators' admin routes guarded by the ops Basic credentials.
var opsRoutes = []struct{ method, path, body string }{
	{"GET", "/auth/v3/ops/emulator/failures", ""},
	{"PUT", "/auth/v3/ops/emulator/failures", `{"mode":"down"}`},
	{"POST", "/auth/v3/ops/emulator/reset-demo", ""},
	{"GET", "/auth/v3/ops/tokens", ""},
	{"GET", "/auth/v3/ops/clients", ""},
	{"POST", "/auth/v3/ops/clients", `{"clientId":"evil","secret":"evil","grantTypes":["client_credentials"]}`},
	{"GET", "/auth/v3/ops/clients/ges_client", ""},
	{"PUT", "/auth/v3/ops/clients/ges_client", `{"secret":"stolen"}`},
	{"DELETE", "/auth/v3/ops/clients/ges_client", ""},
	{"POST", "/environment/v3/contact-centers", `{"name":"evil"}`},
	{"GET", "/configuration/v3/ops/emulator/failures", ""},
	{"PUT", "/configuration/v3/ops/emulator/failures", `{"mode":"down"}`},
	{"POST", "/configuration/v3/ops/seed", "contactCenters: []"},
	{"DELETE", "/configuration/v3/ops/contact-centers/" + demoCCID + "/users/agent2", ""},
}

// userinfoRoutes are GAuth's token-introspection routes.
var userinfoRoutes = []string{"/auth/v3/userinfo", "/auth/v3/openid/userinfo", "/auth/v3/jwt-userinfo"}

// TestSecurityEndpointsRefuseBadCredentials tries every authenticated endpoint
// with no credentials, wrong credentials, another tenant's credentials and,
// after moving the lab clock past the token lifetime, an expired token: all
// are refused and none leaks the demo tenant's data.
func TestSecurityEndpointsRefuseBadCredentials(t *testing.T) {
	noLeaks(t)
	s := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Seed = secondSeed }))
	base := s.URL
	demoAgent := agentToken(t, s, "agent1", "agent123")
	acmeAgent := grant(t, s, "acme-client", "acme-secret", url.Values{"grant_type": {"password"}, "username": {"agent1"}, "password": {"acme123"}})
	acmeBoss := grant(t, s, "acme-client", "acme-secret", url.Values{"grant_type": {"password"}, "username": {"acmeboss"}, "password": {"acme123"}})
	ors := grant(t, s, "ors_client", "ors-secret", url.Values{"grant_type": {"client_credentials"}})
	// A demo callback the other tenant will try to reach.
	var created struct{ ID string }
	if code := gesCall(t, s, "POST", "/callbacks/create", map[string]any{"serviceName": "CB_Support",
		"phoneNumber": "+12025550103", "userData": map[string]string{"secret": "Ann Lee"}}, &created); code != 200 {
		t.Fatalf("create demo callback: %d", code)
	}
	const garbage = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJvcHMifQ." // alg=none, unsigned
	n := 0
	run := func(t *testing.T, cases []authCase) {
		for _, c := range cases {
			c.run(t, base)
			n++
		}
	}

	t.Run("EngagementAPI", func(t *testing.T) {
		var cases []authCase
		for _, r := range gesRoutes {
			cases = append(cases,
				authCase{name: "no key", method: r.method, path: r.path, body: r.body, want: 401},
				authCase{name: "wrong key", method: r.method, path: r.path, body: r.body, want: 401,
					opts: []reqOpt{header("x-api-key", "cxlab-demo-api-key-0000000000000001")}},
				authCase{name: "bearer instead of key", method: r.method, path: r.path, body: r.body, want: 401,
					opts: []reqOpt{bearer(demoAgent)}},
				authCase{name: "ccid header", method: r.method, path: r.path, body: r.body, want: 400,
					opts: []reqOpt{header("x-api-key", s.Endpoints.APIKey), header("ccid", acmeCCID)}},
				authCase{name: "ContactCenterID header", method: r.method, path: r.path, body: r.body, want: 400,
					opts: []reqOpt{header("x-api-key", acmeKey), header("ContactCenterID", demoCCID)}},
			)
		}
		idBody := `{"id":"` + created.ID + `"}`
		acme := []reqOpt{header("x-api-key", acmeKey)}
		// Names the caller sent may be echoed in the error; the demo tenant's data may not.
		echoed := []string{demoCCID, "Ann Lee", "+12025550103", "VQ_Sales"}
		cases = append(cases,
			authCase{name: "other tenant retrieve", method: "POST", path: "/engagement/v3/callbacks/retrieve", body: idBody, opts: acme, want: 404},
			authCase{name: "other tenant cancel", method: "POST", path: "/engagement/v3/callbacks/cancel", body: idBody, opts: acme, want: 404},
			authCase{name: "other tenant service", method: "GET", path: "/engagement/v3/callbacks/availability/CB_Sales", opts: acme, want: 400, leak: echoed},
			authCase{name: "other tenant open-for", method: "GET", path: "/engagement/v3/callbacks/open-for/CB_Sales", opts: acme, want: 400, leak: echoed},
			authCase{name: "other tenant create on demo service", method: "POST", path: "/engagement/v3/callbacks/create",
				body: `{"serviceName":"CB_Sales","phoneNumber":"+12025550100"}`, opts: acme, want: 400, leak: echoed},
			authCase{name: "other tenant call-in group", method: "POST", path: "/engagement/v3/call-in/requests/create",
				body: `{"groupName":"technical_help"}`, opts: acme, want: 400, leak: echoed},
			// The internal ORS state route takes only the ORS client's token.
			authCase{name: "ORS state without token", method: "POST", path: "/engagement/internal/v1/callbacks/" + created.ID + "/state",
				body: `{"state":"COMPLETED","reason":"AGENT_CONNECTED"}`, want: 401},
			authCase{name: "ORS state with API key", method: "POST", path: "/engagement/internal/v1/callbacks/" + created.ID + "/state",
				body: `{"state":"COMPLETED","reason":"AGENT_CONNECTED"}`, opts: []reqOpt{header("x-api-key", s.Endpoints.APIKey)}, want: 401},
			authCase{name: "ORS state with forged token", method: "POST", path: "/engagement/internal/v1/callbacks/" + created.ID + "/state",
				body: `{"state":"COMPLETED","reason":"AGENT_CONNECTED"}`, opts: []reqOpt{bearer(garbage)}, want: 401},
			authCase{name: "ORS state with an agent token", method: "POST", path: "/engagement/internal/v1/callbacks/" + created.ID + "/state",
				body: `{"state":"COMPLETED","reason":"AGENT_CONNECTED"}`, opts: []reqOpt{bearer(demoAgent)}, want: 403},
		)
		run(t, cases)
		// The refused cancel and state reports changed nothing.
		if cb := retrieve(t, s, created.ID); cb.State == "COMPLETED" {
			t.Errorf("a refused request completed the demo callback: %+v", cb)
		}
	})

	t.Run("GAuth", func(t *testing.T) {
		tokenForm := "grant_type=client_credentials"
		cases := []authCase{
			{name: "token wrong secret", method: "POST", path: "/auth/v3/oauth/token", want: 401,
				opts: []reqOpt{basic("ges_client", "wrong"), header("Content-Type", "application/x-www-form-urlencoded")}, body: tokenForm},
			{name: "token unknown client", method: "POST", path: "/auth/v3/oauth/token", want: 401,
				opts: []reqOpt{basic("evil", "ges-secret"), header("Content-Type", "application/x-www-form-urlencoded")}, body: tokenForm},
			{name: "token other client's secret", method: "POST", path: "/auth/v3/oauth/token", want: 401,
				opts: []reqOpt{basic("ors_client", "ges-secret"), header("Content-Type", "application/x-www-form-urlencoded")}, body: tokenForm},
			{name: "token no client auth", method: "POST", path: "/auth/v3/oauth/token", want: 401,
				opts: []reqOpt{header("Content-Type", "application/x-www-form-urlencoded")}, body: tokenForm},
			{name: "password grant wrong password", method: "POST", path: "/auth/v3/oauth/token", want: 400,
				opts: []reqOpt{basic("cxlab-console", "console-secret"), header("Content-Type", "application/x-www-form-urlencoded")},
				body: "grant_type=password&username=agent2&password=wrong"},
			{name: "password grant other tenant's user through bound client", method: "POST", path: "/auth/v3/oauth/token", want: 400,
				opts: []reqOpt{basic("acme-client", "acme-secret"), header("Content-Type", "application/x-www-form-urlencoded")},
				body: "grant_type=password&username=agent2&password=agent123"},
		}
		for _, p := range userinfoRoutes {
			cases = append(cases,
				authCase{name: "userinfo without token", method: "GET", path: p, want: 401},
				authCase{name: "userinfo forged token", method: "GET", path: p, want: 401, opts: []reqOpt{bearer(garbage)}},
				authCase{name: "userinfo tampered token", method: "GET", path: p, want: 401, opts: []reqOpt{bearer(tamper(demoAgent))}},
			)
		}
		for _, r := range opsRoutes {
			cases = append(cases,
				authCase{name: "ops without credentials", method: r.method, path: r.path, body: r.body, want: 401},
				authCase{name: "ops wrong password", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{basic("ops", "ops1")}},
				authCase{name: "ops with a supervisor token", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{bearer(acmeBoss)}},
			)
		}
		env := "/environment/v3/contact-centers/" + demoCCID
		cases = append(cases,
			authCase{name: "environment list without token", method: "GET", path: "/environment/v3/contact-centers", want: 401},
			authCase{name: "environment get other tenant", method: "GET", path: env, want: 404, opts: []reqOpt{bearer(acmeBoss)}},
			authCase{name: "environment keys other tenant's supervisor", method: "GET", path: env + "/api-keys", want: 403,
				opts: []reqOpt{bearer(acmeBoss)}, leak: []string{s.Endpoints.APIKey}},
			authCase{name: "environment keys by an agent", method: "GET", path: env + "/api-keys", want: 403,
				opts: []reqOpt{bearer(demoAgent)}, leak: []string{s.Endpoints.APIKey}},
			authCase{name: "environment create key other tenant", method: "POST", path: env + "/api-keys", want: 403,
				body: `{"apiKey":"planted-key-000000000000"}`, opts: []reqOpt{bearer(acmeBoss)}},
			authCase{name: "environment delete key other tenant", method: "DELETE", path: env + "/api-keys/" + s.Endpoints.APIKey, want: 403,
				opts: []reqOpt{bearer(acmeBoss)}},
			authCase{name: "environment lookup other tenant's key", method: "GET", path: "/environment/v3/api-keys/" + s.Endpoints.APIKey,
				want: 404, opts: []reqOpt{bearer(acmeAgent)}},
		)
		run(t, cases)
		// The tenant-bound list shows only the caller's tenant.
		code, body := send(t, "GET", base+"/environment/v3/contact-centers", "", bearer(acmeAgent))
		if code != 200 || !strings.Contains(body, acmeCCID) || strings.Contains(body, demoCCID) {
			t.Errorf("acme's contact-center list: %d %.300s", code, body)
		}
		// The refused ops calls changed nothing: GAuth is up and ges_client keeps its secret.
		grant(t, s, "ges_client", "ges-secret", url.Values{"grant_type": {"client_credentials"}})
	})

	t.Run("GWS", func(t *testing.T) {
		var cases []authCase
		for _, r := range gwsRoutes {
			cases = append(cases,
				authCase{name: "no token", method: r.method, path: r.path, body: r.body, want: 401},
				authCase{name: "forged token", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{bearer(garbage)}},
				authCase{name: "tampered token", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{bearer(tamper(demoAgent))}},
				authCase{name: "API key instead of token", method: r.method, path: r.path, body: r.body, want: 401,
					opts: []reqOpt{header("x-api-key", s.Endpoints.APIKey)}},
				authCase{name: "other tenant's token", method: r.method, path: r.path, body: r.body, want: 403, opts: []reqOpt{bearer(acmeAgent)}},
			)
		}
		for _, p := range gwsV2Routes {
			cases = append(cases,
				authCase{name: "v2 no token", method: "GET", path: p, want: 401},
				authCase{name: "v2 forged token", method: "GET", path: p, want: 401, opts: []reqOpt{bearer(garbage)}},
			)
		}
		run(t, cases)
		// A tenant-bound token looking a demo user up by name finds nothing of the demo tenant.
		code, body := send(t, "GET", base+"/configuration/v3/objects/persons?user_name=agent2", "", bearer(acmeAgent))
		body = scrubIDs(body)
		if code >= 500 || strings.Contains(body, "Ann Lee") || strings.Contains(body, "7002") || strings.Contains(body, demoCCID) {
			t.Errorf("acme token reads demo's agent2: %d %.300s", code, body)
		}
	})

	t.Run("VoiceAndGateway", func(t *testing.T) {
		var cases []authCase
		for _, r := range voiceRoutes {
			cases = append(cases,
				authCase{name: "no token", method: r.method, path: r.path, body: r.body, want: 401},
				authCase{name: "forged token", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{bearer(garbage)}},
				authCase{name: "tampered token", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{bearer(tamper(demoAgent))}},
			)
		}
		cases = append(cases,
			authCase{name: "sign-in forged token", method: "POST", path: "/webrtc/sign_in", want: 401, opts: []reqOpt{bearer(garbage)}},
			authCase{name: "sign-in tampered token", method: "POST", path: "/webrtc/sign_in", want: 401, opts: []reqOpt{bearer(tamper(demoAgent))}},
			authCase{name: "sign-in wrong DN password", method: "POST", path: "/webrtc/sign_in", body: "7002:wrong", want: 401},
			authCase{name: "wait unknown session", method: "GET", path: "/webrtc/wait?id=forged", want: 404},
			authCase{name: "message unknown session", method: "POST", path: "/webrtc/message?from=forged&to=7002", body: "BYE", want: 404},
			authCase{name: "TURN credentials unknown session", method: "GET", path: "/webrtc/ice-servers?id=forged", want: 404,
				leak: []string{"credential", "turn:"}},
		)
		run(t, cases)
		// The other tenant's supervisor sees only its own agents; its agent none.
		code, body := send(t, "GET", base+"/voice/v1/agents", "", bearer(acmeBoss))
		body = scrubIDs(body)
		if code != 200 || strings.Contains(body, "7001") || strings.Contains(body, "7002") {
			t.Errorf("acme supervisor lists demo agents: %d %.300s", code, body)
		}
		if code, body := send(t, "GET", base+"/voice/v1/agents", "", bearer(acmeAgent)); code != http.StatusForbidden {
			t.Errorf("acme agent lists agents: %d %.300s", code, body)
		}
		// The ORS client's token is not a person: it has no agent.
		if code, body := send(t, "GET", base+"/voice/v1/agents/me", "", bearer(ors)); code == 200 && strings.Contains(body, "7001") {
			t.Errorf("client token reads an agent: %.300s", body)
		}
	})

	// Expired tokens and a revoked API key: move the lab clock past the token
	// lifetime and every cache's TTL, then try again.
	expiring := agentToken(t, s, "agent2", "agent123")
	expOrs := grant(t, s, "ors_client", "ors-secret", url.Values{"grant_type": {"client_credentials"}})
	if code, _ := send(t, "GET", base+"/auth/v3/userinfo", "", bearer(expiring)); code != 200 {
		t.Fatalf("fresh token refused by userinfo: %d", code)
	}
	if code, _ := send(t, "GET", base+"/configuration/v3/objects/dns", "", bearer(expiring)); code != 200 {
		t.Fatalf("fresh token refused by GWS: %d", code)
	}
	if code, body := send(t, "DELETE", base+"/environment/v3/contact-centers/"+acmeCCID+"/api-keys/"+acmeKey, "", basic("ops", "ops")); code != 200 {
		t.Fatalf("revoke acme key: %d %s", code, body)
	}
	s.Clock().Advance(accessTTL + time.Hour)
	t.Run("Expired", func(t *testing.T) {
		var cases []authCase
		for _, p := range userinfoRoutes {
			cases = append(cases, authCase{name: "expired userinfo", method: "GET", path: p, want: 401, opts: []reqOpt{bearer(expiring)}})
		}
		for _, r := range gwsRoutes {
			cases = append(cases, authCase{name: "expired GWS", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{bearer(expiring)}})
		}
		for _, p := range gwsV2Routes {
			cases = append(cases, authCase{name: "expired GWS v2", method: "GET", path: p, want: 401, opts: []reqOpt{bearer(expiring)}})
		}
		for _, r := range voiceRoutes {
			cases = append(cases, authCase{name: "expired Voice", method: r.method, path: r.path, body: r.body, want: 401, opts: []reqOpt{bearer(expiring)}})
		}
		for _, r := range gesRoutes {
			cases = append(cases, authCase{name: "revoked API key", method: r.method, path: r.path, body: r.body, want: 401,
				opts: []reqOpt{header("x-api-key", acmeKey)}})
		}
		cases = append(cases,
			authCase{name: "expired gateway sign-in", method: "POST", path: "/webrtc/sign_in", want: 401, opts: []reqOpt{bearer(expiring)}},
			authCase{name: "expired environment list", method: "GET", path: "/environment/v3/contact-centers", want: 401, opts: []reqOpt{bearer(expiring)}},
			authCase{name: "expired ORS token", method: "POST", path: "/engagement/internal/v1/callbacks/" + created.ID + "/state",
				body: `{"state":"COMPLETED","reason":"AGENT_CONNECTED"}`, want: 401, opts: []reqOpt{bearer(expOrs)}},
		)
		run(t, cases)
	})
	t.Logf("%d refused requests checked", n)
}

// tamper flips one character of the JWT's payload, keeping its signature.
func tamper(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 || len(parts[1]) < 10 {
		return jwt + "x"
	}
	p := []byte(parts[1])
	i := len(p) / 2
	if p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	return parts[0] + "." + string(p) + "." + parts[2]
}

// TestSecurityConsoleControlsRefuseCrossSitePosts: the console's lab controls
// (clock, failure injection, reset) and the softphone's token exchange refuse
// a browser POST from another origin, and change nothing; the same POST from
// the console's own origin works.
func TestSecurityConsoleControlsRefuseCrossSitePosts(t *testing.T) {
	noLeaks(t)
	s := apptest.Start(t)
	form := header("Content-Type", "application/x-www-form-urlencoded")
	before := s.Clock().Now()
	for _, c := range []struct{ path, body string }{
		{"/console/clock", "advance=24h"},
		{"/console/faults", "name=gauth&on=1"},
		{"/console/reset", ""},
		{"/softphone/token", `{"code":"x","code_verifier":"y","redirect_uri":"http://evil.example/softphone/"}`},
	} {
		for _, o := range []string{"http://evil.example", "null", strings.Replace(s.URL, "http://", "https://", 1)} {
			code, body := send(t, "POST", s.URL+c.path, c.body, form, header("Origin", o))
			if code != http.StatusForbidden {
				t.Errorf("POST %s from origin %s: %d %.200s, want 403", c.path, o, code, body)
			}
		}
	}
	if got := s.Clock().Now().Sub(before); got > time.Hour {
		t.Fatalf("a refused cross-site POST moved the lab clock by %s", got)
	}
	// GAuth is not down: the refused fault injection did nothing.
	agentToken(t, s, "agent1", "agent123")
	// Same origin is accepted (so the refusals above are about the origin).
	if code, body := send(t, "POST", s.URL+"/console/clock", "advance=2h", form, header("Origin", s.URL)); code != http.StatusSeeOther {
		t.Fatalf("same-origin clock POST: %d %.200s", code, body)
	}
	if got := s.Clock().Now().Sub(before); got < 2*time.Hour {
		t.Fatalf("same-origin clock POST moved the clock by %s, want 2h", got)
	}
	// The GES UI needs a session: without one, reads go to the login and writes are refused.
	if code, _ := send(t, "GET", s.URL+"/ges/callbacks", ""); code != http.StatusFound {
		t.Errorf("GES UI list without session: %d, want 302 to login", code)
	}
	for _, p := range []string{"/ges/callbacks/create", "/ges/callbacks/cancel", "/ges/logout"} {
		if code, _ := send(t, "POST", s.URL+p, "csrf=x", form, header("Origin", s.URL)); code != http.StatusUnauthorized {
			t.Errorf("POST %s without session: %d, want 401", p, code)
		}
	}
}

// TestSecurityConsoleRefusesRebindedHost: a page on another site whose name
// resolves to 127.0.0.1 (DNS rebinding) sends Origin and Host of its own
// name. Nothing on a loopback appliance answers it: not the console's
// controls, not the admin APIs (whose ops:ops credentials are public), not
// the console page (which shows the TURN secret).
func TestSecurityConsoleRefusesRebindedHost(t *testing.T) {
	s := apptest.Start(t)
	u, _ := url.Parse(s.URL)
	host := "rebind.example:" + u.Port()
	rebound := func(r *http.Request) { r.Host = host }
	before := s.Clock().Now()
	code, _ := send(t, "POST", s.URL+"/console/clock", "advance=24h",
		header("Content-Type", "application/x-www-form-urlencoded"), header("Origin", "http://"+host), rebound)
	if code != http.StatusMisdirectedRequest || s.Clock().Now().Sub(before) > time.Hour {
		t.Fatalf("rebinded POST: %d, clock moved %s", code, s.Clock().Now().Sub(before))
	}
	ops := func(r *http.Request) { r.SetBasicAuth("ops", "ops") }
	if code, _ := send(t, "PUT", s.URL+"/auth/v3/ops/emulator/failures", `{"mode":"down"}`,
		header("Content-Type", "application/json"), header("Origin", "http://"+host), ops, rebound); code != http.StatusMisdirectedRequest {
		t.Errorf("rebinded GAuth ops PUT: %d, want 421", code)
	}
	if code, body := send(t, "GET", s.URL+"/", "", rebound); code != http.StatusMisdirectedRequest || strings.Contains(body, s.Endpoints.TURNSecret) {
		t.Errorf("rebinded console GET: %d (TURN secret shown: %t), want 421", code, strings.Contains(body, s.Endpoints.TURNSecret))
	}
	if code, _ := send(t, "GET", s.URL+"/", ""); code != http.StatusOK {
		t.Errorf("console GET on the appliance's own address: %d, want 200", code)
	}
}

// TestSecurityPlainHTTPOnlyOnLoopback: plain HTTP on a non-loopback host is a
// configuration error naming the setting, from the command line and in Validate.
func TestSecurityPlainHTTPOnlyOnLoopback(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := cli.Main(t.Context(), []string{"up", "--ephemeral", "--http-host", "0.0.0.0", "--tls", "off"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "tls") || !strings.Contains(stderr.String(), "0.0.0.0") {
		t.Fatalf("cxlab up --http-host 0.0.0.0 --tls off: exit %d, stderr %q", code, stderr.String())
	}
	for _, host := range []string{"0.0.0.0", "192.0.2.10", "::"} {
		cfg := config.Default()
		cfg.Ephemeral = true
		cfg.HTTP.Host, cfg.HTTP.TLS = host, "off"
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "http.tls") {
			t.Errorf("host %s with tls off: %v, want an http.tls error", host, err)
		}
	}
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		cfg := config.Default()
		cfg.Ephemeral = true
		cfg.HTTP.Host, cfg.HTTP.TLS = host, "off"
		if err := cfg.Validate(); err != nil {
			t.Errorf("loopback %s with tls off refused: %v", host, err)
		}
	}
}

// TestTLSSelfSignedCertificateKeptInDataDir runs the appliance (as `cxlab up`
// does) with TLS on: it serves HTTPS with a self-signed certificate kept in
// <data-dir>/tls, a restart on the same data dir serves the same certificate,
// and the banner and endpoints file mark the demo credentials as not for
// production.
func TestTLSSelfSignedCertificateKeptInDataDir(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	// PostgreSQL runs as an unprivileged user when tests run as root; it must
	// traverse to its data dir (t.TempDir makes 0700 directories).
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	epFile := filepath.Join(t.TempDir(), "endpoints.json")
	type endpoints struct {
		Note   string `json:"note"`
		APIKey string `json:"api_key"`
		GAuth  string `json:"gauth_url"`
		Health string `json:"health_url"`
	}
	run := func() (*x509.Certificate, endpoints, string) {
		cfg := apptest.Config()
		cfg.Ephemeral, cfg.DataDir = false, dir
		cfg.HTTP.TLS = "on"
		cfg.EndpointsFile = epFile
		_ = os.Remove(epFile)
		ctx, cancel := context.WithCancel(context.Background())
		banner := &syncbuf.Buffer{}
		done := make(chan error, 1)
		go func() { done <- appliance.Run(ctx, cfg, banner, io.Discard) }()
		defer func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stop: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("appliance did not stop within 30s")
			}
		}()
		// Ready once the endpoints file exists and the banner ends with its warning.
		deadline := time.Now().Add(90 * time.Second)
		for !fileExists(epFile) || !strings.Contains(banner.String(), "WARNING") {
			select {
			case err := <-done:
				t.Fatalf("cxlab up with tls on ended: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("not ready after 90s; banner so far:\n%s", banner.String())
			}
		}
		var ep endpoints
		if err := json.Unmarshal([]byte(readFile(t, epFile)), &ep); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ep.Health, "https://") {
			t.Fatalf("health URL with tls on is %q", ep.Health)
		}
		// Plain HTTP on the TLS port is not served.
		if code, _ := plainGet(ep.Health); code == http.StatusOK {
			t.Errorf("plain HTTP answered 200 on the TLS port")
		}
		certPEM := readFile(t, filepath.Join(dir, "tls", "cert.pem"))
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(certPEM)) {
			t.Fatalf("no certificate in %s/tls/cert.pem", dir)
		}
		// A client trusting only the data dir's certificate verifies the server.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Get(ep.Health)
		if err != nil {
			t.Fatalf("HTTPS with the data dir's certificate: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
			t.Fatalf("HTTPS /healthz: %d", resp.StatusCode)
		}
		// The services call each other through the HTTPS base URL too: the
		// API key check (GES -> GAuth) and a token sign-in at the gateway
		// (gateway -> GAuth, GWS) work.
		hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		base := strings.TrimSuffix(ep.Health, "/healthz")
		at := time.Now().UTC().Add(30 * time.Hour).Format(time.RFC3339)
		if code, body := sendWith(t, hc, http.MethodPost, base+"/engagement/v3/callbacks/create",
			`{"serviceName":"CB_Support","phoneNumber":"+12025550103","desiredTime":"`+at+`"}`, header("x-api-key", ep.APIKey)); code != http.StatusOK {
			t.Errorf("create over HTTPS: %d %s", code, body)
		}
		form := url.Values{"grant_type": {"password"}, "username": {"agent1"}, "password": {"agent123"}}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_, body := sendWith(t, hc, http.MethodPost, base+"/auth/v3/oauth/token", form.Encode(),
			basic("cxlab-console", "console-secret"), header("Content-Type", "application/x-www-form-urlencoded"))
		_ = json.Unmarshal([]byte(body), &tok)
		if code, body := sendWith(t, hc, http.MethodPost, base+"/webrtc/sign_in", "", bearer(tok.AccessToken)); code != http.StatusOK {
			t.Errorf("gateway sign-in with a token over HTTPS: %d %s", code, body)
		} else if id := strings.TrimPrefix(strings.TrimSpace(body), "id="); id != "" {
			// Sign out, or the DN stays registered into the next run.
			sendWith(t, hc, http.MethodGet, base+"/webrtc/sign_out?id="+url.QueryEscape(id), "")
		}
		// The headless agent trusts it with --cacert, and says so when it is left out.
		agentSignsInOverTLS(t, base, filepath.Join(dir, "tls", "cert.pem"))
		// An ordinary client refuses it: it is self-signed.
		plain := &http.Transport{}
		defer plain.CloseIdleConnections()
		if resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: plain}).Get(ep.Health); err == nil {
			_ = resp.Body.Close()
			t.Errorf("a self-signed certificate was trusted by a default client")
		}
		return resp.TLS.PeerCertificates[0], ep, banner.String()
	}
	first, ep, banner := run()
	if !strings.Contains(strings.ToLower(banner), "not for production") || !strings.Contains(banner, "cxlab-demo-api-key") {
		t.Errorf("banner does not mark the demo credentials as not for production:\n%s", banner)
	}
	if !strings.Contains(strings.ToLower(ep.Note), "not for production") || ep.APIKey == "" || !strings.HasPrefix(ep.GAuth, "https://") {
		t.Errorf("endpoints file: note %q, api_key %q, gauth_url %q", ep.Note, ep.APIKey, ep.GAuth)
	}
	if !strings.Contains(strings.Join(first.Subject.Organization, " "), "not for production") {
		t.Errorf("certificate subject %v does not say it is a lab certificate", first.Subject)
	}
	second, _, _ := run()
	if !first.Equal(second) {
		t.Errorf("restart on the same data dir generated a new certificate (serial %s -> %s)", first.SerialNumber, second.SerialNumber)
	}
}

// agentSignsInOverTLS runs `cxlab agent` against the HTTPS base: with
// --cacert naming the appliance's certificate it signs in (stopped by a
// signal, it exits 0); without, it fails naming --cacert.
func agentSignsInOverTLS(t *testing.T, base, certPath string) {
	t.Helper()
	args := []string{"agent", "--url", base, "--user", "agent1", "--password", "agent123", "--ready=false"}
	var stderr bytes.Buffer
	if code := cli.Main(context.Background(), args, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "--cacert") {
		t.Errorf("cxlab agent without --cacert over HTTPS: exit %d, %q; want 1 and a hint naming --cacert", code, stderr.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncbuf.Buffer{}
	done := make(chan int, 1)
	go func() { done <- cli.Main(ctx, append(args, "--cacert", certPath), out, out) }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "signed in as DN") {
		select {
		case code := <-done:
			t.Fatalf("cxlab agent --cacert over HTTPS: exit %d\n%s", code, out.String())
		case <-deadline:
			t.Fatalf("cxlab agent --cacert over HTTPS: not signed in after 30s\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("cxlab agent stopped by a signal: exit %d\n%s", code, out.String())
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// plainGet sends a plain-HTTP request to an https URL's port.
func plainGet(u string) (int, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(strings.Replace(u, "https://", "http://", 1) + "/healthz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
