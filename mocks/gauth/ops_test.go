package gauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/cxlab/cxlab/mocks/gauth"
	"github.com/cxlab/cxlab/mocks/tenant"
)

var opsAuth = map[string]string{"Authorization": "Basic b3BzOm9wcw==", "Content-Type": "application/json"} // ops:ops

func (e *env) serviceToken(id, secret string) string {
	e.t.Helper()
	tok, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.base + "/auth/v3/oauth/token"}).Token(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok.AccessToken
}

func TestEnvironmentAPIKeys(t *testing.T) {
	e := newEnv(t)
	ges := e.serviceToken("ges_client", "ges-secret")
	code, body := e.get("/environment/v3/api-keys/cxlab-demo-api-key-0000000000000000", ges)
	m := decode(t, body)
	data, _ := m["data"].(map[string]any)
	if code != 200 || m["status"].(map[string]any)["code"] != float64(0) || data["contactCenterId"] != demoCCID || data["apiKey"] != "cxlab-demo-api-key-0000000000000000" {
		t.Fatalf("lookup: %d %s", code, body)
	}
	if code, body := e.get("/environment/v3/api-keys/unknown-key-123", ges); code != 404 || decode(t, body)["status"].(map[string]any)["code"] != float64(404) {
		t.Fatalf("unknown key: %d %s", code, body)
	}
	if code, _ := e.get("/environment/v3/api-keys/cxlab-demo-api-key-0000000000000000", "not-a-token"); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	if code, _, _ := e.do(http.MethodGet, "/environment/v3/api-keys/cxlab-demo-api-key-0000000000000000", nil, nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	// A tenant-bound token cannot resolve another tenant's key.
	acme := e.serviceToken("acme-client", "acme-secret")
	if code, _ := e.get("/environment/v3/api-keys/cxlab-demo-api-key-0000000000000000", acme); code != 404 {
		t.Fatalf("acme resolving demo key: %d", code)
	}
	if code, _ := e.get("/environment/v3/api-keys/acme-api-key-1111111111111111", acme); code != 200 {
		t.Fatalf("acme resolving own key: %d", code)
	}

	// Create (ops), list, look up, delete.
	path := "/environment/v3/contact-centers/" + demoCCID + "/api-keys"
	code, _, body = e.do(http.MethodPost, path, opsAuth, strings.NewReader(`{"data":{"description":"ci"}}`))
	created, _ := decode(t, body)["data"].(map[string]any)
	key, _ := created["apiKey"].(string)
	if code != 201 || len(key) != 36 {
		t.Fatalf("create key: %d %s", code, body)
	}
	if code, _ := e.get("/environment/v3/api-keys/"+key, ges); code != 200 {
		t.Fatalf("new key lookup: %d", code)
	}
	if code, _, _ := e.do(http.MethodPost, path, map[string]string{"Authorization": "Bearer " + ges}, nil); code != 403 {
		t.Fatalf("service token creating keys: %d", code)
	}
	agent := e.password("agent1", "agent123").AccessToken
	if code, _ := e.get(path, agent); code != 403 {
		t.Fatalf("agent listing keys: %d", code)
	}
	sup := e.password("supervisor", "super123").AccessToken
	if code, body := e.get(path, sup); code != 200 || !strings.Contains(string(body), key) {
		t.Fatalf("supervisor listing keys: %d %s", code, body)
	}
	if code, _, _ := e.do(http.MethodDelete, path+"/"+key, opsAuth, nil); code != 200 {
		t.Fatalf("delete key: %d", code)
	}
	if code, _ := e.get("/environment/v3/api-keys/"+key, ges); code != 404 {
		t.Fatalf("deleted key lookup: %d", code)
	}

	// Contact centers: create with ops; a bound token sees only its own.
	code, _, body = e.do(http.MethodPost, "/environment/v3/contact-centers", opsAuth, strings.NewReader(`{"data":{"domains":["t100"]}}`))
	if code != 201 || !strings.Contains(string(body), `"sipDomain":"t100.cxlab.local"`) {
		t.Fatalf("create contact center: %d %s", code, body)
	}
	if code, _, _ := e.do(http.MethodPost, "/environment/v3/contact-centers", map[string]string{"Authorization": "Bearer " + ges}, strings.NewReader(`{}`)); code != 401 {
		t.Fatalf("create contact center without ops: %d", code)
	}
	_, body = e.get("/environment/v3/contact-centers", acme)
	if s := string(body); !strings.Contains(s, acmeCCID) || strings.Contains(s, demoCCID) || strings.Contains(s, "t100") {
		t.Fatalf("acme sees: %s", s)
	}
	_, body = e.get("/environment/v3/contact-centers", ges)
	if s := string(body); !strings.Contains(s, acmeCCID) || !strings.Contains(s, demoCCID) || !strings.Contains(s, "t100") {
		t.Fatalf("ges sees: %s", s)
	}
}

func TestOpsControlSurface(t *testing.T) {
	e := newEnv(t)
	tok := e.password("agent1", "agent123")

	// Tokens list: metadata, never the token text.
	code, _, body := e.do(http.MethodGet, "/auth/v3/ops/tokens", opsAuth, nil)
	if code != 200 || !strings.Contains(string(body), `"userName":"agent1"`) || strings.Contains(string(body), tok.AccessToken) {
		t.Fatalf("ops tokens: %d %s", code, body)
	}
	if code, _, _ := e.do(http.MethodGet, "/auth/v3/ops/tokens", map[string]string{"Authorization": "Basic b3BzOndyb25n"}, nil); code != 401 {
		t.Fatalf("ops with wrong password: %d", code)
	}

	// Clients CRUD, then the new client works at the token endpoint.
	newClient := `{"data":{"client_id":"lab-bot","client_secret":"bot-secret","name":"bot","authorizedGrantTypes":["client_credentials"],
		"authorities":["ROLE_INTERNAL_CLIENT"],"contactCenterIds":["` + acmeCCID + `"]}}`
	if code, _, body := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(newClient)); code != 200 || strings.Contains(string(body), "bot-secret") {
		t.Fatalf("create client: %d %s", code, body)
	}
	if code, _, _ := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(newClient)); code != 409 {
		t.Fatalf("duplicate client: %d", code)
	}
	if c := e.verify(e.serviceToken("lab-bot", "bot-secret"), "lab-bot"); c.CCID != acmeCCID {
		t.Fatalf("lab-bot claims = %+v", c)
	}
	bad := []string{`{"data":{"client_id":"x"}}`, `{"data":{"client_id":"x","client_secret":"y","authorizedGrantTypes":["magic"]}}`, `{not json`}
	for _, b := range bad {
		if code, _, body := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(b)); code != 400 || !strings.Contains(string(body), `"code":400`) {
			t.Errorf("bad client %s: %d %s", b, code, body)
		}
	}
	// A contact center id that is no UUID, or names no contact center, is
	// said so (not PostgreSQL's invalid-syntax or foreign-key text).
	for id, want := range map[string]string{"nope": `contact center id \"nope\" is not a UUID`,
		"00000000-0000-4000-8000-000000000000": "contact center 00000000-0000-4000-8000-000000000000 does not exist"} {
		b := `{"data":{"client_id":"x","client_secret":"y","authorizedGrantTypes":["client_credentials"],"contactCenterIds":["` + id + `"]}}`
		code, _, body := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(b))
		if code != 400 || !strings.Contains(string(body), want) || strings.Contains(string(body), "SQLSTATE") {
			t.Errorf("client of contact center %s: %d %s, want 400 saying %s", id, code, body, want)
		}
	}
	huge := `{"data":{"client_id":"x","name":"` + strings.Repeat("a", 100<<10) + `"}}`
	if code, _, _ := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(huge)); code != 413 {
		t.Errorf("huge client body: %d", code)
	}
	if code, _, _ := e.do(http.MethodDelete, "/auth/v3/ops/clients/lab-bot", opsAuth, nil); code != 200 {
		t.Fatalf("delete client: %d", code)
	}
	if code, _, m := e.postForm("lab-bot", "bot-secret", url.Values{"grant_type": {"client_credentials"}}); code != 401 || m["error"] != "invalid_client" {
		t.Fatalf("deleted client: %d %v", code, m)
	}

	// Failure injection: down answers 503 everywhere but the control surface.
	put := func(body string) int {
		code, _, _ := e.do(http.MethodPut, "/auth/v3/ops/emulator/failures", opsAuth, strings.NewReader(body))
		return code
	}
	if put(`{"mode":"down"}`) != 200 {
		t.Fatal("set down")
	}
	// The OAuth endpoints keep the RFC 6749 error shape while down.
	if code, _, m := e.postForm("ges_client", "ges-secret", url.Values{"grant_type": {"client_credentials"}}); code != 503 ||
		m["error"] != "temporarily_unavailable" || m["error_description"] == nil || m["status"] != nil {
		t.Fatalf("token while down: %d %v", code, m)
	}
	if code, body := e.get("/auth/v3/userinfo", tok.AccessToken); code != 503 || decode(t, body)["error"] != "temporarily_unavailable" {
		t.Fatalf("userinfo while down: %d %s", code, body)
	}
	if code, _, body := e.do(http.MethodGet, "/environment/v3/contact-centers", opsAuth, nil); code != 503 || decode(t, body)["status"] == nil {
		t.Fatalf("environment while down keeps the envelope: %d %s", code, body)
	}
	if code, _, body := e.do(http.MethodGet, "/auth/v3/ops/emulator/failures", opsAuth, nil); code != 200 || !strings.Contains(string(body), `"mode":"down"`) {
		t.Fatalf("get failures: %d %s", code, body)
	}
	if put(`{"mode":"slow"}`) != 400 || put(`{"mode":"sideways"}`) != 400 || put(`{"mode":`) != 400 {
		t.Fatal("bad failure modes accepted")
	}
	if put(`{"data":{"mode":"slow","delayMs":20}}`) != 200 {
		t.Fatal("set slow")
	}
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 200 {
		t.Fatalf("userinfo while slow: %d", code)
	}
	if put(`{"mode":"none"}`) != 200 {
		t.Fatal("set none")
	}

	// Reset demo restores the seed (a deleted demo client comes back).
	e.do(http.MethodDelete, "/auth/v3/ops/clients/ors_client", opsAuth, nil)
	if code, _, _ := e.do(http.MethodPost, "/auth/v3/ops/emulator/reset-demo", opsAuth, nil); code != 200 {
		t.Fatalf("reset demo: %d", code)
	}
	e.serviceToken("ors_client", "ors-secret")
}

