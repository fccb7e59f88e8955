package gauth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/url"
	"strings"
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
	// Replaying the rotated refresh token revokes the whole session.
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
	if code != 200 {
		t.Fatalf("jwt-bearer with own token: %d %v", code, m)
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
