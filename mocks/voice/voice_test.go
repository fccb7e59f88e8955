package voice

import (
	"context"
	"errors"
	"maps"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/mocks/voice/internal/rtpsim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRegisterBearerDigestAndErrors(t *testing.T) {
	l := newLab(t, nil)
	a1 := newTestUA(t, l, "7001", 1000)
	if got := a1.registerBearer("tok-agent1", 60); got != 200 {
		t.Fatalf("bearer register: got %d, want 200", got)
	}
	if st := l.agentState("7001"); st != NotReady {
		t.Fatalf("after register agent is %s, want NotReady", st)
	}
	a2 := newTestUA(t, l, "7002", 1000)
	if got := a2.registerBearer("tok-agent1", 60); got != 403 {
		t.Fatalf("register someone else's DN: got %d, want 403", got)
	}
	if got := a2.registerBearer("garbage", 60); got != 401 {
		t.Fatalf("register with invalid token: got %d, want 401", got)
	}
	a3 := newTestUA(t, l, "7003", 1000)
	if got := a3.registerDigest("wrong", 60); got != 403 {
		t.Fatalf("digest with wrong password: got %d, want 403", got)
	}
	if got := a3.registerDigest("dnpass", 60); got != 200 {
		t.Fatalf("digest register: got %d, want 200", got)
	}
	unknown := newTestUA(t, l, "7999", 1000)
	if got := unknown.registerDigest("dnpass", 60); got != 404 {
		t.Fatalf("unknown DN: got %d, want 404", got)
	}
	cust := newTestUA(t, l, "+12025550999", 1000)
	if got := cust.registerDigest("customer", 60); got != 200 {
		t.Fatalf("customer number register: got %d, want 200", got)
	}
	if _, ok := l.v.lookupBinding(bindKey{user: "+12025550999"}); !ok {
		t.Fatal("customer binding missing")
	}

	// A REGISTER without To is malformed: 400, and the server keeps working.
	raw, err := net.Dial("udp", l.sipAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	msg := "REGISTER sip:" + testDomain + " SIP/2.0\r\nVia: SIP/2.0/UDP " + raw.LocalAddr().String() + ";branch=z9hG4bK-bad1\r\n" +
		"From: <sip:7001@" + testDomain + ">;tag=x\r\nCall-ID: bad-1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if _, err := raw.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, err := raw.Read(buf)
	if err != nil {
		t.Fatalf("no answer to malformed REGISTER: %v", err)
	}
	if !strings.HasPrefix(string(buf[:n]), "SIP/2.0 400") {
		t.Fatalf("malformed REGISTER answered %q", strings.SplitN(string(buf[:n]), "\r\n", 2)[0])
	}

	// Short registration: the DN is logged out when it expires.
	if got := a1.registerBearer("tok-agent1", 1); got != 200 {
		t.Fatalf("refresh: got %d", got)
	}
	eventually(t, 5*time.Second, "registration expiry", func() bool { return l.agentState("7001") == LoggedOut })
}

// twoDNs registers 7001 (token, 1000 Hz) and 7002 (digest, 600 Hz, answering
// INVITEs with reject when it is not 0) and sets agent2 Ready.
func twoDNs(t *testing.T, l *lab, reject int) (a1, a2 *testUA) {
	t.Helper()
	a1 = newTestUA(t, l, "7001", 1000)
	a2 = newTestUA(t, l, "7002", 600)
	a2.reject = reject
	if a1.registerBearer("tok-agent1", 60) != 200 || a2.registerDigest("dnpass", 60) != 200 {
		t.Fatal("register failed")
	}
	if code, body := l.api2("PUT", "/voice/v1/agents/me/state", "tok-agent2", `{"state":"Ready"}`); code != 200 {
		t.Fatalf("set Ready: %d %v", code, body)
	}
	return a1, a2
}

func TestCallBetweenDNsHoldResumeDTMF(t *testing.T) {
	l := newLab(t, nil)
	a1, a2 := twoDNs(t, l, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := a1.call(ctx, "7002", sip.NewHeader("X-Genesys-Order", "42"))
	if err != nil {
		t.Fatalf("call 7002: %v", err)
	}
	inv := <-a2.invites
	if h := inv.GetHeader("X-Genesys-Order"); h == nil || h.Value() != "42" {
		t.Fatalf("user data header not passed across: %v", h)
	}
	a1.ep.SendDigits("12")
	a2.ep.SendDigits("#9")
	eventually(t, 5*time.Second, "two-way audio and DTMF", func() bool {
		h1, h2 := a1.ep.Analysis(), a2.ep.Analysis()
		return math.Abs(h1.DominantHz-600) < 5 && math.Abs(h2.DominantHz-1000) < 5 && h1.Digits == "#9" && h2.Digits == "12"
	})
	calls := l.v.Calls()
	if len(calls) != 1 || calls[0].State != "connected" || l.agentState("7002") != Busy {
		t.Fatalf("call record %+v, agent2 %s", calls, l.agentState("7002"))
	}

	// Hold from the caller: the re-INVITE reaches the callee as sendonly.
	reinvite := func(dir rtpsim.Direction, version uint64) {
		t.Helper()
		req := sip.NewRequest(sip.INVITE, d.InviteResponse.Contact().Address)
		req.SetBody(a1.ep.SDP(rtpsim.DefaultCodecs(), dir, version))
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res, err := d.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("re-INVITE %s: %v %v", dir, res, err)
		}
		if err := d.WriteRequest(sip.NewRequest(sip.ACK, d.InviteResponse.Contact().Address)); err != nil {
			t.Fatal(err)
		}
		m, err := rtpsim.Parse(res.Body())
		if err != nil || m.Direction != dir.Reverse() {
			t.Fatalf("re-INVITE answer direction %s, want %s (%v)", m.Direction, dir.Reverse(), err)
		}
		if got := <-a2.reinvite; got != dir {
			t.Fatalf("callee saw %s, want %s", got, dir)
		}
	}
	reinvite(rtpsim.SendOnly, 2)
	if st := l.v.Calls()[0].State; st != "held" {
		t.Fatalf("call state after hold %s", st)
	}
	reinvite(rtpsim.SendRecv, 3)
	if st := l.v.Calls()[0].State; st != "connected" {
		t.Fatalf("call state after resume %s", st)
	}

	a2.hangUp(ctx, d)
	eventually(t, 3*time.Second, "agent back to Ready after wrap-up", func() bool {
		return l.v.Calls()[0].State == "ended" && l.agentState("7002") == Ready
	})
}

func TestCallToUnregisteredAndUnknownTargets(t *testing.T) {
	l := newLab(t, nil)
	a1 := newTestUA(t, l, "7001", 1000)
	if a1.registerBearer("tok-agent1", 60) != 200 {
		t.Fatal("register failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for target, want := range map[string]string{"7003": "480", "7999": "404", "+12025550102": "486", "+12025550107": "503"} {
		_, err := a1.call(ctx, target)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("call %s: got %v, want status %s", target, err, want)
		}
	}
	// An offer with no codec the customer takes (G.722 only) is refused
	// with 488 and its standard reason phrase.
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "+12025550100", Host: testDomain})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "7001", Host: testDomain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "+12025550100", Host: testDomain}})
	req.SetBody([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetDestination(a1.voice)
	d, err := a1.clients.WriteInvite(ctx, req)
	if err == nil {
		err = d.WaitAnswer(ctx, sipgo.AnswerOptions{})
	}
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) || de.Res.StatusCode != 488 || de.Res.Reason != "Not Acceptable Here" {
		t.Errorf("G.722-only offer: %v, want 488 Not Acceptable Here", err)
	}
}

