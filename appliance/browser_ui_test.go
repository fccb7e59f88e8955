package appliance_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/apptest/browsertest"
	"github.com/cxlab/cxlab/appliance/config"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// browserWait bounds each browser step; the console's live sections refresh
// every 5 s, so a live update takes up to that long.
const browserWait = 20 * time.Second

// leakGuard fails the test if it leaves goroutines behind. Registered before
// the appliance and the browser, its cleanup runs after theirs. lumberjack
// v2 starts one mill goroutine per rotated log file that nothing can stop.
func leakGuard(t *testing.T, clients ...*http.Transport) {
	t.Helper()
	ignore := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun")}
	t.Cleanup(func() {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		if err := goleak.Find(ignore...); err != nil {
			t.Errorf("goroutines left behind: %v", err)
		}
	})
}

// startAgent signs agent user in with a GAuth token, runs its /wait loop and
// sets it Ready. It is signed out and stopped at cleanup.
func startAgent(t *testing.T, s *apptest.Stack, tr *http.Transport, user string, autoAnswer bool) *agent.Agent {
	t.Helper()
	tok := agentToken(t, s, user, "agent123")
	a := agent.New(agent.Config{URL: s.URL, Token: func(context.Context) (string, error) { return tok, nil },
		AutoAnswer: autoAnswer, PlayHz: 1000, BindIP: "127.0.0.1", HTTPClient: &http.Client{Transport: tr}})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if err := a.SignIn(ctx); err != nil {
		t.Fatalf("sign in %s: %v", user, err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.SignOut(ctx) // the appliance may already be stopping
		stop()
		<-done
	})
	if err := a.SetState(ctx, "Ready"); err != nil {
		t.Fatalf("%s Ready: %v", user, err)
	}
	return a
}

