package udpbatch

import (
	"net"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
)

// writeQueue takes datagrams from many writing goroutines and hands them to
// one writer goroutine, which sends whatever queued while it was busy with one
// sendmmsg(2) (golang.org/x/net's WriteBatch). A datagram that finds the queue
// full is dropped, as a full socket buffer drops it; one longer than size is
// sent at once, past the queue.
type writeQueue struct {
	conn  *net.UDPConn
	size  int // bytes of each queued datagram's buffer
	batch *ipv4.PacketConn
	wake  chan struct{} // one token: "the queue is not empty"
	done  chan struct{}
	exit  chan struct{}
	drops atomic.Uint64

	mu     sync.Mutex
	fill   []ipv4.Message // queued datagrams; their buffers are the queue's own
	closed bool
}

func newWriteQueue(c *net.UDPConn, batch *ipv4.PacketConn, depth, size int) *writeQueue {
	q := &writeQueue{conn: c, size: size, batch: batch, wake: make(chan struct{}, 1), done: make(chan struct{}),
		exit: make(chan struct{}), fill: messages(depth, size)}
	go q.run(messages(depth, size))
	return q
}

// messages returns an empty slice of n messages with a buffer of size each.
func messages(n, size int) []ipv4.Message {
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, size)}
	}
	return ms[:0]
}

// put copies p into the queue.
func (q *writeQueue) put(p []byte, addr net.Addr) (int, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, net.ErrClosed
	}
	if len(p) > q.size {
		q.mu.Unlock()
		return q.conn.WriteTo(p, addr)
	}
	n := len(q.fill)
	if n == cap(q.fill) {
		q.mu.Unlock()
		q.drops.Add(1)
		return len(p), nil
	}
	q.fill = q.fill[:n+1]
	m := &q.fill[n]
	b := m.Buffers[0][:cap(m.Buffers[0])]
	m.Buffers[0] = b[:copy(b, p)]
	m.Addr = addr
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // the writer is already due to look
	}
	return len(p), nil
}

// run swaps the queue for its spare and sends it, until close; it sends what
// was queued before close.
func (q *writeQueue) run(spare []ipv4.Message) {
	defer close(q.exit)
	for {
		var stop bool
		select {
		case <-q.wake:
		case <-q.done:
			stop = true
		}
		q.mu.Lock()
		q.fill, spare = spare[:0], q.fill
		q.mu.Unlock()
		for ms := spare; len(ms) > 0; {
			n, err := q.batch.WriteBatch(ms, 0)
			if err != nil {
				n = max(n, 1) // skip the datagram the kernel refused
			}
			ms = ms[n:]
		}
		if stop {
			return
		}
	}
}

// close refuses further datagrams and returns once the queued ones are sent.
func (q *writeQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.exit
		return
	}
	q.closed = true
	q.mu.Unlock()
	close(q.done)
	<-q.exit
}
