// Package udpbatch gives a UDP socket with one busy reader a ReadFrom that
// takes datagrams from batches: one recvmmsg(2) (golang.org/x/net's
// ReadBatch) returns every datagram already queued on the socket, up to a
// batch, so a reader that falls behind catches up with one system call and
// one wake-up instead of one per datagram. Under light load a batch holds one
// datagram and the cost is that of a plain read. Optionally (BatchWrites) the
// socket's many writers queue their datagrams for one writer that sends them
// with sendmmsg(2), and a writer that batches its own datagrams sends them
// with WriteBatch.
//
// The TURN server's listener is such a socket: one goroutine reads every
// client's packets toward its peers (at 150 uclient clients, about 30,000 a
// second); the TURN relay poller sends the peers' channel traffic back with
// WriteBatch, and pion's goroutines queue the rest (STUN answers, Data
// indications). The gateway's ICE mux is another, but at 150
// calls (7,500 packets a second) batches held one datagram and the bench
// showed no gain, so it keeps pion's allocation-free read of the plain socket.
package udpbatch

import (
	"net"
	"sync"

	"golang.org/x/net/ipv4"
)

// Conn is a *net.UDPConn whose ReadFrom reads come from batches, and whose
// WriteTo may queue for a batched writer (BatchWrites). Deadlines and
// addresses are the socket's own. Reads are serialized:
// a batch is handed out in arrival order, one datagram per ReadFrom. The
// socket's other read methods (Read, ReadFromUDP, ...) bypass the batch; a
// reader uses ReadFrom only.
type Conn struct {
	*net.UDPConn
	batch *ipv4.PacketConn

	mu   sync.Mutex
	msgs []ipv4.Message
	next int // index of the next datagram to hand out
	n    int // datagrams in the current batch

	wq *writeQueue
}

// BatchWrites makes WriteTo queue a copy of each datagram for one writer
// goroutine that sends what queued meanwhile with one sendmmsg(2). At most
// depth datagrams of up to size bytes wait; a longer one is sent at once, past
// the queue, and one that finds the queue full is dropped (Drops counts them),
// as a full socket buffer would. Call it once, before the first WriteTo.
func (c *Conn) BatchWrites(depth, size int) { c.wq = newWriteQueue(c.UDPConn, c.batch, depth, size) }

// WriteTo sends p to addr, or queues it when writes are batched; a queued
// datagram's send error is not reported.
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.wq == nil {
		return c.UDPConn.WriteTo(p, addr)
	}
	return c.wq.put(p, addr)
}

// Drops is the number of datagrams WriteTo dropped because the queue was full.
func (c *Conn) Drops() uint64 {
	if c.wq == nil {
		return 0
	}
	return c.wq.drops.Load()
}

// Close sends the queued datagrams, then closes the socket.
func (c *Conn) Close() error {
	if c.wq != nil {
		c.wq.close()
	}
	return c.UDPConn.Close()
}

// New wraps c. Each ReadFrom call hands out one datagram of at most size
// bytes (longer ones are truncated, as a short buffer truncates with
// recvfrom); a batch holds at most batch datagrams.
func New(c *net.UDPConn, batch, size int) *Conn {
	// ipv4.PacketConn's batch read works on any UDP socket: x/net parses
	// each sender's address by its own family.
	return &Conn{UDPConn: c, batch: ipv4.NewPacketConn(c), msgs: messages(batch, size)[:batch]}
}

// ReadFrom returns the next datagram, reading a new batch when the last one
// is used up. It copies at most len(p) bytes into p.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.take()
	if err != nil {
		return 0, nil, err
	}
	return copy(p, m.Buffers[0][:m.N]), m.Addr, nil
}

// Buffered is how many datagrams of the last batch ReadFrom has yet to hand
// out: at 0 the next ReadFrom reads the socket, and may wait.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n - c.next
}

// take returns the next datagram of the batch, reading a batch first if
// none is left. The caller holds c.mu.
func (c *Conn) take() (*ipv4.Message, error) {
	for c.next == c.n {
		c.next, c.n = 0, 0
		n, err := c.batch.ReadBatch(c.msgs, 0)
		if err != nil {
			return nil, err
		}
		c.n = n // a blocking recvmmsg returns at least one; loop if not
	}
	m := &c.msgs[c.next]
	c.next++
	return m, nil
}

// WriteBatch sends ms with one sendmmsg(2), past the write queue, for a
// writer that batches its own datagrams; it returns how many were sent.
func (c *Conn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return c.batch.WriteBatch(ms, flags)
}
