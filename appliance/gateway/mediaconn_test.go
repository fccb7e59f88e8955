package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/ice/v4"
)

// While a sweep holds the ICE socket, datagrams wait; they leave when it
// releases, in order, or as soon as mediaFlushAt have queued. Outside a
// sweep, and for what cannot be queued, writes go at once.
func TestMediaConnSendsASweepsDatagramsTogether(t *testing.T) {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	src, dst := listen(), listen()
	m := newMediaConn(src)
	var _ ice.AddrPortReaderWriter = m // pion's mux then skips per-packet addresses
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	buf := make([]byte, 2048)
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			_ = dst.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := dst.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v", w, err)
			}
			if string(buf[:n]) != w || from != src.LocalAddr().(*net.UDPAddr).AddrPort() {
				t.Fatalf("got %q from %v, want %q from %v", buf[:n], from, w, src.LocalAddr())
			}
		}
		_ = dst.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		if n, _, err := dst.ReadFromUDPAddrPort(buf); err == nil {
			t.Fatalf("unexpected %q", buf[:n])
		}
	}
	write := func(s string) {
		t.Helper()
		if n, err := m.WriteToAddrPort([]byte(s), to); err != nil || n != len(s) {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
	}

	write("outside a sweep")
	expect("outside a sweep")

	m.hold()
	m.hold() // two shards sweep at once
	write("first")
	if _, err := m.WriteTo([]byte("second"), dst.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	big := string(make([]byte, mediaMaxDatagram+1))
	write(big) // too long to queue: sent at once, ahead of the queue
	expect(big)
	m.release() // one shard done: what is queued leaves
	expect("first", "second")
	var many []string
	for i := range mediaFlushAt + 3 {
		many = append(many, fmt.Sprintf("datagram %d", i))
		write(many[i])
	}
	expect(many[:mediaFlushAt]...) // a full queue is sent during the sweep
	m.release()
	expect(many[mediaFlushAt:]...)
	write("after the sweeps")
	expect("after the sweeps")

	// A datagram the kernel refuses (port 0) is dropped alone; the ones
	// queued after it still leave.
	m.hold()
	write("before the refused one")
	if _, err := m.WriteToAddrPort([]byte("refused"), netip.AddrPortFrom(to.Addr(), 0)); err != nil {
		t.Fatal(err) // queued: the refusal comes at the flush
	}
	write("after the refused one")
	m.release()
	expect("before the refused one", "after the refused one")
}
