//go:build linux

package turn

import (
	"math"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cxlab/cxlab/appliance/internal/uring"
)

// peerBatch collects the channel data the UDP listener's read loop forwards
// toward peers and sends it with one io_uring submission when the loop has
// handled the batch it read (or the queue is full). Each datagram leaves from
// its own allocation's relayed socket, so sendmmsg cannot batch them: at 150
// allocations one sendto per datagram was 36% of the server's CPU, and a
// sendto costs twice a batched send here (see package uring).
//
// Only the listener's read loop queues and flushes; close may come from Stop.
type peerBatch struct {
	mu   sync.Mutex // held by flush and close: close unmaps the ring
	ring *uring.Ring
	n    int
	gen  uint64
	// Slot i of the queue: its socket, and a msghdr that always points at
	// slot i's address and buffer.
	conns []*polledRelayConn
	names []unix.RawSockaddrInet4
	iovs  []unix.Iovec
	msgs  []unix.Msghdr
	bufs  [][]byte
	// One flush's submission: the queued slots whose socket is still open,
	// compacted, and each send's result.
	sconns []*polledRelayConn
	fds    []int32
	smsgs  []unix.Msghdr
	res    []int32
	locked []*polledRelayConn
}

// peerBatchSize is the listener's read batch: a flush per read batch sends
// at most what one recvmmsg brought, all of it channel data at worst.
const peerBatchSize = 32

// newPeerBatch returns an error where io_uring is refused (old kernels,
// seccomp profiles): the read loop then sends each datagram with sendto.
func newPeerBatch() (*peerBatch, error) {
	r, err := uring.New(peerBatchSize)
	if err != nil {
		return nil, err
	}
	b := sizedPeerBatch(r.Entries())
	b.ring = r
	return b, nil
}

// sizedPeerBatch is a batch of n datagrams with no ring yet: flush then
// sends each with sendmsg.
func sizedPeerBatch(n int) *peerBatch {
	b := &peerBatch{conns: make([]*polledRelayConn, n), names: make([]unix.RawSockaddrInet4, n),
		iovs: make([]unix.Iovec, n), msgs: make([]unix.Msghdr, n), bufs: make([][]byte, n),
		sconns: make([]*polledRelayConn, n), fds: make([]int32, n), smsgs: make([]unix.Msghdr, n), res: make([]int32, n)}
	for i := range b.msgs {
		b.msgs[i] = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&b.names[i])), Namelen: unix.SizeofSockaddrInet4, Iov: &b.iovs[i], Iovlen: 1}
	}
	return b
}

// queue copies p (the read loop's buffer is reused) to be sent from c to
// peer by the next flush; a full queue is flushed first.
func (b *peerBatch) queue(c *polledRelayConn, p []byte, peer netip.AddrPort) {
	if b.n == len(b.msgs) {
		b.flush()
	}
	i := b.n
	b.bufs[i] = append(b.bufs[i][:0], p...)
	b.conns[i] = c
	b.names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: peer.Addr().As4()}
	port := peer.Port()
	b.names[i].Port = port<<8 | port>>8 // network byte order
	if len(p) > 0 {
		b.iovs[i].Base = &b.bufs[i][0]
	} else {
		b.iovs[i].Base = nil
	}
	b.iovs[i].SetLen(len(p))
	b.n++
}

// flush sends what is queued. Each socket is held open (its read lock) for
// the submission, once however many datagrams it sends; a socket closed
// since its datagrams were queued sends none of them.
func (b *peerBatch) flush() {
	if b.n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	k := 0
	for i := range b.n {
		c := b.conns[i]
		if c.flushGen != b.gen {
			c.flushGen = b.gen
			c.mu.RLock()
			b.locked = append(b.locked, c)
		}
		if c.closed {
			continue
		}
		// The submission is a compacted copy: slot i's msghdr keeps
		// pointing at slot i's buffer and address for the next batches.
		b.sconns[k], b.fds[k], b.smsgs[k], b.res[k] = c, int32(c.fd), b.msgs[i], unsent
		k++
	}
	if b.ring != nil {
		if err := b.ring.SendMsgs(b.fds[:k], b.smsgs[:k], b.res[:k]); err != nil {
			// The ring is unusable: from here datagrams go one by one,
			// starting with those of this batch it did not send.
			_ = b.ring.Close()
			b.ring = nil
		}
	}
	for i := range k {
		if b.res[i] == unsent {
			b.res[i] = int32(sendmsg(b.fds[i], &b.smsgs[i]))
		}
		// A datagram the kernel refused (a full socket buffer) is dropped,
		// as pion's write would drop it.
		if b.res[i] >= 0 {
			b.sconns[i].table.countToPeer(b.sconns[i].relay, int(b.res[i]))
		}
	}
	for _, c := range b.locked {
		c.mu.RUnlock()
	}
	clear(b.locked)
	b.locked = b.locked[:0]
	clear(b.conns[:b.n])
	clear(b.sconns[:k])
	b.n = 0
}

// unsent marks a result the ring has not filled in.
const unsent = math.MinInt32

// sendmsg sends one queued datagram: its byte count or a negative errno.
func sendmsg(fd int32, m *unix.Msghdr) int {
	n, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(m)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return -int(errno)
	}
	return int(n)
}

// close releases the ring. A read loop still running (Stop timed out) goes
// on sending with sendmsg.
func (b *peerBatch) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ring != nil {
		_ = b.ring.Close()
		b.ring = nil
	}
}
