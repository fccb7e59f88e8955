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