// TestBrowserConsoleShowsLiveLab opens the console in Chromium: the overview
// lists every component of /readyz as ready; an agent who signs in and goes
// Ready afterwards appears in the Agents section by the page's own refresh,
// and VQ_Support counts a ready agent; the Logs section shows log lines.
func TestBrowserConsoleShowsLiveLab(t *testing.T) {
	tr := &http.Transport{}
	leakGuard(t, tr)
	s := apptest.Start(t)
	b := browsertest.New(t)
	pageErrs := collectPageErrors(t, b)

	browsertest.Run(t, b, browserWait, chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("components")))

	var ready struct {
		Components []struct {
			Name  string `json:"name"`
			Ready bool   `json:"ready"`
		} `json:"components"`
	}
	if code := apptest.GetJSON(t, s.URL+"/readyz", &ready); code != http.StatusOK || len(ready.Components) < 8 {
		t.Fatalf("/readyz: %d %+v", code, ready)
	}
	for _, c := range ready.Components {
		row := fmt.Sprintf(`document.querySelector('#components tr[data-component="%s"]')`, c.Name)
		if got := browsertest.Eval[string](t, b, row+`?.dataset.ready ?? 'missing'`); got != "true" {
			t.Errorf("overview: component %s is %q, want ready", c.Name, got)
		}
	}
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('#components tr[data-ready="false"]').length`); n != 0 {
		t.Errorf("overview lists %d components not ready", n)
	}

	// The answer to an emulator control (here a refused clock move) is read
	// where the page lands, at the controls, not only at the top of the page.
	browsertest.Run(t, b, browserWait,
		chromedp.SetValue(chromedp.ID("clock-advance"), "abc"),
		chromedp.Click(chromedp.ID("btn-advance")),
		chromedp.WaitVisible(chromedp.ID("toast")),
	)
	browsertest.WaitJS(t, b, browserWait, "the clock's refusal in view", `(() => { const r = document.getElementById('toast').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight && window.scrollY > 0; })()`)

	// Nobody is Ready yet, so what follows can only come from a live refresh.
	agentRow := `document.querySelector('#agents-table tr[data-dn="7001"]')`
	if st := browsertest.Eval[string](t, b, agentRow+`?.dataset.state ?? ''`); st == "Ready" {
		t.Fatalf("DN 7001 shows Ready before anyone signed in")
	}
	startAgent(t, s, tr, "agent1", false)

	browsertest.WaitJS(t, b, browserWait, "the Agents section to show DN 7001 Ready and signed in",
		agentRow+` !== null && `+agentRow+`.dataset.state === 'Ready' && `+agentRow+`.cells[5].textContent.trim() === 'yes'`)
	if name := browsertest.Eval[string](t, b, agentRow+`.cells[0].textContent.trim()`); name != "agent1" {
		t.Errorf("DN 7001 row names %q, want agent1", name)
	}
	queueRow := `document.querySelector('#queues-table tr[data-queue="VQ_Support"]')`
	browsertest.WaitJS(t, b, browserWait, "VQ_Support to count a ready agent",
		queueRow+` !== null && parseInt(`+queueRow+`.cells[2].textContent, 10) >= 1`)
	if n := browsertest.Eval[int](t, b, `document.querySelectorAll('#log-lines span').length`); n == 0 {
		t.Error("the Logs section shows no lines")
	}
	logs := browsertest.Eval[string](t, b, `document.getElementById('log-lines').textContent`)
	if !strings.Contains(logs, "[") || !strings.Contains(strings.ToLower(logs), "info") {
		t.Errorf("log lines lack level and component: %.300q", logs)
	}
	browsertest.Screenshot(t, b, "console")
	// By now the page has loaded and refreshed for seconds: any request it
	// or the browser made (the icon included) has been answered.
	if errs := pageErrs(); len(errs) > 0 {
		t.Errorf("the console logged errors in the browser: %q", errs)
	}
}

// collectPageErrors records the browser's console errors (a failed load,
// such as a 404 for /favicon.ico, is one) and uncaught exceptions.
func collectPageErrors(t *testing.T, b context.Context) func() []string {
	t.Helper()
	var mu sync.Mutex
	var errs []string
	err := chromedp.Listen(b, func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				msg = e.Entry.Text + " " + e.Entry.URL
			}
		case *cdpruntime.EventExceptionThrown:
			msg = "exception: " + e.ExceptionDetails.Text
			if ex := e.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
		}
		if msg != "" {
			mu.Lock()
			errs = append(errs, msg)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("listen to the browser: %v", err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(errs)
	}
}

// writeDNSeed writes a tenant seed adding n DNs (20000...) with SIP password
// dnpass to the demo tenant, as scripts/bench does.
func writeDNSeed(t *testing.T, n int) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("contactCenters:\n  - id: 9350e2fc-a1dd-4c65-8d40-1f75a2e080dd\n    name: demo\n    sipDomain: demo.cxlab.local\n    dns:\n")
	for i := range n {
		fmt.Fprintf(&sb, "      - {number: \"%d\", type: Extension, sipPassword: dnpass}\n", 20000+i)
	}
	path := filepath.Join(t.TempDir(), "dns.yaml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// dnSession signs DN in at the gateway with "DN:password" and returns its session id.
func dnSession(t *testing.T, s *apptest.Stack, hc *http.Client, dn int) string {
	t.Helper()
	resp, err := hc.Post(s.URL+"/webrtc/sign_in", "text/plain", strings.NewReader(strconv.Itoa(dn)+":dnpass"))
	if err != nil {
		t.Fatalf("sign in DN %d: %v", dn, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_, id, ok := strings.Cut(strings.TrimSpace(string(body)), "=")
	if resp.StatusCode != http.StatusOK || !ok {
		t.Fatalf("sign in DN %d: %d %s", dn, resp.StatusCode, body)
	}
	return id
}

func dnSignOut(t *testing.T, s *apptest.Stack, hc *http.Client, id string) {
	t.Helper()
	resp, err := hc.Get(s.URL + "/webrtc/sign_out?id=" + id)
	if err != nil {
		t.Fatalf("sign out: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
}

// signInGauge is the gateway's sign-in metric that KEDA's trigger reads (seed 000).
const signInGauge = "wrtc_current_signins" //nolint:misspell // the product's metric name

// TestBrowserScalingFollowsSignIns watches the console's scaling view while
// DNs sign in: with thresholdSignins 25 (seed 000) one gateway serves up to
// 25 sign-ins; 30 ask KEDA for 2 replicas, and signing 10 out brings it back to 1.
func TestBrowserScalingFollowsSignIns(t *testing.T) {
	tr := &http.Transport{}
	leakGuard(t, tr)
	const dns = 30
	seed := writeDNSeed(t, dns)
	s := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Seed = seed }))
	b := browsertest.New(t)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	browsertest.Run(t, b, browserWait, chromedp.Navigate(s.URL+"/#scaling"), chromedp.WaitVisible(chromedp.ID("scaling-table")))
	if th := browsertest.Eval[string](t, b, `document.getElementById('threshold-signin').textContent`); th != "25" {
		t.Fatalf("thresholdSignins shows %q, want 25", th)
	}
	gw := `document.getElementById('scale-gateway')`
	if d := browsertest.Eval[string](t, b, gw+`.dataset.desired`); d != "1" {
		t.Fatalf("desired gateway replicas with nobody signed in: %s, want 1", d)
	}

	ids := make([]string, 0, dns)
	for i := range dns {
		ids = append(ids, dnSession(t, s, hc, 20000+i))
	}
	// The view is live: it follows without a reload.
	browsertest.WaitJS(t, b, browserWait, "the scaling view to show 30 sign-ins and 2 gateways",
		gw+`.cells[2].textContent.includes('`+signInGauge+` 30') && `+gw+`.dataset.desired === '2'`)
	if why := browsertest.Eval[string](t, b, gw+`.cells[4].textContent`); !strings.Contains(why, "scale out 1 -> 2") ||
		!strings.Contains(why, signInGauge+" asks for 2") {
		t.Errorf("reason %q does not explain the sign-in trigger", why)
	}
	browsertest.Screenshot(t, b, "scaling-30")

	for _, id := range ids[:10] {
		dnSignOut(t, s, hc, id)
	}
	browsertest.WaitJS(t, b, browserWait, "the scaling view to show 20 sign-ins and 1 gateway",
		gw+`.cells[2].textContent.includes('`+signInGauge+` 20') && `+gw+`.dataset.desired === '1'`)
	browsertest.Screenshot(t, b, "scaling-20")

	// A what-if answer stays until the user goes back to live figures. Start
	// right after a refresh, so the user's typing has the next 5 s to itself.
	browsertest.Run(t, b, browserWait, chromedp.Evaluate[chromedp.Void](`window.cxScaling = 0;
		document.addEventListener('htmx:afterSettle', (e) => { if (e.detail.target.id === 'sec-scaling') window.cxScaling++; });`))
	browsertest.WaitJS(t, b, browserWait, "a refresh of the scaling view", `window.cxScaling >= 1`)
	browsertest.Run(t, b, browserWait,
		chromedp.Focus(chromedp.CSS(`#sec-scaling input[name=agents]`)),
		chromedp.SetValue(chromedp.CSS(`#sec-scaling input[name=agents]`), "60"),
		chromedp.Click(chromedp.CSS(`#sec-scaling form button[type=submit]`)))
	browsertest.WaitJS(t, b, browserWait, "the what-if answer for 60 sign-ins", gw+`.dataset.desired === '3'`)
	// Two refreshes of the Agents section take at least one 5 s period, in
	// which the scaling view's own timer fired too.
	browsertest.Run(t, b, browserWait, chromedp.Evaluate[chromedp.Void](`window.cxAgentSwaps = 0;
		document.addEventListener('htmx:afterSwap', (e) => { if (e.detail.target.id === 'sec-agents') window.cxAgentSwaps++; });`))
	browsertest.WaitJS(t, b, browserWait, "two live refreshes of the console", `window.cxAgentSwaps >= 2`)
	if d := browsertest.Eval[string](t, b, gw+`.dataset.desired`); d != "3" {
		t.Errorf("a live refresh replaced the what-if answer: desired %s, want 3", d)
	}
	browsertest.Screenshot(t, b, "scaling-whatif")
	browsertest.Run(t, b, browserWait, chromedp.Click(chromedp.CSS(`#scaling-whatif button`)))
	browsertest.WaitJS(t, b, browserWait, "live figures again", gw+`.cells[2].textContent.includes('`+signInGauge+` 20') && `+gw+`.dataset.desired === '1'`)
	for _, id := range ids[10:] {
		dnSignOut(t, s, hc, id)
	}
}

