package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 28, 15, 30, 0, 0, time.UTC)

// fakeConsoleState records what the controls did.
type fakeConsoleState struct {
	mu      sync.Mutex
	offset  time.Duration
	faults  map[string]bool
	resets  int
	signIns int
}

func fakeConsoleWith(st *fakeConsoleState) ConsoleSources {
	st.faults = map[string]bool{"gauth.token-500": false, "gws.unavailable": true}
	return ConsoleSources{
		Overview: func() Overview {
			return Overview{ConsoleURL: "http://127.0.0.1:8080/", GESAPIURL: "http://127.0.0.1:8080/engagement/v3", APIKey: "cxlab-demo-api-key-0000000000000000",
				CCID: testCCID, RedisURL: "redis://127.0.0.1:6380/0", PostgresURL: "postgres://cxlab:cxlab@127.0.0.1:5433/cxlab",
				TURNURIs: []string{"turn:127.0.0.1:3478?transport=udp"}, SIPURI: "sip:127.0.0.1:5060",
				Logins: []Login{{Role: "Agent", Username: "agent1", Password: "agent123", DN: "7001"}, {Role: "Supervisor", Username: "supervisor", Password: "super123"}}}
		},
		Components: func(context.Context) []ComponentStatus {
			return []ComponentStatus{{Name: "redis", Ready: true, Endpoint: "redis://127.0.0.1:6380", Version: "7.2", Since: t0.Add(-time.Hour)},
				{Name: "gateway", Ready: false, Detail: "gauth unreachable", Endpoint: "http://127.0.0.1:8080/webrtc", Version: "dev", Since: t0.Add(-90 * time.Second)},
				{Name: "gws", Ready: true, Endpoint: "http://127.0.0.1:8080/gws", Version: "dev", Since: t0.Add(-time.Hour)},
				{Name: "gauth", Ready: true, Endpoint: "http://127.0.0.1:8080/auth/v3", Version: "dev", Since: t0.Add(-time.Hour)}}
		},
		Agents: func(context.Context) ([]AgentRow, error) {
			return []AgentRow{{UserName: "agent1", DN: "7001", State: "Ready", Skills: []string{"VQ_Sales", "VQ_Support"}, Since: t0.Add(-5 * time.Minute), Signed: true}}, nil
		},
		Calls: func(context.Context) ([]CallRow, error) { return nil, errors.New("voice is restarting") },
		Queues: func(context.Context) ([]QueueRow, error) {
			return []QueueRow{{Name: "VQ_Support", Waiting: 3, ReadyAgents: 1, LoggedIn: 2, EWTSeconds: 95}}, nil
		},
		Slots: func(context.Context) ([]SlotUsage, error) {
			return []SlotUsage{{Service: "CB_Support", Start: t0.Add(30 * time.Minute), Booked: 2, Capacity: 5}}, nil
		},
		Logs: func(_ context.Context, component string, n int) ([]LogLine, error) {
			return []LogLine{{Time: t0, Level: "INFO", Component: "ges", Message: "callback created"},
				{Time: t0, Level: "WARN", Component: "gateway", Message: "ice timeout"},
				{Time: t0, Level: "INFO", Component: "gateway", Message: "agent signed in"}}, nil
		},
		Scaling: func(context.Context) (ScalingLive, error) {
			st.mu.Lock()
			defer st.mu.Unlock()
			return ScalingLive{GatewayReplicas: 1, SignIns: st.signIns, CPUPercent: 12, MemoryPercent: 20, CoturnReplicas: 1, CoturnCPU: 3, CoturnMemory: 5}, nil
		},
		ClockOffset: func() time.Duration { st.mu.Lock(); defer st.mu.Unlock(); return st.offset },
		AdvanceClock: func(d time.Duration) time.Time {
			st.mu.Lock()
			defer st.mu.Unlock()
			st.offset += d
			return t0.Add(st.offset)
		},
		Faults: func() []Fault {
			st.mu.Lock()
			defer st.mu.Unlock()
			return []Fault{{Name: "gauth.token-500", Description: "GAuth token endpoint answers 500", On: st.faults["gauth.token-500"]},
				{Name: "gws.unavailable", Description: "GWS answers 503", On: st.faults["gws.unavailable"]}}
		},
		SetFault: func(_ context.Context, name string, on bool) error {
			st.mu.Lock()
			defer st.mu.Unlock()
			if _, ok := st.faults[name]; !ok {
				return errors.New("unknown failure " + name)
			}
			st.faults[name] = on
			return nil
		},
		ResetDemo: func(context.Context) error { st.mu.Lock(); defer st.mu.Unlock(); st.resets++; return nil },
	}
}

