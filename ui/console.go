package ui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// consoleSections are the console's sections, each also served alone for
// htmx refreshes at /console/section/{name}.
var consoleSections = []struct{ Key, Label string }{
	{"overview", "Overview"}, {"agents", "Agents"}, {"calls", "Calls"}, {"queues", "Queues"},
	{"turn", "TURN"}, {"logs", "Logs"}, {"scaling", "Scaling"}, {"sizing", "Sizing"}, {"controls", "Emulator controls"},
}

// sourceTimeout bounds each live source so one slow component can't stall the page.
const sourceTimeout = 2 * time.Second

// consoleView is everything the console renders.
type consoleView struct {
	Now        time.Time // lab time: business time, which the console can move
	Wall       time.Time // wall time: uptimes and durations are measured against it
	Overview   Overview
	Components []ComponentStatus
	Snippets   []snippet

	Agents    []AgentRow
	AgentsErr string
	Calls     []CallRow
	CallsErr  string
	Queues    []QueueRow
	QueuesErr string
	Charts    []ewtChart
	Slots     []SlotUsage
	SlotsErr  string
	TURN      []TURNAllocation
	TURNErr   string

	Logs         []LogLine
	LogsErr      string
	LogComponent string
	LogFilter    string
	LogNames     []string

	Scaling scalingView
	Sizing  sizingView

	HasClock    bool
	ClockOffset time.Duration
	Faults      []Fault
	CanReset    bool
	Flash       consoleFlash
}

// consoleFlash is a status message the console itself produced.
type consoleFlash struct {
	Text string
	Err  bool
}

// snippet is a copyable command.
type snippet struct {
	ID, Label, Text string
}

// scalingView is the scaling section: live inputs, Helm values and decisions.
type scalingView struct {
	Live    ScalingLive
	Values  HelmScaling
	Gateway ScaleDecision
	Coturn  ScaleDecision
	Err     string
	WhatIf  bool
	// Form is what the what-if form shows: the live figures, or what the
	// user typed (kept as typed when it is refused).
	Form map[string]string
	// InputErrs explain what-if inputs that were refused; no decision is
	// shown then, rather than one computed from other figures.
	InputErrs []string
}

// sizingView is the calculator's form and answers.
type sizingView struct {
	In      StorageInput
	Out     StorageEstimate
	OpsIn   RedisOpsInput
	Ops     RedisOpsEstimate
	PerCall float64 // Redis operations of one callback scheduled MinutesAhead ahead
	Minutes float64
	// Form is each field's text: the default, or what the user typed.
	Form map[string]string
	// StorageErrs and OpsErrs explain refused inputs; the form's figures
	// are not shown then.
	StorageErrs, OpsErrs []string
}