// TestBrowserSizingCalculator types seed 004's worked examples into the
// console's calculator, which recomputes on each change: 100,000 callbacks a
// day with 1 kB of user data need about 14 GB of PostgreSQL and 9.5 GB of
// Redis; 15-minute slots of capacity 100, 24x7, booked 14 days ahead, with
// 1,000 active immediate callbacks and an EWT of 90 minutes make 138,756
// Redis operations a minute. Each form keeps the other's figures, and the
// field the user moved to keeps the focus.
func TestBrowserSizingCalculator(t *testing.T) {
	leakGuard(t)
	s := apptest.Start(t)
	b := browsertest.New(t)
	browsertest.Run(t, b, browserWait, chromedp.Navigate(s.URL+"/#sizing"), chromedp.WaitVisible(chromedp.ID("sizing-form")))
	browsertest.WaitJS(t, b, browserWait, "htmx", `document.readyState === 'complete' && window.htmx !== undefined`)
	browsertest.Run(t, b, browserWait, chromedp.Evaluate[chromedp.Void](`window.cxSizing = 0;
		document.addEventListener('htmx:afterSettle', (e) => { if (e.detail.target.id === 'sec-sizing') window.cxSizing++; });`))

	// set changes one field as a user does (the change event recomputes the
	// section) and waits for the new figures.
	set := func(field, value string) {
		t.Helper()
		n := browsertest.Eval[int](t, b, `window.cxSizing`)
		browsertest.Run(t, b, browserWait, chromedp.SetValue(chromedp.ID("sz-"+field), value))
		browsertest.WaitJS(t, b, browserWait, "the calculator to recompute after "+field, fmt.Sprintf(`window.cxSizing > %d`, n))
		if got := browsertest.Eval[string](t, b, `document.getElementById('sz-`+field+`').value`); got != value {
			t.Fatalf("after recomputing, %s reads %q, want %q", field, got, value)
		}
	}
	text := func(id string) string {
		t.Helper()
		return strings.TrimSpace(browsertest.Eval[string](t, b, `document.getElementById('`+id+`').textContent`))
	}

	// Something else first, so the worked examples are computed, not defaults.
	set("cpd", "50000")
	set("ud", "2")
	if got := text("size-db"); got != "9.1 GB" { // 50,000 x 13 kB x 14 days
		t.Errorf("database for 50,000/day with 2 kB: %q, want 9.1 GB", got)
	}
	set("slot", "30")
	set("cap", "5")
	other := text("redis-ops")
	if other == "138,756" {
		t.Fatalf("30-minute slots of 5 give the default estimate")
	}
	if got := text("size-db"); got != "9.1 GB" {
		t.Errorf("the Redis operations form reset the storage figures: database %q, want 9.1 GB", got)
	}

	// The user tabs from callbacks/day to user data: the focus stays there.
	browsertest.Run(t, b, browserWait, chromedp.Focus(chromedp.ID("sz-ud")))
	set("cpd", "100000")
	if id := browsertest.Eval[string](t, b, `document.activeElement.id`); id != "sz-ud" {
		t.Errorf("after the recompute the focus is on %q, want sz-ud", id)
	}
	set("ud", "1")
	if got := text("size-db"); got != "14 GB" {
		t.Errorf("database %q, want 14 GB", got)
	}
	if got := text("size-redis"); got != "9.5 GB" {
		t.Errorf("Redis %q, want 9.5 GB", got)
	}
	if got := text("redis-ops"); got != other {
		t.Errorf("the storage form reset the Redis operations estimate: %q, was %q", got, other)
	}

	for _, f := range [][2]string{{"slot", "15"}, {"cap", "100"}, {"hours", "24"}, {"days", "14"}, {"immediate", "1000"}, {"ewt", "90"}} {
		set(f[0], f[1])
	}
	if got := text("redis-ops"); got != "138,756" {
		t.Errorf("Redis operations per minute %q, want 138,756", got)
	}
	if got := text("ops-total-scheduled"); got != "134,400" {
		t.Errorf("total scheduled %q, want 134,400", got)
	}
	if got := text("size-db"); got != "14 GB" {
		t.Errorf("the Redis operations form reset the storage figures: %q", got)
	}
	browsertest.Screenshot(t, b, "sizing")
}

