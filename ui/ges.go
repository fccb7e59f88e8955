package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// gesPageSize is the real UI's page length (ges-engagement-api §5).
const gesPageSize = 250

// Time windows of the callback list.
const (
	windowToday   = "today"
	windowNext24h = "next24h"
	windowNext7d  = "next7d"
	windowLast14d = "last14d"
	windowCustom  = "custom"
	windowAll     = "all"
)

// timeWindows are the filter's choices in display order.
var timeWindows = []struct{ Key, Label string }{
	{windowToday, "Today"}, {windowNext24h, "Next 24 Hours"}, {windowNext7d, "Next 7 Days"},
	{windowLast14d, "Last 14 Days"}, {windowAll, "All"}, {windowCustom, "Custom"},
}

// sortable are the list's sortable columns (Callbacks.List keys).
var sortable = []struct{ Key, Label string }{
	{"id", "Callback ID"}, {"state", "State"}, {"desiredTime", "Desired Callback Time"},
	{"phoneNumber", "Phone Number"}, {"serviceName", "Service Name"}, {"updatedAt", "Time Updated"},
}

// listParams is the list view's state, carried in the query string so that
// links, refreshes and the export see the same filter.
type listParams struct {
	Window   string
	From, To string // custom window, datetime-local in the browser's zone
	TZOffset int    // browser's Date.getTimezoneOffset() in minutes
	UTC      bool   // show times in UTC
	States   []string
	Services []string
	Search   string
	Sort     string
	Desc     bool
	Page     int
	// Problem says what in the request could not be used (the list is
	// not read then).
	Problem string
}

func parseListParams(q url.Values) listParams {
	p := listParams{Window: q.Get("window"), From: q.Get("from"), To: q.Get("to"), Search: strings.TrimSpace(q.Get("q")),
		Sort: q.Get("sort"), Desc: q.Get("desc") == "1", UTC: q.Get("utc") == "1"}
	if p.Window == "" {
		p.Window = windowToday
	}
	p.TZOffset, _ = strconv.Atoi(q.Get("tzo"))
	if p.TZOffset < -14*60 || p.TZOffset > 14*60 {
		p.TZOffset = 0
	}
	for _, s := range q["state"] {
		if containsString(AllStates, s) {
			p.States = append(p.States, s)
		}
	}
	for _, s := range q["service"] {
		if s != "" {
			p.Services = append(p.Services, s)
		}
	}
	valid := false
	for _, s := range sortable {
		valid = valid || s.Key == p.Sort
	}
	if !valid {
		p.Sort = "desiredTime"
	}
	p.Page, _ = strconv.Atoi(q.Get("page"))
	if p.Page < 1 {
		p.Page = 1
	}
	for _, v := range append([]string{p.Search}, p.Services...) {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			p.Problem = "The search or service filter holds characters that are not text."
		}
	}
	if p.Window == windowCustom && p.Problem == "" {
		from, ferr := p.customBound(p.From)
		to, terr := p.customBound(p.To)
		switch {
		case (p.From != "" && ferr != nil) || (p.To != "" && terr != nil):
			p.Problem = "The custom window needs dates and times such as 2026-12-08T09:00."
		case ferr == nil && terr == nil && !to.After(from):
			p.Problem = "The custom window ends before it starts."
		}
	}
	return p
}

// values renders the params back to a query (page and sort overridable).
func (p listParams) values() url.Values {
	v := url.Values{"window": {p.Window}, "sort": {p.Sort}}
	if p.Window == windowCustom {
		v.Set("from", p.From)
		v.Set("to", p.To)
	}
	if p.TZOffset != 0 {
		v.Set("tzo", strconv.Itoa(p.TZOffset))
	}
	if p.UTC {
		v.Set("utc", "1")
	}
	if p.Desc {
		v.Set("desc", "1")
	}
	if p.Search != "" {
		v.Set("q", p.Search)
	}
	v["state"] = p.States
	v["service"] = p.Services
	if p.Page > 1 {
		v.Set("page", strconv.Itoa(p.Page))
	}
	return v
}

func (p listParams) withPage(n int) string {
	p.Page = n
	return p.values().Encode()
}