func (u *UI) mountConsole(e *echo.Echo) {
	e.GET("/", u.console)
	e.GET("/console", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/") })
	e.GET("/console/section/:name", u.consoleSection)
	e.POST("/console/clock", u.consoleClock)
	e.POST("/console/faults", u.consoleFault)
	e.POST("/console/reset", u.consoleReset)
}

func (u *UI) console(c echo.Context) error {
	v := u.consoleLoad(c, "")
	v.Flash = u.flashFrom(c.QueryParams())
	return render(c, http.StatusOK, consolePage(u.chrome("Console", "console", "htmx.min.js", "console.js"), v))
}

func (u *UI) consoleSection(c echo.Context) error {
	name := c.Param("name")
	known := false
	for _, s := range consoleSections {
		known = known || s.Key == name
	}
	if !known {
		return echo.NewHTTPError(http.StatusNotFound, "no such console section")
	}
	v := u.consoleLoad(c, name)
	return render(c, http.StatusOK, consoleSection(name, v))
}

// consoleLoad reads the sources a section (or, with "", the page) needs,
// concurrently and each within sourceTimeout.
func (u *UI) consoleLoad(c echo.Context, only string) consoleView {
	src := u.deps.Console
	ctx := c.Request().Context()
	q := c.QueryParams()
	v := consoleView{Now: u.clock.Now(), Wall: u.wall.Now(), LogComponent: q.Get("component"), LogFilter: q.Get("filter")}
	want := func(name string) bool { return only == "" || only == name }
	var wg sync.WaitGroup
	run := func(name string, f func(ctx context.Context)) {
		if !want(name) {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, sourceTimeout)
			defer cancel()
			f(sctx)
		}()
	}
	var mu sync.Mutex // guards v across the section loaders
	set := func(f func()) { mu.Lock(); f(); mu.Unlock() }
	run("overview", func(ctx context.Context) {
		var ov Overview
		if src.Overview != nil {
			ov = src.Overview()
		}
		var comps []ComponentStatus
		if src.Components != nil {
			comps = src.Components(ctx)
		}
		set(func() { v.Overview, v.Components, v.Snippets = ov, comps, snippetsFor(ov) })
	})
	run("agents", func(ctx context.Context) {
		rows, err := callSource(ctx, src.Agents)
		set(func() { v.Agents, v.AgentsErr = rows, err })
	})
	run("calls", func(ctx context.Context) {
		rows, err := callSource(ctx, src.Calls)
		set(func() { v.Calls, v.CallsErr = rows, err })
	})
	run("queues", func(ctx context.Context) {
		rows, err := callSource(ctx, src.Queues)
		slots, serr := callSource(ctx, src.Slots)
		set(func() { v.Queues, v.QueuesErr, v.Slots, v.SlotsErr = rows, err, slots, serr })
	})
	run("turn", func(ctx context.Context) {
		rows, err := callSource(ctx, src.TURN)
		set(func() { v.TURN, v.TURNErr = rows, err })
	})
	run("logs", func(ctx context.Context) {
		if src.Logs == nil {
			set(func() { v.LogsErr = notAvailable })
			return
		}
		lines, err := src.Logs(ctx, v.LogComponent, 500)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		set(func() { v.Logs, v.LogsErr = lines, errText })
	})
	run("scaling", func(ctx context.Context) {
		sv := u.scalingFor(ctx, q)
		set(func() { v.Scaling = sv })
	})
	wg.Wait()
	if want("queues") {
		v.Charts = u.ewt.charts()
	}
	if want("logs") {
		v.LogNames, v.Logs = filterLogs(v.Logs, v.LogComponent, v.LogFilter)
	}
	if want("sizing") {
		v.Sizing = sizingFrom(q)
	}
	if (want("controls") || want("overview")) && src.Faults != nil {
		v.Faults = src.Faults() // the overview marks a component under an injected fault
	}
	if want("controls") {
		if src.ClockOffset != nil {
			v.HasClock, v.ClockOffset = true, src.ClockOffset()
		}
		v.CanReset = src.ResetDemo != nil
	}
	return v
}

// faultsOn returns the faults switched on for component (those named
// "<component>.<mode>").
func faultsOn(faults []Fault, component string) []Fault {
	var on []Fault
	for _, f := range faults {
		if f.On && strings.HasPrefix(f.Name, component+".") {
			on = append(on, f)
		}
	}
	return on
}

// notAvailable is the text of a section whose source this process lacks.
const notAvailable = "not available in this process"

func callSource[T any](ctx context.Context, f func(context.Context) ([]T, error)) ([]T, string) {
	if f == nil {
		return nil, notAvailable
	}
	rows, err := f(ctx)
	if err != nil {
		return nil, err.Error()
	}
	return rows, ""
}

// filterLogs keeps the lines of one component whose text contains filter
// (case-insensitive) and lists the component names seen, newest lines last.
// The text is the line as shown: level, message and key=value attributes.
func filterLogs(lines []LogLine, component, filter string) ([]string, []LogLine) {
	names := map[string]bool{}
	out := make([]LogLine, 0, len(lines))
	f := strings.ToLower(filter)
	for _, l := range lines {
		names[l.Component] = true
		if component != "" && l.Component != component {
			continue
		}
		if f != "" && !strings.Contains(strings.ToLower(l.Level+" "+l.Message+" "+attrsText(l.Attrs)), f) {
			continue
		}
		out = append(out, l)
	}
	list := make([]string, 0, len(names))
	for n := range names {
		if n != "" {
			list = append(list, n)
		}
	}
	sort.Strings(list)
	if len(out) > 200 {
		out = out[len(out)-200:]
	}
	return list, out
}