func TestTokensSurviveRestart(t *testing.T) {
	e := newEnv(t)
	tok := e.password("agent2", "agent123")
	_, body := e.get("/auth/v3/.well-known/jwks.json", "")
	e.start() // a new server instance on the same database
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 200 {
		t.Fatalf("token after restart: %d", code)
	}
	if _, again := e.get("/auth/v3/.well-known/jwks.json", ""); string(again) != string(body) {
		t.Fatalf("signing key changed across restart:\n%s\n%s", body, again)
	}
	e.verify(tok.AccessToken, "cxlab-console")
}

// Tokens expired for longer than PurgeAfter leave PostgreSQL; live ones (the
// fresh access token, the still valid refresh token) stay and keep working.
func TestPurgeExpiredTokens(t *testing.T) {
	e := newEnv(t)
	e.serviceToken("ges_client", "ges-secret")
	e.password("agent1", "agent123") // an access and a refresh token
	e.clk.Advance(3 * 24 * time.Hour)
	fresh := e.serviceToken("ges_client", "ges-secret")
	count := func() (access, refresh int) {
		t.Helper()
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE kind = 'access'),
			count(*) FILTER (WHERE kind = 'refresh') FROM gauth.tokens`).Scan(&access, &refresh); err != nil {
			t.Fatal(err)
		}
		return access, refresh
	}
	if a, r := count(); a != 3 || r != 1 {
		t.Fatalf("before the purge: %d access, %d refresh tokens", a, r)
	}
	n, err := e.srv.PurgeExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a, r := count(); n != 2 || a != 1 || r != 1 {
		t.Fatalf("purged %d rows, left %d access and %d refresh tokens; want 2 purged, the fresh access and the refresh token left", n, a, r)
	}
	if code, _ := e.get("/auth/v3/userinfo", fresh); code != 200 {
		t.Fatalf("userinfo with the fresh token after the purge = %d", code)
	}
}

// Deleting a person from the tenant directory (GWS's DELETE
// /configuration/v3/ops/contact-centers/<ccid>/users/<name>) or a client ends
// their tokens at once.
func TestDeletedSubjectsLoseTokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.store.PutUser(ctx, tenant.User{CCID: demoCCID, UserName: "temp1", Roles: []string{"agent"}, Enabled: true}, "temp123"); err != nil {
		t.Fatal(err)
	}
	tok := e.password("temp1", "temp123").AccessToken
	keep := e.password("agent1", "agent123").AccessToken
	jwtUser := e.userinfoJWT(tok)
	refused := func(who, token string) {
		t.Helper()
		for _, p := range []string{"/auth/v3/userinfo", "/auth/v3/openid/userinfo", "/auth/v3/jwt-userinfo"} {
			if code, _ := e.get(p, token); code != 401 {
				t.Errorf("%s: %s = %d, want 401", who, p, code)
			}
		}
		if code, _ := e.get("/auth/v3/ping", token); code != 403 {
			t.Errorf("%s: ping = %d, want 403", who, code)
		}
	}
	if err := e.store.DeleteUser(ctx, demoCCID, "temp1"); err != nil {
		t.Fatal(err)
	}
	refused("deleted user", tok)
	if code, _, m := e.postForm("webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantJWTBearer}, "assertion": {jwtUser}}); code != 400 || m["error"] != "invalid_grant" {
		t.Errorf("X-GWS-User of a deleted user: %d %v", code, m)
	}

	// A deleted client: its own tokens and the tokens it got for persons.
	body := `{"data":{"client_id":"lab-bot","client_secret":"bot-secret","authorizedGrantTypes":["client_credentials","password"]}}`
	if code, _, b := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(body)); code != 200 {
		t.Fatalf("create client: %d %s", code, b)
	}
	svc := e.serviceToken("lab-bot", "bot-secret")
	code, _, m := e.postForm("lab-bot", "bot-secret", url.Values{"grant_type": {"password"}, "username": {"agent1"}, "password": {"agent123"}})
	if code != 200 {
		t.Fatalf("password grant for lab-bot: %d %v", code, m)
	}
	person := m["access_token"].(string)
	if code, _, _ := e.do(http.MethodDelete, "/auth/v3/ops/clients/lab-bot", opsAuth, nil); code != 200 {
		t.Fatalf("delete client: %d", code)
	}
	refused("deleted client", svc)
	refused("person's token of a deleted client", person)
	if code, _ := e.get("/auth/v3/userinfo", keep); code != 200 {
		t.Fatalf("agent1's token of another client: %d", code)
	}
}

// Token lifetimes are checked against what the directory can hold, with a 400
// naming the field.
func TestOpsClientLifetimes(t *testing.T) {
	e := newEnv(t)
	put := func(field string, v int64) (int, string) {
		t.Helper()
		body := fmt.Sprintf(`{"data":{"client_id":"lab-bot","client_secret":"bot-secret","authorizedGrantTypes":["client_credentials"],%q:%d}}`, field, v)
		code, _, b := e.do(http.MethodPut, "/auth/v3/ops/clients/lab-bot", opsAuth, strings.NewReader(body))
		return code, string(b)
	}
	if code, _, b := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(`{"data":{"client_id":"lab-bot","client_secret":"bot-secret"}}`)); code != 200 {
		t.Fatalf("create client: %d %s", code, b)
	}
	for _, field := range []string{"accessTokenExpirationTimeout", "refreshTokenExpirationTimeout"} {
		for _, v := range []int64{2147483648, 9999999999, -1} {
			if code, body := put(field, v); code != 400 || !strings.Contains(body, field) || !strings.Contains(body, "2147483647") {
				t.Errorf("%s %d: %d %s", field, v, code, body)
			}
		}
		if code, body := put(field, 2147483647); code != 200 || !strings.Contains(body, fmt.Sprintf(`"%s":2147483647`, field)) {
			t.Errorf("%s at the maximum: %d %s", field, code, body)
		}
	}
}