func (p listParams) withSort(key string) string {
	if p.Sort == key {
		p.Desc = !p.Desc
	} else {
		p.Sort, p.Desc = key, false
	}
	p.Page = 1
	return p.values().Encode()
}

// browserZone is the zone the user's browser reported.
func (p listParams) browserZone() *time.Location {
	if p.TZOffset == 0 {
		return time.UTC
	}
	return time.FixedZone("browser", -p.TZOffset*60)
}

// customBound reads a custom window's bound (a datetime-local input's value)
// in the browser's zone.
func (p listParams) customBound(v string) (time.Time, error) {
	return time.ParseInLocation("2006-01-02T15:04", v, p.browserZone())
}

// window resolves the time window to [from, to) at now.
func (p listParams) window(now time.Time) (time.Time, time.Time) {
	loc := p.browserZone()
	switch p.Window {
	case windowNext24h:
		return now, now.Add(24 * time.Hour)
	case windowNext7d:
		return now, now.Add(7 * 24 * time.Hour)
	case windowLast14d:
		return now.Add(-RetentionDays * 24 * time.Hour), now
	case windowAll:
		return time.Time{}, time.Time{}
	case windowCustom:
		from, _ := p.customBound(p.From) // zero (open) when unset; parseListParams refuses bad ones
		to, _ := p.customBound(p.To)
		return from, to
	default:
		l := now.In(loc)
		start := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
		return start, start.AddDate(0, 0, 1)
	}
}

func (p listParams) query(tenant string, now time.Time) CallbackQuery {
	from, to := p.window(now)
	return CallbackQuery{Tenant: tenant, From: from, To: to, States: p.States, Services: p.Services, Search: p.Search,
		SortBy: p.Sort, Desc: p.Desc, Page: p.Page, PageSize: gesPageSize}
}

// gesView is what the /ges/ pages render.
type gesView struct {
	Session  session
	Params   listParams
	Page     CallbackPage
	Services []ServiceInfo
	Flash    string
	FlashErr bool
	Now      time.Time
	Err      string
	// Kept is what a failed create's form held (see createKept).
	Kept map[string]string
}

func (u *UI) mountGES(e *echo.Echo) {
	e.GET("/ges", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/ges/") })
	e.GET("/ges/login", u.gesLogin)
	e.GET("/ges/callback", u.gesCallback)
	e.GET("/ges/signed-out", u.gesSignedOut)
	e.POST("/ges/logout", u.gesAuth(u.gesLogout))
	e.GET("/ges/", u.gesAuth(u.gesList))
	e.GET("/ges/callbacks", u.gesAuth(u.gesListPartial))
	e.GET("/ges/callbacks/:id", u.gesAuth(u.gesDetails))
	e.POST("/ges/callbacks/create", u.gesAuth(u.gesCreate))
	e.POST("/ges/callbacks/cancel", u.gesAuth(u.gesCancel))
	e.POST("/ges/callbacks/:id/recreate", u.gesAuth(u.gesRecreate))
	e.GET("/ges/slots", u.gesAuth(u.gesSlots))
	e.GET("/ges/export.csv", u.gesAuth(u.gesExport))
	e.GET("/ges/callin", u.gesAuth(u.gesCallIn))
	e.GET("/ges/queues", u.gesAuth(u.gesQueues))
}

type gesHandler func(c echo.Context, s session) error

// gesPollHeader marks the list's background refresh (see gesTable), which
// does not count as activity for the idle timeout.
const gesPollHeader = "X-Ges-Poll"

// gesAuth admits requests with a live session; others go to the login (or get
// 401 with HX-Redirect for htmx requests).
func (u *UI) gesAuth(h gesHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		ck, err := c.Cookie(gesCookie)
		var s session
		ok := false
		if err == nil {
			var expired *session
			s, ok, expired = u.sessions.touch(ck.Value, c.Request().Header.Get(gesPollHeader) == "")
			if expired != nil {
				u.signOutGAuth(*expired) // before the way to the sign-in is shown
			}
		}
		if !ok {
			login := "/ges/login?return=" + url.QueryEscape(c.Request().URL.RequestURI())
			if c.Request().Method != http.MethodGet {
				login = "/ges/login"
			}
			if c.Request().Header.Get("HX-Request") != "" {
				// Back to the page the fragment was for, not the fragment.
				if cur, err := url.Parse(c.Request().Header.Get("HX-Current-URL")); err == nil && strings.HasPrefix(cur.Path, "/ges/") {
					login = "/ges/login?return=" + url.QueryEscape(cur.RequestURI())
				}
				c.Response().Header().Set("HX-Redirect", login)
				return c.NoContent(http.StatusUnauthorized)
			}
			if c.Request().Method != http.MethodGet {
				return c.String(http.StatusUnauthorized, "your session has ended; sign in again at /ges/login")
			}
			return c.Redirect(http.StatusFound, login)
		}
		if c.Request().Method == http.MethodPost {
			// From the form's body only: a token in a URL leaks (logs, Referer).
			if !sameOrigin(c) || c.Request().PostFormValue("csrf") != s.csrf {
				return c.String(http.StatusForbidden, "the form is stale or was sent from another site; reload the page")
			}
		}
		if u.deps.Callbacks == nil && c.Path() != "/ges/logout" {
			return c.String(http.StatusServiceUnavailable, "the engagement service does not run in this process")
		}
		return h(c, s)
	}
}