// TestBrowserGESCancelAndRecreate is a supervisor's work in /ges/: sign in at
// GAuth, tick two scheduled callbacks (select-all skips one in PROCESSING,
// which can't be cancelled), keep the ticks across the list's live refresh,
// cancel: both become COMPLETED (CANCELLED_BY_ADMIN) in the page and the
// API, the PROCESSING one is untouched; recreate one: a new callback for the
// same number appears.
func TestBrowserGESCancelAndRecreate(t *testing.T) {
	tr := &http.Transport{}
	leakGuard(t, tr)
	s := apptest.Start(t)

	// A callback in PROCESSING: an auto-answering agent talks to a simulated customer.
	a := startAgent(t, s, tr, "agent1", true)
	var busy struct {
		ID string `json:"id"`
	}
	if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{
		"serviceName": "CB_Support", "phoneNumber": "+12025550100"}, &busy); code != 200 || busy.ID == "" {
		t.Fatalf("create immediate: %d", code)
	}
	eventually(t, browserWait, "the immediate callback to reach PROCESSING", func() bool { return retrieve(t, s, busy.ID).State == "PROCESSING" })
	t.Cleanup(func() { _ = a.Hangup(context.Background()) })

	tomorrow := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Hour)
	phones := []string{"+12025550101", "+12025550105"}
	var ids []string
	for i, p := range phones {
		var cb struct {
			ID string `json:"id"`
		}
		if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{"serviceName": "CB_Support", "phoneNumber": p,
			"desiredTime": tomorrow.Add(time.Duration(i) * 30 * time.Minute).Format(time.RFC3339)}, &cb); code != 200 || cb.ID == "" {
			t.Fatalf("create scheduled for %s: %d", p, code)
		}
		ids = append(ids, cb.ID)
	}

	b := browsertest.New(t)
	browsertest.Run(t, b, browserWait, gesSignIn(s.URL)...)
	if who := browsertest.Eval[string](t, b, `document.querySelector('.tabs .account').textContent`); !strings.Contains(who, "Supervisor") {
		t.Fatalf("signed in as %q, want a supervisor", who)
	}
	row := func(id string) string { return fmt.Sprintf(`document.querySelector('#cb-table tr[data-id="%s"]')`, id) }
	for _, id := range ids {
		browsertest.WaitJS(t, b, browserWait, "the scheduled row "+id, row(id)+`?.dataset.state === 'SCHEDULED'`)
	}
	browsertest.WaitJS(t, b, browserWait, "the PROCESSING row", row(busy.ID)+`?.dataset.state === 'PROCESSING'`)
	if browsertest.Eval[bool](t, b, row(busy.ID)+`.querySelector('input[type=checkbox]') !== null`) {
		t.Error("a PROCESSING callback offers a checkbox to cancel it")
	}

	// The list refreshes itself every 5 s; a supervisor's ticks must survive that.
	browsertest.Run(t, b, browserWait, chromedp.Evaluate[chromedp.Void](`window.confirm = () => true;
		window.cxSwaps = 0;
		document.body.addEventListener('htmx:afterSwap', (e) => { if (e.detail.target.id === 'list') window.cxSwaps++; });`),
		chromedp.Click(chromedp.ID("select-all")))
	ticked := `[...document.querySelectorAll('#cb-table tbody input[name=id]:checked')].map((c) => c.value).sort().join(',')`
	want := strings.Join(slices.Sorted(slices.Values(ids)), ",")
	if got := browsertest.Eval[string](t, b, ticked); got != want {
		t.Fatalf("select-all ticked %q, want %q", got, want)
	}
	browsertest.WaitJS(t, b, browserWait, "a live refresh of the list", `window.cxSwaps >= 1`)
	if got := browsertest.Eval[string](t, b, ticked); got != want {
		t.Fatalf("after the list refreshed the ticks are %q, want %q", got, want)
	}
	browsertest.Screenshot(t, b, "ges-selected")

	submitAndLoad(t, b, chromedp.Click(chromedp.ID("btn-cancel-selected")))
	if msg := browsertest.Eval[string](t, b, `document.getElementById('toast')?.textContent ?? ''`); !strings.Contains(msg, "2 callback(s) cancelled") {
		t.Errorf("toast %q", msg)
	}
	for _, id := range ids {
		if st := browsertest.Eval[string](t, b, row(id)+`?.dataset.state ?? 'missing'`); st != "COMPLETED" {
			t.Errorf("row %s is %s after cancel", id, st)
		}
		if txt := browsertest.Eval[string](t, b, row(id)+`.querySelector('.state').textContent`); txt != "COMPLETED (CANCELLED_BY_ADMIN)" {
			t.Errorf("row %s state reads %q", id, txt)
		}
		if cb := retrieve(t, s, id); cb.State != "COMPLETED" || cb.Reason != "CANCELLED_BY_ADMIN" {
			t.Errorf("API: %s is %s/%s", id, cb.State, cb.Reason)
		}
	}
	if cb := retrieve(t, s, busy.ID); cb.State != "PROCESSING" {
		t.Errorf("the PROCESSING callback became %s/%s", cb.State, cb.Reason)
	}
	browsertest.Screenshot(t, b, "ges-cancelled")

	// Recreate the first at a slot three days ahead, picked in the dialog.
	day := time.Now().UTC().Add(72 * time.Hour).Format("2006-01-02")
	browsertest.Run(t, b, browserWait,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#cb-table tr[data-id="%s"] button.recreate`, ids[0]))),
		chromedp.WaitVisible(chromedp.ID("recreate-dialog")),
		chromedp.SetValue(chromedp.ID("recreate-type"), "scheduled"),
		chromedp.SetValue(chromedp.ID("recreate-date"), day),
	)
	if what := browsertest.Eval[string](t, b, `document.getElementById('recreate-what').textContent`); !strings.Contains(what, phones[0]) {
		t.Errorf("the recreate dialog reads %q, not naming %s", what, phones[0])
	}
	browsertest.WaitJS(t, b, browserWait, "open slots on "+day, `[...document.querySelectorAll('#recreate-slot option')].some((o) => o.value.startsWith('`+day+`') && !o.disabled)`)
	browsertest.Screenshot(t, b, "ges-recreate-dialog")
	slot := browsertest.Eval[string](t, b, `(() => { const s = document.getElementById('recreate-slot');
		s.value = [...s.options].find((o) => o.value.startsWith('`+day+`') && !o.disabled).value; return s.value; })()`)
	submitAndLoad(t, b, chromedp.Click(chromedp.ID("btn-recreate")))
	if msg := browsertest.Eval[string](t, b, `document.getElementById('toast')?.textContent ?? ''`); !strings.Contains(msg, "created from") {
		t.Errorf("toast after recreate: %q", msg)
	}
	newRow := func(phone string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('#cb-table tr[data-id]')].find((r) => !%q.includes(r.dataset.id) && r.textContent.includes(%q))`,
			strings.Join(append([]string{busy.ID}, ids...), ","), phone)
	}
	browsertest.WaitJS(t, b, browserWait, "a new callback row for "+phones[0], newRow(phones[0])+` !== undefined`)
	nid := browsertest.Eval[string](t, b, newRow(phones[0])+`.dataset.id`)
	at, _ := time.Parse(time.RFC3339, slot)
	if cb := retrieve(t, s, nid); cb.State != "SCHEDULED" || !cb.DesiredTime.Equal(at) {
		t.Errorf("API: recreated %s is %s at %s, want SCHEDULED at the slot picked, %s", nid, cb.State, cb.DesiredTime, slot)
	}

	// The second, immediately.
	browsertest.Run(t, b, browserWait,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#cb-table tr[data-id="%s"] button.recreate`, ids[1]))),
		chromedp.WaitVisible(chromedp.ID("recreate-dialog")))
	submitAndLoad(t, b, chromedp.Click(chromedp.ID("btn-recreate")))
	browsertest.WaitJS(t, b, browserWait, "a new callback row for "+phones[1], newRow(phones[1])+` !== undefined`)
	nid = browsertest.Eval[string](t, b, newRow(phones[1])+`.dataset.id`)
	// An immediate callback moves from SCHEDULED to QUEUED as ORS takes it.
	if cb := retrieve(t, s, nid); cb.State != "QUEUED" && cb.State != "SCHEDULED" || cb.DesiredTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("API: recreated %s is %s/%s at %s, want an immediate callback", nid, cb.State, cb.Reason, cb.DesiredTime)
	}
	browsertest.Screenshot(t, b, "ges-recreated")
}

