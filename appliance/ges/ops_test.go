package ges

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func TestEstimatedWaitTime(t *testing.T) {
	e := newEnv(t)
	ewt := func(q string) []EWTResult {
		r := e.api("GET", "/engagement/v3/estimated-wait-time?"+q, nil)
		if r.code != 200 {
			t.Fatalf("ewt %s: %d %s", q, r.code, r.Status.Message)
		}
		var out []EWTResult
		json.Unmarshal(r.Data, &out)
		return out
	}
	// No agents logged in: mode2 -2; mode1 ignores agents but has no history: -1.
	if r := ewt("virtual-queues=VQ_Sales&mode=mode2"); r[0].ResultCode != -2 || r[0].EstimatedWaitTime != -1 {
		t.Fatalf("no agents = %+v", r)
	}
	if r := ewt("virtual-queues=VQ_Sales&mode=1"); r[0].ResultCode != -1 {
		t.Fatalf("mode1 without history = %+v", r)
	}
	e.plat.SetStat(demoTenant, "VQ_Sales", StatLoggedInAgents, 2)
	e.plat.SetStat(demoTenant, "VQ_Sales", StatReadyAgents, 0)
	e.plat.SetStat(demoTenant, "VQ_Sales", StatAHT, 120)
	e.plat.SetStat(demoTenant, "VQ_Support", StatLoggedInAgents, 1)
	e.plat.SetStat(demoTenant, "VQ_Support", StatExpectedWait, 42)
	e.clk.Advance(time.Minute) // past the stats cache
	// Four callbacks wait in VQ_Sales (own count): 4 x 120 s / 2 agents.
	for i := range 4 {
		id := e.create(map[string]any{"serviceName": "CB_Sales", "phoneNumber": fmt.Sprintf("+1202555010%d", i)})
		waitFor(t, "queued", func() bool { return e.retrieve(id)["callbackState"] == "QUEUED" })
	}
	e.clk.Advance(time.Minute)
	r := ewt("virtual-queues=VQ_Sales,CB_Support&mode=mode2")
	if len(r) != 2 || r[0].EstimatedWaitTime != 240 || r[0].ResultCode != 0 || r[1].VirtualQueue != "CB_Support" || r[1].ResultCode != -1 {
		t.Fatalf("ewt = %+v", r)
	}
	if r := ewt("virtual-queues=VQ_Support&mode=mode3"); r[0].EstimatedWaitTime != 42 {
		t.Fatalf("mode3 = %+v", r)
	}
	// Older alias returns one object.
	a := e.api("GET", "/engagement/v3/estimated-wait-time/virtual-queues/VQ_Sales", nil)
	var one EWTResult
	json.Unmarshal(a.Data, &one)
	if a.code != 200 || one.EstimatedWaitTime != 240 {
		t.Fatalf("alias = %d %+v", a.code, one)
	}
	var qs QueueStatus
	json.Unmarshal(e.api("GET", "/engagement/v3/callbacks/queue-status/VQ_Sales", nil).Data, &qs)
	if qs.EWT != 240 || !qs.OfferImmediateCallback || !qs.OfferScheduledCallback {
		t.Fatalf("queue-status = %+v", qs)
	}
	for _, bad := range []string{"mode=mode2", "virtual-queues=VQ_Sales&mode=mode9"} {
		if r := e.api("GET", "/engagement/v3/estimated-wait-time?"+bad, nil); r.code != 400 {
			t.Errorf("%s = %d, want 400", bad, r.code)
		}
	}
	if r := e.api("GET", "/engagement/v3/callbacks/queue-status/VQ_None", nil); r.code != 400 {
		t.Errorf("unknown queue = %d", r.code)
	}
}

func TestCallIn(t *testing.T) {
	e := newEnv(t)
	r := e.api("POST", "/engagement/v3/call-in/requests/create", map[string]any{"groupName": "technical_help",
		"fromPhoneNumber": "+12025550103", "userData": map[string]any{"topic": "wifi"}})
	if r.code != 200 {
		t.Fatalf("call-in: %d %s", r.code, r.Status.Message)
	}
	var d map[string]any
	json.Unmarshal(r.Data, &d)
	code, _ := d["accessCode"].(float64)
	if d["toPhoneNumber"] != "+18005550199" || d["groupName"] != "technical_help" || d["fromPhoneNumber"] != "+12025550103" ||
		code < 1000 || code > 9999 || int64(d["expirationTime"].(float64)) != e.clk.Now().Add(600*time.Second).UnixMilli() {
		t.Fatalf("call-in data = %v", d)
	}
	for _, body := range []string{`{"groupName":"nope"}`, `{}`, `{"groupName":"technical_help","fromPhoneNumber":"12"}`} {
		if r := e.api("POST", "/engagement/v3/call-in/requests/create", body); r.code != 400 {
			t.Errorf("%s = %d, want 400", body, r.code)
		}
	}
	list, err := e.svc.ListCallIns(context.Background(), demoTenant, "+1202555010", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListCallIns = %v %v", list, err)
	}
}

