package gauth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/cxlab/cxlab/mocks/gauth"
)

func oauthErrCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func TestAuthorizationCodeWithPKCE(t *testing.T) {
	e := newEnv(t)
	redirect := "http://localhost:4321/ges/callback"
	cfg := e.oauthConfig("ges_client", "ges-secret", redirect)
	b := e.browser()

	verifier := oauth2.GenerateVerifier()
	resp, body := b.authorize(cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)), "agent2", "agent123")
	u, q := redirectParams(t, resp, false)
	if u.Host != "localhost:4321" || u.Path != "/ges/callback" || q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("redirect %s (%s)", u, body)
	}
	tok, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if c := e.verify(tok.AccessToken, "ges_client"); c.UserName != "agent2" || c.DBID != 102 {
		t.Fatalf("claims = %+v", c)
	}
	if tok.RefreshToken == "" {
		t.Fatal("ges_client has refresh_token grant but got no refresh token")
	}

	// Reusing the code fails and revokes what it issued.
	if _, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); oauthErrCode(err) != "invalid_grant" {
		t.Fatalf("reused code: %v", err)
	}
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 401 {
		t.Fatalf("token of a replayed code still valid: %d", code)
	}

	// The browser is signed in now: the next authorization skips the login page.
	resp, err = b.hc.Get(cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, q = redirectParams(t, resp, false)
	// PKCE mismatch.
	if _, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErrCode(err) != "invalid_grant" {
		t.Fatalf("PKCE mismatch: %v", err)
	}

	// Plain PKCE, and a redirect_uri differing from the authorization request.
	plain := oauth2.GenerateVerifier()
	resp, _ = b.authorize(cfg.AuthCodeURL("st-3", oauth2.SetAuthURLParam("code_challenge", plain),
		oauth2.SetAuthURLParam("code_challenge_method", "plain")), "", "")
	_, q = redirectParams(t, resp, false)
	other := e.oauthConfig("ges_client", "ges-secret", "http://localhost:4321/ges/other")
	if _, err := other.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(plain)); oauthErrCode(err) != "invalid_grant" {
		t.Fatalf("redirect_uri mismatch at token: %v", err)
	}
	resp, _ = b.authorize(cfg.AuthCodeURL("st-4", oauth2.SetAuthURLParam("code_challenge", plain)), "", "")
	_, q = redirectParams(t, resp, false)
	if _, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(plain)); err != nil {
		t.Fatalf("plain PKCE: %v", err)
	}

	// The user's credentials as Basic authorization instead of the form:
	// 302 with a code at once (wrong ones: the sign-in page, 401).
	noRedirect := &http.Client{Transport: e.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		pass string
		want int
	}{{"agent123", http.StatusFound}, {"wrong", http.StatusUnauthorized}} {
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, cfg.AuthCodeURL("st-basic", oauth2.S256ChallengeOption(verifier)), nil)
		req.SetBasicAuth("agent2", tc.pass)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("authorize with Basic (password %q): %d, want %d", tc.pass, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusFound {
			_, q = redirectParams(t, resp, false)
			if tok, err := cfg.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err != nil || e.verify(tok.AccessToken, "ges_client").UserName != "agent2" {
				t.Fatalf("code of a Basic authorization: %v", err)
			}
		}
	}

	// An expired code.
	resp, _ = b.authorize(cfg.AuthCodeURL("st-5"), "", "")
	_, q = redirectParams(t, resp, false)
	e.clk.Advance(61 * time.Second)
	if _, err := cfg.Exchange(e.ctx, q.Get("code")); oauthErrCode(err) != "invalid_grant" {
		t.Fatalf("expired code: %v", err)
	}
}

