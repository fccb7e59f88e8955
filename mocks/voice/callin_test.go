package voice

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// callInConfig shortens the IVR so tests run in seconds.
func callInConfig(c *Config) {
	c.CallInPromptLength = 800 * time.Millisecond
	c.CallInDigitTimeout = 8 * time.Second
}

// readyAgent registers dn for user with a token and makes it Ready.
func (l *lab) readyAgent(t *testing.T, dn, user string, tone float64) *testUA {
	t.Helper()
	a := newTestUA(t, l, dn, tone)
	if code := a.registerBearer("tok-"+user, 60); code != 200 {
		t.Fatalf("register %s: %d", dn, code)
	}
	l.ready(t, user)
	return a
}

// wantHeaders checks the routing context an agent's INVITE carries.
func wantHeaders(t *testing.T, inv *sip.Request, want map[string]string) {
	t.Helper()
	for h, v := range want {
		if got := inv.GetHeader(h); got == nil || got.Value() != v {
			t.Errorf("agent INVITE header %s = %v, want %q", h, got, v)
		}
	}
}

func TestCallInAccessCodeReachesAgent(t *testing.T) {
	l := newLab(t, callInConfig)
	agent := l.readyAgent(t, "7003", "agent3", 1000)
	l.ges.addCallIn(fakeCallIn{id: "ci-1", accessNumber: "+18005550199", code: "4321", from: "+12025550105", group: "technical_help"})
	caller := newTestUA(t, l, "+12025550999", 440)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	d, err := caller.call(ctx, "+18005550199")
	if err != nil {
		t.Fatalf("the IVR did not answer: %v", err)
	}
	eventually(t, 5*time.Second, "caller hears the IVR prompt", func() bool { return caller.ep.Analysis().AudioArrived })
	select {
	case inv := <-agent.invites:
		t.Fatalf("agent called before the access code was keyed: %s", inv.StartLine())
	default:
	}
	caller.ep.SendDigits("4321#")

	var inv *sip.Request
	select {
	case inv = <-agent.invites:
	case <-ctx.Done():
		t.Fatal("matched caller never reached the agent")
	}
	wantHeaders(t, inv, map[string]string{"X-Genesys-CallType": "inbound", "X-Genesys-VirtualQueue": "VQ_Support",
		"X-Genesys-CallInRequestId": "ci-1", "X-Genesys-CallInGroup": "technical_help",
		"X-Genesys-CustomerNumber": "+12025550999"})
	if ud := inv.GetHeader("X-Genesys-UserData"); ud == nil || !strings.Contains(ud.Value(), "topic=wifi") ||
		!strings.Contains(ud.Value(), "callInRequestId=ci-1") {
		t.Errorf("user data header %v", ud)
	}
	if got := l.ges.matchRequests(); !slices.Equal(got, []callInMatch{{AccessNumber: "+18005550199", AccessCode: "4321", ANI: "+12025550999"}}) {
		t.Fatalf("match requests %+v", got)
	}
	select {
	case <-caller.reinvite:
	case <-ctx.Done():
		t.Fatal("caller was never re-INVITEd toward the agent")
	}
	eventually(t, 5*time.Second, "two-way audio caller <-> agent", func() bool {
		return math.Abs(agent.ep.Analysis().DominantHz-440) < 5 && math.Abs(caller.ep.Analysis().DominantHz-1000) < 5
	})
	// The tail of the terminating '#' event may reach the agent; the code must not.
	if heard := agent.ep.Analysis().Digits; strings.ContainsAny(heard, "4321") {
		t.Errorf("the access code leaked to the agent: %q", heard)
	}
	calls := l.v.Calls()
	if len(calls) != 1 || calls[0].Kind != kindCallIn || calls[0].State != "connected" || calls[0].AgentDN != "7003" ||
		calls[0].VirtualQueue != "VQ_Support" || l.agentState("7003") != Busy {
		t.Fatalf("call record %+v, agent %s", calls, l.agentState("7003"))
	}

	agent.hangUp(ctx, d)
	eventually(t, 5*time.Second, "call filed and agent Ready after wrap-up", func() bool {
		c := l.v.Calls()
		return len(c) == 1 && c[0].State == "ended" && l.agentState("7003") == Ready
	})
	rec := l.v.Calls()[0]
	if rec.CustomerAnalysis == nil || rec.CustomerAnalysis.Digits != "4321#" || rec.UserData["callInRequestId"] != "ci-1" {
		t.Fatalf("call record after hang-up: %+v analysis %+v", rec, rec.CustomerAnalysis)
	}
}