// gesSignIn opens the /ges/ list of every callback, signing in at GAuth as
// the demo supervisor.
func gesSignIn(base string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(base + "/ges/?window=all"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SetValue(chromedp.ID("username"), "supervisor"),
		chromedp.SetValue(chromedp.ID("password"), "super123"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("cb-table")),
	}
}

// submitAndLoad runs a step that submits a form and waits for the page it
// leads to, which must answer 200.
func submitAndLoad(t *testing.T, b context.Context, step chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, browserWait)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, step)
	if err != nil {
		browsertest.Screenshot(t, b, "failure")
		t.Fatalf("submit: %v", err)
	}
	if resp.Status != http.StatusOK {
		browsertest.Screenshot(t, b, "failure")
		t.Fatalf("submit: the next page answered %d", resp.Status)
	}
}

// TestBrowserPagesFitAPhone opens every page on a phone's width (375 px): none
// is wider than the screen; a wide table scrolls inside its card.
func TestBrowserPagesFitAPhone(t *testing.T) {
	s := apptest.Start(t)
	if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{"serviceName": "CB_Support",
		"phoneNumber": "+12025550123", "desiredTime": time.Now().UTC().Add(26 * time.Hour).Truncate(time.Hour).Format(time.RFC3339)}, nil); code != 200 {
		t.Fatalf("create: %d", code)
	}
	b := browsertest.New(t)
	browsertest.Run(t, b, browserWait, append([]chromedp.Action[chromedp.Void]{chromedp.EmulateViewport(375, 812)}, gesSignIn(s.URL)...)...)
	for _, page := range []struct{ path, ready string }{
		{"/", "#overview table"},
		{"/softphone/", "form"},
		{"/customer/", "form"},
		{"/ges/?window=all", "#cb-table"},
		{"/ges/callin", "main"},
		{"/ges/queues", "main"},
	} {
		browsertest.Run(t, b, browserWait, chromedp.Navigate(s.URL+page.path), chromedp.WaitVisible(chromedp.CSS(page.ready)))
		browsertest.Screenshot(t, b, "phone"+strings.NewReplacer("/", "-", "?", "-", "=", "-").Replace(page.path))
		if w := browsertest.Eval[float64](t, b, "document.documentElement.scrollWidth"); w > 375 {
			wide := browsertest.Eval[string](t, b, `[...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 391 &&
				![...e.children].some((c) => c.getBoundingClientRect().right > 391)).slice(0, 4).map((e) => e.tagName + '.' + e.className).join(', ')`)
			browsertest.Screenshot(t, b, "phone-overflow")
			t.Errorf("%s is %v px wide on a 375 px screen (widest: %s)", page.path, w, wide)
		}
	}
}

