package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Datagrams queued before the read come out one per ReadFrom, in order, each
// with its own sender, across more than one batch.
func TestReadFromHandsOutQueuedDatagramsInOrder(t *testing.T) {
	server := listen(t)
	conn := New(server, 4, 1500)
	a, b := listen(t), listen(t)
	const n = 11
	for i := range n {
		from := a
		if i%2 == 1 {
			from = b
		}
		if _, err := from.WriteTo(fmt.Appendf(nil, "datagram %d", i), server.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	for i := range n {
		k, addr, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:k]), fmt.Sprintf("datagram %d", i); got != want {
			t.Fatalf("read %q, want %q", got, want)
		}
		want := a.LocalAddr().String()
		if i%2 == 1 {
			want = b.LocalAddr().String()
		}
		if addr.String() != want {
			t.Fatalf("datagram %d from %s, want %s", i, addr, want)
		}
	}
}

// A buffer shorter than the datagram gets its first bytes, as with recvfrom;
// the next read is the next datagram.
func TestShortBufferTruncates(t *testing.T) {
	server := listen(t)
	conn := New(server, 8, 1500)
	peer := listen(t)
	for _, s := range []string{"0123456789", "next"} {
		if _, err := peer.WriteTo([]byte(s), server.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	small := make([]byte, 4)
	k, _, err := conn.ReadFrom(small)
	if err != nil || string(small[:k]) != "0123" {
		t.Fatalf("read %q, %v; want \"0123\"", small[:k], err)
	}
	k, _, err = conn.ReadFrom(small)
	if err != nil || string(small[:k]) != "next" {
		t.Fatalf("read %q, %v; want \"next\"", small[:k], err)
	}
}

func TestCloseEndsABlockedRead(t *testing.T) {
	server := listen(t)
	conn := New(server, 8, 1500)
	errc := make(chan error, 1)
	go func() {
		_, _, err := conn.ReadFrom(make([]byte, 1500))
		errc <- err
	}()
	// The reader may or may not be blocked yet; either way Close ends it.
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked 5 s after Close")
	}
}

func TestReadDeadlineIsHonoured(t *testing.T) {
	server := listen(t)
	conn := New(server, 8, 1500)
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, _, err := conn.ReadFrom(make([]byte, 1500))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
}

// receiveAll reads n datagrams from c (5 s at most) and returns their payloads.
func receiveAll(t *testing.T, c *net.UDPConn, n int) []string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	out := make([]string, 0, n)
	for len(out) < n {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(out), n, err)
		}
		out = append(out, string(buf[:k]))
	}
	return out
}

// With batched writes, datagrams from several writing goroutines all arrive,
// each writer's in the order it wrote them, and none is dropped while the
// queue has room.
func TestBatchedWritesArriveInEachWritersOrder(t *testing.T) {
	server := listen(t)
	conn := New(server, 8, 1500)
	conn.BatchWrites(1024, 1500)
	client := listen(t)
	_ = client.SetReadBuffer(4 << 20)
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := conn.WriteTo(fmt.Appendf(nil, "%d %d", w, i), client.LocalAddr()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	next := make([]int, writers)
	for _, d := range receiveAll(t, client, writers*each) {
		var w, i int
		if _, err := fmt.Sscanf(d, "%d %d", &w, &i); err != nil {
			t.Fatalf("datagram %q: %v", d, err)
		}
		if i != next[w] {
			t.Fatalf("writer %d: datagram %d arrived when %d was due", w, i, next[w])
		}
		next[w]++
	}
	if d := conn.Drops(); d != 0 {
		t.Fatalf("%d datagrams dropped with room in the queue", d)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close sends what was queued before it; a write after Close is refused.
func TestCloseSendsQueuedWritesThenRefuses(t *testing.T) {
	server := listen(t)
	conn := New(server, 8, 1500)
	conn.BatchWrites(64, 1500)
	client := listen(t)
	const n = 50
	for i := range n {
		if _, err := conn.WriteTo(fmt.Appendf(nil, "%d", i), client.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	got := receiveAll(t, client, n)
	if got[0] != "0" || got[n-1] != fmt.Sprint(n-1) {
		t.Fatalf("received %q ... %q", got[0], got[n-1])
	}
	if _, err := conn.WriteTo([]byte("late"), client.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v, want net.ErrClosed", err)
	}
}

// A datagram longer than the queue's buffers goes out whole.
func TestBatchedWriteLongerThanTheQueueIsSentWhole(t *testing.T) {
	server := listen(t)
	conn := New(server, 8, 1500)
	conn.BatchWrites(16, 100)
	t.Cleanup(func() { _ = conn.Close() })
	client := listen(t)
	long := make([]byte, 1200)
	for i := range long {
		long[i] = byte(i)
	}
	if _, err := conn.WriteTo(long, client.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got := receiveAll(t, client, 1)[0]; got != string(long) {
		t.Fatalf("received %d bytes, want the %d written", len(got), len(long))
	}
}

// BenchmarkReadFrom reads a queued burst of 64 datagrams: the plain socket
// makes one recvfrom each, the batched one a recvmmsg per 32.
func BenchmarkReadFrom(b *testing.B) {
	for _, tc := range []struct {
		name string
		wrap func(*net.UDPConn) net.PacketConn
	}{
		{"recvfrom", func(c *net.UDPConn) net.PacketConn { return c }},
		{"batched", func(c *net.UDPConn) net.PacketConn { return New(c, 32, 1500) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			server, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = server.Close() }()
			_ = server.SetReadBuffer(1 << 20)
			peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = peer.Close() }()
			conn := tc.wrap(server)
			payload := make([]byte, 172)
			buf := make([]byte, 1500)
			const burst = 64
			b.SetBytes(burst * int64(len(payload)))
			for b.Loop() {
				for range burst {
					if _, err := peer.WriteTo(payload, server.LocalAddr()); err != nil {
						b.Fatal(err)
					}
				}
				for range burst {
					if _, _, err := conn.ReadFrom(buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
