package ges

import (
	"context"
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
		{"not an object", []string{"x-api-key: " + demoKey}, `[1]`, create, 400, "malformed JSON"},
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
