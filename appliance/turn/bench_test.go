package turn

import (
	"net"
	"testing"
	"time"
)

// benchRelay sets up one allocation with a bound channel to an echo peer.
func benchRelay(b *testing.B) (net.PacketConn, net.Addr) {
	srv := startServer(b, nil)
	peer := startEchoPeer(b)
	u, p := srv.creds("bench")
	relay, err := allocate(b, dialTURN(b, srv, "udp", u, p))
	if err != nil {
		b.Fatalf("Allocate: %v", err)
	}
	// Warm up until the client has bound a channel and uses ChannelData.
	for range 20 {
		roundTrip(b, relay, peer.LocalAddr(), make([]byte, 160))
	}
	return relay, peer.LocalAddr()
}

// BenchmarkRelayRoundTrip measures one 160-byte packet (20 ms of G.711) going
// client -> server -> peer -> server -> client, one at a time.
func BenchmarkRelayRoundTrip(b *testing.B) {
	relay, peer := benchRelay(b)
	payload := make([]byte, 160)
	buf := make([]byte, 1600)
	start := time.Now()
	for b.Loop() {
		if _, err := relay.WriteTo(payload, peer); err != nil {
			b.Fatal(err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := relay.ReadFrom(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2*b.N)/time.Since(start).Seconds(), "relayed-pkts/s")
}

// BenchmarkRelayWindowed keeps up to 16 packets in flight, closer to many
// concurrent media streams; packets not echoed within 200 ms count as lost.
func BenchmarkRelayWindowed(b *testing.B) {
	const window = 16
	relay, peer := benchRelay(b)
	payload := make([]byte, 160)
	buf := make([]byte, 1600)
	var sent, received int
	start := time.Now()
	for b.Loop() {
		for range window {
			if _, err := relay.WriteTo(payload, peer); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		for range window {
			_ = relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, _, err := relay.ReadFrom(buf); err != nil {
				break
			}
			received++
		}
	}
	elapsed := time.Since(start).Seconds()
	b.ReportMetric(float64(sent+received)/elapsed, "relayed-pkts/s")
	b.ReportMetric(100*float64(sent-received)/float64(sent), "loss-%")
}