// A registered DN that turns a call down: the caller gets its status, the
// call is filed as failed, and Voice still stops. The failure path used to
// take the leg's lock twice, leaving the call ringing, the caller Busy and
// Voice's Stop blocked for ever.
func TestCallToRegisteredDNThatRejects(t *testing.T) {
	l := newLab(t, nil)
	a1, _ := twoDNs(t, l, 486)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a1.call(ctx, "7002"); err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("call to a DN that rejects: %v, want 486", err)
	}
	eventually(t, 3*time.Second, "the call filed as failed and the caller no longer Busy", func() bool {
		calls := l.v.Calls()
		return len(calls) == 1 && calls[0].State == "ended" && l.agentState("7001") != Busy
	})
	for _, a := range l.v.Agents(testCCID) {
		if a.DN == "7001" && a.CallID != "" {
			t.Fatalf("caller %s still shows call %s", a.State, a.CallID)
		}
	}
	stopped := make(chan struct{})
	go func() { l.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Voice did not stop after a failed call to a registered DN")
	}
}

func TestAgentDialsSimulatedCustomerWithDTMF(t *testing.T) {
	l := newLab(t, nil)
	a1 := newTestUA(t, l, "7001", 1000)
	if a1.registerBearer("tok-agent1", 60) != 200 {
		t.Fatal("register failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := a1.call(ctx, simDTMF)
	if err != nil {
		t.Fatal(err)
	}
	a1.ep.SendDigits("*7")
	eventually(t, 5*time.Second, "customer DTMF and tone", func() bool {
		h := a1.ep.Analysis()
		return h.Digits == "1234#" && math.Abs(h.DominantHz-440) < 5
	})
	eventually(t, 3*time.Second, "customer heard the agent", func() bool {
		c := l.v.Calls()[0]
		return c.CustomerAnalysis != nil && c.CustomerAnalysis.Digits == "*7" && math.Abs(c.CustomerAnalysis.DominantHz-1000) < 5
	})
	_ = d.Bye(ctx)
}

// A registration refresh whose token GAuth refuses (revoked, expired, its
// user deleted) logs the agent out at once: left Ready until the binding
// expired, it would be offered calls nobody answers. A refused REGISTER from
// another endpoint, or for another user, leaves the binding alone.
func TestRefusedRefreshLogsTheAgentOut(t *testing.T) {
	l := newLab(t, nil)
	a1, _ := twoDNs(t, l, 0)
	if code, body := l.api2("PUT", "/voice/v1/agents/me/state", "tok-agent1", `{"state":"Ready"}`); code != 200 {
		t.Fatalf("set Ready: %d %v", code, body)
	}
	other := newTestUA(t, l, "7001", 440) // another endpoint, same DN
	if code := other.registerBearer("revoked", 60); code != 401 {
		t.Fatalf("REGISTER with a refused token from another endpoint: %d, want 401", code)
	}
	if code := a1.registerBearer("tok-agent2", 60); code != 403 { // agent2 does not own 7001
		t.Fatalf("REGISTER of 7001 with agent2's token: %d, want 403", code)
	}
	if st := l.agentState("7001"); st != Ready {
		t.Fatalf("7001 is %s after refused REGISTERs from another endpoint and for another user, want Ready", st)
	}
	if code := a1.registerBearer("revoked", 60); code != 401 {
		t.Fatalf("refresh with a refused token: %d, want 401", code)
	}
	if st := l.agentState("7001"); st != LoggedOut {
		t.Fatalf("7001 is %s after its refresh was refused, want LoggedOut", st)
	}
}

// User data a caller attaches goes into the call's record: at dial time as
// X-Genesys-<key> headers and X-Genesys-UserData (the gateway's OFFER
// attacheddata), during the call as an INFO of form-urlencoded pairs (the
// gateway's INFO-MAP), which SIP Server keeps as user data instead of
// passing it to the far end; desktops watching the DN see the data change.
// Other INFO bodies (INFO-PEER) still reach the far end.
func TestAttachedDataBecomesUserData(t *testing.T) {
	l := newLab(t, nil)
	a1, a2 := twoDNs(t, l, 0)
	events, stop := Subscribe(l.v, testCCID, "7001", 64, func(e FeedEvent) FeedEvent { return e })
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := a1.call(ctx, "7002", sip.NewHeader("X-Genesys-CaseId", "C-77"), sip.NewHeader("X-Genesys-UserData", "topic=wifi+setup&lang=fr"))
	if err != nil {
		t.Fatalf("call 7002: %v", err)
	}
	userData := func() map[string]string {
		t.Helper()
		_, body := l.api2("GET", "/voice/v1/calls", "", "")
		data, _ := body["data"].(map[string]any)
		calls, _ := data["calls"].([]any)
		if len(calls) != 1 {
			t.Fatalf("calls: %v", body)
		}
		out := map[string]string{}
		ud, _ := calls[0].(map[string]any)["userData"].(map[string]any)
		for k, v := range ud {
			out[k], _ = v.(string)
		}
		return out
	}
	if got, want := userData(), map[string]string{"CaseId": "C-77", "topic": "wifi setup", "lang": "fr"}; !maps.Equal(got, want) {
		t.Fatalf("userData of the dialled call %v, want %v", got, want)
	}

	info := func(ct, body string) {
		t.Helper()
		req := sip.NewRequest(sip.INFO, d.InviteResponse.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", ct))
		req.SetBody([]byte(body))
		res, err := d.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("INFO %s: %v %v", ct, res, err)
		}
	}
	info("application/x-www-form-urlencoded", "note=call+me%21&lang=de")
	want := map[string]string{"CaseId": "C-77", "topic": "wifi setup", "lang": "de", "note": "call me!"}
	if got := userData(); !maps.Equal(got, want) {
		t.Fatalf("userData after INFO-MAP %v, want %v", got, want)
	}
	for seen := false; !seen; {
		select {
		case e := <-events:
			if seen = e.Call != nil && e.Call.UserData["note"] == "call me!"; seen && (!maps.Equal(e.Call.UserData, want) || e.Call.State != "connected") {
				t.Fatalf("feed event %+v, want the connected call with %v", *e.Call, want)
			}
		case <-ctx.Done():
			t.Fatal("the desktop feed did not report the changed user data")
		}
	}

	// INFO-PEER is passed across; the INFO-MAP before it was not.
	info("application/octet-stream", "hello=there")
	select {
	case req := <-a2.infos:
		if ct := req.ContentType(); ct == nil || ct.Value() != "application/octet-stream" || string(req.Body()) != "hello=there" {
			t.Fatalf("the callee got INFO %v %q, want only the INFO-PEER", ct, req.Body())
		}
	case <-ctx.Done():
		t.Fatal("INFO-PEER did not reach the callee")
	}
	a2.hangUp(ctx, d)
}
