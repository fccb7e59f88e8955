//go:build linux

package turn

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/cxlab/cxlab/appliance/internal/uring"
)

// relaySocket is a bound UDP descriptor standing in for a polled relayed
// socket, with its relay's counters.
func relaySocket(t *testing.T, table *relayTable) *polledRelayConn {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*unix.SockaddrInet4).Port}
	c := &polledRelayConn{fd: fd, local: local, table: table, relay: table.add(local)}
	t.Cleanup(func() {
		if !c.closed {
			_ = unix.Close(fd)
		}
	})
	return c
}

// Channel data queued toward peers leaves from each datagram's own relayed
// socket, whole and in order per socket, when flushed or when the queue
// fills; a socket closed meanwhile sends nothing; the relay and the
// server-wide counters count what was sent. The same holds when io_uring is
// refused and each datagram goes with sendmsg.
func TestPeerBatchSendsFromEachRelayedSocket(t *testing.T) {
	for _, ring := range []bool{true, false} {
		t.Run(fmt.Sprintf("io_uring=%v", ring), func(t *testing.T) {
			b := withBatch(uring.NewSendmsgBatch(peerBatchSize)) // what flush does after a ring failed
			if ring {
				var err error
				if b, err = newPeerBatch(); err != nil {
					t.Skipf("io_uring unavailable here: %v", err)
				}
			}
			defer b.close()
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			_ = peer.SetReadBuffer(1 << 20)
			to := netip.MustParseAddrPort(peer.LocalAddr().String())

			packets := prometheus.NewCounter(prometheus.CounterOpts{Name: "to_peer_packets"})
			bytes := prometheus.NewCounter(prometheus.CounterOpts{Name: "to_peer_bytes"})
			table := newRelayTable(trafficCounters{toPeerPackets: packets, toPeerBytes: bytes,
				fromPeerPackets: prometheus.NewCounter(prometheus.CounterOpts{Name: "a"}),
				fromPeerBytes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "b"})})
			a, c, gone := relaySocket(t, table), relaySocket(t, table), relaySocket(t, table)

			// More than one batch holds: the queue flushes itself when full.
			const total = peerBatchSize + 8
			queueRound := func(round int, closedFirstInBatch2 bool) map[int][]string {
				want := map[int][]string{} // source port -> payloads in order
				for i := range total {
					if i == peerBatchSize && closedFirstInBatch2 {
						b.queue(gone, []byte("never sent"), to)
					}
					src := a
					if i%3 == 1 {
						src = c
					}
					p := fmt.Sprintf("round %d datagram %02d %s", round, i, make([]byte, i))
					b.queue(src, []byte(p), to)
					want[src.local.Port] = append(want[src.local.Port], p)
				}
				return want
			}
			buf := make([]byte, 2048)
			receive := func(round int, want map[int][]string) {
				t.Helper()
				got := map[int][]string{}
				for range total {
					_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, from, err := peer.ReadFromUDP(buf)
					if err != nil {
						t.Fatalf("round %d, after %d datagrams: %v", round, len(got[a.local.Port])+len(got[c.local.Port]), err)
					}
					got[from.Port] = append(got[from.Port], string(buf[:n]))
				}
				for port, w := range want {
					if fmt.Sprint(got[port]) != fmt.Sprint(w) {
						t.Fatalf("round %d: from port %d got %q, want %q", round, port, got[port], w)
					}
				}
			}

			// The closed socket's datagram leads the second batch, so the
			// flush leaves a gap among the datagrams it submits.
			want := queueRound(1, true)
			gone.mu.Lock()
			gone.closed = true
			_ = unix.Close(gone.fd)
			gone.mu.Unlock()
			// The descriptor number is free again: a new socket most likely
			// takes it, and must not send the closed one's datagram.
			reuse := relaySocket(t, table)
			b.flush()
			receive(1, want)
			_ = peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, from, err := peer.ReadFromUDP(buf); err == nil {
				t.Fatalf("extra datagram %q from %v (descriptor %d, reused: %v)", buf[:n], from, gone.fd, reuse.fd == gone.fd)
			}
			// The batch after that gap still sends each slot's own datagram.
			want = queueRound(2, false)
			b.flush()
			receive(2, want)

			if a.relay.toPeerPackets.Load()+c.relay.toPeerPackets.Load() != 2*total || gone.relay.toPeerPackets.Load() != 0 {
				t.Fatalf("relay counters: %d + %d (closed: %d), want %d", a.relay.toPeerPackets.Load(),
					c.relay.toPeerPackets.Load(), gone.relay.toPeerPackets.Load(), 2*total)
			}
			if v := testutil.ToFloat64(packets); v != 2*total {
				t.Fatalf("server-wide packets toward peers = %v, want %d", v, 2*total)
			}
		})
	}
}
