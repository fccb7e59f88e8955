package appliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// desktop is an agent desktop's view of the Workspace API: a cookie-holding
// HTTP client and a CometD long-polling loop collecting notifications.
type desktop struct {
	t    *testing.T
	base string
	hc   *http.Client

	mu   sync.Mutex
	seen []map[string]any // data of every notification, in order
}

func (d *desktop) post(ctx context.Context, path, body string, out any) int {
	d.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		d.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// bayeux posts one batch and returns the replies.
func (d *desktop) bayeux(ctx context.Context, msgs ...map[string]any) ([]map[string]any, error) {
	b, _ := json.Marshal(msgs)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/workspace/v3/notifications", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []map[string]any
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("notifications: HTTP %d", resp.StatusCode)
	}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// listen handshakes, subscribes and long-polls until the test ends.
func (d *desktop) listen(parent context.Context) {
	d.t.Helper()
	ctx, stop := context.WithCancel(parent)
	hs, err := d.bayeux(ctx, map[string]any{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if err != nil || len(hs) != 1 || hs[0]["successful"] != true {
		d.t.Fatalf("handshake: %v %v", hs, err)
	}
	id := hs[0]["clientId"]
	sub, err := d.bayeux(ctx, map[string]any{"channel": "/meta/subscribe", "clientId": id, "subscription": "/workspace/v3/initialization"},
		map[string]any{"channel": "/meta/subscribe", "clientId": id, "subscription": "/workspace/v3/voice"})
	if err != nil || len(sub) != 2 || sub[0]["successful"] != true || sub[1]["successful"] != true {
		d.t.Fatalf("subscribe: %v %v", sub, err)
	}
	done := make(chan struct{})
	d.t.Cleanup(func() { stop(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			replies, err := d.bayeux(ctx, map[string]any{"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling"})
			if err != nil {
				return
			}
			d.mu.Lock()
			for _, r := range replies {
				if data, ok := r["data"].(map[string]any); ok {
					d.seen = append(d.seen, data)
				}
			}
			d.mu.Unlock()
		}
	}()
}

// count is how many notifications so far match.
func (d *desktop) count(match func(map[string]any) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, m := range d.seen {
		if match(m) {
			n++
		}
	}
	return n
}

// waitFor returns the first notification that matches.
func (d *desktop) waitFor(within time.Duration, what string, match func(map[string]any) bool) map[string]any {
	d.t.Helper()
	var got map[string]any
	eventually(d.t, within, what, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, m := range d.seen {
			if match(m) {
				got = m
				return true
			}
		}
		return false
	}, func() string { d.mu.Lock(); defer d.mu.Unlock(); return fmt.Sprintf("notifications: %v", d.seen) })
	return got
}

func dnState(state string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		dn, _ := m["dn"].(map[string]any)
		return m["messageType"] == "DnStateChanged" && dn["agentState"] == state
	}
}

func callState(id, state string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		c, _ := m["call"].(map[string]any)
		return m["messageType"] == "CallStateChanged" && c["state"] == state && (id == "" || c["id"] == id)
	}
}

// waitAgentEvent reads the agent's signalling events until one of type typ;
// an error the gateway sends meanwhile fails the test.
func waitAgentEvent(ctx context.Context, t *testing.T, a *agent.Agent, typ string, within time.Duration) {
	t.Helper()
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	for {
		select {
		case e := <-a.Events():
			if e.Type == typ {
				return
			}
			if e.Type == "ERROR" {
				t.Fatalf("waiting for %s, the gateway sent an error: %s", typ, e.Body)
			}
		case <-timeout.C:
			t.Fatalf("timed out after %s waiting for the agent to get %s", within, typ)
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", typ, ctx.Err())
		}
	}
}

// bookCallback creates an immediate CB_Support callback for +12025550100
// (with the extra fields given) and returns its id.
func bookCallback(t *testing.T, s *apptest.Stack, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550100"}
	maps.Copy(body, extra)
	var created struct {
		ID string `json:"id"`
	}
	if code := gesCall(t, s, http.MethodPost, "/callbacks/create", body, &created); code != 200 || created.ID == "" {
		t.Fatalf("create callback: %d %+v", code, created)
	}
	return created.ID
}

// readyDesktop opens agent1's Workspace session with its GAuth token (the
// session lives in the cookie), listens for notifications, activates the
// voice channel on DN 7001 (registered by the softphone) and goes Ready.
func readyDesktop(ctx context.Context, t *testing.T, s *apptest.Stack) *desktop {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	d := &desktop{t: t, base: s.URL, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 60 * time.Second}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/workspace/v3/initialize-workspace", nil)
	req.Header.Set("Authorization", "Bearer "+agentToken(t, s, "agent1", "agent123"))
	resp, err := d.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Set-Cookie"), "WORKSPACE_SESSIONID=") {
		t.Fatalf("initialize-workspace: %d, Set-Cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
	d.listen(ctx)
	init := d.waitFor(10*time.Second, "WorkspaceInitializationComplete", func(m map[string]any) bool { return m["state"] == "Complete" })
	if user, _ := init["data"].(map[string]any)["user"].(map[string]any); user["userName"] != "agent1" || user["agentLogin"] != "7001" {
		t.Fatalf("initialization user = %v", init)
	}
	if code := d.post(ctx, "/workspace/v3/activate-channels", `{"data":{"agentId":"7001","dn":"7001"}}`, nil); code != http.StatusOK {
		t.Fatalf("activate-channels: %d", code)
	}
	d.waitFor(10*time.Second, "the DN NotReady (registered by the softphone)", dnState("NotReady"))
	if code := d.post(ctx, "/workspace/v3/voice/ready", "", nil); code != http.StatusOK {
		t.Fatalf("ready: %d", code)
	}
	d.waitFor(10*time.Second, "DnStateChanged Ready", dnState("Ready"))
	return d
}

// TestWorkspaceDesktopAnswersCallback is the D.2 flow an agent desktop drives:
// the softphone (a pion agent that does not answer by itself) signs in to the
// gateway, the desktop opens a Workspace session with agent1's GAuth token,
// activates the voice channel and goes Ready through /workspace/v3/voice/ready.
// A callback booked through GES rings the DN; CometD says Ringing; the
// desktop's answer makes Voice send NOTIFY Event: talk, the gateway pushes
// EVENT-TALK and the softphone answers; CometD says Established and audio
// flows both ways. Hold and retrieve go the same way (EVENT-HOLD, then the
// softphone's re-offer), and release ends the call: Released.
func TestWorkspaceDesktopAnswersCallback(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	a := runAgent(ctx, t, s, "agent1", agent.Config{PlayHz: 1000}, false)
	d := readyDesktop(ctx, t, s)

	created := bookCallback(t, s, map[string]any{"userData": map[string]string{"account": "42"}})
	ringing := d.waitFor(30*time.Second, "CallStateChanged Ringing", callState("", "Ringing"))
	call := ringing["call"].(map[string]any)
	id, _ := call["id"].(string)
	if call["phoneNumber"] != "7001" || call["callType"] != "Inbound" || id == "" {
		t.Fatalf("ringing call = %v", call)
	}
	waitAgentEvent(ctx, t, a, "OFFER", 10*time.Second)
	if a.InCall() {
		t.Fatal("the softphone answered by itself")
	}

	if code := d.post(ctx, "/workspace/v3/voice/calls/"+id+"/answer", "", nil); code != http.StatusOK {
		t.Fatalf("answer: %d", code)
	}
	waitAgentEvent(ctx, t, a, "EVENT-TALK", 10*time.Second)
	d.waitFor(15*time.Second, "CallStateChanged Established", callState(id, "Established"))
	eventually(t, 15*time.Second, "the agent to hear the customer's 440 Hz", func() bool {
		h := a.Heard()
		return h.AudioMS > 500 && math.Abs(h.DominantHz-440) < 25
	})
	eventually(t, 15*time.Second, "the customer to hear the agent's 1000 Hz", func() bool {
		return math.Abs(customerDominantHz(t, s, created)-1000) < 30
	})

	if code := d.post(ctx, "/workspace/v3/voice/calls/"+id+"/hold", "", nil); code != http.StatusOK {
		t.Fatalf("hold: %d", code)
	}
	waitAgentEvent(ctx, t, a, "EVENT-HOLD", 10*time.Second) // the softphone holds by itself, as the JS library does
	d.waitFor(10*time.Second, "CallStateChanged Held", callState(id, "Held"))
	if code := d.post(ctx, "/workspace/v3/voice/calls/"+id+"/retrieve", "", nil); code != http.StatusOK {
		t.Fatalf("retrieve: %d", code)
	}
	waitAgentEvent(ctx, t, a, "EVENT-TALK", 10*time.Second) // and resumes
	eventually(t, 10*time.Second, "CallStateChanged Established again", func() bool { return d.count(callState(id, "Established")) == 2 })

	if code := d.post(ctx, "/workspace/v3/voice/calls/"+id+"/release", "", nil); code != http.StatusOK {
		t.Fatalf("release: %d", code)
	}
	d.waitFor(10*time.Second, "CallStateChanged Released", callState(id, "Released"))
	waitAgentEvent(ctx, t, a, "BYE", 10*time.Second)
	eventually(t, 15*time.Second, "the callback to complete", func() bool {
		return retrieve(t, s, created).State == "COMPLETED"
	})

	// A released call cannot be answered (409); an unknown call id is a 404.
	var envl struct {
		Status struct {
			Code int `json:"code"`
		} `json:"status"`
	}
	if code := d.post(ctx, "/workspace/v3/voice/calls/"+id+"/answer", "", &envl); code != http.StatusConflict || envl.Status.Code != 409 {
		t.Fatalf("answer of a released call: %d %+v", code, envl)
	}
	if code := d.post(ctx, "/workspace/v3/voice/calls/no-such-call/answer", "", &envl); code != http.StatusNotFound || envl.Status.Code != 404 {
		t.Fatalf("answer of an unknown call: %d %+v", code, envl)
	}
}

// TestWorkspaceRejectRequeuesCallback: an agent's desktop releasing a call
// that rings there rejects it. The callback is not ended (the customer is
// still waiting): it goes back to its queue, the desktop sees Released and
// no call left in its session, and the agent is NotReady, as when a call
// rings out.
func TestWorkspaceRejectRequeuesCallback(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	a := runAgent(ctx, t, s, "agent1", agent.Config{PlayHz: 1000}, false)
	d := readyDesktop(ctx, t, s)

	created := bookCallback(t, s, nil)
	ringing := d.waitFor(30*time.Second, "CallStateChanged Ringing", callState("", "Ringing"))
	id, _ := ringing["call"].(map[string]any)["id"].(string)
	waitAgentEvent(ctx, t, a, "OFFER", 10*time.Second)

	if code := d.post(ctx, "/workspace/v3/voice/calls/"+id+"/release", "", nil); code != http.StatusOK {
		t.Fatalf("release of the ringing call: %d", code)
	}
	d.waitFor(10*time.Second, "CallStateChanged Released", callState(id, "Released"))
	waitAgentEvent(ctx, t, a, "BYE", 10*time.Second)
	eventually(t, 10*time.Second, "the agent NotReady again", func() bool { return d.count(dnState("NotReady")) == 2 })
	eventually(t, 10*time.Second, "the callback back in its queue", func() bool {
		return retrieve(t, s, created).State == "QUEUED"
	})
	var cur struct {
		Data struct {
			Calls []any `json:"calls"`
		} `json:"data"`
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/workspace/v3/current-session", nil)
	resp, err := d.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&cur)
	resp.Body.Close()
	if len(cur.Data.Calls) != 0 {
		t.Fatalf("current-session still lists calls after the reject: %v", cur.Data.Calls)
	}
	if st := retrieve(t, s, created).State; st == "COMPLETED" {
		t.Fatalf("the reject ended the customer's callback")
	}
}
