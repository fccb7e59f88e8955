package gateway

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
)

// mediaConn is the gateway's one ICE UDP socket as pion's UDP mux sees it.
// While a pacer sweep runs (hold to release), the datagrams pion writes
// (SRTP audio toward browsers, and anything else written meanwhile) are
// copied into a queue and leave together with sendmmsg(2): at 150 calls a
// sendto per packet was 7% of the gateway's CPU. The queue is also sent
// whenever it holds mediaFlushAt datagrams, which bounds the wait a packet
// adds to about the time the sweep takes to make that many frames. Outside
// sweeps, writes go straight to the socket.
//
// It implements pion/ice's AddrPortReaderWriter, so the mux reads and writes
// without allocating an address per packet.
type mediaConn struct {
	conn  *net.UDPConn
	batch *ipv4.PacketConn

	mu    sync.Mutex
	holds int
	q     []ipv4.Message // queued; each message's buffer and address are the queue's own
	addrs []net.UDPAddr
}

// mediaFlushAt is how many queued datagrams are sent at once during a sweep.
const mediaFlushAt = 32

// mediaMaxDatagram is the largest datagram queued; a longer one (none that
// pion writes for audio) is sent at once.
const mediaMaxDatagram = 1500

func newMediaConn(c *net.UDPConn) *mediaConn {
	m := &mediaConn{conn: c, batch: ipv4.NewPacketConn(c), q: make([]ipv4.Message, mediaFlushAt),
		addrs: make([]net.UDPAddr, mediaFlushAt)}
	for i := range m.q {
		m.addrs[i].IP = make(net.IP, net.IPv4len)
		m.q[i].Buffers = [][]byte{make([]byte, mediaMaxDatagram)}
		m.q[i].Addr = &m.addrs[i]
	}
	m.q = m.q[:0]
	return m
}

// hold starts a sweep: writes queue until the matching release.
func (m *mediaConn) hold() {
	m.mu.Lock()
	m.holds++
	m.mu.Unlock()
}

// release ends a sweep and sends what is queued.
func (m *mediaConn) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.holds--
	m.flushLocked()
}

// flushLocked sends the queue with as few sendmmsg calls as it takes. A
// datagram the kernel refuses is dropped, as a failed sendto drops it; the
// ones after it are still sent (sendmmsg stops at the first it refuses).
func (m *mediaConn) flushLocked() {
	for sent := 0; sent < len(m.q); {
		n, err := m.batch.WriteBatch(m.q[sent:], 0)
		switch {
		case n > 0:
			sent += n
		case errors.Is(err, net.ErrClosed):
			sent = len(m.q)
		default:
			sent++ // the refused datagram
		}
	}
	m.q = m.q[:0]
}

// WriteToAddrPort queues b while a sweep holds the socket, and otherwise
// sends it.
func (m *mediaConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	a := addr.Addr().Unmap()
	if len(b) <= mediaMaxDatagram && a.Is4() {
		m.mu.Lock()
		if m.holds > 0 {
			i := len(m.q)
			m.q = m.q[:i+1]
			msg := &m.q[i]
			msg.Buffers[0] = msg.Buffers[0][:cap(msg.Buffers[0])]
			msg.Buffers[0] = msg.Buffers[0][:copy(msg.Buffers[0], b)]
			ip4 := a.As4()
			copy(m.addrs[i].IP, ip4[:])
			m.addrs[i].Port = int(addr.Port())
			if len(m.q) == cap(m.q) {
				m.flushLocked()
			}
			m.mu.Unlock()
			return len(b), nil
		}
		m.mu.Unlock()
	}
	return m.conn.WriteToUDPAddrPort(b, addr)
}

// ReadFromAddrPort reads one datagram.
func (m *mediaConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return m.conn.ReadFromUDPAddrPort(b)
}

// ReadFrom implements net.PacketConn.
func (m *mediaConn) ReadFrom(b []byte) (int, net.Addr, error) { return m.conn.ReadFrom(b) }

// WriteTo implements net.PacketConn through WriteToAddrPort.
func (m *mediaConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return m.conn.WriteTo(b, addr)
	}
	return m.WriteToAddrPort(b, ua.AddrPort())
}

// Close closes the socket; what is queued is dropped.
func (m *mediaConn) Close() error { return m.conn.Close() }

// LocalAddr implements net.PacketConn.
func (m *mediaConn) LocalAddr() net.Addr { return m.conn.LocalAddr() }

// SetDeadline implements net.PacketConn.
func (m *mediaConn) SetDeadline(t time.Time) error { return m.conn.SetDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (m *mediaConn) SetReadDeadline(t time.Time) error { return m.conn.SetReadDeadline(t) }

// SetWriteDeadline implements net.PacketConn.
func (m *mediaConn) SetWriteDeadline(t time.Time) error { return m.conn.SetWriteDeadline(t) }