func TestAuthorizeRejections(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	// Redirect URIs that are not registered are never redirected to.
	for _, ru := range []string{"https://evil.example/ges/cb", "http://127.0.0.1:9/not-ges/cb", "http://localhost:1/ges/cb#frag"} {
		cfg := e.oauthConfig("ges_client", "ges-secret", ru)
		resp, body := b.authorize(cfg.AuthCodeURL("s"), "agent1", "agent123")
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(body, "redirect_uri") {
			t.Fatalf("redirect_uri %s: %d %s", ru, resp.StatusCode, body)
		}
	}
	// Path entries match any loopback origin.
	for _, ru := range []string{"https://127.0.0.1:8443/ges/x", "http://[::1]:80/ges/y"} {
		cfg := e.oauthConfig("ges_client", "ges-secret", ru)
		resp, err := b.hc.Get(cfg.AuthCodeURL("s"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("loopback redirect %s: %d", ru, resp.StatusCode)
		}
	}
	// Unknown client: an error page, no redirect.
	resp, _ := b.authorize(e.oauthConfig("nope", "", "http://localhost/ges/cb").AuthCodeURL("s"), "", "")
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("unknown client: %d", resp.StatusCode)
	}
	// A grant the client lacks is reported to the redirect URI.
	ws := e.oauthConfig("webrtc-clientid", "webrtc-secret", "http://localhost:1/softphone")
	resp, _ = b.authorize(ws.AuthCodeURL("s9", oauth2.SetAuthURLParam("response_type", "token")), "", "")
	_, q := redirectParams(t, resp, true)
	if q.Get("error") != "unauthorized_client" || q.Get("state") != "s9" {
		t.Fatalf("implicit for webrtc-clientid: %v", q)
	}
	// Wrong password shows the page again with 401, no redirect.
	resp, body := b.authorize(ws.AuthCodeURL("s"), "agent1", "nope")
	if resp.StatusCode != 401 || !strings.Contains(body, "Wrong username or password") {
		t.Fatalf("bad login: %d", resp.StatusCode)
	}
	// A form posted without the page's CSRF cookie is refused.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Transport: b.hc.Transport}
	r, err := plain.PostForm(ws.AuthCodeURL("s"), url.Values{"username": {"agent1"}, "password": {"agent123"}, "csrf": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 400 {
		t.Fatalf("login without CSRF cookie: %d", r.StatusCode)
	}
}

func TestImplicitGrant(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig("cxlab-console", "console-secret", "http://127.0.0.1:5555/console/")
	resp, _ := e.browser().authorize(cfg.AuthCodeURL("imp", oauth2.SetAuthURLParam("response_type", "token")), `demo\supervisor`, "super123")
	_, v := redirectParams(t, resp, true)
	if v.Get("state") != "imp" || v.Get("token_type") != "bearer" || v.Get("expires_in") != "43200" {
		t.Fatalf("fragment = %v", v)
	}
	if c := e.verify(v.Get("access_token"), "cxlab-console"); c.UserName != "supervisor" {
		t.Fatalf("claims = %+v", c)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, id, secret string
		form             url.Values
		status           int
		code             string
	}{
		{"wrong secret", "ges_client", "nope", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"unknown client", "ghost", "x", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"no client auth", "", "", url.Values{"grant_type": {"client_credentials"}}, 401, "invalid_client"},
		{"grant not allowed", "webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {"password"}, "username": {"agent1"}, "password": {"agent123"}}, 400, "unauthorized_client"},
		{"unknown grant", "ges_client", "ges-secret", url.Values{"grant_type": {"magic"}}, 400, "unsupported_grant_type"},
		{"missing grant", "ges_client", "ges-secret", url.Values{}, 400, "invalid_request"},
		{"missing code", "ges_client", "ges-secret", url.Values{"grant_type": {"authorization_code"}}, 400, "invalid_request"},
		{"bogus code", "ges_client", "ges-secret", url.Values{"grant_type": {"authorization_code"}, "code": {"zzz"}}, 400, "invalid_grant"},
		{"bogus refresh", "ges_client", "ges-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"zzz"}}, 400, "invalid_grant"},
		{"exchange without type", "webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantTokenExchange}, "subject_token": {"x"}}, 400, "invalid_request"},
		{"bearer without assertion", "webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantJWTBearer}}, 400, "invalid_request"},
		{"bearer junk assertion", "webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantJWTBearer}, "assertion": {"a.b.c"}}, 400, "invalid_grant"},
	}
	for _, tc := range cases {
		code, hdr, m := e.postForm(tc.id, tc.secret, tc.form)
		if code != tc.status || m["error"] != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, code, m, tc.status, tc.code)
		}
		if tc.code == "invalid_client" && tc.id != "" && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: no Basic challenge", tc.name)
		}
	}
	if n := counter(t, e, "cxlab_gauth_token_errors_total", "invalid_client"); n != 3 {
		t.Errorf("invalid_client errors counted %v, want 3", n)
	}

	// client_secret in the form works too; both methods at once do not.
	code, _, m := e.postForm("", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {"ors_client"}, "client_secret": {"ors-secret"}})
	if code != 200 || m["access_token"] == nil {
		t.Fatalf("client_secret_post: %d %v", code, m)
	}
	code, _, m = e.postForm("ors_client", "ors-secret", url.Values{"grant_type": {"client_credentials"}, "client_secret": {"ors-secret"}})
	if code != 400 || m["error"] != "invalid_request" {
		t.Fatalf("two auth methods: %d %v", code, m)
	}

	// A JSON body is refused for its content type, not for a "missing" grant_type.
	code, _, b := e.do(http.MethodPost, "/auth/v3/oauth/token", map[string]string{"Content-Type": "application/json",
		"Authorization": "Basic b3JzX2NsaWVudDpvcnMtc2VjcmV0"}, strings.NewReader(`{"grant_type":"client_credentials"}`))
	if m := decode(t, b); code != 400 || m["error"] != "invalid_request" ||
		!strings.Contains(m["error_description"].(string), "application/x-www-form-urlencoded") {
		t.Errorf("JSON body: %d %s", code, b)
	}

	// Malformed, repeated and oversized bodies get the OAuth error shape.
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic b3JzX2NsaWVudDpvcnMtc2VjcmV0"}
	for _, tc := range []struct {
		body   string
		status int
	}{
		{"grant_type=%zz", 400},
		{"grant_type=client_credentials&grant_type=password", 400},
		{"grant_type=client_credentials&pad=" + strings.Repeat("a", 200<<10), 413},
	} {
		code, _, b := e.do(http.MethodPost, "/auth/v3/oauth/token", hdr, strings.NewReader(tc.body))
		if m := decode(t, b); code != tc.status || m["error"] != "invalid_request" {
			t.Errorf("body %.40q: %d %s", tc.body, code, b)
		}
	}

	// A wrong method gets 405 with Allow in the endpoint's own shape, and an
	// unknown path 404: OAuth errors under /oauth, the envelope elsewhere.
	code, h, b := e.do(http.MethodGet, "/auth/v3/oauth/token", nil, nil)
	if m := decode(t, b); code != 405 || m["error"] != "invalid_request" || h.Get("Allow") != "OPTIONS, POST" {
		t.Errorf("GET token: %d Allow %q %s", code, h.Get("Allow"), b)
	}
	code, _, b = e.do(http.MethodPut, "/environment/v3/contact-centers", nil, nil)
	if st, _ := decode(t, b)["status"].(map[string]any); code != 405 || st["code"] != float64(405) || !strings.Contains(fmt.Sprint(st["message"]), "GET, POST") {
		t.Errorf("PUT contact-centers: %d %s", code, b)
	}
	code, _, b = e.do(http.MethodGet, "/auth/v3/no-such-thing", nil, nil)
	if st, _ := decode(t, b)["status"].(map[string]any); code != 404 || st["code"] != float64(404) {
		t.Errorf("GET unknown path: %d %s", code, b)
	}
}

func TestExpiryRefreshRotationAndRevocation(t *testing.T) {
	e := newEnv(t)
	tok := e.password("agent3", "agent123")
	// Expired access token: userinfo refuses it, go-oidc too; refresh still works.
	e.clk.Advance(43201 * time.Second)
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 401 {
		t.Fatalf("expired token accepted: %d", code)
	}
	refresh := func(rt string) (int, map[string]any) {
		code, _, m := e.postForm("cxlab-console", "console-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		return code, m
	}
	code, m := refresh(tok.RefreshToken)
	if code != 200 || m["refresh_token"] == tok.RefreshToken || m["refresh_token"] == nil {
		t.Fatalf("refresh: %d %v", code, m)
	}
	newAccess, newRefresh := m["access_token"].(string), m["refresh_token"].(string)
	if c := e.verify(newAccess, "cxlab-console"); c.UserName != "agent3" {
		t.Fatalf("refreshed claims = %+v", c)
	}
	// Another client cannot use it.
	code, _, m = e.postForm("external_api_client", "external-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {newRefresh}})
	if code != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("refresh by another client: %d %v", code, m)
	}
	// Replaying the rotated refresh token, after the reuse grace, revokes the
	// whole session.
	e.clk.Advance(6 * time.Second)
	if code, m := refresh(tok.RefreshToken); code != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", code, m)
	}
	if code, _ := e.get("/auth/v3/userinfo", newAccess); code != 401 {
		t.Fatalf("session not revoked after refresh reuse: %d", code)
	}
	if code, _ := refresh(newRefresh); code != 400 {
		t.Fatalf("newest refresh token survived reuse detection: %d", code)
	}
}

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	a, b2 := e.password("agent4", "agent123"), e.password("agent4", "agent123")
	code, _, _ := e.do(http.MethodPost, "/auth/v3/sign-out", map[string]string{"Authorization": "Bearer " + a.AccessToken}, nil)
	if code != 200 {
		t.Fatalf("sign-out: %d", code)
	}
	if code, _ := e.get("/auth/v3/userinfo", a.AccessToken); code != 401 {
		t.Fatalf("signed-out token still valid: %d", code)
	}
	if code, _, _ := e.postForm("cxlab-console", "console-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}}); code != 400 {
		t.Fatalf("refresh after sign-out: %d", code)
	}
	if code, _ := e.get("/auth/v3/userinfo", b2.AccessToken); code != 200 {
		t.Fatalf("other session signed out too: %d", code)
	}
	c := e.password("agent4", "agent123")
	if code, _ := e.get("/auth/v3/sign-out?global=true", c.AccessToken); code != 200 {
		t.Fatalf("global sign-out: %d", code)
	}
	if code, _ := e.get("/auth/v3/userinfo", b2.AccessToken); code != 401 {
		t.Fatalf("global sign-out left a token: %d", code)
	}
	if code, _ := e.get("/auth/v3/sign-out", ""); code != 401 {
		t.Fatalf("anonymous sign-out: %d", code)
	}
}

func TestJWTBearerAndTokenExchange(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *gauth.Config) {
		c.TrustedIssuers = []gauth.TrustedIssuer{{Issuer: "https://idp.example", Key: &key.PublicKey}}
	})
	agent := e.password("agent1", "agent123")
	exchange := url.Values{"grant_type": {gauth.GrantTokenExchange}, "subject_token": {agent.AccessToken}, "subject_token_type": {gauth.TokenTypeAccessToken}}
	code, _, m := e.postForm("webrtc-clientid", "webrtc-secret", exchange)
	if code != 200 || m["issued_token_type"] != gauth.TokenTypeAccessToken {
		t.Fatalf("token exchange: %d %v", code, m)
	}
	if c := e.verify(m["access_token"].(string), "webrtc-clientid"); c.ClientID != "webrtc-clientid" || c.UserName != "agent1" || c.DBID != 101 {
		t.Fatalf("exchanged claims = %+v", c)
	}
	code, _, m = e.postForm("webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantJWTBearer}, "assertion": {agent.AccessToken}})
	if user, _ := m["user"].(map[string]any); code != 200 || user["cmeUserName"] != "agent1" {
		t.Fatalf("jwt-bearer with own token (the answer names the user, as Genesys' simulator does): %d %v", code, m)
	}
	// X-GWS-User JWTs are assertions too.
	_, hdr, _ := e.do(http.MethodGet, "/auth/v3/jwt-userinfo", map[string]string{"Authorization": "Bearer " + agent.AccessToken}, nil)
	if code, _, m := e.postForm("webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantJWTBearer}, "assertion": {hdr.Get("X-GWS-User")}}); code != 200 {
		t.Fatalf("jwt-bearer with X-GWS-User: %d %v", code, m)
	}

	sign := func(k *rsa.PrivateKey, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := e.clk.Now()
	good := jwt.MapClaims{"iss": "https://idp.example", "sub": `demo\agent2`, "aud": e.base + "/auth/v3", "exp": now.Add(time.Minute).Unix()}
	code, _, m = e.postForm("webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantJWTBearer}, "assertion": {sign(key, good)}})
	if code != 200 {
		t.Fatalf("trusted assertion: %d %v", code, m)
	}
	if c := e.verify(m["access_token"].(string), "webrtc-clientid"); c.UserName != "agent2" {
		t.Fatalf("asserted claims = %+v", c)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrongAud := jwt.MapClaims{"iss": "https://idp.example", "sub": `demo\agent2`, "aud": "someone-else", "exp": now.Add(time.Minute).Unix()}
	untrusted := jwt.MapClaims{"iss": "https://evil.example", "sub": `demo\agent2`, "aud": e.base + "/auth/v3", "exp": now.Add(time.Minute).Unix()}
	for name, a := range map[string]string{"forged signature": sign(other, good), "wrong audience": sign(key, wrongAud), "untrusted issuer": sign(key, untrusted)} {
		if code, _, m := e.postForm("webrtc-clientid", "webrtc-secret", url.Values{"grant_type": {gauth.GrantJWTBearer}, "assertion": {a}}); code != 400 || m["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v", name, code, m)
		}
	}
	// An outside JWT is not an access_token subject; a revoked subject is refused.
	exchange.Set("subject_token", sign(key, good))
	if code, _, _ := e.postForm("webrtc-clientid", "webrtc-secret", exchange); code != 400 {
		t.Fatalf("outside token as access_token subject: %d", code)
	}
	e.do(http.MethodPost, "/auth/v3/sign-out", map[string]string{"Authorization": "Bearer " + agent.AccessToken}, nil)
	exchange.Set("subject_token", agent.AccessToken)
	if code, _, m := e.postForm("webrtc-clientid", "webrtc-secret", exchange); code != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("revoked subject: %d %v", code, m)
	}
}

// refreshAs posts a refresh_token grant without calling t.Fatal, so it can
// run in goroutines.
func (e *env) refreshAs(id, secret, rt string) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.base+"/auth/v3/oauth/token",
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	err = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, err
}

// A refresh refused for another reason than reuse leaves the token alone, and
// two tabs refreshing with one token at once both get tokens; only a reuse
// after the grace is taken for a leak.
func TestRefreshRefusalsAndConcurrentTabs(t *testing.T) {
	e := newEnv(t)
	tok := e.password("agent3", "agent123")
	refresh := func(rt string) (int, map[string]any) {
		t.Helper()
		code, m, err := e.refreshAs("cxlab-console", "console-secret", rt)
		if err != nil {
			t.Fatal(err)
		}
		return code, m
	}
	code, m, err := e.refreshAs("external_api_client", "external-secret", tok.RefreshToken)
	if err != nil || code != 400 || m["error"] != "invalid_grant" || !strings.Contains(m["error_description"].(string), "another client") {
		t.Fatalf("refresh by another client: %d %v %v", code, m, err)
	}
	code, first := refresh(tok.RefreshToken)
	if code != 200 {
		t.Fatalf("owner's refresh after another client's attempt: %d %v", code, first)
	}
	if code, _ := e.get("/auth/v3/userinfo", first["access_token"].(string)); code != 200 {
		t.Fatalf("owner's new token: %d", code)
	}

	// Two tabs refresh with the same token at once.
	rt := first["refresh_token"].(string)
	var wg sync.WaitGroup
	var codes [2]int
	var tabs [2]map[string]any
	var errs [2]error
	for i := range 2 {
		wg.Go(func() { codes[i], tabs[i], errs[i] = e.refreshAs("cxlab-console", "console-secret", rt) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || codes[i] != 200 {
			t.Fatalf("tab %d: %d %v %v", i, codes[i], tabs[i], errs[i])
		}
	}
	if tabs[0]["access_token"] == tabs[1]["access_token"] || tabs[0]["refresh_token"] == tabs[1]["refresh_token"] {
		t.Fatal("the two tabs got the same tokens")
	}
	for i, access := range []any{first["access_token"], tabs[0]["access_token"], tabs[1]["access_token"]} {
		if code, _ := e.get("/auth/v3/userinfo", access.(string)); code != 200 {
			t.Fatalf("access token %d after concurrent refreshes: %d", i, code)
		}
	}
	// Each tab's new refresh token keeps working.
	if code, m := refresh(tabs[1]["refresh_token"].(string)); code != 200 {
		t.Fatalf("second tab's refresh token: %d %v", code, m)
	}

	// After the grace a reuse is a leak: the session goes, for every tab.
	e.clk.Advance(6 * time.Second)
	if code, m := refresh(rt); code != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("reuse after the grace: %d %v", code, m)
	}
	for i := range 2 {
		if code, _ := e.get("/auth/v3/userinfo", tabs[i]["access_token"].(string)); code != 401 {
			t.Fatalf("tab %d still signed in after reuse detection: %d", i, code)
		}
	}
	if code, _ := refresh(tabs[0]["refresh_token"].(string)); code != 400 {
		t.Fatalf("tab 0 refresh token survived reuse detection: %d", code)
	}
}

// userinfoJWT returns the X-GWS-User JWT of an access token.
func (e *env) userinfoJWT(access string) string {
	e.t.Helper()
	code, hdr, _ := e.do(http.MethodGet, "/auth/v3/jwt-userinfo", map[string]string{"Authorization": "Bearer " + access}, nil)
	if code != 200 || hdr.Get("X-GWS-User") == "" {
		e.t.Fatalf("jwt-userinfo: %d", code)
	}
	return hdr.Get("X-GWS-User")
}

// An X-GWS-User JWT is no way around a sign-out: once the session (or, with
// global, the user) is signed out, neither grant takes it.
func TestSignOutEndsUserinfoJWTs(t *testing.T) {
	e := newEnv(t)
	a, b := e.password("agent1", "agent123"), e.password("agent1", "agent123")
	ja, jb := e.userinfoJWT(a.AccessToken), e.userinfoJWT(b.AccessToken)
	grants := map[string]func(string) url.Values{
		"jwt-bearer": func(j string) url.Values {
			return url.Values{"grant_type": {gauth.GrantJWTBearer}, "assertion": {j}}
		},
		"token exchange": func(j string) url.Values {
			return url.Values{"grant_type": {gauth.GrantTokenExchange}, "subject_token": {j}, "subject_token_type": {gauth.TokenTypeJWT}}
		},
	}
	expect := func(stage, j string, status int) {
		t.Helper()
		for name, form := range grants {
			code, _, m := e.postForm("webrtc-clientid", "webrtc-secret", form(j))
			if code != status || (status == 400 && m["error"] != "invalid_grant") {
				t.Fatalf("%s: %s: %d %v, want %d", stage, name, code, m, status)
			}
		}
	}
	expect("before sign-out", ja, 200)
	expect("before sign-out", jb, 200)

	if code, _, _ := e.do(http.MethodPost, "/auth/v3/sign-out", map[string]string{"Authorization": "Bearer " + a.AccessToken}, nil); code != 200 {
		t.Fatalf("sign-out: %d", code)
	}
	expect("session signed out", ja, 400)
	expect("other session", jb, 200)

	if code, _, _ := e.do(http.MethodPost, "/auth/v3/sign-out?global=true", map[string]string{"Authorization": "Bearer " + b.AccessToken}, nil); code != 200 {
		t.Fatalf("global sign-out: %d", code)
	}
	expect("global sign-out", jb, 400)
	expect("global sign-out, again", jb, 400)
}

// A code issued before its browser session signed out cannot be redeemed.
func TestCodeOfSignedOutSession(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig("ges_client", "ges-secret", "http://localhost:4321/ges/callback")
	b := e.browser()
	code := func(state string) string {
		t.Helper()
		resp, _ := b.authorize(cfg.AuthCodeURL(state), "agent2", "agent123")
		_, q := redirectParams(t, resp, false)
		return q.Get("code")
	}

	// The browser signs out (login cookie) before the app redeems the code.
	c1 := code("s1")
	resp, err := b.hc.Get(e.base + "/auth/v3/sign-out")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("browser sign-out: %d", resp.StatusCode)
	}
	if _, err := cfg.Exchange(e.ctx, c1); oauthErrCode(err) != "invalid_grant" {
		t.Fatalf("code of a signed-out session: %v", err)
	}

	// A global sign-out from elsewhere ends the codes of every session.
	c2 := code("s2")
	other := e.password("agent2", "agent123")
	if code, _, _ := e.do(http.MethodPost, "/auth/v3/sign-out?global=true", map[string]string{"Authorization": "Bearer " + other.AccessToken}, nil); code != 200 {
		t.Fatalf("global sign-out: %d", code)
	}
	if _, err := cfg.Exchange(e.ctx, c2); oauthErrCode(err) != "invalid_grant" {
		t.Fatalf("code after global sign-out: %v", err)
	}

	// A code of a live session still works.
	if _, err := cfg.Exchange(e.ctx, code("s3")); err != nil {
		t.Fatalf("code of a live session: %v", err)
	}
}

// sign-in and sign-out redirect only to paths of this server or to loopback
// URLs (an app under development), and check redirectUri before they act.
func TestSignInAndSignOutRedirects(t *testing.T) {
	e := newEnv(t)
	bad := []string{"/\t/evil.example/phish", "/\n/evil.example", "/\r\n/evil.example", "//evil.example/x", "/\\evil.example",
		"\\/evil.example", "https://evil.example/", "http://localhost.evil.example/x", "http://user@evil.example/",
		"http://localhost:1/\t/x", "javascript:alert(1)", " /x", "/x y",
		"/\u00a0/evil.example", "/%2F/evil.example", "evil.example/x", "/x\x00"}
	sessionCookieSet := func(resp *http.Response) bool {
		for _, c := range resp.Cookies() {
			if c.Name == "GAUTH_SESSION" && c.Value != "" {
				return true
			}
		}
		return false
	}
	// A bare transport: http.Client would refuse to parse a bad Location
	// instead of showing it.
	rt := e.browser().hc.Transport
	send := func(req *http.Request) *http.Response {
		t.Helper()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	signIn := func(to string) *http.Response {
		t.Helper()
		form := url.Values{"username": {"agent1"}, "password": {"agent123"}, "redirectUri": {to}}
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, e.base+"/auth/v3/sign-in", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return send(req)
	}
	for _, to := range bad {
		if resp := signIn(to); resp.StatusCode != 400 || resp.Header.Get("Location") != "" || sessionCookieSet(resp) {
			t.Errorf("sign-in redirectUri %q: %d Location %q session cookie %v", to, resp.StatusCode, resp.Header.Get("Location"), sessionCookieSet(resp))
		}
	}
	if resp := signIn("/console/?tab=1"); resp.StatusCode != 302 || resp.Header.Get("Location") != "/console/?tab=1" || !sessionCookieSet(resp) {
		t.Fatalf("sign-in to a path: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, to := range []string{"http://localhost:3000/app?x=1", "https://127.0.0.1:8443/", "http://[::1]:5173/"} {
		if resp := signIn(to); resp.StatusCode != 302 || resp.Header.Get("Location") != to {
			t.Errorf("sign-in to an app on this machine %q: %d %q", to, resp.StatusCode, resp.Header.Get("Location"))
		}
	}

	tok := e.password("agent1", "agent123")
	signOut := func(to string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodGet, e.base+"/auth/v3/sign-out?"+url.Values{"redirectUri": {to}}.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		return send(req)
	}
	for _, to := range bad {
		if resp := signOut(to); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
			t.Errorf("sign-out redirectUri %q: %d Location %q", to, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 200 {
		t.Fatalf("a refused sign-out revoked the token: %d", code)
	}
	if resp := signOut("/console/"); resp.StatusCode != 302 || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("sign-out to a path: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 401 {
		t.Fatalf("token after sign-out: %d", code)
	}
}

// Basic client credentials work form-encoded (RFC 6749 §2.3.1) and raw (as
// Genesys' samples send them), also with "+" and "%" in the secret.
func TestBasicCredentialsRawOrEncoded(t *testing.T) {
	e := newEnv(t)
	for id, secret := range map[string]string{"plus-bot": "p+ss%2Fw0rd", "pct-bot": "50%off"} {
		body := `{"data":{"client_id":"` + id + `","client_secret":"` + secret + `","authorizedGrantTypes":["client_credentials"]}}`
		if code, _, b := e.do(http.MethodPost, "/auth/v3/ops/clients", opsAuth, strings.NewReader(body)); code != 200 {
			t.Fatalf("create %s: %d %s", id, code, b)
		}
		form := url.Values{"grant_type": {"client_credentials"}}
		if code, _, m := e.postForm(id, secret, form); code != 200 {
			t.Errorf("%s raw Basic: %d %v", id, code, m)
		}
		if code, _, m := e.postForm(url.QueryEscape(id), url.QueryEscape(secret), form); code != 200 {
			t.Errorf("%s form-encoded Basic: %d %v", id, code, m)
		}
		if code, _, m := e.postForm(id, secret+"x", form); code != 401 || m["error"] != "invalid_client" {
			t.Errorf("%s wrong secret: %d %v", id, code, m)
		}
	}
}
