//go:build linux

package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/cxlab/cxlab/appliance/internal/udpbatch"
)

// relayPoller reads every relayed UDP socket of the UDP listener's
// allocations from one goroutine, and forwards what peers send on a channel
// to the clients itself, in batches.
//
// Pion runs one goroutine per allocation reading its relayed socket; each
// datagram from a peer woke that goroutine through the runtime's poller, cost a
// read that found the datagram and one that found the socket empty, and was
// then handed to the client socket's writer goroutine. Under the TURN bench
// (150 allocations) that was a third of the server's CPU. Here an epoll
// instance of our own (itself on the runtime's poller) holds every relayed
// socket; one wake-up reads each ready socket once (recvmmsg), wraps channel
// traffic as ChannelData and sends all of it with one sendmmsg. Datagrams
// without a channel (Data indications, or no permission at all) still go to
// pion's goroutine through a queue, so pion decides those exactly as before.
type relayPoller struct {
	ep    *os.File // the epoll instance; its descriptor is on the runtime's poller
	epfd  int
	out   *udpbatch.Conn
	table *relayTable
	done  chan struct{}
	// peers batches the listener's channel data toward peers; nil where
	// io_uring is refused (peersErr says why), and each goes with sendto.
	peers    *peerBatch
	peersErr error

	mu    sync.Mutex
	conns map[uint32]*polledRelayConn
	next  uint32
}

// Batch sizes: datagrams read from one ready socket per wake-up (the socket
// stays ready if more are queued: the epoll instance is level-triggered), and
// datagrams toward clients sent with one sendmmsg.
const (
	pollReadBatch  = 8
	pollWriteBatch = 128
	pollEvents     = 128
	// slowQueue is how many datagrams wait for pion's goroutine of one
	// allocation; more are dropped, as a full socket buffer would drop them.
	slowQueue = 64
)

// newRelayPoller starts the poller; out is the client-facing socket.
func newRelayPoller(out *udpbatch.Conn, table *relayTable) (*relayPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("relay poller: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("relay poller: %w", err)
	}
	// A non-blocking descriptor given to os.NewFile joins the runtime's
	// poller: waiting for the epoll instance to have events parks a
	// goroutine, not a thread.
	ep := os.NewFile(uintptr(epfd), "turn-relay-epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return nil, fmt.Errorf("relay poller: %w", err)
	}
	p := &relayPoller{ep: ep, epfd: epfd, out: out, table: table, done: make(chan struct{}),
		conns: make(map[uint32]*polledRelayConn)}
	p.peers, p.peersErr = newPeerBatch()
	go p.run(rc)
	return p, nil
}

// close stops the poller; the relayed sockets are closed by their allocations.
func (p *relayPoller) close() {
	_ = p.ep.Close()
	<-p.done
	if p.peers != nil {
		p.peers.close()
	}
}

// flushPeers sends the channel data the listener's read loop queued toward
// peers; the loop calls it before a read that may wait.
func (p *relayPoller) flushPeers() {
	if p.peers != nil {
		p.peers.flush()
	}
}

// adopt takes over conn, a relayed socket pion's generator just opened:
// conn's descriptor is duplicated onto the poller and conn itself closed, so
// the runtime's poller no longer watches it. ok is false (conn untouched) for
// anything but an IPv4 UDP socket.
func (p *relayPoller) adopt(conn net.PacketConn, r *relay) (net.PacketConn, bool) {
	uc, ok := conn.(*net.UDPConn)
	if !ok {
		return nil, false
	}
	local, ok := uc.LocalAddr().(*net.UDPAddr)
	if !ok || local.IP.To4() == nil {
		return nil, false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, false
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		return nil, false
	}
	c := &polledRelayConn{fd: fd, local: local, table: p.table, relay: r, poller: p,
		slow: make(chan datagram, slowQueue), done: make(chan struct{})}
	c.batch = ipv4.NewPacketConn(fdConn{fd: fd, local: local})
	p.mu.Lock()
	p.next++
	c.id = p.next
	p.conns[c.id] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.id)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.forget(c.id)
		_ = unix.Close(fd)
		return nil, false
	}
	r.mu.Lock()
	r.sender = c
	r.mu.Unlock()
	// The duplicate keeps the socket (and its port) open.
	_ = uc.Close()
	return c, true
}

func (p *relayPoller) conn(id uint32) *polledRelayConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[id]
}

func (p *relayPoller) forget(id uint32) {
	p.mu.Lock()
	delete(p.conns, id)
	p.mu.Unlock()
}