// scalingFor computes the KEDA decisions from live figures, or from the
// what-if values of the form when given.
func (u *UI) scalingFor(ctx context.Context, q url.Values) scalingView {
	var sv scalingView
	if u.deps.Console.Scaling != nil {
		live, err := u.deps.Console.Scaling(ctx)
		if err != nil {
			sv.Err = err.Error()
		}
		sv.Live = live
	} else {
		sv.Err = notAvailable
	}
	sv.Values = sv.Live.Values.orSeed()
	if sv.Live.GatewayReplicas < 1 {
		sv.Live.GatewayReplicas = 1
	}
	if sv.Live.CoturnReplicas < 1 {
		sv.Live.CoturnReplicas = 1
	}
	sv.Form = map[string]string{"replicas": itoa(sv.Live.GatewayReplicas), "agents": itoa(sv.Live.SignIns),
		"cpu": fmtF1(sv.Live.CPUPercent), "memory": fmtF1(sv.Live.MemoryPercent)}
	if q.Get("whatif") == "1" {
		sv.WhatIf = true
		var p formParser
		replicas := p.number(q, whatIfReplicas, float64(sv.Live.GatewayReplicas))
		signIns := p.number(q, whatIfSignIns, float64(sv.Live.SignIns))
		cpu := p.number(q, whatIfCPU, sv.Live.CPUPercent)
		mem := p.number(q, whatIfMemory, sv.Live.MemoryPercent)
		sv.Values.KEDA = q.Get("keda") == "1"
		for k, raw := range p.raw {
			if q.Has(k) {
				sv.Form[k] = raw
			}
		}
		if len(p.errs) > 0 {
			sv.InputErrs = p.errs
			return sv
		}
		sv.Live.GatewayReplicas, sv.Live.SignIns = int(replicas), int(signIns)
		sv.Live.CPUPercent, sv.Live.MemoryPercent = cpu, mem
	}
	sv.Gateway = DecideGatewayScale(sv.Values, sv.Live.GatewayReplicas, sv.Live.SignIns, sv.Live.CPUPercent, sv.Live.MemoryPercent)
	sv.Coturn = DecideCoturnScale(sv.Values, sv.Live.CoturnReplicas, sv.Live.CoturnCPU, sv.Live.CoturnMemory)
	return sv
}

// numField is a numeric form field with the range its formula is meant
// for: the bounds keep every figure the console prints exact (no overflow),
// and are far beyond any real contact center.
type numField struct {
	Key, Label string
	Min, Max   float64
	Whole      bool // whole numbers only
}

// The calculator's fields. The defaults are seed 004's worked examples.
var (
	sizingCPD       = numField{Key: "cpd", Label: "Callbacks per day", Max: 1e9}
	sizingUserData  = numField{Key: "ud", Label: "kB of user data per callback", Max: 1e6}
	sizingSlot      = numField{Key: "slot", Label: "Slot minutes", Min: 1, Max: 24 * 60}
	sizingCapacity  = numField{Key: "cap", Label: "Capacity per slot", Max: 1e6}
	sizingHours     = numField{Key: "hours", Label: "Open hours per day", Max: 24}
	sizingDays      = numField{Key: "days", Label: "Days booked ahead", Max: 366}
	sizingImmediate = numField{Key: "immediate", Label: "Active immediate callbacks", Max: 1e9}
	sizingEWT       = numField{Key: "ewt", Label: "EWT minutes", Min: 1, Max: 7 * 24 * 60}
	sizingAhead     = numField{Key: "ahead", Label: "Minutes scheduled ahead", Max: 366 * 24 * 60}

	whatIfReplicas = numField{Key: "replicas", Label: "replicas", Min: 1, Max: 1000, Whole: true}
	whatIfSignIns  = numField{Key: "agents", Label: "sign-ins", Max: 1e6, Whole: true}
	whatIfCPU      = numField{Key: "cpu", Label: "CPU %", Max: 10000}
	whatIfMemory   = numField{Key: "memory", Label: "memory %", Max: 10000}
)

// formParser reads numeric fields, keeping what the user typed and an error
// for each field it refuses.
type formParser struct {
	raw  map[string]string
	errs []string
}