func TestStatisticsProxyCache(t *testing.T) {
	e := newEnv(t)
	e.plat.SetStat(demoTenant, "VQ_Sales", StatReadyAgents, 2)
	body := `{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrentReadyAgents"}]}}`
	get := func(hdr ...string) float64 {
		r := e.api("POST", "/engagement/v3/statistics/operations/get-statistic-ex", body, hdr...)
		if r.code != 200 {
			t.Fatalf("statistics: %d %s", r.code, r.Status.Message)
		}
		var d struct{ Statistics []Statistic }
		json.Unmarshal(r.Data, &d)
		return d.Statistics[0].Value
	}
	if v := get(); v != 2 {
		t.Fatalf("value = %v", v)
	}
	e.plat.SetStat(demoTenant, "VQ_Sales", StatReadyAgents, 3)
	e.clk.Advance(10 * time.Second)
	if v := get("Cache-Control: max-age=1"); v != 2 { // max-age below 15 s counts as 15 s
		t.Fatalf("cached value = %v, want 2", v)
	}
	e.clk.Advance(10 * time.Second)
	if v := get("Cache-Control: max-age=15"); v != 3 {
		t.Fatalf("value after max-age = %v, want 3", v)
	}
	e.plat.SetStat(demoTenant, "VQ_Sales", StatReadyAgents, 4)
	e.clk.Advance(4 * time.Minute)
	if v := get(); v != 3 {
		t.Fatalf("value within 5 min = %v, want cached 3", v)
	}
	e.clk.Advance(2 * time.Minute)
	if v := get(); v != 4 {
		t.Fatalf("value after 5 min = %v, want 4", v)
	}
	if r := e.api("POST", "/engagement/v3/statistics/operations/get-statistic-ex", `{"data":{}}`); r.code != 400 {
		t.Fatalf("empty statistics = %d", r.code)
	}
}

// A statistic the statistics service refuses is the caller's mistake: 400
// with the service's reason. Only an unreachable or failing service is 503.
func TestStatisticsRefusedIsBadRequest(t *testing.T) {
	srv, _ := fakePlatformServer(t)
	e := newEnv(t, withPlatform(NewHTTPPlatform(srv.URL, "ges_client", "ges-secret", srv.Client())))
	t.Cleanup(srv.Client().CloseIdleConnections)
	stat := func(objectID, objectType, name string) resp {
		return e.api("POST", pathStatistics, map[string]any{"data": map[string]any{"statistics": []any{
			map[string]any{"objectId": objectID, "objectType": objectType, "name": name}}}})
	}
	if r := stat("VQ_Sales", "Queue", "Nope"); r.code != 400 || r.Status.Code != 400 ||
		r.Status.Message != `unknown statistic "Nope" (known: CurrentReadyAgents)` {
		t.Fatalf("unknown statistic = %d %q, want 400 with the statistics service's reason", r.code, r.Status.Message)
	}
	// objectType is checked here: statistics are kept per virtual queue.
	for _, typ := range []string{"Agent", ""} {
		if r := stat("VQ_Sales", typ, StatReadyAgents); r.code != 400 || !strings.Contains(r.Status.Message, "objectType") {
			t.Errorf("objectType %q = %d %q, want 400 naming objectType", typ, r.code, r.Status.Message)
		}
	}
	if r := stat("VQ_Sales", "queue", StatReadyAgents); r.code != 200 {
		t.Errorf("objectType queue = %d %q, want 200", r.code, r.Status.Message)
	}
	if r := stat("VQ_Down", "Queue", StatReadyAgents); r.code != 503 {
		t.Errorf("statistics service failing = %d %q, want 503", r.code, r.Status.Message)
	}
	// The embedded static platform refuses like GWS.
	static := newEnv(t)
	if r := static.api("POST", pathStatistics, `{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"Nope"}]}}`); r.code != 400 ||
		!strings.Contains(r.Status.Message, `unknown statistic "Nope"`) {
		t.Errorf("static platform, unknown statistic = %d %q, want 400", r.code, r.Status.Message)
	}
}

