package ui

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// hxGet is an htmx request from the page at current, with extra headers.
func hxGet(t *testing.T, c *http.Client, u, current string, headers ...string) (int, string, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Current-URL", current)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, c, req)
}

// The list's refresh every 5 s asks for the page shown (it used to ask for
// page 1, throwing the user back there), and does not keep an open tab's
// session alive; when the session has ended, signing in again leads back to
// the page, not to the list fragment.
func TestGESRefreshKeepsThePageAndIsNotActivity(t *testing.T) {
	ts, fc := newGESServer(t)
	for i := range 260 {
		fc.add(StateQueued, "CB_Support", "+1202555"+pad4(i), t0.Add(time.Duration(i)*time.Minute))
	}
	c, _ := gesLogin(t, ts, "supervisor")
	_, body, _ := get(t, c, ts.URL+"/ges/?window=all&page=2")
	if strings.Contains(body, "every 5s\" hx-push-url") || !strings.Contains(body, `id="list-poll"`) {
		t.Fatal("the refresh is not the list's own poller")
	}
	m := regexp.MustCompile(`id="list-poll"[^>]*hx-vals="([^"]+)"`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(m[1], "&#34;page&#34;: &#34;2&#34;") {
		t.Fatalf("the poller asks for %q, want page 2", m)
	}
	page := ts.URL + "/ges/?window=all&page=2"
	code, frag, _ := hxGet(t, c, ts.URL+"/ges/callbacks?window=all&page=2", page, gesPollHeader, "1")
	if code != http.StatusOK || !strings.Contains(frag, "Page 2 of 2") {
		t.Fatalf("the refresh of page 2: %d, page 2 shown: %v", code, strings.Contains(frag, "Page 2 of 2"))
	}

	// Refreshes alone for 20 minutes: the session ends.
	for range 4 {
		ts.clk.Advance(5 * time.Minute)
		hxGet(t, c, ts.URL+"/ges/callbacks?window=all&page=2", page, gesPollHeader, "1")
	}
	code, _, resp := hxGet(t, c, ts.URL+"/ges/callbacks?window=all&page=2", page, gesPollHeader, "1")
	if code != http.StatusUnauthorized {
		t.Fatalf("a refresh 20 minutes after the last click: %d, want 401 (the session ended)", code)
	}
	if got := resp.Header.Get("HX-Redirect"); got != "/ges/login?return="+url.QueryEscape("/ges/?window=all&page=2") {
		t.Errorf("HX-Redirect %q, want the login returning to the page", got)
	}
}

// Recreate makes a second callback to the customer: only a finished one may
// be recreated (the button showed only on those, but a POST did it for any).
func TestGESRecreateOnlyFinished(t *testing.T) {
	ts, fc := newGESServer(t)
	busy := fc.add(StateProcessing, "CB_Support", "+12025550100", t0)
	c, csrf := gesLogin(t, ts, "supervisor")
	before := len(fc.items)
	_, _, resp := postForm(t, c, ts.URL+"/ges/callbacks/"+busy+"/recreate", url.Values{"csrf": {csrf}})
	if len(fc.items) != before || !strings.Contains(resp.Header.Get("Location"), "only+a+COMPLETED") {
		t.Fatalf("recreate of a PROCESSING callback: %d callbacks (was %d), %q", len(fc.items), before, resp.Header.Get("Location"))
	}
}

// The form's CSRF token counts only in the form's body, not in the URL.
func TestGESCSRFTokenOnlyInTheBody(t *testing.T) {
	ts, fc := newGESServer(t)
	queued := fc.add(StateQueued, "CB_Support", "+12025550100", t0)
	c, csrf := gesLogin(t, ts, "supervisor")
	code, _, _ := postForm(t, c, ts.URL+"/ges/callbacks/cancel?"+url.Values{"csrf": {csrf}}.Encode(), url.Values{"id": {queued}})
	if code != http.StatusForbidden || fc.get(queued).State != StateQueued {
		t.Fatalf("cancel with the token in the query: %d, state %s", code, fc.get(queued).State)
	}
}

// An id sent twice is one callback: the message counts it once.
func TestGESCancelCountsEachCallbackOnce(t *testing.T) {
	ts, fc := newGESServer(t)
	a, b := fc.add(StateQueued, "CB_Support", "+12025550100", t0), fc.add(StateQueued, "CB_Support", "+12025550101", t0)
	c, csrf := gesLogin(t, ts, "supervisor")
	_, _, resp := postForm(t, c, ts.URL+"/ges/callbacks/cancel", url.Values{"csrf": {csrf}, "id": {a, a, b}})
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if msg := loc.Query().Get("msg"); msg != "2 callback(s) cancelled." {
		t.Fatalf("message %q, want 2 cancelled and no failure", msg)
	}
}

// Filters that cannot be used get a plain message, not a database error, and
// the export answers an error rather than an empty 200 file.
func TestGESUnusableFiltersAreExplained(t *testing.T) {
	ts, fc := newGESServer(t)
	fc.add(StateQueued, "CB_Support", "+12025550100", t0)
	c, _ := gesLogin(t, ts, "supervisor")
	for q, want := range map[string]string{
		"window=all&q=%FF%FE":                                     "not text",
		"window=all&service=%00":                                  "not text",
		"window=custom&from=garbage&to=2026-12-08T00:00":          "dates and times",
		"window=custom&from=2026-12-09T00:00&to=2026-12-08T00:00": "ends before it starts",
	} {
		_, body, _ := get(t, c, ts.URL+"/ges/?"+q)
		if !strings.Contains(body, want) || strings.Contains(body, "SQLSTATE") {
			t.Errorf("list with %s does not say %q", q, want)
		}
		if code, _, _ := get(t, c, ts.URL+"/ges/export.csv?"+q); code != http.StatusBadRequest {
			t.Errorf("export with %s: %d, want 400", q, code)
		}
	}
}

// A slot that has passed is refused; it became an immediate callback.
func TestGESCreateRefusesAPastSlot(t *testing.T) {
	ts, fc := newGESServer(t)
	c, csrf := gesLogin(t, ts, "supervisor")
	before := len(fc.items)
	_, _, resp := postForm(t, c, ts.URL+"/ges/callbacks/create", url.Values{"csrf": {csrf}, "type": {"scheduled"},
		"service": {"CB_Support"}, "phone": {"+12025550100"}, "slot": {"2020-01-01T03:00:00Z"}})
	if len(fc.items) != before || !strings.Contains(resp.Header.Get("Location"), "has+passed") {
		t.Fatalf("create in a past slot: %d callbacks (was %d), %q", len(fc.items), before, resp.Header.Get("Location"))
	}
}

// A failed create hands the user's input back to the form, open: it was reset
// to the demo number, and submitting again booked a callback to it.
func TestGESFailedCreateKeepsTheInput(t *testing.T) {
	ts, fc := newGESServer(t)
	c, csrf := gesLogin(t, ts, "supervisor")
	_, _, resp := postForm(t, c, ts.URL+"/ges/callbacks/create", url.Values{"csrf": {csrf}, "type": {"immediate"},
		"service": {"CB_Sales"}, "phone": {"12025557002"}, "return": {"window=all"}})
	if len(fc.items) != 0 {
		t.Fatal("a callback was created from a bad number")
	}
	_, body, _ := get(t, c, ts.URL+resp.Header.Get("Location"))
	for _, want := range []string{`id="create-dialog" open`, `id="create-phone" type="tel" value="12025557002"`,
		`<option value="CB_Sales" selected>`, "E.164"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page after the failed create lacks %s", want)
		}
	}
}
