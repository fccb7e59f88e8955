package uring

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// Every datagram queued on each socket is read, in each socket's order and
// with its sender, whether a socket holds none, fewer than a round reads,
// or several rounds' worth; a closed descriptor fails alone; a datagram
// longer than the buffers is dropped. Both the ring and the recvmsg batch.
func TestRecvBatchReadsEverySocket(t *testing.T) {
	for name, mk := range map[string]func() *RecvBatch{
		// 3 sockets per submission: 10 sockets take several submissions.
		"io_uring": func() *RecvBatch { return NewRecvBatch(3, 2, 64, 0) },
		"recvmsg":  func() *RecvBatch { return NewRecvmsgBatch(2, 64, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			b := mk()
			defer b.Close()
			if name == "io_uring" && b.RingErr() != nil {
				t.Skipf("io_uring unavailable here: %v", b.RingErr())
			}
			const socks = 10
			fds, ports := loopbackSockets(t, socks)
			txs := make([]*net.UDPConn, socks)
			for i := range fds {
				tx, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ports[i]})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = tx.Close() })
				txs[i] = tx
			}
			// Socket i holds i%5 datagrams (up to 4: two rounds of 2), then
			// one too long to keep. Loopback queues each before the send returns.
			want := map[int][]string{}
			for i, tx := range txs {
				for k := range i % 5 {
					p := fmt.Sprintf("socket %d datagram %d", i, k)
					if _, err := tx.Write([]byte(p)); err != nil {
						t.Fatal(err)
					}
					want[i] = append(want[i], p)
				}
			}
			if _, err := txs[7].Write(make([]byte, 100)); err != nil {
				t.Fatal(err)
			}
			got := map[int][]string{}
			// read reads the sockets socks names (-1: a closed descriptor).
			read := func(socks ...int) {
				rfds := make([]int32, len(socks))
				for j, i := range socks {
					rfds[j] = -1
					if i >= 0 {
						rfds[j] = fds[i]
					}
				}
				b.Read(rfds, func(j int, data []byte, from netip.AddrPort, _ []byte) {
					i := socks[j]
					if from != txs[i].LocalAddr().(*net.UDPAddr).AddrPort() {
						t.Errorf("socket %d: datagram from %v, want %v", i, from, txs[i].LocalAddr())
					}
					got[i] = append(got[i], string(data))
				})
			}
			all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
			read(all...)
			for i := range socks {
				if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
					t.Errorf("socket %d: read %q, want %q", i, got[i], want[i])
				}
			}
			// Nothing is left: a second read finds every socket empty.
			clear(got)
			read(all...)
			if len(got) != 0 {
				t.Errorf("a second read found %v", got)
			}
			// A closed descriptor fails alone.
			if _, err := txs[2].Write([]byte("after")); err != nil {
				t.Fatal(err)
			}
			read(-1, 2)
			if fmt.Sprint(got[2]) != "[after]" || len(got) != 1 {
				t.Errorf("with a bad descriptor first, read %v, want [after] from the second", got)
			}
		})
	}
}
