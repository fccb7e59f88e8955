package appliance_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/apptest"
)

// gesUser is a supervisor's browser without JavaScript: a cookie jar that
// follows redirects through /ges/ and GAuth.
type gesUser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newGESUser(t *testing.T, s *apptest.Stack) *gesUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &gesUser{t: t, base: s.URL, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 15 * time.Second}}
}

var (
	formAction = regexp.MustCompile(`<form[^>]*method="post"[^>]*action="([^"]*)"`)
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
)

// get fetches path and returns the page it ends on (after redirects).
func (g *gesUser) get(path string) (page, at string) {
	g.t.Helper()
	resp, err := g.hc.Get(g.base + path)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Request.URL.Path
}

// post submits a form of the page (the first one whose action has prefix)
// with its csrf field and the extra values.
func (g *gesUser) post(page, actionPrefix string, extra url.Values) (string, string) {
	g.t.Helper()
	action := ""
	for _, m := range formAction.FindAllStringSubmatch(page, -1) {
		if a := html.UnescapeString(m[1]); strings.HasPrefix(a, actionPrefix) {
			action = a
			break
		}
	}
	if action == "" {
		g.t.Fatalf("no form posting to %s in:\n%.600s", actionPrefix, page)
	}
	form := url.Values{}
	if m := csrfField.FindStringSubmatch(page); m != nil {
		form.Set("csrf", html.UnescapeString(m[1]))
	}
	for k, v := range extra {
		form[k] = v
	}
	resp, err := g.hc.PostForm(g.base+action, form)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.Request.URL.Path
}

// isSignInForm reports whether page is GAuth's form asking for a password.
func isSignInForm(page string) bool {
	return strings.Contains(page, `name="password"`) && strings.Contains(page, `name="username"`)
}

// signIn opens /ges/, signs in at GAuth as the demo supervisor and returns the list.
func (g *gesUser) signIn() string {
	g.t.Helper()
	page, _ := g.get("/ges/")
	if !isSignInForm(page) {
		g.t.Fatalf("/ges/ before signing in does not ask for a password:\n%.600s", page)
	}
	page, at := g.post(page, "/auth/v3/oauth/authorize", url.Values{"username": {"supervisor"}, "password": {"super123"}})
	if at != "/ges/" || !strings.Contains(page, `id="cb-table"`) {
		g.t.Fatalf("sign-in ended at %s, not the callback list:\n%.600s", at, page)
	}
	return page
}

// Log out of /ges/ means out: the next visit asks for the password again,
// instead of passing silently on GAuth's session cookie.
func TestGESLogOutAsksForThePasswordAgain(t *testing.T) {
	s := apptest.Start(t)
	g := newGESUser(t, s)
	list := g.signIn()
	if page, at := g.post(list, "/ges/logout", nil); at != "/ges/signed-out" {
		t.Fatalf("log out ended at %s:\n%.400s", at, page)
	}
	if page, at := g.get("/ges/"); !isSignInForm(page) {
		t.Fatalf("after Log out, /ges/ opened %s without asking for a password", at)
	}
	g.signIn() // and signing in again works
}

// After 20 minutes without a click the session is over (seed 004): the next
// visit asks for the password again.
func TestGESIdleSessionAsksForThePasswordAgain(t *testing.T) {
	s := apptest.Start(t)
	g := newGESUser(t, s)
	g.signIn()
	if _, at := g.get("/ges/?window=all"); at != "/ges/" {
		t.Fatalf("a live session's list ended at %s", at)
	}
	s.Clock().Advance(21 * time.Minute)
	if page, at := g.get("/ges/"); !isSignInForm(page) {
		t.Fatalf("after 21 idle minutes, /ges/ opened %s without asking for a password", at)
	}
	g.signIn()
}

// In a browser where an agent's softphone signed in to GAuth, /ges/ still
// asks for the supervisor's password (it opened as the agent), and logging
// out of /ges/ leaves the softphone's sign-in alone (it threw the softphone
// out: both were one GAuth session).
func TestGESSignInIsItsOwnBesideASoftphone(t *testing.T) {
	s := apptest.Start(t)
	g := newGESUser(t, s)
	// The softphone's sign-in: GAuth's form, then an authorization code
	// for the console client, exchanged for the agent's token.
	if resp, err := g.hc.PostForm(s.URL+"/auth/v3/sign-in", url.Values{"username": {"agent1"}, "password": {"agent123"}}); err != nil {
		t.Fatal(err)
	} else {
		_ = resp.Body.Close()
	}
	redirect := s.URL + "/softphone/"
	q := url.Values{"response_type": {"code"}, "client_id": {"cxlab-console"}, "redirect_uri": {redirect}, "scope": {"*"},
		"state": {"st"}, "code_challenge": {"verifier-verifier-verifier-verifier-verifier-1"}, "code_challenge_method": {"plain"}}
	noFollow := *g.hc
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(s.URL + "/auth/v3/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code for the signed-in agent: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
		"code_verifier": {"verifier-verifier-verifier-verifier-verifier-1"}, "client_id": {"cxlab-console"}, "client_secret": {"console-secret"}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	tr, err := http.PostForm(s.URL+"/auth/v3/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(tr.Body)
	_ = tr.Body.Close()
	if err := json.Unmarshal(body, &tok); err != nil || tr.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token for the agent: %d %s", tr.StatusCode, body)
	}
	agentOK := func() int {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/auth/v3/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}

	list := g.signIn() // fails unless /ges/ asks for a password
	if !strings.Contains(list, "supervisor") {
		t.Fatalf("/ges/ is not the supervisor's:\n%.400s", list)
	}
	if page, at := g.post(list, "/ges/logout", nil); at != "/ges/signed-out" {
		t.Fatalf("log out ended at %s:\n%.400s", at, page)
	}
	if code := agentOK(); code != http.StatusOK {
		t.Fatalf("the softphone's token after a /ges/ log out: userinfo %d, want 200", code)
	}
}
