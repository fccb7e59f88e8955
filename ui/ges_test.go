package ui

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// gesLogin runs the /ges/ sign-in: the UI redirects to GAuth's authorize with
// PKCE; the test plays the browser at GAuth (which has already checked the
// password) and returns to the callback. It returns the client and the
// session's CSRF token.
func gesLogin(t *testing.T, ts *testServer, user string) (*http.Client, string) {
	t.Helper()
	c := ts.client(t)
	code, _, resp := get(t, c, ts.URL+"/ges/?window=all")
	if code != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/ges/login?return=") {
		t.Fatalf("unauthenticated list: %d -> %q", code, resp.Header.Get("Location"))
	}
	code, _, resp = get(t, c, ts.URL+resp.Header.Get("Location"))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if code != http.StatusFound || err != nil || loc.Path != "/auth/v3/oauth/authorize" {
		t.Fatalf("login: %d -> %q", code, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("client_id") != "ges_client" || q.Get("code_challenge_method") != "S256" || q.Get("redirect_uri") != ts.URL+"/ges/callback" {
		t.Fatalf("authorize request %v", q)
	}
	authCode := ts.gauth.issueCode(user, "ges_client", q.Get("redirect_uri"), q.Get("code_challenge"))
	code, body, resp := get(t, c, ts.URL+"/ges/callback?"+url.Values{"code": {authCode}, "state": {q.Get("state")}}.Encode())
	if code != http.StatusFound || resp.Header.Get("Location") != "/ges/?window=all" {
		t.Fatalf("callback: %d -> %q %s", code, resp.Header.Get("Location"), body)
	}
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == gesCookie {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.Path != "/ges/" || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v", ck)
	}
	code, body, _ = get(t, c, ts.URL+"/ges/?window=all")
	if code != http.StatusOK {
		t.Fatalf("list after login: %d", code)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no csrf token in the page")
	}
	return c, m[1]
}

func newGESServer(t *testing.T) (*testServer, *fakeCallbacks) {
	t.Helper()
	clk := &fakeClock{now: t0}
	fc := newFakeCallbacks(clk)
	ts := newTestServer(t, Config{}, Deps{Callbacks: fc})
	fc.clk = ts.clk
	return ts, fc
}

func TestGESLoginAndIdleTimeout(t *testing.T) {
	ts, _ := newGESServer(t)
	c, _ := gesLogin(t, ts, "supervisor")
	_, body, _ := get(t, c, ts.URL+"/ges/")
	if !strings.Contains(body, `id="ges-user">supervisor<`) || !strings.Contains(body, "Supervisor") {
		t.Error("the account menu does not name the supervisor")
	}
	// Activity renews the session; 20 idle minutes end it (seed 004).
	ts.clk.Advance(19 * time.Minute)
	if code, _, _ := get(t, c, ts.URL+"/ges/"); code != http.StatusOK {
		t.Fatalf("after 19 idle minutes: %d", code)
	}
	ts.clk.Advance(19 * time.Minute)
	if code, _, _ := get(t, c, ts.URL+"/ges/"); code != http.StatusOK {
		t.Fatalf("19 minutes after the last request: %d", code)
	}
	ts.clk.Advance(20 * time.Minute)
	code, _, resp := get(t, c, ts.URL+"/ges/")
	if code != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/ges/login") {
		t.Fatalf("after 20 idle minutes: %d -> %q", code, resp.Header.Get("Location"))
	}
	// htmx refreshes get 401 with HX-Redirect instead of a redirect to follow.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/ges/callbacks", nil)
	req.Header.Set("HX-Request", "true")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") == "" {
		t.Errorf("htmx after expiry: %d %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
}

func TestGESLoginFailures(t *testing.T) {
	ts, _ := newGESServer(t)
	c := ts.client(t)
	code, body, _ := get(t, c, ts.URL+"/ges/callback?code=x&state=unknown")
	if code != http.StatusBadRequest || !strings.Contains(body, "Sign-in expired") {
		t.Errorf("unknown state: %d", code)
	}
	code, body, _ = get(t, c, ts.URL+"/ges/callback?error=access_denied&error_description=nope")
	if code != http.StatusForbidden || !strings.Contains(body, "access_denied: nope") {
		t.Errorf("error answer: %d", code)
	}
	_, _, resp := get(t, c, ts.URL+"/ges/login")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code, body, _ = get(t, c, ts.URL+"/ges/callback?"+url.Values{"code": {"forged"}, "state": {loc.Query().Get("state")}}.Encode())
	if code != http.StatusBadGateway || !strings.Contains(body, "invalid_grant") {
		t.Errorf("forged code: %d %s", code, body)
	}
	// An open redirect through ?return= is refused.
	_, _, resp = get(t, c, ts.URL+"/ges/login?return=//evil.example/")
	loc, _ = url.Parse(resp.Header.Get("Location"))
	pl, _ := ts.ui.pending.finish(loc.Query().Get("state"))
	if pl.returnTo != "/ges/" {
		t.Errorf("return to %q", pl.returnTo)
	}
}

func TestGESListPagingFiltersSort(t *testing.T) {
	ts, fc := newGESServer(t)
	for i := 0; i < 300; i++ {
		fc.add(StateScheduled, "CB_Support", "+1202555"+pad4(i), t0.Add(time.Duration(i)*time.Minute))
	}
	proc := fc.add(StateProcessing, "CB_Sales", "+12025559999", t0.Add(-time.Hour))
	old := fc.add(StateCompleted, "CB_Sales", "+12025558888", t0.Add(-10*24*time.Hour))
	c, _ := gesLogin(t, ts, "supervisor")

	_, body, _ := get(t, c, ts.URL+"/ges/?window=all")
	if n := strings.Count(body, `<tr data-id=`); n != 250 {
		t.Errorf("first page has %d rows, want 250", n)
	}
	if !strings.Contains(body, `data-total="302"`) || !strings.Contains(body, "Page 1 of 2") {
		t.Error("the banner or pager is wrong")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/?window=all&page=2")
	if n := strings.Count(body, `<tr data-id=`); n != 52 {
		t.Errorf("second page has %d rows, want 52", n)
	}
	// Today (in UTC, the browser zone here) holds the processing one and today's scheduled ones.
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=today")
	if strings.Contains(body, old) || !strings.Contains(body, proc) {
		t.Error("today's window is wrong")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=last14d")
	if !strings.Contains(body, old) || !strings.Contains(body, proc) || strings.Contains(body, "+12025550299") {
		t.Error("last 14 days window is wrong")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=all&state=PROCESSING&state=COMPLETED&service=CB_Sales")
	if strings.Count(body, `<tr data-id=`) != 2 {
		t.Errorf("state+service filter gave %d rows", strings.Count(body, `<tr data-id=`))
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=all&q=9999")
	if strings.Count(body, `<tr data-id=`) != 1 || !strings.Contains(body, proc) {
		t.Error("search by phone number")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=all&q="+proc[:8])
	if strings.Count(body, `<tr data-id=`) != 1 {
		t.Error("search by id prefix")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=all&sort=phoneNumber&desc=1")
	if i, j := strings.Index(body, "+12025559999"), strings.Index(body, "+12025558888"); i < 0 || j < 0 || i > j {
		t.Error("descending phone sort")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=custom&from=2026-05-28T15:30&to=2026-05-28T15:33")
	if strings.Count(body, `<tr data-id=`) != 3 {
		t.Errorf("custom window gave %d rows, want 3", strings.Count(body, `<tr data-id=`))
	}
	// A browser two hours east of UTC sees local times; UTC on demand.
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=all&tzo=-120&q=9999")
	if !strings.Contains(body, "2026-05-28 16:30:00<") {
		t.Error("local time rendering")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callbacks?window=all&tzo=-120&utc=1&q=9999")
	if !strings.Contains(body, "2026-05-28 14:30:00 UTC") {
		t.Error("UTC rendering")
	}
}

func pad4(i int) string {
	s := "0000" + itoa(i)
	return s[len(s)-4:]
}

func TestGESCancelRecreateCreateExport(t *testing.T) {
	ts, fc := newGESServer(t)
	queued := fc.add(StateQueued, "CB_Support", "+12025550100", t0)
	proc := fc.add(StateProcessing, "CB_Support", "+12025550101", t0)
	done := fc.add(StateCompleted, "CB_Sales", "+12025550102", t0)
	c, csrf := gesLogin(t, ts, "supervisor")

	// The row checkboxes are offered only for cancellable callbacks.
	_, body, _ := get(t, c, ts.URL+"/ges/")
	if !strings.Contains(body, `name="id" value="`+queued+`"`) || strings.Contains(body, `name="id" value="`+proc+`"`) {
		t.Error("checkboxes")
	}

	code, _, resp := postForm(t, c, ts.URL+"/ges/callbacks/cancel", url.Values{"csrf": {csrf}, "id": {queued, proc}, "return": {"window=all"}})
	if code != http.StatusSeeOther {
		t.Fatalf("cancel: %d", code)
	}
	if cb := fc.get(queued); cb.State != StateCompleted || cb.Reason != "CANCELLED_BY_ADMIN" {
		t.Errorf("queued callback after cancel: %s %s", cb.State, cb.Reason)
	}
	if cb := fc.get(proc); cb.State != StateProcessing {
		t.Errorf("a PROCESSING callback was cancelled")
	}
	_, body, _ = get(t, c, ts.URL+resp.Header.Get("Location"))
	if !strings.Contains(body, "1 callback(s) cancelled.") || !strings.Contains(body, "cannot be cancelled") ||
		!strings.Contains(body, "COMPLETED (CANCELLED_BY_ADMIN)") || !strings.Contains(body, `class="toast error"`) {
		t.Error("cancel outcome not shown")
	}

	// Only the UI's own (signed) messages show: a link cannot make the page
	// say anything.
	_, body, _ = get(t, c, ts.URL+"/ges/?msg="+url.QueryEscape("Your account is locked, call +1 555 0100")+"&err=1")
	if strings.Contains(body, "account is locked") || strings.Contains(body, `class="toast error"`) {
		t.Error("an unsigned ?msg= is shown as the page's message")
	}

	// Recreate "Scheduled" on a day without an open slot sends no slot: it is
	// refused, not taken for "at once".
	code, _, resp = postForm(t, c, ts.URL+"/ges/callbacks/"+done+"/recreate", url.Values{"csrf": {csrf}, "when": {"scheduled"}, "slot": {""}})
	if loc := resp.Header.Get("Location"); code != http.StatusSeeOther || !strings.Contains(loc, "pick+a+time+slot") || strings.Contains(loc, "created") {
		t.Errorf("recreate scheduled without a slot: %d %q", code, loc)
	}
	// Recreate a finished callback.
	code, _, resp = postForm(t, c, ts.URL+"/ges/callbacks/"+done+"/recreate", url.Values{"csrf": {csrf}})
	if code != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "created+from+"+done[:8]) {
		t.Errorf("recreate: %d %q", code, resp.Header.Get("Location"))
	}

	// Create immediate, then scheduled into a slot picked from availability.
	postForm(t, c, ts.URL+"/ges/callbacks/create", url.Values{"csrf": {csrf}, "type": {"immediate"}, "service": {"CB_Support"}, "phone": {"+12025550177"}})
	// Today's slots start with the one not yet begun (lab time 15:30 UTC).
	_, today, _ := get(t, c, ts.URL+"/ges/slots?service=CB_Support&date=2026-05-28&utc=1")
	if strings.Contains(today, "2026-05-28 15:00:00 UTC") || strings.Contains(today, "2026-05-28 00:00:00 UTC") || !strings.Contains(today, "2026-05-28 15:30:00 UTC") {
		t.Errorf("today's slot options, at 15:30 UTC:\n%s", today)
	}
	_, slots, _ := get(t, c, ts.URL+"/ges/slots?service=CB_Support&date=2026-05-29&utc=1")
	m := regexp.MustCompile(`<option value="([^"]+)">2026-05-29 10:00:00 UTC \(5 of 5 free\)`).FindStringSubmatch(slots)
	if m == nil {
		t.Fatalf("slot options: %s", slots)
	}
	_, _, resp = postForm(t, c, ts.URL+"/ges/callbacks/create", url.Values{"csrf": {csrf}, "type": {"scheduled"}, "service": {"CB_Support"},
		"phone": {"+12025550178"}, "slot": {m[1]}})
	if !strings.Contains(resp.Header.Get("Location"), "created") {
		t.Errorf("scheduled create: %q", resp.Header.Get("Location"))
	}
	_, slots, _ = get(t, c, ts.URL+"/ges/slots?service=CB_Support&date=2026-05-29&utc=1")
	if !strings.Contains(slots, "2026-05-29 10:00:00 UTC (4 of 5 free)") {
		t.Error("the booked slot did not lose a place")
	}
	// A number typed as people write it is taken in E.164.
	_, _, resp = postForm(t, c, ts.URL+"/ges/callbacks/create", url.Values{"csrf": {csrf}, "type": {"immediate"}, "service": {"CB_Support"}, "phone": {" +1 (202) 555-0179 "}})
	if !strings.Contains(resp.Header.Get("Location"), "created") {
		t.Errorf("create with a typed number: %q", resp.Header.Get("Location"))
	}
	if _, list, _ := get(t, c, ts.URL+"/ges/?window=all&q=0179"); !strings.Contains(list, "+12025550179") {
		t.Error("the typed number was not stored as +12025550179")
	}
	_, _, resp = postForm(t, c, ts.URL+"/ges/callbacks/create", url.Values{"csrf": {csrf}, "type": {"immediate"}, "service": {"CB_Support"}, "phone": {"12345"}})
	if !strings.Contains(resp.Header.Get("Location"), "There+was+an+Error+Creating+the+Callback") {
		t.Errorf("bad number: %q", resp.Header.Get("Location"))
	}

	// Export the filtered list.
	code, body, resp = get(t, c, ts.URL+"/ges/export.csv?window=all&state=COMPLETED")
	if code != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", code, resp.Header)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 3 {
		t.Fatalf("export rows %v %v", rows, err)
	}
	for _, r := range rows[1:] {
		if r[1] != StateCompleted {
			t.Errorf("exported a %s row", r[1])
		}
	}

	// Details page.
	code, body, _ = get(t, c, ts.URL+"/ges/callbacks/"+queued)
	if code != http.StatusOK || !strings.Contains(body, "CANCELLED_BY_ADMIN") || !strings.Contains(body, "acct") {
		t.Errorf("details: %d", code)
	}
	if code, body, _ = get(t, c, ts.URL+"/ges/callbacks/00000000-0000-4000-8000-000000000000"); code != http.StatusNotFound || !strings.Contains(body, "No Callbacks found") {
		t.Errorf("unknown details: %d", code)
	} else if !strings.Contains(body, `class="back" href="/ges/"`) || strings.Contains(body, "/ges/login") {
		t.Errorf("the signed-in supervisor's unknown-callback page does not lead back to the list:\n%s", body)
	}
}

func TestGESCSRFAndRoles(t *testing.T) {
	ts, fc := newGESServer(t)
	queued := fc.add(StateQueued, "CB_Support", "+12025550100", t0)
	c, _ := gesLogin(t, ts, "supervisor")
	code, _, _ := postForm(t, c, ts.URL+"/ges/callbacks/cancel", url.Values{"id": {queued}})
	if code != http.StatusForbidden || fc.get(queued).State != StateQueued {
		t.Errorf("cancel without csrf: %d", code)
	}

	// An agent (Callback Monitor) sees the list but can't change it.
	ca, csrf := gesLogin(t, ts, "agent1")
	_, body, _ := get(t, ca, ts.URL+"/ges/")
	if strings.Contains(body, "btn-cancel-selected") || strings.Contains(body, "create-dialog") || !strings.Contains(body, "Monitor") {
		t.Error("a monitor is offered write actions")
	}
	_, _, resp := postForm(t, ca, ts.URL+"/ges/callbacks/cancel", url.Values{"csrf": {csrf}, "id": {queued}})
	if fc.get(queued).State != StateQueued || !strings.Contains(resp.Header.Get("Location"), "only+view") {
		t.Errorf("a monitor cancelled: %q", resp.Header.Get("Location"))
	}
	if code, _, _ := get(t, ca, ts.URL+"/ges/export.csv"); code != http.StatusForbidden {
		t.Errorf("monitor export: %d", code)
	}

	// Log out ends the session.
	code, _, resp = postForm(t, ca, ts.URL+"/ges/logout", url.Values{"csrf": {csrf}})
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/ges/signed-out" {
		t.Errorf("logout: %d %q", code, resp.Header.Get("Location"))
	}
	if code, _, _ := get(t, ca, ts.URL+"/ges/"); code != http.StatusFound {
		t.Errorf("after logout: %d", code)
	}
}

func TestGESCallInAndQueues(t *testing.T) {
	ts, _ := newGESServer(t)
	c, _ := gesLogin(t, ts, "supervisor")
	_, body, _ := get(t, c, ts.URL+"/ges/callin")
	for _, want := range []string{"Time Created", "ANI", "Expiry Time", "Group Name", "technical_help", "+12025550142", "ACTIVE"} {
		if !strings.Contains(body, want) {
			t.Errorf("call-in tab lacks %q", want)
		}
	}
	_, body, _ = get(t, c, ts.URL+"/ges/callin?q=nomatch")
	if !strings.Contains(body, "No call-in requests") {
		t.Error("call-in search")
	}
	_, body, _ = get(t, c, ts.URL+"/ges/queues")
	for _, want := range []string{`data-service="CB_Sales"`, "America/New_York", "08:00–20:00", "closed", "2026-12-25",
		`class="capacity">10<`, `data-service="CB_Support"`, "00:00–24:00"} {
		if !strings.Contains(body, want) {
			t.Errorf("queues page lacks %q", want)
		}
	}
}

func TestGESWithoutEngagementService(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{})
	c, _ := func() (*http.Client, string) {
		c := ts.client(t)
		_, _, resp := get(t, c, ts.URL+"/ges/login")
		loc, _ := url.Parse(resp.Header.Get("Location"))
		q := loc.Query()
		code := ts.gauth.issueCode("supervisor", "ges_client", q.Get("redirect_uri"), q.Get("code_challenge"))
		get(t, c, ts.URL+"/ges/callback?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode())
		return c, ""
	}()
	if code, _, _ := get(t, c, ts.URL+"/ges/"); code != http.StatusServiceUnavailable {
		t.Errorf("status %d", code)
	}
}