// run waits for ready relayed sockets until close.
func (p *relayPoller) run(rc syscall.RawConn) {
	defer close(p.done)
	events := make([]unix.EpollEvent, pollEvents)
	in := make([]ipv4.Message, pollReadBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, readBufferSize)}
	}
	out := make([]ipv4.Message, pollWriteBatch)
	for i := range out {
		out[i].Buffers = [][]byte{make([]byte, readBufferSize+8)} // header and padding
	}
	w := &clientWriter{out: p.out, msgs: out[:0]}
	for {
		var n int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, werr = unix.EpollWait(int(fd), events, 0)
				if werr != unix.EINTR {
					return n > 0 || werr != nil
				}
			}
		})
		if err != nil || werr != nil {
			return // closed
		}
		for _, ev := range events[:n] {
			if c := p.conn(uint32(ev.Fd)); c != nil {
				c.drain(in, w)
			}
		}
		w.flush()
	}
}

// clientWriter collects ChannelData datagrams toward clients for one sendmmsg.
type clientWriter struct {
	out  *udpbatch.Conn
	msgs []ipv4.Message
}

// channelData appends data as a ChannelData message (RFC 8656 section 12.4,
// padded to 4 bytes as pion pads it) for client.
func (w *clientWriter) channelData(number uint16, data []byte, client *net.UDPAddr) {
	if len(w.msgs) == cap(w.msgs) {
		w.flush()
	}
	w.msgs = w.msgs[:len(w.msgs)+1]
	m := &w.msgs[len(w.msgs)-1]
	b := m.Buffers[0][:cap(m.Buffers[0])]
	b[0], b[1] = byte(number>>8), byte(number)
	b[2], b[3] = byte(len(data)>>8), byte(len(data))
	n := 4 + copy(b[4:], data)
	for n%4 != 0 {
		b[n] = 0
		n++
	}
	m.Buffers[0], m.Addr = b[:n], client
}

// flush sends the collected datagrams. A datagram the kernel refuses is
// skipped, as a full socket buffer drops it.
func (w *clientWriter) flush() {
	for ms := w.msgs; len(ms) > 0; {
		n, err := w.out.WriteBatch(ms, unix.MSG_DONTWAIT)
		if err != nil {
			n = max(n, 1)
		}
		ms = ms[n:]
	}
	w.msgs = w.msgs[:0]
}

// datagram is one datagram from a peer waiting for pion.
type datagram struct {
	b    []byte
	addr net.Addr
}

// polledRelayConn is a relayed UDP socket read by the poller. Pion's goroutine
// reads from it only what the poller leaves to pion; pion's writes toward
// peers go straight to the socket.
type polledRelayConn struct {
	fd     int
	id     uint32
	local  *net.UDPAddr
	batch  *ipv4.PacketConn
	table  *relayTable
	relay  *relay
	poller *relayPoller
	slow   chan datagram

	// lastPeer and lastSA belong to sendToPeer's one caller, flushGen to
	// the peer batch's flush (the same goroutine).
	lastPeer netip.AddrPort
	lastSA   *unix.SockaddrInet4
	flushGen uint64

	mu       sync.RWMutex // held for reading while the descriptor is used
	closed   bool
	done     chan struct{}
	doneOnce sync.Once
}

// drain reads what the socket holds (up to a batch) and routes each datagram.
func (c *polledRelayConn) drain(in []ipv4.Message, w *clientWriter) {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return
	}
	n, err := c.batch.ReadBatch(in, unix.MSG_DONTWAIT)
	c.mu.RUnlock()
	if err != nil {
		return
	}
	for i := range in[:n] {
		m := &in[i]
		ua, ok := m.Addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		data := m.Buffers[0][:m.N]
		channel, client, permitted := c.relay.route(unmapped(ua.AddrPort()))
		if permitted {
			c.table.countFromPeer(c.relay, m.N)
		}
		if channel != 0 {
			w.channelData(channel, data, client)
			continue
		}
		select {
		case c.slow <- datagram{b: append([]byte(nil), data...), addr: ua}:
		default: // pion is behind: drop, as its socket buffer would
		}
	}
}

// ReadFrom hands pion the datagrams the poller did not forward.
func (c *polledRelayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-c.slow:
		return copy(p, d.b), d.addr, nil
	case <-c.done:
		// Pion's reader exits on any error; from here the socket is dead.
		c.doneOnce.Do(c.table.closed)
		return 0, nil, net.ErrClosed
	}
}