// estimated-wait-time takes at most maxEWTQueues queues, answered with a few
// statistics calls rather than one per queue; include-calls-on-hold is a boolean.
func TestEstimatedWaitTimeLimits(t *testing.T) {
	e := newEnv(t)
	names := make([]string, maxEWTQueues+1)
	for i := range names {
		names[i] = fmt.Sprintf("Q%d", i)
	}
	r := e.api("GET", "/engagement/v3/estimated-wait-time?virtual-queues="+strings.Join(names, ","), nil)
	if r.code != 400 || !strings.Contains(r.Status.Message, "virtual-queues") || !strings.Contains(r.Status.Message, "at most 100") {
		t.Fatalf("%d queues = %d %q, want 400 naming virtual-queues and the limit", len(names), r.code, r.Status.Message)
	}
	calls := e.plat.StatisticsCalls()
	r = e.api("GET", "/engagement/v3/estimated-wait-time?virtual-queues="+strings.Join(names[:maxEWTQueues], ","), nil)
	var out []EWTResult
	json.Unmarshal(r.Data, &out)
	if r.code != 200 || len(out) != maxEWTQueues || out[42].VirtualQueue != "Q42" || out[42].ResultCode != -2 {
		t.Fatalf("%d queues = %d %q, %d results", maxEWTQueues, r.code, r.Status.Message, len(out))
	}
	if n := e.plat.StatisticsCalls() - calls; n > 3 {
		t.Errorf("%d queues took %d statistics calls, want at most 3", maxEWTQueues, n)
	}
	for q, want := range map[string]int{"true": 200, "false": 200, "TRUE": 200, "": 200, "yes": 400, "1": 400, "maybe": 400} {
		for _, p := range []string{"/engagement/v3/estimated-wait-time?virtual-queues=VQ_Sales&", "/engagement/v3/estimated-wait-time/virtual-queues/VQ_Sales?"} {
			r := e.api("GET", p+"include-calls-on-hold="+q, nil)
			if r.code != want || (want == 400 && !strings.Contains(r.Status.Message, "include-calls-on-hold")) {
				t.Errorf("%sinclude-calls-on-hold=%s = %d %q, want %d", p, q, r.code, r.Status.Message, want)
			}
		}
	}
}

func TestThrottling(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxActivePerNumber: 2, TenantCreatesPerSec: 0.001, TenantCreateBurst: 4}))
	for i := range 2 {
		e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550104", "priority": i})
	}
	r := e.api("POST", "/engagement/v3/callbacks/create", map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550104"})
	if r.code != 429 || !strings.Contains(r.Status.Message, "+12025550104") {
		t.Fatalf("third callback for a number = %d %q, want 429", r.code, r.Status.Message)
	}
	// Every 429 has the reference's shape: data.slots, empty with nothing to propose.
	if slots, ok := slotsOf(r); !ok || len(slots) != 0 {
		t.Fatalf("per-number 429 data = %s, want {\"slots\":{}}", r.Data)
	}
	e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550105"})
	r = e.api("POST", "/engagement/v3/callbacks/create", map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550106"})
	if r.code != 429 || !strings.Contains(r.Status.Message, "tenant") {
		t.Fatalf("over the tenant rate = %d %q, want 429", r.code, r.Status.Message)
	}
	if slots, ok := slotsOf(r); !ok || len(slots) != 0 {
		t.Fatalf("tenant-rate 429 data = %s, want {\"slots\":{}}", r.Data)
	}
}

// slotsOf reads data.slots of a 429; ok is false when it is missing or not an object.
func slotsOf(r resp) (map[string]string, bool) {
	var d struct {
		Slots *map[string]string `json:"slots"`
	}
	if json.Unmarshal(r.Data, &d) != nil || d.Slots == nil || *d.Slots == nil {
		return nil, false
	}
	return *d.Slots, true
}

func TestORSEndpointAuth(t *testing.T) {
	e := newEnv(t)
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550100"})
	path := "/engagement/internal/v1/callbacks/" + string(id) + "/state"
	body := map[string]any{"state": "ROUTING"}
	if r := e.do("POST", path, body); r.code != 401 {
		t.Fatalf("no token = %d", r.code)
	}
	if r := e.do("POST", path, body, "Authorization: Bearer not.a.jwt"); r.code != 401 {
		t.Fatalf("bad token = %d", r.code)
	}
	if r := e.report(id, "ges_client", body); r.code != 403 {
		t.Fatalf("other client = %d", r.code)
	}
	if r := e.report("3b8f8a52-1111-4111-8111-111111111111", "ors_client", body); r.code != 404 {
		t.Fatalf("unknown id = %d", r.code)
	}
	if r := e.report(id, "ors_client", map[string]any{"state": "DONE"}); r.code != 400 {
		t.Fatalf("bad state = %d", r.code)
	}
	if r := e.report(id, "ors_client", map[string]any{"state": "ROUTING", "positionInQueue": "first"}); r.code != 400 {
		t.Fatalf("bad type = %d", r.code)
	}
	if r := e.report(id, "ors_client", body); r.code != 200 {
		t.Fatalf("good report = %d %s", r.code, r.Status.Message)
	}
}

// TestOpenAPIMatchesRoutes fails when Mount and openapi.json disagree.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	svc := &Service{}
	ech := echo.New()
	svc.Mount(ech)
	routes := map[string]bool{}
	for _, r := range ech.Routes() {
		if r.Path == pathOpenAPI || r.Method == echo.RouteNotFound { // not operations: the document, and unknown paths
			continue
		}
		p := r.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		routes[strings.ToLower(r.Method)+" "+p] = true
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			documented[m+" "+p] = true
		}
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !routes[d] {
			t.Errorf("openapi.json documents %s but no route serves it", d)
		}
	}
	if len(routes) < 11 {
		t.Fatalf("only %d routes", len(routes))
	}
}
