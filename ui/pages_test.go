package ui

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var assetHash = regexp.MustCompile(`\?v=[0-9a-f]+`)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func newJar() *cookiejar.Jar {
	j, _ := cookiejar.New(nil)
	return j
}

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	// Asset hashes change with every script edit; the page shape is what matters here.
	got = assetHash.ReplaceAllString(got, "?v=HASH")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./ui -run %s -update): %v", t.Name(), err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file; rerun with -update if the change is intended\n--- got ---\n%s", name, got)
	}
}

// hasIDs fails for each element id missing from html.
func hasIDs(t *testing.T, html string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("page lacks #%s", id)
		}
	}
}

func TestSoftphonePage(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{})
	code, body, resp := get(t, ts.client(t), ts.URL+"/softphone/")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("content type %q", ct)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("cache-control %q", resp.Header.Get("Cache-Control"))
	}
	hasIDs(t, body, "login-user", "login-pass", "btn-login", "btn-ready", "btn-notready", "btn-answer", "btn-hangup",
		"btn-hold", "btn-mute", "call-state", "call-timer", "caller", "call-data", "mic-level", "speaker-level",
		"dtmf-1", "dtmf-star", "dtmf-hash", "error", "gw-state", "agent-state", "remote-audio")
	for _, want := range []string{`data-client-id="cxlab-console"`, `data-gateway="/webrtc"`, `data-dbfs="-100"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	golden(t, "softphone.html", body)
}

func TestCustomerPage(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{})
	code, body, _ := get(t, ts.client(t), ts.URL+"/customer/")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	hasIDs(t, body, "phone", "service", "btn-now", "btn-schedule", "slot", "cb-id", "cb-state", "btn-cancel", "ewt", "queue-status")
	for _, want := range []string{`data-api-key="cxlab-demo-api-key-0000000000000000"`, `value="+12025550100"`,
		`<option value="CB_Support" selected>`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	golden(t, "customer.html", body)
}

func TestRedirectsToTrailingSlash(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{})
	for _, p := range []string{"/softphone", "/customer", "/ges"} {
		code, _, resp := get(t, ts.client(t), ts.URL+p)
		if code != http.StatusMovedPermanently || resp.Header.Get("Location") != p+"/" {
			t.Errorf("%s: %d -> %q", p, code, resp.Header.Get("Location"))
		}
	}
}

func pkcePair(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestSoftphoneTokenExchange(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{})
	c := ts.client(t)
	redirect := ts.URL + "/softphone/"
	verifier := strings.Repeat("v", 50)
	post := func(body map[string]string, hdr map[string]string) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/softphone/token", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	code := ts.gauth.issueCode("agent1", "cxlab-console", redirect, pkcePair(verifier))
	st, out := post(map[string]string{"code": code, "code_verifier": verifier, "redirect_uri": redirect}, map[string]string{"Origin": ts.URL})
	if st != http.StatusOK {
		t.Fatalf("exchange: %d %v", st, out)
	}
	tok, _ := out["access_token"].(string)
	if ts.gauth.user(tok) != "agent1" {
		t.Errorf("token %q does not belong to agent1", tok)
	}
	if _, leaked := out["client_secret"]; leaked || strings.Contains(mustJSON(out), "console-secret") {
		t.Error("the client secret reached the browser")
	}

	// The code is single use, and a wrong verifier is refused (PKCE).
	st, out = post(map[string]string{"code": code, "code_verifier": verifier, "redirect_uri": redirect}, nil)
	if st != http.StatusBadRequest {
		t.Errorf("reused code: %d %v", st, out)
	}
	code = ts.gauth.issueCode("agent1", "cxlab-console", redirect, pkcePair(verifier))
	st, out = post(map[string]string{"code": code, "code_verifier": strings.Repeat("x", 50), "redirect_uri": redirect}, nil)
	if st != http.StatusBadRequest || !strings.Contains(mustJSON(out), "PKCE") {
		t.Errorf("wrong verifier: %d %v", st, out)
	}
	st, _ = post(map[string]string{"code": code, "code_verifier": verifier, "redirect_uri": "http://evil.example/softphone/"}, nil)
	if st != http.StatusBadRequest {
		t.Errorf("foreign redirect_uri: %d", st)
	}
	st, _ = post(map[string]string{"code": code, "code_verifier": verifier, "redirect_uri": redirect}, map[string]string{"Origin": "http://evil.example"})
	if st != http.StatusForbidden {
		t.Errorf("cross-origin: %d", st)
	}
	st, _ = post(map[string]string{"code": "", "code_verifier": verifier}, nil)
	if st != http.StatusBadRequest {
		t.Errorf("missing code: %d", st)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/ui/static/[^"]+)"`)

// Every page stays under 300 kB counting its HTML and every embedded asset it
// loads, and assets are cacheable with the versioned link.
func TestPageWeightAndAssets(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsole(), Callbacks: newFakeCallbacks(&fakeClock{})})
	c := ts.client(t)
	for _, p := range []string{"/", "/softphone/", "/customer/"} {
		code, body, _ := get(t, c, ts.URL+p)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", p, code)
		}
		total := len(body)
		refs := assetRef.FindAllStringSubmatch(body, -1)
		if len(refs) < 2 {
			t.Errorf("%s links %d assets, want the style sheet and a script", p, len(refs))
		}
		for _, m := range refs {
			ref := strings.ReplaceAll(m[1], "&amp;", "&")
			code, asset, resp := get(t, c, ts.URL+ref)
			if code != http.StatusOK {
				t.Fatalf("%s: %d", ref, code)
			}
			if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
				t.Errorf("%s cache-control %q", ref, resp.Header.Get("Cache-Control"))
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") && !strings.Contains(ct, "css") {
				t.Errorf("%s content type %q", ref, ct)
			}
			total += len(asset)
		}
		if total > 300*1024 {
			t.Errorf("%s weighs %d bytes with its assets, over 300 kB", p, total)
		}
		if strings.Contains(body, "https://") {
			t.Errorf("%s references an external URL", p)
		}
	}
	if code, _, _ := get(t, c, ts.URL+"/ui/static/nope.js"); code != http.StatusNotFound {
		t.Errorf("unknown asset: %d", code)
	}
}
