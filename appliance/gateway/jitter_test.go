package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// A customer whose packets come 10 and 30 ms apart in turn (20 ms of audio
// each) has an interarrival jitter of about 10 ms, and the call's SIP leg
// says so although the sweep reads the socket on a 20 ms grid: timed by the
// sweep, the estimate would settle near 0 or 20 ms, by the grid's phase.
func TestSIPJitterComesFromArrivalTimes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken), AutoAnswer: true, PlayHz: 1000, BindIP: "127.0.0.1"})
	runAgent(ctx, t, l, a)

	l.voice.callPaced(ctx, t, "7001", 440, []time.Duration{10 * time.Millisecond, 30 * time.Millisecond})
	eventually(t, 15*time.Second, "agent hears 440 Hz", func() bool { s := a.Heard(); return s.AudioMS > 400 && near(s.DominantHz, 440) })
	// The estimate moves by 1/16 of each packet's deviation: after 150
	// packets it has settled.
	var leg gateway.LegStats
	eventually(t, 15*time.Second, "150 packets from the customer", func() bool {
		snap := l.gw.Snapshot()
		if len(snap.Sessions) != 1 || snap.Sessions[0].Call == nil {
			return false
		}
		leg = snap.Sessions[0].Call.SIP
		return leg.PacketsIn >= 150
	})
	if leg.JitterMS < 8 || leg.JitterMS > 12 {
		t.Fatalf("SIP jitter %.1f ms after %d packets, want about 10", leg.JitterMS, leg.PacketsIn)
	}
	t.Logf("SIP jitter %.1f ms after %d packets", leg.JitterMS, leg.PacketsIn)
}

// jitterCounts are the over="100" and over="300" counts of both legs.
func jitterCounts(t *testing.T, l *lab) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range []string{"wrtc_rtp_client_jitter", "wrtc_rtp_gateway_jitter"} {
		for _, over := range []string{"100", "300"} {
			out[m+"{over="+over+"}"] = l.metric(t, m, "over", over)
		}
	}
	return out
}

// A hold is a pause in both streams, not jitter: after a few seconds on
// hold (the browser re-offers a=inactive and stops sending, the far end
// stops too) and a resume, no jitter counter has moved. RFC 3550's estimator
// assumes continuous transmission; across the pause it took the seconds of
// silence for one packet's delay.
func TestHoldIsNotJitter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a, _, ep := talkingCall(ctx, t, l, agent.Config{PCMU: true})

	if err := a.Hold(ctx); err != nil {
		t.Fatal(err)
	}
	if dir := <-l.voice.reinvite; dir != "sendonly" {
		t.Fatalf("hold re-INVITE direction %q", dir)
	}
	ep.held.Store(true)
	// The pause under test: long enough that, taken for jitter, it crosses
	// 100 ms (1/16 of the gap).
	time.Sleep(2500 * time.Millisecond)
	ep.held.Store(false)
	if err := a.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if dir := <-l.voice.reinvite; dir != "sendrecv" {
		t.Fatalf("resume re-INVITE direction %q", dir)
	}
	in := func() (uint64, uint64) { return packetsIn(t, l) }
	b0, s0 := in()
	eventually(t, 10*time.Second, "both streams flow again", func() bool { b, s := in(); return b > b0+25 && s > s0+25 })
	for k, v := range jitterCounts(t, l) {
		if v != 0 {
			t.Errorf("%s = %v after a hold, want 0", k, v)
		}
	}
}

// packetsIn returns the packets the lab's one call received so far from the
// browser and from SIP.
func packetsIn(t *testing.T, l *lab) (browser, sip uint64) {
	t.Helper()
	snap := l.gw.Snapshot()
	if len(snap.Sessions) != 1 || snap.Sessions[0].Call == nil {
		t.Fatal("the call is gone")
	}
	c := snap.Sessions[0].Call
	return c.Browser.PacketsIn, c.SIP.PacketsIn
}

// DTMF is no packet loss: the telephone-events of "159#" from the browser
// and of "9*" from the far end share their streams' sequence numbers, and
// wrtc_rtp_losts stays 0 on a loss-free network.
func TestDTMFIsNotPacketLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken), AutoAnswer: true, PlayHz: 1000, BindIP: "127.0.0.1"})
	runAgent(ctx, t, l, a)
	dlg, ep := l.voice.call(ctx, t, "7001", 440)
	eventually(t, 15*time.Second, "agent hears 440 Hz", func() bool { s := a.Heard(); return s.AudioMS > 300 && near(s.DominantHz, 440) })
	if err := a.SendDTMF("159#"); err != nil {
		t.Fatal(err)
	}
	ep.sendDTMF("9*")
	eventually(t, 10*time.Second, "SIP side gets 159#", func() bool { return ep.Digits() == "159#" })
	eventually(t, 10*time.Second, "agent gets 9*", func() bool { return a.Digits() == "9*" })
	// Talk on for a second after the keys, so that both jitter buffers
	// play past them.
	in := func() (uint64, uint64) { return packetsIn(t, l) }
	b0, s0 := in()
	eventually(t, 10*time.Second, "a second of audio after the keys", func() bool { b, s := in(); return b > b0+50 && s > s0+50 })
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, "BYE")
	var rec gateway.CallInfo
	eventually(t, 5*time.Second, "the call is filed", func() bool {
		r := l.gw.Snapshot().Recent
		if len(r) == 1 {
			rec = r[0]
		}
		return len(r) == 1
	})
	if got := l.metric(t, "wrtc_rtp_losts"); got != 0 || rec.Browser.Lost != 0 || rec.SIP.Lost != 0 {
		t.Fatalf("wrtc_rtp_losts = %v (browser leg %d, SIP leg %d) after DTMF on a loss-free call, want 0",
			got, rec.Browser.Lost, rec.SIP.Lost)
	}
}
