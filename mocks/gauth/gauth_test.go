package gauth_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenClaims are the contract-1 claims as a verifier sees them.
type tokenClaims struct {
	Sub         string   `json:"sub"`
	ClientID    string   `json:"client_id"`
	CCID        string   `json:"contact_center_id"`
	UserName    string   `json:"user_name"`
	DBID        int64    `json:"dbid"`
	Authorities []string `json:"authorities"`
	JTI         string   `json:"jti"`
	Exp         int64    `json:"exp"`
	Iat         int64    `json:"iat"`
	Scope       string   `json:"scope"`
}

// verify checks a token with go-oidc through discovery and the JWKS.
func (e *env) verify(raw, clientID string) tokenClaims {
	e.t.Helper()
	p, err := oidc.NewProvider(e.ctx, e.base+"/auth/v3")
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	tok, err := p.Verifier(&oidc.Config{ClientID: clientID, Now: e.clk.Now}).Verify(e.ctx, raw)
	if err != nil {
		e.t.Fatalf("go-oidc verify: %v", err)
	}
	var c tokenClaims
	if err := tok.Claims(&c); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	cc := clientcredentials.Config{ClientID: "ges_client", ClientSecret: "ges-secret", TokenURL: e.base + "/auth/v3/oauth/token"}
	tok, err := cc.Token(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "bearer" || tok.RefreshToken != "" || tok.Extra("scope") != "*" || tok.Extra("expires_in") == nil {
		t.Fatalf("token = %+v scope=%v", tok, tok.Extra("scope"))
	}
	c := e.verify(tok.AccessToken, "ges_client")
	if c.ClientID != "ges_client" || c.Sub != "ges_client" || c.CCID != "" || c.JTI == "" || c.Exp-c.Iat != 43200 {
		t.Fatalf("claims = %+v", c)
	}
	code, body := e.get("/auth/v3/userinfo", tok.AccessToken)
	if code != 200 || decode(t, body)["username"] != "ges_client" {
		t.Fatalf("userinfo of client token: %d %s", code, body)
	}
	// A tenant-bound client's tokens carry its contact center.
	acme, err := (&clientcredentials.Config{ClientID: "acme-client", ClientSecret: "acme-secret", TokenURL: cc.TokenURL}).Token(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := e.verify(acme.AccessToken, "acme-client"); c.CCID != acmeCCID {
		t.Fatalf("bound client claims = %+v", c)
	}
	if got := counter(t, e, "cxlab_gauth_tokens_issued_total", "client_credentials"); got != 2 {
		t.Fatalf("tokens issued metric = %v, want 2", got)
	}
}

// counter reads one labelled counter from the env's registry.
func counter(t *testing.T, e *env, name, label string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestPasswordGrantAndUserinfo(t *testing.T) {
	e := newEnv(t)
	tok := e.password("agent1", "agent123")
	if tok.RefreshToken == "" {
		t.Fatal("cxlab-console has refresh_token grant but got no refresh token")
	}
	if idt, _ := tok.Extra("id_token").(string); idt == "" {
		t.Fatal("scope openid gave no id_token")
	} else if c := e.verify(idt, "cxlab-console"); c.UserName != "agent1" {
		t.Fatalf("id token claims = %+v", c)
	}
	c := e.verify(tok.AccessToken, "cxlab-console")
	if c.UserName != "agent1" || c.DBID != 101 || c.CCID != demoCCID || c.ClientID != "cxlab-console" || len(c.Authorities) != 1 || c.Authorities[0] != "ROLE_AGENT" {
		t.Fatalf("claims = %+v", c)
	}
	code, body := e.get("/auth/v3/userinfo", tok.AccessToken)
	u := decode(t, body)
	if code != 200 || u["cmeUserName"] != "agent1" || u["loginName"] != "agent1" || u["contactCenterId"] != demoCCID ||
		u["dbid"] != float64(101) || u["environmentId"] != "cxlab-env" || u["username"] == "" {
		t.Fatalf("userinfo: %d %s", code, body)
	}
	code, body = e.get("/auth/v3/openid/userinfo", tok.AccessToken)
	if oi := decode(t, body); code != 200 || oi["given_name"] != "Ada" || oi["user_name"] != "agent1" || oi["contact_center_id"] != demoCCID {
		t.Fatalf("openid userinfo: %d %s", code, body)
	}
	code, hdr, _ := e.do(http.MethodGet, "/auth/v3/jwt-userinfo", map[string]string{"Authorization": "Bearer " + tok.AccessToken}, nil)
	if code != 200 || strings.Count(hdr.Get("X-GWS-User"), ".") != 2 {
		t.Fatalf("jwt-userinfo: %d %q", code, hdr.Get("X-GWS-User"))
	}
	if code, _ := e.get("/auth/v3/ping", tok.AccessToken); code != 200 {
		t.Fatalf("ping with token = %d", code)
	}
	if code, _ := e.get("/auth/v3/ping", "garbage"); code != 403 {
		t.Fatalf("ping without valid token = %d", code)
	}

	// acme also has an agent1: tenant\username picks the tenant, and the plain
	// name above signed in the demo agent1 because only its password matched.
	tok2 := e.password(`acme\agent1`, "acme123")
	if c := e.verify(tok2.AccessToken, "cxlab-console"); c.CCID != acmeCCID || c.DBID != 201 {
		t.Fatalf(`acme\agent1 claims = %+v`, c)
	}

	for _, bad := range [][2]string{{"agent1", "wrong"}, {"nobody", "agent123"}, {`demo\agent3`, "acme123"}} {
		code, _, m := e.postForm("cxlab-console", "console-secret", url.Values{"grant_type": {"password"}, "username": {bad[0]}, "password": {bad[1]}})
		if code != 400 || m["error"] != "invalid_grant" {
			t.Fatalf("password %v: %d %v", bad, code, m)
		}
	}
	code, _, m := e.postForm("cxlab-console", "console-secret", url.Values{"grant_type": {"password"}, "username": {"agent1"}})
	if code != 400 || m["error"] != "invalid_request" {
		t.Fatalf("missing password: %d %v", code, m)
	}
}

// GAuth supports the "*" scope (and "openid"); other scopes are ignored, not
// echoed, and the response names what was granted.
func TestScopes(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		client, secret string
		form           url.Values
		want           string
		idToken        bool
	}{
		{"ges_client", "ges-secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}}, "*", false},
		{"ges_client", "ges-secret", url.Values{"grant_type": {"client_credentials"}, "scope": {"*"}}, "*", false},
		{"cxlab-console", "console-secret", url.Values{"grant_type": {"password"}, "username": {"agent1"}, "password": {"agent123"},
			"scope": {"openid profile email"}}, "openid", true},
		{"cxlab-console", "console-secret", url.Values{"grant_type": {"password"}, "username": {"agent1"}, "password": {"agent123"},
			"scope": {"* openid offline_access"}}, "* openid", true},
	} {
		code, _, m := e.postForm(tc.client, tc.secret, tc.form)
		if code != 200 || m["scope"] != tc.want {
			t.Errorf("scope %q: %d %v, want scope %q", tc.form.Get("scope"), code, m, tc.want)
			continue
		}
		if c := e.verify(m["access_token"].(string), tc.client); c.Scope != tc.want {
			t.Errorf("scope %q: token claim %q, want %q", tc.form.Get("scope"), c.Scope, tc.want)
		}
		if _, has := m["id_token"]; has != tc.idToken {
			t.Errorf("scope %q: id_token present %v", tc.form.Get("scope"), has)
		}
	}
}

// With the lab clock moved ahead (the demo does), tokens still verify with a
// library on the wall clock (iat and nbf are not in its future), and they
// still expire on the lab's clock.
func TestTokensVerifyOutsideTheLabAfterAClockMove(t *testing.T) {
	e := newEnv(t)
	e.clk.Advance(13 * time.Hour)
	tok := e.password("agent1", "agent123")
	p, err := oidc.NewProvider(e.ctx, e.base+"/auth/v3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verifier(&oidc.Config{ClientID: "cxlab-console", Now: time.Now}).Verify(e.ctx, tok.AccessToken); err != nil {
		t.Fatalf("a wall-clock verifier refuses a token issued 13 h ahead on the lab clock: %v", err)
	}
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 200 {
		t.Fatalf("userinfo: %d", code)
	}
	e.clk.Advance(12*time.Hour + time.Minute) // past its lifetime on the lab's clock
	if code, _ := e.get("/auth/v3/userinfo", tok.AccessToken); code != 401 {
		t.Fatalf("userinfo after the token's lab lifetime: %d, want 401", code)
	}
}

// The JWT form of an access token (convert-token), and a user changing their
// own password (change-password), as the reference lists them.
func TestConvertTokenAndChangePassword(t *testing.T) {
	e := newEnv(t)
	tok := e.password("agent1", "agent123")
	bearer := map[string]string{"Authorization": "Bearer " + tok.AccessToken, "Content-Type": "application/json"}
	code, _, b := e.do(http.MethodGet, "/auth/v3/oauth/convert-token", bearer, nil)
	jwtTok, _ := decode(t, b)["jwtToken"].(string)
	if code != 200 || strings.Count(jwtTok, ".") != 2 {
		t.Fatalf("convert-token: %d %s", code, b)
	}
	if c := e.verify(jwtTok, "cxlab-console"); c.UserName != "agent1" {
		t.Fatalf("convert-token JWT claims %+v", c)
	}
	if code, _, _ := e.do(http.MethodGet, "/auth/v3/oauth/convert-token", nil, nil); code != 401 {
		t.Fatalf("convert-token without a token: %d", code)
	}

	change := func(h map[string]string, body string) (int, string) {
		code, _, b := e.do(http.MethodPost, "/auth/v3/change-password", h, strings.NewReader(body))
		st, _ := decode(t, b)["status"].(map[string]any)
		return code, fmt.Sprint(st["message"])
	}
	for body, want := range map[string]int{
		`{"data":{"userName":"agent1","oldPassword":"wrong","newPassword":"n3w"}}`:    400,
		`{"data":{"userName":"agent2","oldPassword":"agent123","newPassword":"n3w"}}`: 403,
		`{"data":{"userName":"agent1","oldPassword":"agent123"}}`:                     400,
		`{"data":`: 400,
	} {
		if code, msg := change(bearer, body); code != want {
			t.Errorf("change-password %s: %d %s, want %d", body, code, msg, want)
		}
	}
	if code, msg := change(bearer, `{"data":{"userName":"agent1","oldPassword":"agent123","newPassword":"n3w-pass"},"operationId":"op-1"}`); code != 200 {
		t.Fatalf("change-password: %d %s", code, msg)
	}
	if _, err := e.oauthConfig("cxlab-console", "console-secret", "").PasswordCredentialsToken(e.ctx, "agent1", "agent123"); err == nil {
		t.Fatal("the old password still signs in")
	}
	e.password("agent1", "n3w-pass")
	// The demo reset gives the demo users their documented passwords back.
	if code, _, b := e.do(http.MethodPost, "/auth/v3/ops/emulator/reset-demo", opsAuth, nil); code != 200 {
		t.Fatalf("reset-demo: %d %s", code, b)
	}
	e.password("agent1", "agent123")
}
