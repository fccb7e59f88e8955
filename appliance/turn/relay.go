package turn

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// relay is the bookkeeping of one relayed transport address: the peers it has
// permissions for and the traffic it carried.
type relay struct {
	addr string

	mu    sync.RWMutex
	peers map[netip.Addr]struct{}

	toPeerBytes     atomic.Uint64
	toPeerPackets   atomic.Uint64
	fromPeerBytes   atomic.Uint64
	fromPeerPackets atomic.Uint64
}

func (r *relay) permitted(ip netip.Addr) bool {
	r.mu.RLock()
	_, ok := r.peers[ip]
	r.mu.RUnlock()
	return ok
}

func (r *relay) setPeer(ip net.IP, allowed bool) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if allowed {
		r.peers[addr.Unmap()] = struct{}{}
	} else {
		delete(r.peers, addr.Unmap())
	}
}

func (r *relay) peerList() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.peers))
	for p := range r.peers {
		out = append(out, p.String())
	}
	return out
}

// trafficCounters are the Prometheus children bumped per relayed packet,
// resolved once so the hot path does no label lookups.
type trafficCounters struct {
	toPeerBytes, toPeerPackets, fromPeerBytes, fromPeerPackets prometheus.Counter
}

// relayTable maps relayed addresses (as advertised to clients) to their relay.
type relayTable struct {
	traffic trafficCounters

	mu     sync.Mutex
	relays map[string]*relay
	// open counts relayed sockets not yet closed; Stop waits for it to reach
	// zero so that no pion relay goroutine outlives the server.
	open atomic.Int64
}

func newRelayTable(traffic trafficCounters) *relayTable {
	return &relayTable{traffic: traffic, relays: make(map[string]*relay)}
}

func (t *relayTable) add(addr net.Addr) *relay {
	r := &relay{addr: addr.String(), peers: make(map[netip.Addr]struct{})}
	t.mu.Lock()
	t.relays[r.addr] = r
	t.mu.Unlock()
	return r
}

func (t *relayTable) remove(r *relay) {
	t.mu.Lock()
	if t.relays[r.addr] == r {
		delete(t.relays, r.addr)
	}
	t.mu.Unlock()
}

func (t *relayTable) closed() { t.open.Add(-1) }

func (t *relayTable) get(addr net.Addr) *relay {
	if addr == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.relays[addr.String()]
}

func (t *relayTable) countToPeer(r *relay, n int) {
	if r != nil {
		r.toPeerBytes.Add(uint64(n))
		r.toPeerPackets.Add(1)
	}
	t.traffic.toPeerBytes.Add(float64(n))
	t.traffic.toPeerPackets.Inc()
}

func (t *relayTable) countFromPeer(r *relay, n int) {
	if r != nil {
		r.fromPeerBytes.Add(uint64(n))
		r.fromPeerPackets.Add(1)
	}
	t.traffic.fromPeerBytes.Add(float64(n))
	t.traffic.fromPeerPackets.Inc()
}

// countingGenerator wraps a pion relay address generator so that every relayed
// socket it hands out counts its traffic and is known to the relay table.
type countingGenerator struct {
	inner  pionturn.RelayAddressGenerator
	relays *relayTable
}

// Validate implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) Validate() error { return g.inner.Validate() }

// AllocatePacketConn implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.inner.AllocatePacketConn(conf)
	if err != nil {
		return nil, nil, err
	}
	g.relays.open.Add(1)
	return &relayPacketConn{PacketConn: conn, table: g.relays, relay: g.relays.add(addr)}, addr, nil
}

// AllocateListener implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) AllocateListener(conf pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	ln, addr, err := g.inner.AllocateListener(conf)
	if err != nil {
		return nil, nil, err
	}
	g.relays.open.Add(1)
	return &relayListener{Listener: ln, table: g.relays, relay: g.relays.add(addr)}, addr, nil
}

// AllocateConn implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) AllocateConn(conf pionturn.AllocateConnConfig) (net.Conn, error) {
	conn, err := g.inner.AllocateConn(conf)
	if err != nil {
		return nil, err
	}
	return &relayConn{Conn: conn, table: g.relays, relay: g.relays.get(conf.LocalAddr)}, nil
}

// relayPacketConn is a UDP relayed socket. Pion reads peers' datagrams from it
// and drops those without a permission, so only permitted ones are counted.
type relayPacketConn struct {
	net.PacketConn
	table *relayTable
	relay *relay

	closeOnce sync.Once
	doneOnce  sync.Once
}

func (c *relayPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err != nil {
		// Pion's reader exits on any error; from here the socket is dead.
		c.doneOnce.Do(c.table.closed)
		return n, addr, err
	}
	if ua, ok := addr.(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ua.IP); ok && c.relay.permitted(ip.Unmap()) {
			c.table.countFromPeer(c.relay, n)
		}
	}
	return n, addr, nil
}

func (c *relayPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.table.countToPeer(c.relay, n)
	}
	return n, err
}

func (c *relayPacketConn) Close() error {
	c.closeOnce.Do(func() { c.table.remove(c.relay) })
	c.doneOnce.Do(c.table.closed)
	return c.PacketConn.Close()
}

// relayListener is a TCP relayed address (RFC 6062) accepting peers.
type relayListener struct {
	net.Listener
	table *relayTable
	relay *relay

	closeOnce sync.Once
	doneOnce  sync.Once
}

func (l *relayListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		l.doneOnce.Do(l.table.closed)
		return nil, err
	}
	return &relayConn{Conn: conn, table: l.table, relay: l.relay}, nil
}

func (l *relayListener) Close() error {
	l.closeOnce.Do(func() { l.table.remove(l.relay) })
	l.doneOnce.Do(l.table.closed)
	return l.Listener.Close()
}

// relayConn is one TCP connection between a relayed address and a peer; pion
// only keeps it when the peer has a permission.
type relayConn struct {
	net.Conn
	table *relayTable
	relay *relay
}

func (c *relayConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.table.countFromPeer(c.relay, n)
	}
	return n, err
}

func (c *relayConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.table.countToPeer(c.relay, n)
	}
	return n, err
}