// gesLogin starts the authorization-code flow (with PKCE) at GAuth.
func (u *UI) gesLogin(c echo.Context) error {
	ret := c.QueryParam("return")
	if !strings.HasPrefix(ret, "/ges/") || strings.HasPrefix(ret, "//") {
		ret = "/ges/"
	}
	state, challenge := u.pending.begin(ret)
	q := url.Values{"response_type": {"code"}, "client_id": {u.cfg.GESClientID}, "redirect_uri": {origin(c) + "/ges/callback"},
		"scope": {"*"}, "state": {state}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		// A supervisor's own sign-in, even in a browser where an agent's
		// softphone signed in to GAuth: one session each, so that logging
		// out here does not sign the softphone out.
		"prompt": {"login"}}
	noStore(c)
	return c.Redirect(http.StatusFound, "/auth/v3/oauth/authorize?"+q.Encode())
}

// gesCallback redeems the code, reads the user's tenant and opens a session.
func (u *UI) gesCallback(c echo.Context) error {
	if e := c.QueryParam("error"); e != "" {
		return render(c, http.StatusForbidden, gesMessage(u.chrome("Sign-in", "ges"), "Sign-in failed",
			e+": "+c.QueryParam("error_description"), true, false))
	}
	pl, ok := u.pending.finish(c.QueryParam("state"))
	if !ok {
		return render(c, http.StatusBadRequest, gesMessage(u.chrome("Sign-in", "ges"), "Sign-in expired",
			"The sign-in took too long or was already used. Start again.", true, false))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	base := u.gauthBase(c)
	tr, err := u.exchangeCode(ctx, base, u.cfg.GESClientID, u.cfg.GESClientSecret, c.QueryParam("code"), pl.verifier,
		origin(c)+"/ges/callback")
	if err != nil {
		u.log.Info("ges ui code exchange failed", "err", err)
		return render(c, http.StatusBadGateway, gesMessage(u.chrome("Sign-in", "ges"), "Sign-in failed", err.Error(), true, false))
	}
	info, err := u.fetchUserInfo(ctx, base, tr.AccessToken)
	if err != nil || info.ContactCenterID == "" {
		msg := "GAuth did not tell which contact center the user belongs to"
		if err != nil {
			msg = err.Error()
		}
		return render(c, http.StatusBadGateway, gesMessage(u.chrome("Sign-in", "ges"), "Sign-in failed", msg, true, false))
	}
	s := u.sessions.create(info.name(), info.ContactCenterID, tr.AccessToken, base, info.supervisor())
	c.SetCookie(&http.Cookie{Name: gesCookie, Value: s.id, Path: "/ges/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https"})
	return c.Redirect(http.StatusFound, pl.returnTo)
}

func (u *UI) gesLogout(c echo.Context, s session) error {
	if ended := u.sessions.drop(s.id); ended != nil {
		u.signOutGAuth(*ended)
	}
	c.SetCookie(&http.Cookie{Name: gesCookie, Value: "", Path: "/ges/", MaxAge: -1, HttpOnly: true})
	return c.Redirect(http.StatusSeeOther, "/ges/signed-out")
}

func (u *UI) gesSignedOut(c echo.Context) error {
	return render(c, http.StatusOK, gesMessage(u.chrome("Signed out", "ges"), "Signed out",
		"You have left the callback UI.", false, false))
}

func (u *UI) gesLoad(c echo.Context, s session) gesView {
	ctx := c.Request().Context()
	p := parseListParams(c.QueryParams())
	// Only the messages this UI produced (signed, see flashSig): a link could
	// otherwise show any text as the service's word.
	f := u.flashFrom(c.QueryParams())
	v := gesView{Session: s, Params: p, Now: u.clock.Now(), Flash: f.Text, FlashErr: f.Err, Kept: keptCreate(c.QueryParams())}
	if p.Problem != "" {
		v.Err = p.Problem
	} else if page, err := u.deps.Callbacks.List(ctx, p.query(s.tenant, v.Now)); err != nil {
		// The cause goes to the log; the user gets no database internals.
		u.log.Warn("list callbacks", "err", err)
		v.Err = "The callback list could not be read; try again, or narrow the filters."
	} else {
		v.Page = page
	}
	if svcs, err := u.deps.Callbacks.Services(ctx, s.tenant); err == nil {
		v.Services = svcs
	}
	return v
}

func (u *UI) gesList(c echo.Context, s session) error {
	return render(c, http.StatusOK, gesCallbacksPage(u.chrome("Callbacks", "ges", "htmx.min.js", "ges.js"), u.gesLoad(c, s)))
}

func (u *UI) gesListPartial(c echo.Context, s session) error {
	return render(c, http.StatusOK, gesTable(u.gesLoad(c, s)))
}

func (u *UI) gesDetails(c echo.Context, s session) error {
	cb, err := u.deps.Callbacks.Get(c.Request().Context(), s.tenant, c.Param("id"))
	if errors.Is(err, ErrNotFound) {
		return render(c, http.StatusNotFound, gesMessage(u.chrome("Callback", "ges"), "No Callbacks found",
			"No callback has the id "+c.Param("id")+".", true, true))
	}
	if err != nil {
		return render(c, http.StatusBadGateway, gesMessage(u.chrome("Callback", "ges"), "Error", err.Error(), true, true))
	}
	return render(c, http.StatusOK, gesDetailsPage(u.chrome("Callback "+cb.ID, "ges", "ges.js"), s, cb))
}

// back redirects to the list the form came from with a signed flash message.
func (u *UI) back(c echo.Context, msg string, isErr bool) error {
	return u.backWith(c, msg, isErr, nil)
}

// createKept are the create form's fields a failed create hands back to the
// form (query keys "c_" + field), so that the user's input is not lost.
var createKept = []string{"type", "service", "phone", "date", "slot"}

// keptCreate reads them back.
func keptCreate(q url.Values) map[string]string {
	m := map[string]string{}
	for _, k := range createKept {
		if v := q.Get("c_" + k); v != "" && utf8.ValidString(v) && len(v) <= 64 {
			m[k] = v
		}
	}
	return m
}

// backWith is back, with extra query values for the page.
func (u *UI) backWith(c echo.Context, msg string, isErr bool, extra url.Values) error {
	ret := c.FormValue("return")
	v, err := url.ParseQuery(ret)
	if err != nil {
		v = url.Values{}
	}
	for k, vs := range extra {
		v[k] = vs
	}
	v.Set("msg", msg)
	v.Set("sig", u.flashSig(msg, isErr))
	v.Del("err")
	if isErr {
		v.Set("err", "1")
	}
	return c.Redirect(http.StatusSeeOther, "/ges/?"+v.Encode())
}

// requireSupervisor tells whether the user may change callbacks (Callback
// Supervisor/Administrator); Monitors only view.
func requireSupervisor(s session) bool { return s.supervisor }

// typedPhone is a number as a person types it into the form ("+1 (202)
// 555-0100") in the E.164 form the API takes: the spaces, dashes, dots and
// brackets of an international number are dropped. Anything else is left
// for the API to judge.
func typedPhone(v string) string {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "+") {
		return v
	}
	return strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "", "\u00a0", "").Replace(v)
}

