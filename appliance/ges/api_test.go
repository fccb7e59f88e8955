package ges

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestImmediateCallbackLifecycle(t *testing.T) {
	e := newEnv(t)
	id := e.create(map[string]any{"serviceName": "CB_Sales", "phoneNumber": "+12025550100",
		"userData": map[string]any{"acct": "123", "bad-key": 1}, "priority": 7})

	// The monitor hands it to ORS at once: QUEUED plus one start entry.
	waitFor(t, "QUEUED", func() bool { return e.retrieve(id)["callbackState"] == "QUEUED" })
	msgs := e.streamEntries()
	if len(msgs) != 1 {
		t.Fatalf("stream entries = %d, want 1", len(msgs))
	}
	if len(msgs[0].Values) != 1 {
		t.Fatalf("start entry fields = %v, want the one field callback", msgs[0].Values)
	}
	entry := entryOf(t, msgs[0])
	if entry["action"] != "start" || entry["id"] != string(id) || entry["ccid"] != string(demoTenant) {
		t.Fatalf("start entry = %v", entry)
	}
	if entry["service"] != "CB_Sales" || entry["virtualQueue"] != "VQ_Sales" || entry["phoneNumber"] != "+12025550100" ||
		entry["priority"] != 7.0 || entry["maxDialAttempts"] != 3.0 || entry["retryDelaySec"] != 30.0 {
		t.Fatalf("start entry callback = %v", entry)
	}
	if ud, _ := entry["userData"].(map[string]any); ud["acct"] != "123" || ud["bad-key"] != nil {
		t.Fatalf("userData = %v; want acct only", entry["userData"])
	}
	if _, err := time.Parse(time.RFC3339, entry["desiredTime"].(string)); err != nil {
		t.Fatalf("desiredTime %v: %v", entry["desiredTime"], err)
	}
	// The same instant as the record's, to the millisecond.
	if rec := e.retrieve(id); entry["desiredTime"] != rec["desiredTime"] {
		t.Fatalf("stream entry desiredTime %v, record's %v", entry["desiredTime"], rec["desiredTime"])
	}

	// ORS reports; retrieve shows position/EWT while waiting, reason only when COMPLETED.
	one, thirty := 1, 30
	r := e.report(id, "ors_client", map[string]any{"state": "QUEUED", "orsSessionId": "6f1c0d1e-0000-4000-8000-000000000001",
		"positionInQueue": one, "estimatedWaitTime": thirty})
	if r.code != 200 {
		t.Fatalf("report: %d %s", r.code, r.Status.Message)
	}
	got := e.retrieve(id)
	if got["positionInQueue"] != float64(1) || got["estimatedWaitTime"] != float64(30) || got["callbackReason"] != nil {
		t.Fatalf("queued view = %v", got)
	}
	e.report(id, "ors_client", map[string]any{"state": "ROUTING", "agentDn": "7001"})
	e.report(id, "ors_client", map[string]any{"state": "PROCESSING", "dialAttempts": 1})
	if r := e.api("POST", "/engagement/v3/callbacks/cancel", map[string]any{"id": id}); r.code != 400 ||
		!strings.Contains(r.Status.Message, "PROCESSING") {
		t.Fatalf("cancel while PROCESSING = %d %q, want 400 naming PROCESSING", r.code, r.Status.Message)
	}
	r = e.report(id, "ors_client", map[string]any{"state": "COMPLETED", "reason": "AGENT_CONNECTED"})
	if r.code != 200 {
		t.Fatalf("complete: %d %s", r.code, r.Status.Message)
	}
	got = e.retrieve(id)
	if got["callbackState"] != "COMPLETED" || got["callbackReason"] != "AGENT_CONNECTED" || got["positionInQueue"] != nil {
		t.Fatalf("completed view = %v", got)
	}
	// Later reports are refused with 409 so ORS ends its session.
	if r := e.report(id, "ors_client", map[string]any{"state": "ROUTING"}); r.code != 409 {
		t.Fatalf("report after COMPLETED = %d, want 409", r.code)
	}
	cb, err := e.svc.Get(context.Background(), demoTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	var states []State
	for _, h := range cb.History {
		states = append(states, h.State)
	}
	if want := "SCHEDULED QUEUED ROUTING PROCESSING COMPLETED"; strings.Join(toStrings(states), " ") != want {
		t.Fatalf("history = %v, want %s", states, want)
	}
	if cb.AgentDN != "7001" || cb.DialAttempts != 1 || cb.ORSSessionID == "" {
		t.Fatalf("record = %+v", cb)
	}
}

func toStrings(s []State) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

func TestCancelQueuedNotifiesORS(t *testing.T) {
	e := newEnv(t)
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550101"})
	waitFor(t, "QUEUED", func() bool { return e.retrieve(id)["callbackState"] == "QUEUED" })
	r := e.api("POST", "/engagement/v3/callbacks/cancel", map[string]any{"id": id})
	if r.code != 200 {
		t.Fatalf("cancel: %d %s", r.code, r.Status.Message)
	}
	got := e.retrieve(id)
	if got["callbackState"] != "COMPLETED" || got["callbackReason"] != "CANCELLED" {
		t.Fatalf("after cancel: %v", got)
	}
	msgs := e.streamEntries()
	if len(msgs) != 2 || entryOf(t, msgs[1])["action"] != "cancel" || entryOf(t, msgs[1])["id"] != string(id) {
		t.Fatalf("stream = %v, want start then cancel", msgs)
	}
	// A second cancel is a 400 (already COMPLETED), not a second stream entry.
	if r := e.api("POST", "/engagement/v3/callbacks/cancel", map[string]any{"id": id}); r.code != 400 {
		t.Fatalf("second cancel = %d, want 400", r.code)
	}
	if n := len(e.streamEntries()); n != 2 {
		t.Fatalf("stream entries after second cancel = %d", n)
	}
}

func TestErrorEnvelope(t *testing.T) {
	e := newEnv(t, withConfig(Config{BodyLimit: 1024}))
	create := "/engagement/v3/callbacks/create"
	good := `{"serviceName":"CB_Sales","phoneNumber":"+12025550100"}`
	cases := []struct {
		name    string
		hdr     []string
		body    string
		path    string
		code    int
		message string
	}{
		{"no api key", nil, good, create, 401, "x-api-key"},
		{"unknown api key", []string{"x-api-key: nope"}, good, create, 401, "x-api-key"},
		{"ccid header", []string{"X-API-Key: " + demoKey, "ccid: " + string(demoTenant)}, good, create, 400, "must be empty"},
		{"ContactCenterID header", []string{"x-api-key: " + demoKey, "contactcenterid: x"}, good, create, 400, "must be empty"},
		{"malformed json", []string{"x-api-key: " + demoKey}, `{"serviceName":`, create, 400, "malformed JSON"},
		{"not an object", []string{"x-api-key: " + demoKey}, `[1]`, create, 400, "must be a JSON object"},
		{"empty body", []string{"x-api-key: " + demoKey}, ``, create, 400, "body is required"},
		{"missing serviceName", []string{"x-api-key: " + demoKey}, `{"phoneNumber":"+12025550100"}`, create, 400, "serviceName"},
		{"unknown service", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Nope","phoneNumber":"+12025550100"}`, create, 400, "CB_Nope"},
		{"missing phone", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales"}`, create, 400, "phoneNumber"},
		{"phone not E.164", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"202-555-0100"}`, create, 400, "phoneNumber"},
		{"phone too short", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+1202555"}`, create, 400, "phoneNumber"},
		{"phone not a string", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":12025550100}`, create, 400, "phoneNumber"},
		{"desiredTime", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+12025550100","desiredTime":"tomorrow"}`, create, 400, "desiredTime"},
		{"cbOfferType", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+12025550100","cbOfferType":"SOON"}`, create, 400, "cbOfferType"},
		{"priority", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+12025550100","priority":"high"}`, create, 400, "priority"},
		{"userData", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+12025550100","userData":"x"}`, create, 400, "userData"},
		{"NUL in userData", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+12025550100","userData":{"a":{"b":["x\u0000"]}}}`, create, 400, "userData.a.b[0]"},
		{"NUL in language", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+12025550100","language":"en\u0000"}`, create, 400, "language"},
		{"too large", []string{"x-api-key: " + demoKey}, `{"serviceName":"CB_Sales","phoneNumber":"+12025550100","userData":{"a":"` + strings.Repeat("x", 2000) + `"}}`, create, 413, "1024"},
		{"retrieve unknown", []string{"x-api-key: " + demoKey}, `{"id":"3b8f8a52-1111-4111-8111-111111111111"}`, "/engagement/v3/callbacks/retrieve", 404, "not found"},
		{"retrieve not uuid", []string{"x-api-key: " + demoKey}, `{"id":"x"}`, "/engagement/v3/callbacks/retrieve", 404, "not found"},
		{"retrieve no id", []string{"x-api-key: " + demoKey}, `{}`, "/engagement/v3/callbacks/retrieve", 400, "id"},
		{"cancel unknown", []string{"x-api-key: " + demoKey}, `{"id":"3b8f8a52-1111-4111-8111-111111111111"}`, "/engagement/v3/callbacks/cancel", 404, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", tc.path, tc.body, tc.hdr...)
			if r.code != tc.code || r.Status.Code != tc.code || !strings.Contains(r.Status.Message, tc.message) {
				t.Fatalf("got %d (status.code %d) %q; want %d containing %q", r.code, r.Status.Code, r.Status.Message, tc.code, tc.message)
			}
			if r.Status.CorrID == "" || r.header.Get("X-Correlation-Id") != r.Status.CorrID {
				t.Fatalf("corrId %q, header %q", r.Status.CorrID, r.header.Get("X-Correlation-Id"))
			}
		})
	}
	ok := e.do("POST", create, good, "x-api-key: "+demoKey)
	if ok.code != 200 || ok.Status.Code != 0 || ok.Status.Message != "Successful" || ok.Status.CorrID == "" {
		t.Fatalf("success envelope = %+v", ok)
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550102"})
	for _, p := range []string{"/engagement/v3/callbacks/retrieve", "/engagement/v3/callbacks/cancel"} {
		r := e.do("POST", p, map[string]any{"id": id}, "x-api-key: "+otherKey)
		if r.code != 404 {
			t.Fatalf("%s with another tenant's key = %d, want 404", p, r.code)
		}
	}
	if e.retrieve(id)["callbackState"] == "COMPLETED" {
		t.Fatal("another tenant cancelled the callback")
	}
	page, err := e.svc.List(context.Background(), ListQuery{Tenant: otherTen})
	if err != nil || page.Total != 0 {
		t.Fatalf("other tenant lists %d callbacks (%v)", page.Total, err)
	}
}

// Callback ids are UUIDs: one given in upper case names the same callback
// everywhere an id comes in, and answers carry the canonical lower-case form.
func TestCallbackIDAnyCase(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550100"})
	upper := CallbackID(strings.ToUpper(string(id)))
	if upper == id {
		t.Fatalf("id %s has no letters to upper-case", id)
	}
	waitFor(t, "QUEUED", func() bool { return e.retrieve(id)["callbackState"] == "QUEUED" })

	r := e.api("POST", "/engagement/v3/callbacks/retrieve", map[string]any{"id": upper})
	var got map[string]any
	json.Unmarshal(r.Data, &got)
	if r.code != 200 || got["id"] != string(id) {
		t.Fatalf("retrieve by %s = %d %q %v, want 200 with id %s", upper, r.code, r.Status.Message, got, id)
	}
	// ORS names the callback in the path of its state report.
	three := 3
	if r := e.report(upper, "ors_client", map[string]any{"state": "QUEUED", "positionInQueue": three}); r.code != 200 {
		t.Fatalf("ORS report by %s = %d %q, want 200", upper, r.code, r.Status.Message)
	}
	if pos := e.retrieve(id)["positionInQueue"]; pos != float64(3) {
		t.Fatalf("positionInQueue after the report = %v, want 3", pos)
	}
	// The UI's details view.
	if cb, err := e.svc.Get(ctx, demoTenant, upper); err != nil || cb.ID != id {
		t.Fatalf("Get(%s) = %v, %v", upper, cb, err)
	}

	// Cancel of a scheduled callback: answered with the canonical id, out of the due index.
	sid := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550101",
		"desiredTime": e.clk.Now().Add(2 * time.Hour).Format(time.RFC3339)})
	r = e.api("POST", "/engagement/v3/callbacks/cancel", map[string]any{"id": strings.ToUpper(string(sid))})
	json.Unmarshal(r.Data, &got)
	if r.code != 200 || got["id"] != string(sid) {
		t.Fatalf("cancel by upper-case id = %d %q %v, want 200 with id %s", r.code, r.Status.Message, got, sid)
	}
	if st := e.retrieve(sid); st["callbackState"] != "COMPLETED" || st["callbackReason"] != "CANCELLED" {
		t.Fatalf("after cancel: %v", st)
	}
	if err := e.rdb.ZScore(ctx, dueKey, string(sid)).Err(); err == nil {
		t.Fatalf("cancelled callback %s is still in the due index", sid)
	}
}

// userData keys are kept when they are ECMAScript IdentifierNames, Unicode
// ones included; other keys are dropped.
func TestUserDataUnicodeIdentifiers(t *testing.T) {
	e := newEnv(t)
	ud := map[string]any{"café": 1, "π": 2, "$ok": 3, "_x9": 4, "名前": 5, "x·y": 6, "a\u200db": 7, "class": 8, "ǅx": 9,
		"bad-key": 10, "9lives": 11, "a b": 12, "": 13, "·x": 14, "x→y": 15, "x\u00a0": 16}
	keep := []string{"café", "π", "$ok", "_x9", "名前", "x·y", "a\u200db", "class", "ǅx"}
	id := e.create(map[string]any{"serviceName": "CB_Sales", "phoneNumber": "+12025550100", "userData": ud})
	cb, err := e.svc.Get(context.Background(), demoTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(cb.UserData) != len(keep) {
		t.Errorf("stored userData keys = %v, want %q", keysOf(cb.UserData), keep)
	}
	for _, k := range keep {
		if cb.UserData[k] == nil {
			t.Errorf("userData key %q was dropped", k)
		}
	}
	// ORS gets the same keys.
	waitFor(t, "handed to ORS", func() bool { return len(e.streamEntries()) == 1 })
	sent, _ := entryOf(t, e.streamEntries()[0])["userData"].(map[string]any)
	if len(sent) != len(keep) || sent["café"] != 1.0 || sent["π"] != 2.0 {
		t.Errorf("userData handed to ORS = %v", sent)
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Unknown paths and methods under /engagement/v3 answer in the API's
// envelope, with the status echo would have given; a trailing slash after a
// name parameter is ignored.
func TestUnknownPathsUseEnvelope(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/engagement/v3/callbacks/nope", 404, ""},
		{"POST", "/engagement/v3/callbacks/nope", 404, ""},
		{"GET", "/engagement/v3/callbacks/availability/", 404, ""},
		{"GET", "/engagement/v3/callbacks/availability//", 404, ""},
		{"GET", "/engagement/v3/callbacks/availability/CB_Sales/extra", 404, ""},
		{"POST", "/engagement/v3/callbacks/create/", 404, ""},
		{"GET", "/engagement/v3", 404, ""},
		{"GET", "/engagement/v3/", 404, ""},
		{"GET", "/engagement/v3/callbacks/create", 405, "OPTIONS, POST"},
		{"DELETE", "/engagement/v3/callbacks/retrieve", 405, "OPTIONS, POST"},
		{"POST", "/engagement/v3/callbacks/availability/CB_Sales", 405, "OPTIONS, GET"},
		{"PUT", "/engagement/v3/estimated-wait-time", 405, "OPTIONS, GET"},
	}
	for _, tc := range cases {
		for _, hdr := range [][]string{nil, {"X-API-Key: " + demoKey}} {
			r := e.do(tc.method, tc.path, "{}", hdr...)
			if r.code != tc.code || r.Status.Code != tc.code || r.Status.Message == "" || r.Status.CorrID == "" {
				t.Errorf("%s %s (key: %v) = %d %+v, want %d in the envelope", tc.method, tc.path, hdr != nil, r.code, r.Status, tc.code)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow = %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	}
	// OPTIONS on a known path is answered as echo answers it.
	req, _ := http.NewRequest("OPTIONS", e.url+"/engagement/v3/callbacks/create", nil)
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 || res.Header.Get("Allow") != "OPTIONS, POST" {
		t.Errorf("OPTIONS create = %d Allow %q, want 204 OPTIONS, POST", res.StatusCode, res.Header.Get("Allow"))
	}
	// A trailing slash after a name works as without it.
	for _, p := range []string{"/engagement/v3/callbacks/availability/CB_Sales", "/engagement/v3/callbacks/queue-status/VQ_Sales",
		"/engagement/v3/callbacks/open-for/CB_Sales", "/engagement/v3/estimated-wait-time/virtual-queues/VQ_Sales"} {
		want, got := e.api("GET", p+"?start=2026-03-05T13:00:00Z", nil), e.api("GET", p+"/?start=2026-03-05T13:00:00Z", nil)
		if want.code != 200 || got.code != 200 || string(got.Data) != string(want.Data) {
			t.Errorf("%s/ = %d %s, want %d %s", p, got.code, got.Data, want.code, want.Data)
		}
	}
	// Other paths keep echo's own answers.
	if r := e.do("GET", "/auth/v3/nope", nil); r.code != 404 || r.Status.CorrID != "" {
		t.Errorf("GET /auth/v3/nope = %d %+v, want echo's 404", r.code, r.Status)
	}
}
