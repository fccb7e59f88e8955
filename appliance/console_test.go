package appliance

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/media"
	"github.com/cxlab/cxlab/appliance/turn"
	"github.com/cxlab/cxlab/mocks/voice"
	"github.com/cxlab/cxlab/ui"
)

// Lab-clock stamps go back to wall time, so a duration across a clock move
// is the real elapsed time, not the move.
func TestConsoleWallTimesUndoClockMoves(t *testing.T) {
	lab := clock.NewLab()
	wt := newWallTimes(lab)
	before := lab.Now() // an agent went Ready
	lab.Advance(355 * time.Hour)
	during := lab.Now() // another changed state after the move
	lab.Advance(24 * time.Hour)
	now := time.Now()
	for name, stamp := range map[string]time.Time{"before the moves": before, "between the moves": during} {
		if d := now.Sub(wt.wall(stamp)); d < 0 || d > time.Minute {
			t.Errorf("a stamp taken %s is %v old in wall time, want under a minute", name, d)
		}
	}
	if !wt.wall(time.Time{}).IsZero() {
		t.Error("a zero time must stay zero")
	}

	// A stamp taken with the new offset just before the move was recorded
	// (the listener runs after Advance) still maps near the move.
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	w := &wallTimes{moves: []clockMove{{offset: 0}, {at: at, offset: 24 * time.Hour}}}
	early := at.Add(-time.Millisecond).Add(24 * time.Hour)
	if got := w.wall(early); got.Sub(at).Abs() > time.Second {
		t.Errorf("a stamp from the instant of the move maps to %v, want about %v", got, at)
	}
	if got := w.wall(at.Add(-time.Hour)); !got.Equal(at.Add(-time.Hour)) {
		t.Errorf("a stamp from before the move maps to %v", got)
	}
}

// The Agents section joins Voice's agents with the gateway's sessions: the
// current call with its codecs, transcoding, live levels and packet counts.
func TestConsoleAgentRowsCarryCallMedia(t *testing.T) {
	now := time.Now()
	same := func(t time.Time) time.Time { return t }
	agents := []voice.AgentView{
		{TenantID: "cc1", DN: "7001", UserName: "agent1", State: "Busy", Since: now},
		{TenantID: "cc1", DN: "7002", UserName: "agent2", State: "Ready", Since: now},
		{TenantID: "cc2", DN: "7003", UserName: "other", State: "Ready", Since: now},
	}
	sessions := []gateway.SessionInfo{
		{DN: "7001", ContactCenterID: "cc1", Call: &gateway.CallInfo{Peer: "+12025550100", State: "connected", Started: now,
			BrowserCodec: "audio/opus", SIPCodec: "PCMU", Transcoding: true,
			Browser: gateway.LegStats{PacketsIn: 500, Lost: 5, Heard: &media.Snapshot{ReceivedMS: 10000, LastDBFS: -14}},
			SIP:     gateway.LegStats{PacketsIn: 498, Heard: &media.Snapshot{ReceivedMS: 10000, LastDBFS: -9}}}},
		{DN: "7002", ContactCenterID: "cc1", Call: &gateway.CallInfo{Peer: "+1", State: "ended", Ended: now}},
		{DN: "7003", ContactCenterID: "cc9"}, // the same number in another tenant
	}
	rows := agentRows(agents, sessions, same)
	if len(rows) != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	c := rows[0].Call
	if !rows[0].Signed || c == nil {
		t.Fatalf("agent1 = %+v", rows[0])
	}
	want := ui.AgentCall{Peer: "+12025550100", State: "connected", Started: now, BrowserCodec: "audio/opus", SIPCodec: "PCMU",
		Transcoding: true, Agent: ui.MediaLeg{Packets: 500, Lost: 5, HasLevel: true, LevelDB: -14},
		Customer: ui.MediaLeg{Packets: 498, HasLevel: true, LevelDB: -9}}
	if *c != want {
		t.Errorf("agent1's call = %+v, want %+v", *c, want)
	}
	if rows[1].Call != nil || !rows[1].Signed {
		t.Errorf("agent2 has an ended call only: %+v", rows[1])
	}
	if rows[2].Signed {
		t.Error("a session of DN 7003 in another tenant signed in tenant cc2's agent")
	}
}

// The TURN section gets each allocation's relayed traffic.
func TestConsoleTURNRowsCarryTraffic(t *testing.T) {
	created := time.Now()
	rows := turnRows([]turn.AllocationInfo{{ClientAddr: "127.0.0.1:5000", Transport: "udp", User: "agent1", RelayAddr: "127.0.0.1:49152",
		Peers: []string{"127.0.0.1"}, Created: created, BytesToPeer: 1, BytesFromPeer: 2, PacketsToPeer: 3, PacketsFromPeer: 4}},
		func(t time.Time) time.Time { return t })
	want := ui.TURNAllocation{Username: "agent1", Client: "127.0.0.1:5000 (udp)", Relay: "127.0.0.1:49152", Peers: []string{"127.0.0.1"},
		Created: created, BytesToPeer: 1, BytesFromPeer: 2, PacketsToPeer: 3, PacketsFromPeer: 4}
	if !reflect.DeepEqual(rows, []ui.TURNAllocation{want}) {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}
}

// The log tail keeps every structured field of slog's JSON records, in order.
func TestConsoleTailLogsKeepsAttributes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.log")
	lines := `{"time":"2026-05-28T15:30:00.123Z","level":"INFO","msg":"signed out","component":"gateway","dn":"7005","user":"agent5","err":"sip: 408 \"timeout\"","attempts":3,"ok":false,"call":{"id":"c1","legs":2}}
not json
{"time":"2026-05-28T15:30:01Z","level":"WARN","msg":"plain","component":"gateway"}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := tailLogs(map[string]string{"gateway": path}, "", 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("tail = %+v, %v", got, err)
	}
	l := got[0]
	if l.Message != "signed out" || l.Level != "INFO" || l.Component != "gateway" || l.Time.IsZero() {
		t.Errorf("line = %+v", l)
	}
	want := []ui.LogAttr{{Key: "dn", Value: "7005"}, {Key: "user", Value: "agent5"}, {Key: "err", Value: `sip: 408 "timeout"`},
		{Key: "attempts", Value: "3"}, {Key: "ok", Value: "false"}, {Key: "call.id", Value: "c1"}, {Key: "call.legs", Value: "2"}}
	if len(l.Attrs) != len(want) {
		t.Fatalf("attrs = %+v, want %+v", l.Attrs, want)
	}
	for i := range want {
		if l.Attrs[i] != want[i] {
			t.Errorf("attr %d = %+v, want %+v", i, l.Attrs[i], want[i])
		}
	}
	if len(got[1].Attrs) != 0 {
		t.Errorf("a record without fields has attributes %+v", got[1].Attrs)
	}
}
