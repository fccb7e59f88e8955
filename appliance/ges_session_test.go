package appliance_test

import (
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
