//go:build linux

package gateway

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/internal/uring"
)

// The sweep reads a call's RTP socket every 20 ms, yet the jitter estimate
// must see when each datagram arrived: the kernel's stamps say so.
func TestSweepReadKeepsArrivalTimes(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	rc, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := int32(-1)
	_ = rc.Control(func(s uintptr) { fd = int32(s) })
	if !sweepReadsSIP(fd) {
		t.Fatal("the sweep does not read a known descriptor")
	}
	rb := uring.NewRecvBatch(sipReadSockets, sipReadsPerSocket, 1500, sipControlSize)
	defer rb.Close()

	type got struct {
		data    string
		from    netip.AddrPort
		at      time.Time
		stamped bool
	}
	var seen []got
	read := func() {
		rb.Read([]int32{fd}, func(_ int, data []byte, from netip.AddrPort, control []byte) {
			at, ok := arrival(control)
			seen = append(seen, got{string(data), from, at, ok})
		})
	}
	read()
	if len(seen) != 0 {
		t.Fatalf("an empty socket gave %d datagrams", len(seen))
	}

	// Loopback queues a datagram on the receiving socket before the send
	// returns, so after the sends all are waiting; the gaps between them are
	// what is measured, not waits for readiness. The kernel turns receive
	// stamps on a moment after the first socket asks (until then it stamps
	// datagrams when they are read), so a datagram goes first to be dropped.
	const gap = 30 * time.Millisecond
	if _, err := tx.Write([]byte("warm-up")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(gap)
	read()
	seen = seen[:0]
	before := time.Now()
	if _, err := tx.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(gap)
	const more = 3 * sipReadsPerSocket // takes several rounds
	for i := range more {
		if _, err := tx.Write([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(gap) // the read comes well after the last arrival
	read()

	if len(seen) != 1+more {
		t.Fatalf("read %d datagrams, want %d", len(seen), 1+more)
	}
	local := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	for i, g := range seen {
		if g.from != local {
			t.Errorf("datagram %d from %v, want %v", i, g.from, local)
		}
		if !g.stamped {
			t.Fatalf("datagram %d has no arrival stamp", i)
		}
		if g.at.Before(before) || g.at.After(time.Now()) {
			t.Errorf("datagram %d arrived at %v, outside the test", i, g.at)
		}
	}
	if seen[0].data != "first" || seen[1].data != "a" || seen[more].data != string(rune('a'+more-1)) {
		t.Errorf("datagrams out of order: %q %q ... %q", seen[0].data, seen[1].data, seen[more].data)
	}
	if d := seen[1].at.Sub(seen[0].at); d < gap {
		t.Errorf("arrivals %v apart, want at least %v: the stamps are the read's time, not the arrival's", d, gap)
	}
	if d := time.Since(seen[more].at); d < gap {
		t.Errorf("the last datagram stamped %v before the check, want at least %v", d, gap)
	}
	n := len(seen)
	read()
	if len(seen) != n {
		t.Errorf("the read left %d datagrams on the socket", len(seen)-n)
	}
}