func fakeConsole() ConsoleSources { return fakeConsoleWith(&fakeConsoleState{}) }

func TestConsolePage(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsole()})
	ts.ui.sampleOnce(context.Background())
	code, body, _ := get(t, ts.client(t), ts.URL+"/")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`data-component="redis" data-ready="true"`, `data-component="gateway" data-ready="false"`, "gauth unreachable", "1h00m00s",
		"cxlab-demo-api-key-0000000000000000", "agent1 / agent123", "DN 7001", "supervisor / super123",
		"x-api-key: cxlab-demo-api-key-0000000000000000", "redis-cli -u redis://127.0.0.1:6380/0", "psql &#39;postgres://",
		"turn:127.0.0.1:3478?transport=udp", "sip:127.0.0.1:5060",
		`data-dn="7001" data-state="Ready"`, "voice is restarting", `data-queue="VQ_Support" data-ewt="95"`, "<polyline",
		"not available in this process", // TURN has no source here
		`id="threshold-signin">25<`, `id="scale-gateway" data-desired="1"`,
		`id="size-db" data-kb="14000000">14 GB<`, `id="size-redis" data-kb="9450000">9.5 GB<`, "<strong>138,756</strong>",
		`data-fault="gws.unavailable" data-on="true"`, `id="btn-reset"`, `hx-get="/console/section/agents"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The fault switched on shows in its component's row; the one off does not.
	if !strings.Contains(body, `class="fault-on" data-fault="gws.unavailable"`) {
		t.Error("the overview does not show GWS's injected fault")
	}
	if strings.Contains(body, `class="fault-on" data-fault="gauth.token-500"`) {
		t.Error("the overview shows a fault that is off")
	}
	golden(t, "console.html", body)
}

func TestConsoleSections(t *testing.T) {
	st := &fakeConsoleState{signIns: 60}
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsoleWith(st)})
	c := ts.client(t)
	code, body, _ := get(t, c, ts.URL+"/console/section/scaling")
	if code != http.StatusOK || !strings.Contains(body, `id="scale-gateway" data-desired="3"`) || !strings.Contains(body, "scale out 1 -&gt; 3") {
		t.Errorf("60 sign-ins should ask for 3 gateways: %d %s", code, body)
	}
	if strings.Contains(body, "<html") {
		t.Error("a section must be a fragment")
	}
	_, body, _ = get(t, c, ts.URL+"/console/section/scaling?whatif=1&keda=1&replicas=2&agents=10&cpu=95&memory=10")
	if !strings.Contains(body, `id="scale-gateway" data-desired="4"`) {
		t.Errorf("what-if cpu 95%% on 2 should ask for 4: %s", body)
	}
	_, body, _ = get(t, c, ts.URL+"/console/section/scaling?whatif=1&replicas=2&agents=500")
	if !strings.Contains(body, "deployment.keda is false") {
		t.Errorf("what-if without KEDA: %s", body)
	}
	_, body, _ = get(t, c, ts.URL+"/console/section/sizing?cpd=10000&ud=10")
	// 10,000 × (7 + 30) × 14 = 5,180,000 kB; 10,000 × (5.5 + 12.5) × 14 = 2,520,000 kB.
	if !strings.Contains(body, `data-kb="5180000">5.2 GB<`) || !strings.Contains(body, `data-kb="2520000">2.5 GB<`) {
		t.Errorf("sizing for 10,000/day with 10 kB: %s", body)
	}
	_, body, _ = get(t, c, ts.URL+"/console/section/logs?component=gateway&filter=ICE")
	if !strings.Contains(body, "ice timeout") || strings.Contains(body, "agent signed in") || strings.Contains(body, "callback created") {
		t.Errorf("log filter: %s", body)
	}
	if !strings.Contains(body, `<option value="ges">ges</option>`) {
		t.Errorf("log component list: %s", body)
	}
	if code, _, _ := get(t, c, ts.URL+"/console/section/nope"); code != http.StatusNotFound {
		t.Errorf("unknown section: %d", code)
	}
}

func TestConsoleControls(t *testing.T) {
	st := &fakeConsoleState{}
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsoleWith(st)})
	c := ts.client(t)
	code, _, resp := postForm(t, c, ts.URL+"/console/clock", url.Values{"advance": {"90m"}})
	if code != http.StatusSeeOther || st.offset != 90*time.Minute {
		t.Fatalf("advance: %d, offset %v", code, st.offset)
	}
	_, body, _ := get(t, c, ts.URL+resp.Header.Get("Location"))
	if !strings.Contains(body, "Clock moved forward 1h30m0s") || !strings.Contains(body, `id="clock-offset">1h30m00s<`) {
		t.Errorf("page after advance lacks the message or offset")
	}
	if _, _, _ = postForm(t, c, ts.URL+"/console/clock", url.Values{"advance": {"-5m"}}); st.offset != 90*time.Minute {
		t.Errorf("a negative advance moved the clock to %v", st.offset)
	}
	// Days, as the 14-day purge wants them.
	if _, _, _ = postForm(t, c, ts.URL+"/console/clock", url.Values{"advance": {"14d"}}); st.offset != 90*time.Minute+14*24*time.Hour {
		t.Errorf("14d moved the clock to %v", st.offset)
	}
	if _, _, _ = postForm(t, c, ts.URL+"/console/clock", url.Values{"advance": {"31d"}}); st.offset != 90*time.Minute+14*24*time.Hour {
		t.Errorf("31d (over the 30-day bound) moved the clock to %v", st.offset)
	}
	postForm(t, c, ts.URL+"/console/faults", url.Values{"name": {"gauth.token-500"}, "on": {"1"}})
	if !st.faults["gauth.token-500"] {
		t.Error("fault not turned on")
	}
	_, _, resp = postForm(t, c, ts.URL+"/console/faults", url.Values{"name": {"nope"}, "on": {"1"}})
	if !strings.Contains(resp.Header.Get("Location"), "unknown+failure") {
		t.Errorf("unknown fault message: %q", resp.Header.Get("Location"))
	}
	postForm(t, c, ts.URL+"/console/reset", nil)
	if st.resets != 1 {
		t.Errorf("resets = %d", st.resets)
	}
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/console/reset", nil)
	req.Header.Set("Origin", "http://evil.example")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || st.resets != 1 {
		t.Errorf("cross-site reset: %d, resets %d", resp.StatusCode, st.resets)
	}
}

// A console without sources still renders, saying what is missing.
func TestConsoleWithoutSources(t *testing.T) {
	ts := newTestServer(t, Config{}, Deps{})
	code, body, _ := get(t, ts.client(t), ts.URL+"/")
	if code != http.StatusOK || strings.Count(body, notAvailable) < 5 {
		t.Errorf("status %d, %d not-available notes", code, strings.Count(body, notAvailable))
	}
}

func TestEWTChart(t *testing.T) {
	h := newEWTHistory(5)
	for i, v := range []int{10, 20, -1, 120, 60, 30} {
		h.add("VQ_Sales", t0.Add(time.Duration(i)*time.Second), v)
	}
	ch := h.charts()
	if len(ch) != 1 || ch[0].Count != 5 || ch[0].Max != 120 || ch[0].Last != 30 {
		t.Fatalf("chart = %+v", ch)
	}
	pts := strings.Fields(ch[0].Points)
	if len(pts) != 5 {
		t.Errorf("points %q", ch[0].Points)
	}
	// The 120 s sample is the top of the chart (y = 2), the unknown one sits on the axis (y = 58).
	if pts[2] != "120.0,2.0" || pts[1] != "60.0,58.0" {
		t.Errorf("points %q", ch[0].Points)
	}
}
