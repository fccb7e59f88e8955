//go:build linux

package turn

import (
	"net/netip"
	"sync"

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
	mu     sync.Mutex // held by flush and close: close unmaps the ring
	b      *uring.Batch
	gen    uint64
	conns  []*polledRelayConn // the socket of each queued datagram, by place
	locked []*polledRelayConn
	skip   func(i int) bool
	sent   func(i int, res int32)
}

// peerBatchSize is the listener's read batch: a flush per read batch sends
// at most what one recvmmsg brought, all of it channel data at worst.
const peerBatchSize = 32

// newPeerBatch returns an error where io_uring is refused (old kernels,
// seccomp profiles): the read loop then sends each datagram with sendto.
func newPeerBatch() (*peerBatch, error) {
	b := uring.NewBatch(peerBatchSize)
	if err := b.RingErr(); err != nil {
		b.Close()
		return nil, err
	}
	return withBatch(b), nil
}

// withBatch queues on b, which sends each datagram with sendmsg once its
// ring has failed.
func withBatch(b *uring.Batch) *peerBatch {
	pb := &peerBatch{b: b, conns: make([]*polledRelayConn, peerBatchSize)}
	pb.skip = func(i int) bool { return pb.conns[i].closed }
	pb.sent = func(i int, res int32) {
		// A datagram the kernel refused (a full socket buffer) is dropped,
		// as pion's write would drop it.
		if c := pb.conns[i]; res >= 0 {
			c.table.countToPeer(c.relay, int(res))
		}
	}
	return pb
}

// queue copies p (the read loop's buffer is reused) to be sent from c to
// peer by the next flush; a full queue is flushed first. False when peer is
// not an IPv4 address (the batch takes no other).
func (b *peerBatch) queue(c *polledRelayConn, p []byte, peer netip.AddrPort) bool {
	if b.b.Full() {
		b.flush()
	}
	i := b.b.Queue(int32(c.fd), p, peer) //nolint:gosec // a descriptor fits
	if i >= 0 {
		b.conns[i] = c
	}
	return i >= 0
}

// flush sends what is queued. Each socket is held open (its read lock) for
// the submission, once however many datagrams it sends; a socket closed
// since its datagrams were queued sends none of them.
func (b *peerBatch) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	for _, c := range b.conns {
		if c == nil {
			break // the queue fills its places in order
		}
		if c.flushGen != b.gen {
			c.flushGen = b.gen
			c.mu.RLock()
			b.locked = append(b.locked, c)
		}
	}
	b.b.Flush(b.skip, b.sent)
	for _, c := range b.locked {
		c.mu.RUnlock()
	}
	clear(b.locked)
	b.locked = b.locked[:0]
	clear(b.conns)
}

// close releases the ring. A read loop still running (Stop timed out) goes
// on sending with sendmsg.
func (b *peerBatch) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Close()
}