// TestBrowserGESCreateKeepsTheListAsSet: a supervisor narrows the list in
// place (service CB_Support, times in UTC), then books a scheduled callback:
// the slot picker reads in UTC like the list, and after the create the list
// comes back narrowed as it was, with the new callback in it.
func TestBrowserGESCreateKeepsTheListAsSet(t *testing.T) {
	s := apptest.Start(t)
	b := browsertest.New(t)
	browsertest.Run(t, b, browserWait, gesSignIn(s.URL)...)
	browsertest.Run(t, b, browserWait, chromedp.Evaluate[chromedp.Void](`window.cxSwaps = 0;
		document.body.addEventListener('htmx:afterSwap', (e) => { if (e.detail.target.id === 'list') window.cxSwaps++; });`))
	browsertest.Run(t, b, browserWait,
		chromedp.Click(chromedp.CSS(`#filters input[name=service][value=CB_Support]`)),
		chromedp.Click(chromedp.ID("utc")))
	browsertest.WaitJS(t, b, browserWait, "the list redrawn with the filters", `window.cxSwaps >= 2`)

	browsertest.Run(t, b, browserWait,
		chromedp.Click(chromedp.CSS(`#create-dialog summary`)),
		chromedp.SetValue(chromedp.ID("create-service"), "CB_Support"),
		chromedp.SetValue(chromedp.ID("create-phone"), "+12025550177"),
		chromedp.SetValue(chromedp.ID("create-type"), "scheduled"),
		chromedp.Evaluate[chromedp.Void](`(() => { const d = new Date(Date.now() + 2 * 86400e3);
			const el = document.getElementById('create-date');
			el.value = d.toISOString().slice(0, 10); el.dispatchEvent(new Event('change', { bubbles: true })); })()`),
	)
	day := time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02")
	browsertest.WaitJS(t, b, browserWait, "open slots on "+day, `[...document.querySelectorAll('#create-slot option')].some((o) => o.value.startsWith('`+day+`') && !o.disabled)`)
	if got := browsertest.Eval[string](t, b, `[...document.querySelectorAll('#create-slot option')].find((o) => o.value !== '').textContent.trim()`); !strings.Contains(got, "UTC") || !strings.HasPrefix(got, day) {
		t.Errorf("with times in UTC, for %s, the slot picker reads %q", day, got)
	}
	browsertest.Run(t, b, browserWait,
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('create-slot');
			s.value = [...s.options].find((o) => o.value !== '' && !o.disabled).value; })()`))
	submitAndLoad(t, b, chromedp.Click(chromedp.ID("btn-create")))

	q := browsertest.Eval[string](t, b, `location.search`)
	if !strings.Contains(q, "utc=1") || !strings.Contains(q, "service=CB_Support") {
		t.Errorf("after the create the list lost its filters: %s", q)
	}
	if !browsertest.Eval[bool](t, b, `document.getElementById('utc').checked`) {
		t.Error("after the create the list is no longer in UTC")
	}
	browsertest.WaitJS(t, b, browserWait, "the new callback in the list", `document.getElementById('cb-table').textContent.includes('+12025550177')`)
}

// With the lab clock moved ahead (demo step 7), the /ges/ create form's date
// starts on the lab's today, not the browser's.
func TestBrowserGESDatesFollowTheLabClock(t *testing.T) {
	s := apptest.Start(t)
	s.Clock().Advance(5 * 24 * time.Hour)
	b := browsertest.New(t)
	browsertest.Run(t, b, browserWait, gesSignIn(s.URL)...)
	// The browser runs in this machine's zone; so does the expected day.
	want := s.Clock().Now().Local().Format("2006-01-02")
	if got := browsertest.Eval[string](t, b, `document.getElementById('create-date').value`); got != want {
		t.Errorf("create form's date %s, want the lab's today %s", got, want)
	}
}