// number is the field's value; def when the form does not have the field.
func (p *formParser) number(q url.Values, f numField, def float64) float64 {
	if p.raw == nil {
		p.raw = map[string]string{}
	}
	if !q.Has(f.Key) {
		p.raw[f.Key] = fmtF(def)
		return def
	}
	raw := strings.TrimSpace(q.Get(f.Key))
	p.raw[f.Key] = raw
	v, err := strconv.ParseFloat(strings.ReplaceAll(raw, ",", ""), 64)
	switch {
	case raw == "":
		p.errs = append(p.errs, f.Label+": give a number.")
	case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
		p.errs = append(p.errs, fmt.Sprintf("%s: %q is not a number.", f.Label, raw))
	case v < f.Min || v > f.Max:
		p.errs = append(p.errs, fmt.Sprintf("%s: %s is out of range (%s to %s).", f.Label, raw, fmtNum(f.Min), fmtNum(f.Max)))
	case f.Whole && v != math.Trunc(v):
		p.errs = append(p.errs, fmt.Sprintf("%s: %s is not a whole number.", f.Label, raw))
	default:
		return v
	}
	return def
}

// sizingFrom reads the calculator's form; the defaults are seed 004's worked examples.
func sizingFrom(q url.Values) sizingView {
	var s sizingView
	var st, ops formParser
	s.In = StorageInput{CallbacksPerDay: st.number(q, sizingCPD, 100000), UserDataKB: st.number(q, sizingUserData, 1)}
	s.Out = EstimateStorage(s.In)
	s.OpsIn = RedisOpsInput{SlotMinutes: ops.number(q, sizingSlot, 15), CapacityPerSlot: ops.number(q, sizingCapacity, 100),
		OpenHoursPerDay: ops.number(q, sizingHours, 24), DaysBooked: ops.number(q, sizingDays, RetentionDays),
		ActiveImmediate: ops.number(q, sizingImmediate, 1000), EWTMinutes: ops.number(q, sizingEWT, 90)}
	s.Ops = EstimateRedisOps(s.OpsIn)
	s.Minutes = ops.number(q, sizingAhead, 60)
	s.PerCall = RedisOpsPerCallback(s.Minutes)
	s.Form = map[string]string{}
	for _, p := range []formParser{st, ops} {
		for k, v := range p.raw {
			s.Form[k] = v
		}
	}
	s.StorageErrs, s.OpsErrs = st.errs, ops.errs
	return s
}

// snippetsFor builds the copyable commands of the overview.
func snippetsFor(ov Overview) []snippet {
	var out []snippet
	if ov.GESAPIURL != "" {
		out = append(out, snippet{"snip-curl", "Book a callback (Engagement API)", fmt.Sprintf(
			"curl -s -X POST %s/callbacks/create -H 'x-api-key: %s' -H 'Content-Type: application/json' -d '{\"serviceName\":\"CB_Support\",\"phoneNumber\":\"+12025550100\"}'",
			strings.TrimRight(ov.GESAPIURL, "/"), ov.APIKey)})
	}
	if ov.RedisURL != "" {
		out = append(out, snippet{"snip-redis", "Redis", "redis-cli -u " + ov.RedisURL})
	}
	if ov.PostgresURL != "" {
		out = append(out, snippet{"snip-psql", "PostgreSQL", "psql '" + ov.PostgresURL + "'"})
	}
	for i, t := range ov.TURNURIs {
		out = append(out, snippet{"snip-turn-" + strconv.Itoa(i), "TURN", t})
	}
	if ov.SIPURI != "" {
		out = append(out, snippet{"snip-sip", "SIP", ov.SIPURI})
	}
	return out
}

