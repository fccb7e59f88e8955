package ui

import (
	"context"
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
	Now        time.Time
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
	Flash       string
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
}

// sizingView is the calculator's form and answers.
type sizingView struct {
	In      StorageInput
	Out     StorageEstimate
	OpsIn   RedisOpsInput
	Ops     RedisOpsEstimate
	PerCall float64 // Redis operations of one callback scheduled MinutesAhead ahead
	Minutes float64
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
	v := consoleView{Now: u.clock.Now(), Flash: q.Get("msg"), LogComponent: q.Get("component"), LogFilter: q.Get("filter")}
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
	if want("controls") {
		if src.ClockOffset != nil {
			v.HasClock, v.ClockOffset = true, src.ClockOffset()
		}
		if src.Faults != nil {
			v.Faults = src.Faults()
		}
		v.CanReset = src.ResetDemo != nil
	}
	return v
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

// filterLogs keeps the lines of one component whose message contains filter
// (case-insensitive) and lists the component names seen, newest lines last.
func filterLogs(lines []LogLine, component, filter string) ([]string, []LogLine) {
	names := map[string]bool{}
	out := make([]LogLine, 0, len(lines))
	f := strings.ToLower(filter)
	for _, l := range lines {
		names[l.Component] = true
		if component != "" && l.Component != component {
			continue
		}
		if f != "" && !strings.Contains(strings.ToLower(l.Message), f) && !strings.Contains(strings.ToLower(l.Level), f) {
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
	if q.Get("whatif") == "1" {
		sv.WhatIf = true
		sv.Live.GatewayReplicas = formInt(q, "replicas", sv.Live.GatewayReplicas)
		sv.Live.SignIns = formInt(q, "agents", sv.Live.SignIns)
		sv.Live.CPUPercent = formFloat(q, "cpu", sv.Live.CPUPercent)
		sv.Live.MemoryPercent = formFloat(q, "memory", sv.Live.MemoryPercent)
		sv.Values.KEDA = q.Get("keda") == "1"
	}
	if sv.Live.GatewayReplicas < 1 {
		sv.Live.GatewayReplicas = 1
	}
	if sv.Live.CoturnReplicas < 1 {
		sv.Live.CoturnReplicas = 1
	}
	sv.Gateway = DecideGatewayScale(sv.Values, sv.Live.GatewayReplicas, sv.Live.SignIns, sv.Live.CPUPercent, sv.Live.MemoryPercent)
	sv.Coturn = DecideCoturnScale(sv.Values, sv.Live.CoturnReplicas, sv.Live.CoturnCPU, sv.Live.CoturnMemory)
	return sv
}

// sizingFrom reads the calculator's form; the defaults are seed 004's worked examples.
func sizingFrom(q url.Values) sizingView {
	var s sizingView
	s.In = StorageInput{CallbacksPerDay: formFloat(q, "cpd", 100000), UserDataKB: formFloat(q, "ud", 1)}
	s.Out = EstimateStorage(s.In)
	s.OpsIn = RedisOpsInput{SlotMinutes: formFloat(q, "slot", 15), CapacityPerSlot: formFloat(q, "cap", 100),
		OpenHoursPerDay: formFloat(q, "hours", 24), DaysBooked: formFloat(q, "days", RetentionDays),
		ActiveImmediate: formFloat(q, "immediate", 1000), EWTMinutes: formFloat(q, "ewt", 90)}
	s.Ops = EstimateRedisOps(s.OpsIn)
	s.Minutes = formFloat(q, "ahead", 60)
	s.PerCall = RedisOpsPerCallback(s.Minutes)
	return s
}

func formFloat(q url.Values, key string, def float64) float64 {
	f, err := strconv.ParseFloat(strings.ReplaceAll(q.Get(key), ",", ""), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return def
	}
	return f
}

func formInt(q url.Values, key string, def int) int {
	n, err := strconv.Atoi(q.Get(key))
	if err != nil || n < 0 {
		return def
	}
	return n
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
func (u *UI) consoleClock(c echo.Context) error {
	if !sameOrigin(c) {
		return c.String(http.StatusForbidden, "cross-origin request refused")
	}
	if u.deps.Console.AdvanceClock == nil {
		return consoleBack(c, "The lab clock can't be moved in this process.")
	}
	d, err := time.ParseDuration(strings.TrimSpace(c.FormValue("advance")))
	if err != nil || d <= 0 || d > 30*24*time.Hour {
		return consoleBack(c, "Give a positive duration up to 720h, such as 15m or 24h.")
	}
	now := u.deps.Console.AdvanceClock(d)
	u.log.Info("lab clock advanced", "by", d, "now", now)
	return consoleBack(c, "Clock moved forward "+d.String()+": lab time is now "+now.UTC().Format(time.RFC3339)+".")
}

func (u *UI) consoleFault(c echo.Context) error {
	if !sameOrigin(c) {
		return c.String(http.StatusForbidden, "cross-origin request refused")
	}
	if u.deps.Console.SetFault == nil {
		return consoleBack(c, "Failure injection is not available in this process.")
	}
	name, on := c.FormValue("name"), c.FormValue("on") == "1"
	if err := u.deps.Console.SetFault(c.Request().Context(), name, on); err != nil {
		return consoleBack(c, "Could not change "+name+": "+err.Error())
	}
	state := "off"
	if on {
		state = "on"
	}
	return consoleBack(c, "Failure "+name+" is "+state+".")
}

func (u *UI) consoleReset(c echo.Context) error {
	if !sameOrigin(c) {
		return c.String(http.StatusForbidden, "cross-origin request refused")
	}
	if u.deps.Console.ResetDemo == nil {
		return consoleBack(c, "Reset is not available in this process.")
	}
	if err := u.deps.Console.ResetDemo(c.Request().Context()); err != nil {
		return consoleBack(c, "Reset failed: "+err.Error())
	}
	return consoleBack(c, "The demo tenant was reset.")
}

func consoleBack(c echo.Context, msg string) error {
	return c.Redirect(http.StatusSeeOther, "/?msg="+url.QueryEscape(msg)+"#controls")
}

// uptime renders a component's time since start.
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
func fmtNum(f float64) string {
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
