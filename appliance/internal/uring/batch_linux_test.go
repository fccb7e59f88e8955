package uring

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A batch sends each queued datagram from its own socket when flushed, not
// before; skipped datagrams are not sent, and results come back by place.
// It works the same through io_uring and through sendmsg.
func TestBatchSendsFromEachSocketOnFlush(t *testing.T) {
	for _, useRing := range []bool{true, false} {
		t.Run(fmt.Sprintf("ring=%v", useRing), func(t *testing.T) {
			b := NewSendmsgBatch(4)
			if useRing {
				if b = NewBatch(4); b.RingErr() != nil {
					t.Skipf("io_uring unavailable here (%v); the sendmsg run covers the batch", b.RingErr())
				}
			}
			defer b.Close()
			dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
			var srcs []*net.UDPConn
			var fds []int32
			for range 3 {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				rc, _ := c.SyscallConn()
				_ = rc.Control(func(fd uintptr) { fds = append(fds, int32(fd)) })
				srcs = append(srcs, c)
			}
			buf := make([]byte, 64)
			p := []byte("from socket 0")
			for round := range 3 {
				for i := range 3 {
					p = fmt.Appendf(p[:0], "round %d from socket %d", round, i)
					if got := b.Queue(fds[i], p, to); got != i {
						t.Fatalf("Queue returned %d, want %d", got, i)
					}
				}
				p = fmt.Appendf(p[:0], "round %d skipped", round) // the caller's buffer is reused
				if b.Queue(fds[0], p, to) != 3 || !b.Full() || b.Queue(fds[0], p, to) != -1 {
					t.Fatal("a batch of 4 took a 5th datagram, or was not full with 4")
				}
				if b.Queue(fds[0], p, netip.MustParseAddrPort("[::1]:5")) != -1 {
					t.Fatal("an IPv6 address was queued")
				}
				_ = dst.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if n, _, err := dst.ReadFromUDPAddrPort(buf); err == nil {
					t.Fatalf("%q arrived before the flush", buf[:n])
				}
				results := map[int]int32{}
				b.Flush(func(i int) bool { return i == 3 }, func(i int, res int32) { results[i] = res })
				if len(results) != 3 || b.Full() {
					t.Fatalf("results %v after a flush skipping the 4th; full %v", results, b.Full())
				}
				for i := range 3 {
					_ = dst.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, from, err := dst.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					want := fmt.Sprintf("round %d from socket %d", round, i)
					if string(buf[:n]) != want || from.Port() != srcs[i].LocalAddr().(*net.UDPAddr).AddrPort().Port() {
						t.Fatalf("round %d: %q from %v, want %q from %v", round, buf[:n], from, want, srcs[i].LocalAddr())
					}
					if results[i] != int32(len(want)) {
						t.Fatalf("result %d = %d, want %d", i, results[i], len(want))
					}
				}
				_ = dst.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if n, _, err := dst.ReadFromUDPAddrPort(buf); err == nil {
					t.Fatalf("skipped datagram %q was sent", buf[:n])
				}
			}
			// A closed socket's send fails alone, with its errno.
			srcs[1].Close()
			for i := range 3 {
				b.Queue(fds[i], []byte("after close"), to)
			}
			results := map[int]int32{}
			b.Flush(nil, func(i int, res int32) { results[i] = res })
			if results[1] >= 0 || results[0] != 11 || results[2] != 11 {
				t.Fatalf("results %v, want the 2nd failed and the others sent", results)
			}
		})
	}
}
