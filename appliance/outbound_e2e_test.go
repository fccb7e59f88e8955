package appliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// voiceCall is a call record of the Voice emulator, as /voice/v1/calls lists it.
type voiceCall struct {
	ID               string `json:"id"`
	From             string `json:"from"`
	To               string `json:"to"`
	State            string `json:"state"`
	CustomerAnalysis *struct {
		DominantHz float64 `json:"dominant_hz"`
	} `json:"customer_analysis"`
}

// voiceCallTo returns Voice's latest record of a call to number.
func voiceCallTo(t *testing.T, s *apptest.Stack, number string) (voiceCall, bool) {
	t.Helper()
	resp, err := http.Get(s.URL + "/voice/v1/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Calls []voiceCall `json:"calls"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var found voiceCall
	ok := false
	for _, c := range body.Data.Calls {
		if c.To == number {
			found, ok = c, true
		}
	}
	return found, ok
}

// waitVoiceCall waits for Voice's record of the call to number to satisfy
// cond, and names the record it last saw when it gives up.
func waitVoiceCall(t *testing.T, s *apptest.Stack, number string, within time.Duration, what string, cond func(voiceCall) bool) {
	t.Helper()
	var last voiceCall
	var seen bool
	eventually(t, within, what, func() bool {
		last, seen = voiceCallTo(t, s, number)
		return seen && cond(last)
	}, func() string { return fmt.Sprintf("Voice's call to %s: %+v (found %v)", number, last, seen) })
}

// TestAgentCallsOutWithToken: an agent signed in with a GAuth token (a JWT of
// about a kilobyte, as the softphone signs in) dials customers from the
// browser (1pcc). The call carries audio both ways; a call hung up while it
// rings is cancelled at Voice at once, not left ringing until the customer's
// own timeout. Both used to fail: the INVITE carried the token and was too
// large for SIP over UDP, and the CANCEL was routed by DNS.
func TestAgentCallsOutWithToken(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	a := runAgent(ctx, t, s, "agent1", agent.Config{PlayHz: 1000}, false)

	const answers = "+12025550100" // answers at once, plays 440 Hz
	if err := a.Call(ctx, answers); err != nil {
		t.Fatalf("call %s: %v", answers, err)
	}
	eventually(t, 15*time.Second, "the agent to hear the customer's 440 Hz", func() bool {
		h := a.Heard()
		return h.AudioMS > 500 && math.Abs(h.DominantHz-440) < 25
	})
	waitVoiceCall(t, s, answers, 15*time.Second, "the customer to hear the agent's 1000 Hz", func(c voiceCall) bool {
		return c.From == "7001" && c.CustomerAnalysis != nil && math.Abs(c.CustomerAnalysis.DominantHz-1000) < 30
	})
	if err := a.Hangup(ctx); err != nil {
		t.Fatalf("hang up: %v", err)
	}
	waitVoiceCall(t, s, answers, 10*time.Second, "the answered call to end at Voice", func(c voiceCall) bool { return c.State == "ended" })

	const rings = "+12025550103" // never answers (480 after the no-answer timeout)
	dialed := make(chan error, 1)
	go func() { dialed <- a.Call(ctx, rings) }()
	var last voiceCall
	var seen bool
	eventually(t, 10*time.Second, "the call to ring at Voice", func() bool {
		select {
		case err := <-dialed: // the dial ends only with the hang-up below
			t.Fatalf("the dial to %s ended before it rang at Voice: %v", rings, err)
		default:
		}
		last, seen = voiceCallTo(t, s, rings)
		return seen && last.State != "ended"
	}, func() string { return fmt.Sprintf("Voice's call to %s: %+v (found %v)", rings, last, seen) })
	hungUp := time.Now()
	if err := a.Hangup(ctx); err != nil {
		t.Fatalf("hang up while ringing: %v", err)
	}
	<-dialed
	waitVoiceCall(t, s, rings, 5*time.Second, "the ringing call to be cancelled at Voice", func(c voiceCall) bool { return c.State == "ended" })
	t.Logf("cancelled at Voice %v after the hang-up", time.Since(hungUp).Round(time.Millisecond))
}

// TestAnonymousWebCallerReachesAgent: a web visitor signs in anonymously, as
// the JS library does (GET sign_in?anon<random>: no DN, nothing registered),
// and calls the VQ_Support number from the browser; Voice queues the call and
// delivers it to the Ready agent, and both browsers hear each other through
// the gateway (Opus -> G.711 -> Opus both ways).
func TestAnonymousWebCallerReachesAgent(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	ag := runAgent(ctx, t, s, "agent3", agent.Config{AutoAnswer: true, PlayHz: 1000}, true)
	web := runAgent(ctx, t, s, "", agent.Config{DN: "anon2f1d6a0e-3c1b-4e55-9d2a-8f0c7b9e1a23", PlayHz: 600}, false)

	// The gateway's sign-in gauge is "Registered DNs" (reference A.8): the
	// visitor registered none.
	if got := gatewaySignIns(t, s); got != 1 {
		t.Errorf("%s with agent3 and an anonymous visitor = %v, want 1", signInGauge, got)
	}
	if err := web.Call(ctx, "+18005550101"); err != nil { // VQ_Support
		t.Fatalf("anonymous call to VQ_Support: %v", err)
	}
	eventually(t, 20*time.Second, "the agent to hear the web caller's 600 Hz", func() bool {
		h := ag.Heard()
		return h.AudioMS > 500 && math.Abs(h.DominantHz-600) < 25
	})
	eventually(t, 15*time.Second, "the web caller to hear the agent's 1000 Hz", func() bool {
		h := web.Heard()
		return h.AudioMS > 500 && math.Abs(h.DominantHz-1000) < 25
	})
	if err := web.Hangup(ctx); err != nil {
		t.Fatalf("hang up: %v", err)
	}
	if err := web.SignOut(ctx); err != nil {
		t.Fatalf("anonymous sign out: %v", err)
	}
}

// gatewaySignIns reads signInGauge from the appliance's /metrics.
func gatewaySignIns(t *testing.T, s *apptest.Stack) float64 {
	t.Helper()
	res, err := http.Get(s.Endpoints.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, signInGauge+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s %q: %v", signInGauge, v, err)
			}
			return f
		}
	}
	t.Fatal("/metrics has no " + signInGauge)
	return 0
}
