package gauth_test

import (
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// inFuzzCoordinator reports whether this process only coordinates `go test
// -fuzz` for target: the body then runs in worker processes, so the
// coordinator need not start its own PostgreSQL.
func inFuzzCoordinator(target string) bool {
	fz, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	if fz == nil || fz.Value.String() == "" || (w != nil && w.Value.String() == "true") {
		return false
	}
	ok, err := regexp.MatchString(fz.Value.String(), target)
	return err == nil && ok
}

// knownClients are the clients (demo seed and testdata/second.yaml) and their secrets.
var knownClients = map[string]string{
	"webrtc-clientid": "webrtc-secret", "ges_client": "ges-secret", "ors_client": "ors-secret",
	"cxlab-console": "console-secret", "external_api_client": "external-secret", "acme-client": "acme-secret",
}

// oauthErrors are the RFC 6749 §5.2 error codes.
var oauthErrors = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope"}

// FuzzTokenEndpoint posts arbitrary form bodies and Basic credentials to the
// real token endpoint: never a 5xx, every refusal is an RFC 6749 error, and a
// token is issued only to a client that proved its secret.
func FuzzTokenEndpoint(f *testing.F) {
	f.Add("grant_type=client_credentials", "ges_client", "ges-secret", true)
	f.Add("grant_type=client_credentials&client_id=ors_client&client_secret=ors-secret", "", "", false)
	f.Add("grant_type=password&username=agent1&password=agent123", "cxlab-console", "console-secret", true)
	f.Add("grant_type=password&username=demo%5Cagent2&password=agent123&scope=openid", "cxlab-console", "console-secret", true)
	f.Add("grant_type=password&username=agent1&password=wrong", "cxlab-console", "console-secret", true)
	f.Add("grant_type=client_credentials", "ges_client", "wrong-secret", true)
	f.Add("grant_type=client_credentials&client_id=ges_client&client_secret=ges-secret", "ges_client", "ges-secret", true)
	f.Add("grant_type=client_credentials&grant_type=password", "ges_client", "ges-secret", true)
	f.Add("grant_type=authorization_code&code=abc&redirect_uri=http%3A%2F%2Fx%2F&code_verifier=v", "cxlab-console", "console-secret", true)
	f.Add("grant_type=refresh_token&refresh_token=%zz", "cxlab-console", "console-secret", true)
	f.Add("grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer", "ges%5Fclient", "ges-secret", true)
	f.Add("grant_type=password&username=%FF&password=x", "cxlab-console", "console-secret", true)
	f.Add("grant_type=password&username=a%00b&password=x", "cxlab-console", "console-secret", true)
	f.Add("grant_type=password&username=demo%5C%FF&password=x", "cxlab-console", "console-secret", true)
	f.Add("grant_type=password&username=x&password=x&tenant=%FF", "cxlab-console", "console-secret", true)
	f.Add("grant_type=refresh_token&refresh_token=%FF", "cxlab-console", "console-secret", true)
	f.Add("grant_type=refresh_token&refresh_token=a%00", "cxlab-console", "console-secret", true)
	f.Add("grant_type=authorization_code&code=%FF&redirect_uri=http%3A%2F%2Fx%2F", "cxlab-console", "console-secret", true)
	f.Add("grant_type=authorization_code&code=a%00&redirect_uri=http%3A%2F%2Fx%2F", "cxlab-console", "console-secret", true)
	f.Add("grant_type=client_credentials&scope=%FF", "ges_client", "ges-secret", true)
	f.Add("grant_type=client_credentials", "%FF", "ges-secret", true)
	f.Add("grant_type=client_credentials", "a%00", "ges-secret", true)
	f.Add("", "", "", false)
	var h http.Handler
	if !inFuzzCoordinator(f.Name()) {
		e := newEnv(f)
		h = e.handler.Load()
	}
	f.Fuzz(func(t *testing.T, form, user, pass string, basic bool) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/auth/v3/oauth/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(user, pass)
		}
		res := httptest.NewRecorder()
		h.ServeHTTP(res, req)
		var body struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Error       string `json:"error"`
		}
		if err := json.Unmarshal(res.Body.Bytes(), &body); err != nil {
			t.Fatalf("%d: not JSON: %q", res.Code, res.Body.String())
		}
		if res.Code >= 500 {
			t.Fatalf("server error %d: %q", res.Code, res.Body.String())
		}
		if res.Code != http.StatusOK {
			if !slices.Contains(oauthErrors, body.Error) || body.AccessToken != "" {
				t.Fatalf("%d refusal %q is not an RFC 6749 error", res.Code, res.Body.String())
			}
			return
		}
		if body.AccessToken == "" || !strings.EqualFold(body.TokenType, "bearer") {
			t.Fatalf("200 without a bearer token: %q", res.Body.String())
		}
		// The token went to a client that presented its own secret: Basic
		// credentials count form-encoded or raw.
		proved := func(id, secret string) bool { want, ok := knownClients[id]; return ok && secret == want }
		if basic {
			id, err1 := url.QueryUnescape(user)
			secret, err2 := url.QueryUnescape(pass)
			decoded := err1 == nil && err2 == nil && proved(id, secret)
			if !decoded && !proved(user, pass) {
				t.Fatalf("token issued to Basic %q with secret %q", user, pass)
			}
		} else if v, _ := url.ParseQuery(form); !proved(v.Get("client_id"), v.Get("client_secret")) {
			t.Fatalf("token issued to %q with secret %q", v.Get("client_id"), v.Get("client_secret"))
		}
	})
}