func TestCallInWrongCodeRetriesOnceThenReleases(t *testing.T) {
	l := newLab(t, callInConfig)
	agent := l.readyAgent(t, "7003", "agent3", 1000)
	l.ges.addCallIn(fakeCallIn{id: "ci-2", accessNumber: "+18005550199", code: "4321", group: "technical_help"})
	caller := newTestUA(t, l, "+12025550998", 440)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := caller.call(ctx, "+18005550199"); err != nil {
		t.Fatalf("the IVR did not answer: %v", err)
	}
	caller.ep.SendDigits("1111#")
	eventually(t, 5*time.Second, "first match attempt", func() bool { return len(l.ges.matchRequests()) == 1 })
	// Eight digits end the code without '#'.
	caller.ep.SendDigits("99999999")
	select {
	case <-caller.byes:
	case <-ctx.Done():
		t.Fatal("an unmatched caller was never released")
	}
	var codes []string
	for _, m := range l.ges.matchRequests() {
		codes = append(codes, m.AccessCode)
	}
	if !slices.Equal(codes, []string{"1111", "99999999"}) {
		t.Fatalf("codes sent to GES %v, want one try and one retry", codes)
	}
	if hz := caller.ep.Analysis().DominantHz; math.Abs(hz-callInFailHz) > 10 {
		t.Errorf("caller last heard %.0f Hz, want the %d Hz failure tone", hz, callInFailHz)
	}
	eventually(t, 3*time.Second, "call filed", func() bool {
		c := l.v.Calls()
		return len(c) == 1 && c[0].State == "ended"
	})
	if rec := l.v.Calls()[0]; rec.EndReason != "call-in not matched" || rec.AgentDN != "" {
		t.Fatalf("call record %+v", rec)
	}
	select {
	case inv := <-agent.invites:
		t.Fatalf("agent was called for an unmatched caller: %s", inv.StartLine())
	default:
	}
	if l.agentState("7003") != Ready {
		t.Fatalf("agent state %s, want Ready", l.agentState("7003"))
	}
}

func TestCallInWithoutCodeMatchesCallerNumber(t *testing.T) {
	l := newLab(t, callInConfig)
	agent := l.readyAgent(t, "7001", "agent1", 1000)
	l.ges.addCallIn(fakeCallIn{id: "ci-3", accessNumber: "+18005550198", from: "+12025550777", group: "billing_help"})
	caller := newTestUA(t, l, "+12025550777", 440)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	d, err := caller.call(ctx, "+18005550198")
	if err != nil {
		t.Fatalf("the IVR did not answer: %v", err)
	}
	var inv *sip.Request
	select {
	case inv = <-agent.invites:
	case <-ctx.Done():
		t.Fatal("caller matched by number never reached the agent")
	}
	wantHeaders(t, inv, map[string]string{"X-Genesys-VirtualQueue": "VQ_Sales", "X-Genesys-CallInRequestId": "ci-3",
		"X-Genesys-CallInGroup": "billing_help"})
	if got := l.ges.matchRequests(); len(got) != 1 || got[0].AccessCode != "" || got[0].ANI != "+12025550777" {
		t.Fatalf("match requests %+v", got)
	}
	eventually(t, 5*time.Second, "two-way audio", func() bool {
		return math.Abs(agent.ep.Analysis().DominantHz-440) < 5 && math.Abs(caller.ep.Analysis().DominantHz-1000) < 5
	})
	_ = d.Bye(ctx)
	select {
	case <-agent.byes:
	case <-ctx.Done():
		t.Fatal("agent got no BYE")
	}
}

func TestCallInCallerHangsUpInIVR(t *testing.T) {
	l := newLab(t, callInConfig)
	caller := newTestUA(t, l, "+12025550996", 440)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := caller.call(ctx, "+18005550199")
	if err != nil {
		t.Fatalf("the IVR did not answer: %v", err)
	}
	caller.ep.SendDigits("12")
	eventually(t, 5*time.Second, "caller in the IVR", func() bool {
		c := l.v.Calls()
		return len(c) == 1 && c[0].State == "ivr"
	})
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("bye: %v", err)
	}
	eventually(t, 5*time.Second, "call ended", func() bool {
		c := l.v.Calls()
		return len(c) == 1 && c[0].State == "ended"
	})
	if n := len(l.ges.matchRequests()); n != 0 {
		t.Fatalf("GES asked %d times for a caller who hung up before the code ended", n)
	}
}