// WriteTo sends p to a peer from the relayed address. A datagram the socket
// buffer has no room for is dropped, as the network would drop it.
func (c *polledRelayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("relay %s: peer %v is not a UDP address", c.local, addr)
	}
	ap := unmapped(ua.AddrPort())
	if !ap.Addr().Is4() {
		return 0, fmt.Errorf("relay %s: peer %v is not IPv4", c.local, addr)
	}
	if c.table.guarded(addr) {
		return len(p), nil // dropped, as a datagram to a peer without permission is
	}
	switch err := c.sendto(p, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); {
	case err == nil, errors.Is(err, unix.EAGAIN):
	case errors.Is(err, net.ErrClosed):
		return 0, err
	default:
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.local, Addr: addr, Err: err}
	}
	return len(p), nil
}

// sendto sends p to sa and counts it; net.ErrClosed once the socket is closed.
func (c *polledRelayConn) sendto(p []byte, sa *unix.SockaddrInet4) error {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return net.ErrClosed
	}
	err := unix.Sendto(c.fd, p, unix.MSG_DONTWAIT, sa)
	c.mu.RUnlock()
	if err == nil {
		c.table.countToPeer(c.relay, len(p))
	}
	return err
}

// sendToPeer sends a client's channel data to peer, or queues it for the
// listener's next peer batch; only the UDP listener's read loop calls it (see
// relayTable.forwardChannelData), so the socket address of the last peer is
// kept for the next datagram. False when sent at once on a closed socket.
func (c *polledRelayConn) sendToPeer(p []byte, peer netip.AddrPort) bool {
	if c.poller.peers != nil && c.poller.peers.queue(c, p, peer) {
		return true
	}
	if peer != c.lastPeer || c.lastSA == nil {
		c.lastPeer, c.lastSA = peer, &unix.SockaddrInet4{Port: int(peer.Port()), Addr: peer.Addr().As4()}
	}
	// A datagram the kernel refused is dropped, as pion's write would drop it.
	return !errors.Is(c.sendto(p, c.lastSA), net.ErrClosed)
}

// Close takes the socket off the poller and closes it.
func (c *polledRelayConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.poller.forget(c.id)
	_ = unix.EpollCtl(c.poller.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	err := unix.Close(c.fd)
	close(c.done)
	c.mu.Unlock()
	c.table.remove(c.relay)
	c.doneOnce.Do(c.table.closed)
	return err
}

func (c *polledRelayConn) LocalAddr() net.Addr { return c.local }

var errNoDeadlines = errors.New("turn: a polled relay socket has no deadlines")

func (c *polledRelayConn) SetDeadline(time.Time) error      { return errNoDeadlines }
func (c *polledRelayConn) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (c *polledRelayConn) SetWriteDeadline(time.Time) error { return errNoDeadlines }

// fdConn presents a descriptor the runtime's poller does not watch to
// golang.org/x/net's batch reads: its raw Read runs the system call once, so
// it must be called with MSG_DONTWAIT. Only ReadBatch uses it.
type fdConn struct {
	fd    int
	local *net.UDPAddr
}

var errFDConn = errors.New("turn: fdConn only serves batch reads")

func (f fdConn) SyscallConn() (syscall.RawConn, error) { return fdRaw(f.fd), nil }
func (f fdConn) ReadMsgUDP([]byte, []byte) (int, int, int, *net.UDPAddr, error) {
	return 0, 0, 0, nil, errFDConn
}
func (f fdConn) Read([]byte) (int, error)               { return 0, errFDConn }
func (f fdConn) Write([]byte) (int, error)              { return 0, errFDConn }
func (f fdConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, errFDConn }
func (f fdConn) WriteTo([]byte, net.Addr) (int, error)  { return 0, errFDConn }
func (f fdConn) Close() error                           { return nil }
func (f fdConn) LocalAddr() net.Addr                    { return f.local }
func (f fdConn) RemoteAddr() net.Addr                   { return nil }
func (f fdConn) SetDeadline(time.Time) error            { return errFDConn }
func (f fdConn) SetReadDeadline(time.Time) error        { return errFDConn }
func (f fdConn) SetWriteDeadline(time.Time) error       { return errFDConn }

// fdRaw is a syscall.RawConn that runs each function once on the descriptor.
type fdRaw int

func (r fdRaw) Control(f func(uintptr)) error    { f(uintptr(r)); return nil }
func (r fdRaw) Read(f func(uintptr) bool) error  { f(uintptr(r)); return nil }
func (r fdRaw) Write(f func(uintptr) bool) error { f(uintptr(r)); return nil }