func (u *UI) gesCreate(c echo.Context, s session) error {
	if !requireSupervisor(s) {
		return u.back(c, "Your role may only view callbacks.", true)
	}
	req := CreateCallback{Service: c.FormValue("service"), PhoneNumber: typedPhone(c.FormValue("phone"))}
	kept := url.Values{}
	for _, k := range createKept {
		kept.Set("c_"+k, c.Request().PostFormValue(k))
	}
	fail := func(msg string) error {
		return u.backWith(c, "There was an Error Creating the Callback: "+msg, true, kept)
	}
	if c.FormValue("type") == "scheduled" {
		t, err := time.Parse(time.RFC3339, c.FormValue("slot"))
		if err != nil {
			return fail("pick a time slot.")
		}
		if !t.After(u.clock.Now()) {
			return fail("the slot " + t.UTC().Format("2006-01-02 15:04") + " UTC has passed; pick another.")
		}
		req.Desired = &t
	}
	id, err := u.deps.Callbacks.Create(c.Request().Context(), s.tenant, req)
	if err != nil {
		return fail(err.Error())
	}
	return u.back(c, "Callback "+id+" created.", false)
}

func (u *UI) gesCancel(c echo.Context, s session) error {
	if !requireSupervisor(s) {
		return u.back(c, "Your role may only view callbacks.", true)
	}
	form, err := c.FormParams()
	if err != nil {
		return u.back(c, "malformed form", true)
	}
	var ids []string
	for _, id := range form["id"] {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return u.back(c, "Tick at least one callback to cancel.", true)
	}
	failed := u.deps.Callbacks.CancelByAdmin(c.Request().Context(), s.tenant, ids)
	done := len(ids) - len(failed)
	msg := fmt.Sprintf("%d callback(s) cancelled.", done)
	if len(failed) > 0 {
		var parts []string
		for id, e := range failed {
			parts = append(parts, shortID(id)+": "+e.Error())
		}
		sort.Strings(parts)
		msg += " Not cancelled: " + strings.Join(parts, "; ")
	}
	return u.back(c, msg, len(failed) > 0)
}

