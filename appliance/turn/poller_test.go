package turn

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// wireRecorder is a client socket that keeps a copy of every datagram the
// server sends, so a test can check the wire format of relayed traffic.
type wireRecorder struct {
	net.PacketConn
	mu          sync.Mutex
	channelData [][]byte
	indications int
}

func (w *wireRecorder) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := w.PacketConn.ReadFrom(p)
	if err == nil && n > 0 {
		w.mu.Lock()
		switch {
		case p[0]&0xC0 == 0x40: // channel numbers 0x4000-0x7FFF
			w.channelData = append(w.channelData, append([]byte(nil), p[:n]...))
		case stun.IsMessage(p[:n]):
			m := &stun.Message{Raw: append([]byte(nil), p[:n]...)}
			if m.Decode() == nil && m.Type == stun.NewType(stun.MethodData, stun.ClassIndication) {
				w.indications++
			}
		}
		w.mu.Unlock()
	}
	return n, addr, err
}

func (w *wireRecorder) snapshot() ([][]byte, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.channelData...), w.indications
}

// A peer's datagrams reach the client as a Data indication when the client
// holds only a permission for it, and as ChannelData once a channel is bound:
// channel number, the payload's length, the payload and zero padding to 4
// bytes, as RFC 8656 section 12.4 frames it. On Linux channel traffic both
// ways is the relay poller's, not pion's.
func TestPeerTrafficOnAChannelArrivesAsChannelData(t *testing.T) {
	srv := startServer(t, nil)
	if runtime.GOOS == "linux" && srv.poller == nil {
		t.Fatal("the relay poller is off on Linux")
	}
	peer := startEchoPeer(t)
	sock, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &wireRecorder{PacketConn: sock}
	u, p := srv.creds("agent1")
	client := newTURNClient(t, srv, rec, srv.UDPAddr().String(), u, p)
	relay, err := allocate(t, client)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}

	// A peer with a permission but no channel: a Data indication (pion's path).
	talker, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	if err := client.CreatePermission(talker.LocalAddr()); err != nil {
		t.Fatalf("CreatePermission: %v", err)
	}
	relayAddr, _ := net.ResolveUDPAddr("udp4", relay.LocalAddr().String())
	if _, err := talker.WriteTo([]byte("no channel"), relayAddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, from, err := relay.ReadFrom(buf); err != nil || string(buf[:n]) != "no channel" || from.String() != talker.LocalAddr().String() {
		t.Fatalf("client read %q from %v (%v), want %q from the permitted peer %s", buf[:n], from, err, "no channel", talker.LocalAddr())
	}
	if _, indications := rec.snapshot(); indications != 1 {
		t.Fatalf("%d Data indications on the wire, want 1", indications)
	}

	// 161 bytes: the ChannelData message needs 3 bytes of padding. Pion's
	// client binds a channel in the background after the first send.
	payload := bytes.Repeat([]byte{0xA5}, 161)
	deadline := time.Now().Add(5 * time.Second)
	var frames [][]byte
	for sent := 0; ; sent++ {
		roundTrip(t, relay, peer.LocalAddr(), payload)
		if frames, _ = rec.snapshot(); len(frames) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d round trips: %d ChannelData messages from the server, want them once the channel is bound", sent+1, len(frames))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, f := range frames {
		number, length := binary.BigEndian.Uint16(f[0:2]), int(binary.BigEndian.Uint16(f[2:4]))
		if number < 0x4000 || number > 0x4FFF {
			t.Fatalf("channel number %#x, want 0x4000-0x4FFF", number)
		}
		if length != len(payload) || len(f) != 4+164 {
			t.Fatalf("ChannelData length field %d, datagram %d bytes; want %d and %d (padded)", length, len(f), len(payload), 4+164)
		}
		if !bytes.Equal(f[4:4+length], payload) || !bytes.Equal(f[4+length:], []byte{0, 0, 0}) {
			t.Fatalf("ChannelData body % x, want the payload and 3 zero bytes", f[4:])
		}
	}
	// Every datagram to the echo peer came back; the talker's one adds to
	// the count from peers. A send is counted once its batch is flushed,
	// which may be after the peer's echo came back through the relay.
	var a AllocationInfo
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if a = srv.Allocations()[0]; a.PacketsFromPeer == a.PacketsToPeer+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counted %d packets from peers and %d to them, want one more from (the talker's)", a.PacketsFromPeer, a.PacketsToPeer)
		}
	}
}

// The relay's mirror of pion's state forwards on a channel only a peer that
// holds both a permission and that channel, for a UDP client.
func TestRelayRoutesOnlyPermittedChannels(t *testing.T) {
	r := newRelayTable(trafficCounters{}).add(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000})
	peer := &net.UDPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 4000}
	ap := netip.MustParseAddrPort("10.0.0.7:4000")
	client := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6000}
	check := func(what string, wantChannel uint16, wantPermitted bool) {
		t.Helper()
		ch, _, permitted := r.route(ap)
		if ch != wantChannel || permitted != wantPermitted {
			t.Errorf("%s: route = channel %#x permitted %v, want %#x %v", what, ch, permitted, wantChannel, wantPermitted)
		}
	}
	r.setChannel(peer, 0x4001, true)
	check("channel without a permission or client", 0, false)
	r.setPeer(peer.IP, true)
	check("channel and permission, no UDP client", 0, true)
	r.setClient(client)
	check("channel, permission and client", 0x4001, true)
	if ch, _, _ := r.route(netip.MustParseAddrPort("10.0.0.7:4001")); ch != 0 {
		t.Errorf("another port of the peer routed on channel %#x; channels are per transport address", ch)
	}
	r.setChannel(peer, 0x4002, false)
	check("deleting another channel number", 0x4001, true)
	r.setChannel(peer, 0x4001, false)
	check("channel deleted", 0, true)
	r.setChannel(peer, 0x4001, true)
	r.setPeer(peer.IP, false)
	check("permission expired", 0, false)
}
