package voice

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func (l *lab) ready(t *testing.T, user string) {
	t.Helper()
	if code, body := l.api2("PUT", "/voice/v1/agents/me/state", "tok-"+user, `{"state":"Ready"}`); code != 200 {
		t.Fatalf("%s Ready: %d %v", user, code, body)
	}
}

// readyAgent1 registers agent1's DN 7001 (a UA playing 1000 Hz) with its
// token and sets the agent Ready.
func (l *lab) readyAgent1(t *testing.T) *testUA {
	t.Helper()
	a1 := l.registerAgent1(t)
	l.ready(t, "agent1")
	return a1
}

// registerAgent1 registers agent1's DN 7001 (a UA playing 1000 Hz) with its
// token; the agent is not Ready.
func (l *lab) registerAgent1(t *testing.T) *testUA {
	t.Helper()
	a1 := newTestUA(t, l, "7001", 1000)
	if a1.registerBearer("tok-agent1", 60) != 200 {
		t.Fatal("register failed")
	}
	return a1
}

func (l *lab) waitStates(t *testing.T, id string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(l.ges.states(id), want) {
		if time.Now().After(deadline) {
			t.Fatalf("states reported = %v, want %v", l.ges.states(id), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *lab) pending(t *testing.T) int64 {
	t.Helper()
	p, err := l.rdb.XPending(context.Background(), "NewCallbackStream", "ors").Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

func TestCallbackCustomerFirstEndToEnd(t *testing.T) {
	l := newLab(t, nil)
	a1 := l.readyAgent1(t)
	const id = "11111111-1111-1111-1111-111111111111"
	l.xadd(startEntry(id, simTone, 3, 1))
	l.waitStates(t, id, stQueued, stRouting, stProcessing)
	inv := <-a1.invites
	for h, want := range map[string]string{"X-Genesys-CallbackId": id, "X-Genesys-CallType": "callback", "X-Genesys-VirtualQueue": "VQ_Sales"} {
		if got := inv.GetHeader(h); got == nil || got.Value() != want {
			t.Fatalf("agent INVITE header %s = %v, want %s", h, got, want)
		}
	}
	if ud := inv.GetHeader("X-Genesys-UserData"); ud == nil || !strings.Contains(ud.Value(), "order=42") {
		t.Fatalf("user data header %v", ud)
	}
	if r := l.ges.last(id); r.AgentDN != "7001" || r.DialAttempts != 1 || r.ORSSessionID == "" {
		t.Fatalf("PROCESSING report %+v", r)
	}
	eventually(t, 5*time.Second, "agent hears the customer's 440 Hz", func() bool {
		return math.Abs(a1.ep.Analysis().DominantHz-440) < 5
	})
	var callID CallID
	eventually(t, 5*time.Second, "customer hears the agent's 1000 Hz", func() bool {
		code, body := l.api2("GET", "/voice/v1/calls", "", "")
		if code != 200 {
			return false
		}
		calls := body["data"].(map[string]any)["calls"].([]any)
		if len(calls) != 1 {
			return false
		}
		c := calls[0].(map[string]any)
		callID = CallID(c["id"].(string))
		an, _ := c["customer_analysis"].(map[string]any)
		return an != nil && an["audio_arrived"] == true && math.Abs(an["dominant_hz"].(float64)-1000) < 5
	})
	if l.agentState("7001") != Busy {
		t.Fatalf("agent state during call %s", l.agentState("7001"))
	}
	// The agent hangs up through 3pcc.
	if code, body := l.api2("POST", "/voice/v1/calls/"+string(callID)+"/hangup", "tok-agent1", ""); code != 200 {
		t.Fatalf("3pcc hangup: %d %v", code, body)
	}
	<-a1.byes
	l.waitStates(t, id, stQueued, stRouting, stProcessing, stCompleted+":"+reasonAgentConnected)
	eventually(t, 3*time.Second, "entry acked and agent Ready", func() bool {
		return l.pending(t) == 0 && l.agentState("7001") == Ready
	})
	// A repeated start for a finished callback is a no-op.
	l.xadd(startEntry(id, simTone, 3, 1))
	eventually(t, 3*time.Second, "duplicate acked", func() bool { return l.pending(t) == 0 })
	if n := len(l.ges.states(id)); n != 4 {
		t.Fatalf("duplicate start re-ran the callback: %v", l.ges.states(id))
	}
}

func TestCallbackRetriesOnBusyThenFails(t *testing.T) {
	l := newLab(t, nil)
	a1 := l.readyAgent1(t)
	const id = "22222222-2222-2222-2222-222222222222"
	l.xadd(startEntry(id, simBusy, 2, 0))
	l.waitStates(t, id, stQueued, stRouting, stQueued, stRouting, stCompleted+":"+reasonFailCallToCustomer)
	if r := l.ges.last(id); r.DialAttempts != 2 {
		t.Fatalf("dial attempts %d, want 2", r.DialAttempts)
	}
	eventually(t, 3*time.Second, "agent released to Ready, entry acked", func() bool {
		return l.agentState("7001") == Ready && l.pending(t) == 0
	})
	noInvite(t, a1) // the customer was unreachable
}

// TestCallbackWaitsQueuedBetweenAttempts: while a retry waits out the
// service's retry delay, the callback is reported QUEUED with the attempt
// made, and the agent is free; it used to stay ROUTING for the whole delay.
func TestCallbackWaitsQueuedBetweenAttempts(t *testing.T) {
	l := newLab(t, nil)
	l.readyAgent1(t)
	const id = "22222222-2222-2222-2222-222222222223"
	l.xadd(startEntry(id, simBusy, 2, 3))
	l.waitStates(t, id, stQueued, stRouting, stQueued)
	if r := l.ges.last(id); r.DialAttempts != 1 || r.AgentDN != "" {
		t.Fatalf("report during the retry delay: %+v", r)
	}
	if st := l.agentState("7001"); st != Ready {
		t.Fatalf("agent %s during the retry delay, want Ready", st)
	}
	if cs := l.v.Calls(); len(cs) != 1 || cs[0].State != "queued" || cs[0].AgentDN != "" {
		t.Fatalf("calls during the retry delay: %+v, want one queued for no agent", cs)
	}
	l.waitStates(t, id, stQueued, stRouting, stQueued, stQueued, stRouting, stCompleted+":"+reasonFailCallToCustomer)
}

// TestQueuedPositionsFollowTheQueue: waiting callbacks are reported again
// when their place in the queue changes (here the first is cancelled), so
// positionInQueue follows the queue; it stayed what it was at queueing.
func TestQueuedPositionsFollowTheQueue(t *testing.T) {
	l := newLab(t, func(c *Config) { c.PositionReportInterval = 50 * time.Millisecond })
	ids := []string{"44444444-4444-4444-4444-444444444441", "44444444-4444-4444-4444-444444444442", "44444444-4444-4444-4444-444444444443"}
	for i, id := range ids {
		l.xadd(startEntry(id, simTone, 1, 0))
		eventually(t, 5*time.Second, "queued at position "+strconv.Itoa(i+1), func() bool {
			r := l.ges.last(id)
			return r.State == stQueued && r.PositionInQueue == i+1
		})
	}
	l.xadd(cancelEntry(ids[0]))
	eventually(t, 5*time.Second, "the two left moved up to positions 1 and 2", func() bool {
		return l.ges.last(ids[1]).PositionInQueue == 1 && l.ges.last(ids[2]).PositionInQueue == 2
	})
	if got := l.ges.states(ids[1]); len(got) != 2 || got[0] != stQueued || got[1] != stQueued {
		t.Fatalf("reports of the second = %v, want QUEUED twice (queued, moved up)", got)
	}
	// Report times carry milliseconds, so reports within one second keep
	// their order in the callback's history.
	if at := l.ges.last(ids[1]).At; !strings.Contains(at, ".") {
		t.Fatalf("report time %q has no fraction of a second", at)
	}
	// With nobody signed in, the agent list is empty, not null.
	if code, body := l.api2("GET", "/voice/v1/agents", "tok-supervisor", ""); code != 200 || body["data"].(map[string]any)["agents"] == nil {
		t.Fatalf("agents with nobody signed in: %d %v", code, body)
	}
}

// TestAgentTakesTheBestCallbackAcrossItsQueues: an agent with two skills
// takes the waiting callback that goes first by priority, whichever of its
// queues it waits in; it used to take its first skill's queue first.
func TestAgentTakesTheBestCallbackAcrossItsQueues(t *testing.T) {
	l := newLab(t, nil)
	l.registerAgent1(t) // agent1: VQ_Sales, then VQ_Support
	const support, sales = "55555555-5555-5555-5555-555555555551", "55555555-5555-5555-5555-555555555552"
	cb, _ := json.Marshal(map[string]any{"action": "start", "id": support, "ccid": testCCID, "service": "CB_Support",
		"virtualQueue": "VQ_Support", "phoneNumber": simTone, "priority": 50, "maxDialAttempts": 1,
		"desiredTime": time.Now().UTC().Format(time.RFC3339)})
	l.xadd(map[string]any{"callback": string(cb)})
	l.waitStates(t, support, stQueued)
	l.xadd(startEntry(sales, simTone, 1, 0)) // VQ_Sales, priority 0
	l.waitStates(t, sales, stQueued)
	l.ready(t, "agent1")
	l.waitStates(t, support, stQueued, stRouting, stProcessing)
	if got := l.ges.states(sales); len(got) != 1 {
		t.Fatalf("the priority-0 Sales callback was routed too: %v", got)
	}
}

func TestCallbackCancelWhileQueued(t *testing.T) {
	l := newLab(t, nil)
	l.registerAgent1(t)
	const id = "33333333-3333-3333-3333-333333333333"
	l.xadd(startEntry(id, simTone, 1, 0))
	l.waitStates(t, id, stQueued)
	if st := l.v.QueueStats(context.Background(), testCCID, "VQ_Sales"); st.WaitingCalls != 1 || st.LoggedInAgents != 1 || st.ReadyAgents != 0 {
		t.Fatalf("queue stats while waiting %+v", st)
	}
	l.xadd(cancelEntry(id))
	eventually(t, 3*time.Second, "session gone and entries acked", func() bool {
		return l.pending(t) == 0 && l.v.QueueStats(context.Background(), testCCID, "VQ_Sales").WaitingCalls == 0
	})
	// Becoming Ready afterwards must not route the cancelled callback.
	l.ready(t, "agent1")
	time.Sleep(300 * time.Millisecond) // give a wrongly surviving session the chance to misbehave
	if got := l.ges.states(id); !slices.Equal(got, []string{stQueued}) {
		t.Fatalf("reports after cancel %v", got)
	}
}

func TestCallbackAgentNoAnswerRequeues(t *testing.T) {
	l := newLab(t, nil)
	lazy := newTestUA(t, l, "7001", 1000)
	lazy.autoAnswer = false
	good := newTestUA(t, l, "7002", 700)
	if lazy.registerBearer("tok-agent1", 60) != 200 || good.registerBearer("tok-agent2", 60) != 200 {
		t.Fatal("register failed")
	}
	// What agent1's desktop hears of the call: it rang there, then left.
	events, stop := Subscribe(l.v, testCCID, "7001", 64, func(e FeedEvent) FeedEvent { return e })
	defer stop()
	l.ready(t, "agent1") // longest idle: gets the callback first
	eventually(t, time.Second, "agent1 ready first", func() bool { return l.agentState("7001") == Ready })
	time.Sleep(10 * time.Millisecond) // distinct ready timestamps (clock resolution), not readiness
	l.ready(t, "agent2")
	const id = "44444444-4444-4444-4444-444444444444"
	l.xadd(startEntry(id, simTone, 1, 0))
	l.waitStates(t, id, stQueued, stRouting, stQueued, stRouting, stProcessing)
	if l.agentState("7001") != NotReady {
		t.Fatalf("agent that did not answer is %s, want NotReady", l.agentState("7001"))
	}
	if cs := l.v.CallsAt(testCCID, "7001"); len(cs) != 0 {
		t.Fatalf("calls still at the agent who did not answer: %+v", cs)
	}
	var rang, left bool
	for len(events) > 0 {
		e := <-events
		if e.Call == nil {
			continue
		}
		rang = rang || (e.Call.State == "ringing" && e.Call.AgentDN == "7001")
		left = left || (rang && e.Call.LeftDN == "7001" && e.Call.AgentDN != "7001")
	}
	if !rang || !left {
		t.Fatalf("agent1's feed: rang %v, then left %v", rang, left)
	}
	if r := l.ges.last(id); r.AgentDN != "7002" || r.DialAttempts != 1 {
		t.Fatalf("PROCESSING report %+v (customer should have been kept)", r)
	}
	eventually(t, 5*time.Second, "second agent hears the customer", func() bool {
		return math.Abs(good.ep.Analysis().DominantHz-440) < 5
	})
}

// ringAtAgent1 registers agent1 (DN 7001, not answering by itself), makes it
// Ready and starts callback id, which rings there; it returns Voice's call
// and the agent's UA.
func ringAtAgent1(t *testing.T, l *lab, id string) (string, *testUA) {
	t.Helper()
	a1 := newTestUA(t, l, "7001", 1000)
	a1.autoAnswer = false
	if a1.registerBearer("tok-agent1", 60) != 200 {
		t.Fatal("register failed")
	}
	l.ready(t, "agent1")
	l.xadd(startEntry(id, simTone, 1, 0))
	l.waitStates(t, id, stQueued, stRouting)
	<-a1.invites
	var callID string
	eventually(t, 3*time.Second, "ringing call", func() bool {
		cs := l.v.Calls()
		if len(cs) == 1 && cs[0].State == "ringing" {
			callID = string(cs[0].ID)
			return true
		}
		return false
	})
	return callID, a1
}

// The agent's own hang-up of a callback ringing at it (Voice API) is a
// reject: the callback goes back to its queue, the customer is not lost,
// and the next Ready agent gets it.
func TestCallbackAgentRejectRequeues(t *testing.T) {
	l := newLab(t, nil)
	const id = "45454545-4545-4545-4545-454545454545"
	callID, _ := ringAtAgent1(t, l, id)
	if code, body := l.api2("POST", "/voice/v1/calls/"+callID+"/hangup", "tok-agent1", ""); code != 200 {
		t.Fatalf("agent's hang-up of the ringing call: %d %v", code, body)
	}
	l.waitStates(t, id, stQueued, stRouting, stQueued)
	if l.agentState("7001") != NotReady {
		t.Fatalf("agent that rejected is %s, want NotReady", l.agentState("7001"))
	}
	if cs := l.v.Calls(); len(cs) != 1 || cs[0].State != "queued" || cs[0].AgentDN != "" {
		t.Fatalf("calls after the reject: %+v", cs)
	}
	a2 := newTestUA(t, l, "7002", 700)
	if a2.registerBearer("tok-agent2", 60) != 200 {
		t.Fatal("register failed")
	}
	l.ready(t, "agent2")
	l.waitStates(t, id, stQueued, stRouting, stQueued, stRouting, stProcessing)
}

func TestCallbackThirdPartyAnswerAndRestartResume(t *testing.T) {
	l := newLab(t, nil)
	const id = "55555555-5555-5555-5555-555555555555"
	callID, a1 := ringAtAgent1(t, l, id)
	if code, _ := l.api2("POST", "/voice/v1/calls/"+callID+"/answer", "tok-agent2", ""); code != 403 {
		t.Fatalf("another agent answering: %d, want 403", code)
	}
	if code, body := l.api2("POST", "/voice/v1/calls/"+callID+"/answer", "tok-agent1", ""); code != 200 {
		t.Fatalf("3pcc answer: %d %v", code, body)
	}
	if ev := <-a1.events; ev != "talk" {
		t.Fatalf("NOTIFY event %q, want talk", ev)
	}
	l.waitStates(t, id, stQueued, stRouting, stProcessing)

	// Stop while PROCESSING: the call is hung up and its COMPLETED reaches
	// GES before the consumer stops, so nothing is left to resume.
	l.stop()
	l.waitStates(t, id, stQueued, stRouting, stProcessing, stCompleted+":"+reasonAgentConnected)
	if l.pending(t) != 0 {
		t.Fatalf("a completed callback's entry stayed pending: %d", l.pending(t))
	}

	// Stop while QUEUED (no agent Ready): the entry stays pending and the
	// restarted consumer queues the callback again.
	l.start()
	const waiting = "55555555-5555-5555-5555-555555555556"
	l.xadd(startEntry(waiting, simTone, 1, 0))
	l.waitStates(t, waiting, stQueued)
	l.stop()
	if l.pending(t) != 1 {
		t.Fatalf("a queued callback's entry should stay pending across a restart, pending=%d", l.pending(t))
	}
	l.start()
	l.waitStates(t, waiting, stQueued, stQueued)
}

func TestCallbackToRegisteredCustomerNumber(t *testing.T) {
	l := newLab(t, nil)
	agent := newTestUA(t, l, "7001", 1000)
	cust := newTestUA(t, l, "+12025550999", 500)
	if agent.registerBearer("tok-agent1", 60) != 200 || cust.registerDigest("customer", 60) != 200 {
		t.Fatal("register failed")
	}
	l.ready(t, "agent1")
	const id = "66666666-6666-6666-6666-666666666666"
	l.xadd(startEntry(id, "+12025550999", 1, 0))
	l.waitStates(t, id, stQueued, stRouting, stProcessing)
	// The customer was parked on the prompt, then re-INVITEd toward the agent.
	if dir := <-cust.reinvite; dir != "sendrecv" {
		t.Fatalf("customer re-INVITE direction %s", dir)
	}
	eventually(t, 5*time.Second, "agent and customer hear each other", func() bool {
		return math.Abs(agent.ep.Analysis().DominantHz-500) < 5 && math.Abs(cust.ep.Analysis().DominantHz-1000) < 5
	})
	// Release through 3pcc: both SIP legs get BYE and the callback completes.
	cs := l.v.Calls()
	if len(cs) != 1 {
		t.Fatalf("calls %+v", cs)
	}
	if code, body := l.api2("POST", "/voice/v1/calls/"+string(cs[0].ID)+"/hangup", "tok-agent1", ""); code != 200 {
		t.Fatalf("hangup %d %v", code, body)
	}
	<-agent.byes
	<-cust.byes
	l.waitStates(t, id, stQueued, stRouting, stProcessing, stCompleted+":"+reasonAgentConnected)
}

// startNodeB starts a second Voice process, consumer node-b, on the lab's
// Redis.
func (l *lab) startNodeB(t *testing.T) *Server {
	t.Helper()
	cfg := l.cfg
	cfg.Consumer = "node-b"
	b, err := New(cfg, Deps{Logger: testLogger(t), Directory: demoDirectory(), Redis: l.rdb})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	return b
}

// pendingOwner is the consumer holding the stream's only pending entry.
func (l *lab) pendingOwner(t *testing.T) string {
	t.Helper()
	p, err := l.rdb.XPending(context.Background(), "NewCallbackStream", "ors").Result()
	if err != nil {
		t.Fatal(err)
	}
	for c, n := range p.Consumers {
		if n > 0 {
			return c
		}
	}
	return ""
}

// A second node never takes a live node's callback; once the first node stops
// renewing its lease, the second takes the callback over and runs it.
func TestCallbackTakenOverWhenConsumerLapses(t *testing.T) {
	const claimAfter = 600 * time.Millisecond
	l := newLab(t, func(c *Config) { c.ClaimMinIdle = claimAfter })
	const id = "77777777-7777-7777-7777-777777777777"
	l.xadd(startEntry(id, simTone, 1, 0))
	l.waitStates(t, id, stQueued) // no agent is Ready: it waits in the queue

	l.startNodeB(t)

	// Three claim periods with both alive: the entry stays with its owner.
	for deadline := time.Now().Add(3 * claimAfter); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if o := l.pendingOwner(t); o != "test-consumer" {
			t.Fatalf("entry owned by %q while test-consumer is alive", o)
		}
	}
	firstORS := l.ges.last(id).ORSSessionID

	l.stop() // the entry stays pending; the lease is no longer renewed
	eventually(t, 10*claimAfter, "node-b takes the callback over", func() bool { return l.pendingOwner(t) == "node-b" })
	eventually(t, 5*time.Second, "node-b reports the callback queued", func() bool {
		r := l.ges.last(id)
		return r.State == stQueued && r.ORSSessionID != "" && r.ORSSessionID != firstORS
	})
}

// Wrap-up an agent asks for (an agent desktop's not-ready with agentWorkMode
// AfterCallWork) lasts until the agent is Ready: it replaces the timed
// wrap-up after a call instead of ending with it, and is not refused
// outside a call.
func TestAgentRequestedWrapUpLastsUntilReady(t *testing.T) {
	l := newLab(t, nil)
	l.readyAgent1(t)
	k := agentKey{tenant: testCCID, dn: "7001"}
	l.v.releaseAgent(k, AfterCallWork) // the timed wrap-up after a call
	if err := l.v.SetAgentStateAt(testCCID, "7001", AfterCallWork); err != nil {
		t.Fatal(err)
	}
	l.v.mu.Lock()
	timed := l.v.agents[k].timer != nil
	l.v.mu.Unlock()
	if timed || l.agentState("7001") != AfterCallWork {
		t.Fatalf("asked-for wrap-up: state %s, timer still set %v", l.agentState("7001"), timed)
	}
	for _, st := range []AgentState{Ready, AfterCallWork, NotReady} {
		if err := l.v.SetAgentStateAt(testCCID, "7001", st); err != nil || l.agentState("7001") != st {
			t.Fatalf("set %s: %v, state %s", st, err, l.agentState("7001"))
		}
	}
	if err := l.v.SetAgentStateAt(testCCID, "7001", Busy); !errors.Is(err, errBadState) {
		t.Fatalf("set Busy: %v, want errBadState", err)
	}
}

// A phone that registers from one socket with a Contact naming another
// (sipp as a registrar client beside a sipp UAS) gets its calls at the
// Contact, as from any registrar.
func TestCallsGoToTheRegisteredContact(t *testing.T) {
	l := newLab(t, nil)
	agent := newTestUA(t, l, "7001", 1000)
	phone := newTestUA(t, l, "+12025550999", 500) // takes the calls
	reg := newTestUA(t, l, "+12025550999", 0)     // only registers
	reg.contact = phone.contact
	if agent.registerBearer("tok-agent1", 60) != 200 || reg.registerDigest("customer", 60) != 200 {
		t.Fatal("register failed")
	}
	l.ready(t, "agent1")
	const id = "67676767-6767-6767-6767-676767676767"
	l.xadd(startEntry(id, "+12025550999", 1, 0))
	select {
	case <-phone.invites:
	case <-reg.invites:
		t.Fatal("the callback's INVITE went to the REGISTER's source, not to its Contact")
	case <-time.After(10 * time.Second):
		t.Fatal("no INVITE reached the registered Contact within 10 s")
	}
	l.waitStates(t, id, stQueued, stRouting, stProcessing)
}