func (u *UI) gesRecreate(c echo.Context, s session) error {
	if !requireSupervisor(s) {
		return u.back(c, "Your role may only view callbacks.", true)
	}
	var desired *time.Time
	if c.FormValue("when") == "scheduled" && c.FormValue("slot") == "" {
		// A day with no open slot sends none: that is not "at once".
		return u.back(c, "Recreate failed: pick a time slot (the day chosen has no open slot).", true)
	}
	if slot := c.FormValue("slot"); slot != "" {
		t, err := time.Parse(time.RFC3339, slot)
		if err != nil {
			return u.back(c, "bad slot time", true)
		}
		if !t.After(u.clock.Now()) {
			return u.back(c, "Recreate failed: the slot "+t.UTC().Format("2006-01-02 15:04")+" UTC has passed; pick another.", true)
		}
		desired = &t
	}
	id, err := u.deps.Callbacks.Recreate(c.Request().Context(), s.tenant, c.Param("id"), desired)
	if err != nil {
		return u.back(c, "Recreate failed: "+err.Error(), true)
	}
	return u.back(c, "Callback "+id+" created from "+shortID(c.Param("id"))+".", false)
}

// gesSlots renders <option>s of the open slots of a service on a day.
func (u *UI) gesSlots(c echo.Context, s session) error {
	p := parseListParams(c.QueryParams())
	loc := p.browserZone()
	day, err := time.ParseInLocation("2006-01-02", c.QueryParam("date"), loc)
	if err != nil {
		n := u.clock.Now().In(loc)
		day = time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	}
	av, err := u.deps.Callbacks.Availability(c.Request().Context(), s.tenant, c.QueryParam("service"), day, day.AddDate(0, 0, 1))
	// A slot already under way is booked for at once (its time becomes
	// now): the picker offers the ones still ahead.
	now := u.clock.Now()
	av.Slots = slices.DeleteFunc(av.Slots, func(sl Slot) bool { return sl.Start.Before(now) })
	return render(c, http.StatusOK, slotOptions(av, err, p.UTC, loc))
}