// consoleClock moves the lab clock forward by a Go duration ("90m", "24h").
// parseAdvance reads a clock move: a Go duration (15m, 1h30m), or whole
// days with a d (14d, to see the 14-day purge).
func parseAdvance(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func (u *UI) consoleClock(c echo.Context) error {
	if !sameOrigin(c) {
		return c.String(http.StatusForbidden, "cross-origin request refused")
	}
	if u.deps.Console.AdvanceClock == nil {
		return u.consoleBack(c, "The lab clock can't be moved in this process.", true)
	}
	d, err := parseAdvance(c.FormValue("advance"))
	if err != nil || d <= 0 || d > 30*24*time.Hour {
		return u.consoleBack(c, "Give a positive duration up to 30d (720h), such as 15m, 24h or 14d.", true)
	}
	now := u.deps.Console.AdvanceClock(d)
	u.log.Info("lab clock advanced", "by", d, "now", now)
	return u.consoleBack(c, "Clock moved forward "+d.String()+": lab time is now "+now.UTC().Format(time.RFC3339)+".", false)
}

func (u *UI) consoleFault(c echo.Context) error {
	if !sameOrigin(c) {
		return c.String(http.StatusForbidden, "cross-origin request refused")
	}
	if u.deps.Console.SetFault == nil {
		return u.consoleBack(c, "Failure injection is not available in this process.", true)
	}
	name := c.FormValue("name")
	var on bool
	switch c.FormValue("on") {
	case "1":
		on = true
	case "0":
	default:
		return u.consoleBack(c, fmt.Sprintf("Could not change %s: on must be 1 or 0, not %q.", name, c.FormValue("on")), true)
	}
	if err := u.deps.Console.SetFault(c.Request().Context(), name, on); err != nil {
		return u.consoleBack(c, "Could not change "+name+": "+err.Error(), true)
	}
	state := "off"
	if on {
		state = "on"
	}
	return u.consoleBack(c, "Failure "+name+" is "+state+".", false)
}

func (u *UI) consoleReset(c echo.Context) error {
	if !sameOrigin(c) {
		return c.String(http.StatusForbidden, "cross-origin request refused")
	}
	if u.deps.Console.ResetDemo == nil {
		return u.consoleBack(c, "Reset is not available in this process.", true)
	}
	if err := u.deps.Console.ResetDemo(c.Request().Context()); err != nil {
		return u.consoleBack(c, "Reset failed: "+err.Error(), true)
	}
	return u.consoleBack(c, "The demo tenant's configuration was restored from the seed; callbacks, call history and the lab clock are unchanged.", false)
}

// resetHelp says exactly what "Reset the demo tenant" does (ResetDemo
// re-applies the demo seed to the tenant's configuration only).
const resetHelp = "Restores the demo tenant's configuration from the seed: users and passwords, DNs, callback services, " +
	"Click-to-Call-In and agent groups, API keys and OAuth clients; ones added to the demo tenant since are removed. " +
	"Callbacks, call history and the lab clock are kept."

// consoleBack redirects to the console with a status message. The message
// travels in the URL signed with this process's key, so that the console
// shows only the messages it produced itself, never text from a link.
func (u *UI) consoleBack(c echo.Context, msg string, isErr bool) error {
	q := url.Values{"msg": {msg}, "sig": {u.flashSig(msg, isErr)}}
	if isErr {
		q.Set("err", "1")
	}
	return c.Redirect(http.StatusSeeOther, "/?"+q.Encode()+"#controls")
}

func (u *UI) flashSig(msg string, isErr bool) string {
	m := hmac.New(sha256.New, u.flashKey)
	if isErr {
		m.Write([]byte{1})
	} else {
		m.Write([]byte{0})
	}
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// flashFrom is the status message of a console URL, if its signature holds.
func (u *UI) flashFrom(q url.Values) consoleFlash {
	msg, isErr := q.Get("msg"), q.Get("err") == "1"
	if msg == "" || !hmac.Equal([]byte(q.Get("sig")), []byte(u.flashSig(msg, isErr))) {
		return consoleFlash{}
	}
	return consoleFlash{Text: msg, Err: isErr}
}

// uptime renders the wall-clock time since a start.
func uptime(now, since time.Time) string {
	if since.IsZero() {
		return ""
	}
	return fmtDuration(now.Sub(since))
}

func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	h := int(d / time.Hour)
	m := int(d % time.Hour / time.Minute)
	s := int(d % time.Minute / time.Second)
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}

// fmtNum renders a number with thousands separators and at most one decimal.
// Beyond what an int64 holds exactly it uses an exponent, never a wrong figure.
func fmtNum(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1<<53 {
		return strconv.FormatFloat(f, 'g', 4, 64)
	}
	neg := f < 0
	f = math.Abs(f)
	r := math.Round(f*10) / 10
	ip := int64(r)
	frac := r - float64(ip)
	s := strconv.FormatInt(ip, 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	out := b.String()
	if frac >= 0.05 {
		out += "." + strconv.Itoa(int(math.Round(frac*10)))
	}
	if neg {
		out = "-" + out
	}
	return out
}

// fmtGB renders decimal kB as GB (1 GB = 10^6 kB), as the seed does.
func fmtGB(kb float64) string { return fmtNum(kb/1e6) + " GB" }

func fmtF(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// fmtF1 is f to one decimal place, for a measured percentage a form field
// starts from (1.4, not 1.3698760133126493).
func fmtF1(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

func fmtPct(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) + "%" }

func ewtText(s int) string {
	if s < 0 {
		return "unknown"
	}
	return fmtDuration(time.Duration(s) * time.Second)
}

// liveSection tells which sections refresh themselves every few seconds
// (the sizing form and the controls do not; see liveTrigger for scaling).
func liveSection(key string) bool {
	switch key {
	case "overview", "agents", "calls", "queues", "turn", "scaling":
		return true
	}
	return false
}

// liveTrigger is a live section's htmx trigger. The scaling view follows the
// lab's sign-ins, except while its what-if form is in use or shows a what-if
// answer, which a refresh would wipe out.
func liveTrigger(key string) string {
	if key == "scaling" {
		return "every 5s [!this.querySelector('#scaling-whatif') && !this.contains(document.activeElement)]"
	}
	return "every 5s"
}

func boolAttr(b bool) string { return strconv.FormatBool(b) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// logHead is a log line's time, level, component and message.
func logHead(l LogLine) string {
	return l.Time.UTC().Format("15:04:05.000") + " " + l.Level + " [" + l.Component + "] " + l.Message
}

// attrsText renders log attributes as key=value, quoting a value that is
// empty or holds spaces, quotes, '=' or control characters (as slog's text
// handler does), so that each pair reads unambiguously.
func attrsText(attrs []LogAttr) string {
	var b strings.Builder
	for i, a := range attrs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(a.Value))
	}
	return b.String()
}

func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r <= ' ' || r == '=' || r == '"' || r == 0x7f || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// noCall is what an agent's media cells show without a current call.
const noCall = "—"

// callText is an agent's current call: the other party, state and wall-clock duration.
func callText(c *AgentCall, wall time.Time) string {
	if c == nil {
		return noCall
	}
	s := c.Peer + " (" + c.State
	if !c.Started.IsZero() {
		s += ", " + fmtDuration(wall.Sub(c.Started))
	}
	return s + ")"
}

func codecText(c *AgentCall) string {
	if c == nil {
		return noCall
	}
	b := strings.TrimPrefix(strings.TrimPrefix(c.BrowserCodec, "audio/"), "AUDIO/")
	if b == "" {
		b = "?"
	}
	sip := c.SIPCodec
	if sip == "" {
		sip = "?"
	}
	return "browser " + b + " / SIP " + sip
}

func transcodingText(c *AgentCall) string {
	if c == nil {
		return noCall
	}
	if c.Transcoding {
		return "on"
	}
	return "off"
}

// levelText is the live audio level each way.
func levelText(c *AgentCall) string {
	if c == nil {
		return noCall
	}
	lvl := func(l MediaLeg) string {
		if !l.HasLevel {
			return "no audio yet"
		}
		return strconv.FormatFloat(l.LevelDB, 'f', 0, 64) + " dBFS"
	}
	return "agent " + lvl(c.Agent) + " · customer " + lvl(c.Customer)
}

// lossText is each direction's packet loss: frames the jitter buffer had to
// conceal or skip, out of those expected.
func lossText(c *AgentCall) string {
	if c == nil {
		return noCall
	}
	loss := func(l MediaLeg) string {
		total := l.Packets + l.Lost
		if total == 0 {
			return "no packets yet"
		}
		pct := float64(l.Lost) / float64(total) * 100
		return strconv.FormatFloat(pct, 'f', 1, 64) + "% (" + strconv.FormatUint(l.Lost, 10) + " of " + strconv.FormatUint(total, 10) + ")"
	}
	return "agent " + loss(c.Agent) + " · customer " + loss(c.Customer)
}

// trafficText is one direction of a TURN allocation's relayed traffic.
func trafficText(bytes, packets uint64) string {
	return fmtBytes(bytes) + " in " + strconv.FormatUint(packets, 10) + " packets"
}

// fmtBytes renders a byte count in decimal units.
func fmtBytes(n uint64) string {
	switch {
	case n >= 1e9:
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + " GB"
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + " kB"
	}
	return strconv.FormatUint(n, 10) + " B"
}
