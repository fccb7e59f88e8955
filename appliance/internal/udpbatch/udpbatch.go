// Package udpbatch gives a UDP socket with one busy reader a ReadFrom that
// takes datagrams from batches: one recvmmsg(2) (golang.org/x/net's
// ReadBatch) returns every datagram already queued on the socket, up to a
// batch, so a reader that falls behind catches up with one system call and
// one wake-up instead of one per datagram. Under light load a batch holds one
// datagram and the cost is that of a plain read.
//
// The TURN server's listener is such a socket: one goroutine reads every
// client's packets toward its peers (at 150 uclient clients, about 30,000 a
// second). The gateway's ICE mux is another, but at 150 calls (7,500
// packets a second) batches held one datagram and the bench showed no gain,
// so it keeps pion's allocation-free read of the plain socket.
package udpbatch

import (
	"net"
	"sync"

	"golang.org/x/net/ipv4"
)

// Conn is a *net.UDPConn whose ReadFrom reads come from batches. Writes,
// Close, deadlines and addresses are the socket's own. Reads are serialized:
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
}

// New wraps c. Each ReadFrom call hands out one datagram of at most size
// bytes (longer ones are truncated, as a short buffer truncates with
// recvfrom); a batch holds at most batch datagrams.
func New(c *net.UDPConn, batch, size int) *Conn {
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, size)}
	}
	// ipv4.PacketConn's batch read works on any UDP socket: x/net parses
	// each sender's address by its own family.
	return &Conn{UDPConn: c, batch: ipv4.NewPacketConn(c), msgs: msgs}
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