func (u *UI) gesExport(c echo.Context, s session) error {
	if !requireSupervisor(s) {
		return c.String(http.StatusForbidden, "your role may not export callbacks")
	}
	p := parseListParams(c.QueryParams())
	if p.Problem != "" {
		return c.String(http.StatusBadRequest, p.Problem)
	}
	q := p.query(s.tenant, u.clock.Now())
	noStore(c)
	// The file is built before the status goes out, so that a failure is
	// an error, not a 200 with a short file.
	var buf bytes.Buffer
	if err := u.deps.Callbacks.ExportCSV(c.Request().Context(), q, &buf); err != nil {
		u.log.Warn("export callbacks", "err", err)
		return c.String(http.StatusServiceUnavailable, "The export could not be read; try again, or narrow the filters.")
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, `attachment; filename="callbacks-`+u.clock.Now().UTC().Format("20060102-150405")+`.csv"`)
	return c.Blob(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

func (u *UI) gesCallIn(c echo.Context, s session) error {
	q := strings.TrimSpace(c.QueryParam("q"))
	items, err := u.deps.Callbacks.CallIns(c.Request().Context(), s.tenant, q, gesPageSize)
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	p := parseListParams(c.QueryParams())
	return render(c, http.StatusOK, gesCallInPage(u.chrome("Call-In", "ges", "ges.js"), s, q, items, errText, u.clock.Now(), p.UTC))
}

// queueView is one service on the capacity page.
type queueView struct {
	Service ServiceInfo
	Slots   []Slot
	Err     string
}

func (u *UI) gesQueues(c echo.Context, s session) error {
	ctx := c.Request().Context()
	svcs, err := u.deps.Callbacks.Services(ctx, s.tenant)
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	now := u.clock.Now()
	var views []queueView
	for _, svc := range svcs {
		v := queueView{Service: svc}
		av, err := u.deps.Callbacks.Availability(ctx, s.tenant, svc.Name, now, now.Add(24*time.Hour))
		if err != nil {
			v.Err = err.Error()
		}
		v.Slots = av.Slots
		if len(v.Slots) > 12 {
			v.Slots = v.Slots[:12]
		}
		views = append(views, v)
	}
	p := parseListParams(c.QueryParams())
	return render(c, http.StatusOK, gesQueuesPage(u.chrome("Callback queues", "ges", "ges.js"), s, views, errText, p.UTC))
}

// keptOr is the create form's kept value of field, or def.
func (v gesView) keptOr(field, def string) string {
	if k, ok := v.Kept[field]; ok {
		return k
	}
	return def
}

// pollPage is the hx-vals of the list's refresh: the page shown.
func pollPage(page int) string {
	return `{"page": "` + strconv.Itoa(max(page, 1)) + `"}`
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// finished tells whether a callback may be recreated.
func finished(cb Callback) bool { return cb.State == StateCompleted }

// cancellable tells whether the UI offers to cancel a callback.
func cancellable(cb Callback) bool { return cb.State != StateCompleted && cb.State != StateProcessing }

// stateText renders the State column ("COMPLETED (CANCELLED_BY_ADMIN)").
func stateText(cb Callback) string {
	if cb.Reason != "" {
		return cb.State + " (" + cb.Reason + ")"
	}
	return cb.State
}

// fmtTime renders a time for a cell: UTC when asked, else in loc (the
// offset the browser reported; ges.js rewrites it by the browser's own
// rules, which differ across a daylight-saving change).
func fmtTime(t time.Time, utc bool, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	if utc || loc == nil {
		return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
	}
	return t.In(loc).Format("2006-01-02 15:04:05")
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func weekdayHours(svc ServiceInfo, day string) string {
	iv := svc.Weekly[day]
	if len(iv) == 0 {
		return "closed"
	}
	parts := make([]string, len(iv))
	for i, oc := range iv {
		parts[i] = oc.Open + "–" + oc.Close
	}
	return strings.Join(parts, ", ")
}

// weekdays are the business-hours keys in display order.
var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

func itoa(n int) string { return strconv.Itoa(n) }

func contains(xs []string, s string) bool { return containsString(xs, s) }

func typeText(cb Callback) string {
	if cb.Immediate {
		return "Immediate"
	}
	return "Scheduled"
}

// plural is "1 callback", "2 callbacks".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
