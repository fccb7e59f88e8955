package ges

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"
)

const pathMatch = "/engagement/internal/v1/call-in/match"

// createCallIn books a call-in request and returns its wire view.
func (e *env) createCallIn(body map[string]any) map[string]any {
	e.t.Helper()
	r := e.api("POST", "/engagement/v3/call-in/requests/create", body)
	if r.code != 200 {
		e.t.Fatalf("call-in create: %d %s", r.code, r.Status.Message)
	}
	var d map[string]any
	json.Unmarshal(r.Data, &d)
	return d
}

// match asks GES to match a caller, as Voice does, with an ors_client token.
func (e *env) match(body map[string]any) (int, CallInMatchResult) {
	e.t.Helper()
	r := e.do("POST", pathMatch, body, "Authorization: Bearer "+e.token("ors_client"))
	var m CallInMatchResult
	if r.code == 200 {
		if err := json.Unmarshal(r.Data, &m); err != nil {
			e.t.Fatalf("match data: %v", err)
		}
	}
	return r.code, m
}

// callIn returns the listed request with id.
func (e *env) callIn(id string) *CallInRequest {
	e.t.Helper()
	list, err := e.svc.ListCallIns(context.Background(), demoTenant, "", 100)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range list {
		if string(r.ID) == id {
			return r
		}
	}
	e.t.Fatalf("call-in %s not listed", id)
	return nil
}

func TestCallInMatchAccessCode(t *testing.T) {
	e := newEnv(t)
	d := e.createCallIn(map[string]any{"groupName": "technical_help", "fromPhoneNumber": "+12025550105",
		"callbackServiceId": "CB_Support", "userData": map[string]any{"topic": "wifi"}})
	id := d["id"].(string)
	code := jsonNum(d["accessCode"])
	if st := e.callIn(id).State; st != CallInPending {
		t.Fatalf("state before match = %s, want PENDING", st)
	}

	wrong := "0000"
	if st, _ := e.match(map[string]any{"accessNumber": "+18005550199", "accessCode": wrong, "ani": "+12025550105"}); st != 404 {
		t.Fatalf("wrong code = %d, want 404", st)
	}
	if st, _ := e.match(map[string]any{"accessNumber": "+18005550198", "accessCode": code, "ani": "+12025550105"}); st != 404 {
		t.Fatalf("right code, other access number = %d, want 404", st)
	}
	// The caller may call from any phone: the code alone identifies the request.
	st, m := e.match(map[string]any{"accessNumber": "+18005550199", "accessCode": code, "ani": "+13125550000"})
	if st != 200 || string(m.ID) != id || m.GroupName != "technical_help" || m.ContactCenterID != demoTenant ||
		m.FromPhoneNumber != "+12025550105" || m.CallbackServiceID != "CB_Support" || m.VirtualQueue != "VQ_Support" ||
		m.UserData["topic"] != "wifi" {
		t.Fatalf("match = %d %+v", st, m)
	}
	r := e.callIn(id)
	if r.State != CallInMatched || !r.MatchedAt.Equal(e.clk.Now()) || r.MatchedANI != "+13125550000" {
		t.Fatalf("after match: state %s at %v ani %q", r.State, r.MatchedAt, r.MatchedANI)
	}
	// A request matches once.
	if st, _ := e.match(map[string]any{"accessNumber": "+18005550199", "accessCode": code, "ani": "+12025550105"}); st != 404 {
		t.Fatalf("second match = %d, want 404", st)
	}
}

// jsonNum renders a decoded JSON number (the access code) as its digits.
func jsonNum(v any) string {
	f, _ := v.(float64)
	return strconv.Itoa(int(f))
}

func TestCallInMatchByANI(t *testing.T) {
	e := newEnv(t)
	d := e.createCallIn(map[string]any{"groupName": "billing_help", "fromPhoneNumber": "+12025550101"})
	if _, ok := d["accessCode"]; ok {
		t.Fatalf("a group without access codes issued one: %v", d)
	}
	if st, _ := e.match(map[string]any{"accessNumber": "+18005550198", "ani": "+12025550999"}); st != 404 {
		t.Fatalf("other caller = %d, want 404", st)
	}
	st, m := e.match(map[string]any{"accessNumber": "+18005550198", "ani": "+12025550101"})
	if st != 200 || string(m.ID) != d["id"] || m.GroupName != "billing_help" || m.VirtualQueue != "" {
		t.Fatalf("match = %d %+v", st, m)
	}
}

func TestCallInMatchExpires(t *testing.T) {
	e := newEnv(t)
	d := e.createCallIn(map[string]any{"groupName": "technical_help"})
	code := jsonNum(d["accessCode"])
	e.clk.Advance(601 * time.Second)
	if st, _ := e.match(map[string]any{"accessNumber": "+18005550199", "accessCode": code}); st != 404 {
		t.Fatalf("expired match = %d, want 404", st)
	}
	if st := e.callIn(d["id"].(string)).State; st != CallInExpired {
		t.Fatalf("state = %s, want EXPIRED", st)
	}
}

func TestCallInMatchOnce(t *testing.T) {
	e := newEnv(t)
	d := e.createCallIn(map[string]any{"groupName": "technical_help"})
	code := jsonNum(d["accessCode"])
	const n = 6
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := e.match(map[string]any{"accessNumber": "+18005550199", "accessCode": code})
			codes <- st
		}()
	}
	wg.Wait()
	close(codes)
	ok := 0
	for st := range codes {
		switch st {
		case 200:
			ok++
		case 404:
		default:
			t.Errorf("concurrent match answered %d", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent matches succeeded, want exactly 1", ok)
	}
}

func TestCallInMatchAuth(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"accessNumber": "+18005550199", "accessCode": "1234"}
	if r := e.do("POST", pathMatch, body); r.code != 401 {
		t.Errorf("no token = %d, want 401", r.code)
	}
	if r := e.do("POST", pathMatch, body, "Authorization: Bearer "+e.token("ges_client")); r.code != 403 {
		t.Errorf("ges_client token = %d, want 403", r.code)
	}
	if r := e.do("POST", pathMatch, map[string]any{"accessCode": "1234"}, "Authorization: Bearer "+e.token("ors_client")); r.code != 400 {
		t.Errorf("no accessNumber = %d, want 400", r.code)
	}
}
