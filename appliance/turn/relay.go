package turn

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// relay is the bookkeeping of one relayed transport address: the peers it has
// permissions for, its channels, the UDP client it relays for and the traffic
// it carried. Permissions and channels mirror pion's (from its events), so
// that a polled relay socket can forward a peer's datagram on a channel
// without pion.
type relay struct {
	addr string

	mu       sync.RWMutex
	peers    map[netip.Addr]struct{}
	channels map[netip.AddrPort]uint16 // peer -> channel number
	numbers  map[uint16]netip.AddrPort // channel number -> peer
	client   *net.UDPAddr
	// sender sends to peers past pion (the relay poller's socket); nil
	// when pion owns the relayed socket.
	sender peerSender

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

// setClient records the UDP client address of the relay's allocation.
func (r *relay) setClient(a *net.UDPAddr) {
	r.mu.Lock()
	r.client = a
	r.mu.Unlock()
}

// setChannel records (bound) or forgets a channel to peer.
func (r *relay) setChannel(peer net.Addr, number uint16, bound bool) {
	ua, ok := peer.(*net.UDPAddr)
	if !ok {
		return
	}
	ap := unmapped(ua.AddrPort())
	r.mu.Lock()
	defer r.mu.Unlock()
	if bound {
		r.channels[ap], r.numbers[number] = number, ap
		return
	}
	if r.channels[ap] == number {
		delete(r.channels, ap)
	}
	if r.numbers[number] == ap {
		delete(r.numbers, number)
	}
}

// channelPeer returns the peer bound to channel number when it also holds a
// permission, and the relay's sender.
func (r *relay) channelPeer(number uint16) (netip.AddrPort, peerSender, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	peer, ok := r.numbers[number]
	if !ok || r.sender == nil {
		return peer, nil, false
	}
	_, ok = r.peers[peer.Addr()]
	return peer, r.sender, ok
}

// peerSender sends a client's data to a peer from a relayed socket; false
// when the socket is closed.
type peerSender interface {
	sendToPeer(p []byte, peer netip.AddrPort) bool
}

// route says what to do with a datagram from peer: permitted is whether peer's
// IP holds a permission; channel (0: none) and client are set when it also has
// a channel toward a UDP client.
func (r *relay) route(peer netip.AddrPort) (channel uint16, client *net.UDPAddr, permitted bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, permitted = r.peers[peer.Addr()]
	if permitted && r.client != nil {
		channel = r.channels[peer]
	}
	return channel, r.client, permitted
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
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

// relayTable maps relayed addresses (as advertised to clients), and UDP
// clients, to their relay.
type relayTable struct {
	traffic trafficCounters
	// guard refuses the appliance's own service ports as peers; refused
	// counts what it dropped (the peer-refusal counter).
	guard   *portGuard
	refused prometheus.Counter

	mu       sync.Mutex
	relays   map[string]*relay
	byClient map[netip.AddrPort]*relay
	// open counts relayed sockets not yet closed; Stop waits for it to reach
	// zero so that no pion relay goroutine outlives the server.
	open atomic.Int64
}

func newRelayTable(traffic trafficCounters) *relayTable {
	return &relayTable{traffic: traffic, relays: make(map[string]*relay), byClient: make(map[netip.AddrPort]*relay)}
}

func (t *relayTable) add(addr net.Addr) *relay {
	r := &relay{addr: addr.String(), peers: make(map[netip.Addr]struct{}),
		channels: make(map[netip.AddrPort]uint16), numbers: make(map[uint16]netip.AddrPort)}
	t.mu.Lock()
	t.relays[r.addr] = r
	t.mu.Unlock()
	return r
}

func (t *relayTable) remove(r *relay) {
	r.mu.RLock()
	client := r.client
	r.mu.RUnlock()
	t.mu.Lock()
	if t.relays[r.addr] == r {
		delete(t.relays, r.addr)
	}
	if client != nil && t.byClient[unmapped(client.AddrPort())] == r {
		delete(t.byClient, unmapped(client.AddrPort()))
	}
	t.mu.Unlock()
}

// setClient records r as the relay of the UDP client at a.
func (t *relayTable) setClient(r *relay, a *net.UDPAddr) {
	r.setClient(a)
	t.mu.Lock()
	t.byClient[unmapped(a.AddrPort())] = r
	t.mu.Unlock()
}

// forwardChannelData sends a client's ChannelData message (RFC 8656 section
// 12.4) to the channel's peer when the relay's mirror of pion's state holds
// the channel and the peer's permission and the relayed socket is the
// poller's. It returns false, leaving the datagram to pion, for anything else.
func (t *relayTable) forwardChannelData(p []byte, from net.Addr) bool {
	if len(p) < 4 || p[0]&0xC0 != 0x40 {
		return false
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return false
	}
	n := int(binary.BigEndian.Uint16(p[2:4]))
	if 4+n > len(p) {
		return false
	}
	t.mu.Lock()
	r := t.byClient[unmapped(ua.AddrPort())]
	t.mu.Unlock()
	if r == nil {
		return false
	}
	peer, sender, ok := r.channelPeer(binary.BigEndian.Uint16(p[0:2]))
	if !ok {
		return false
	}
	return sender.sendToPeer(p[4:4+n], peer)
}

func (t *relayTable) closed() { t.open.Add(-1) }

// guarded reports whether a datagram to peer must be dropped (see portGuard),
// and counts it.
func (t *relayTable) guarded(peer net.Addr) bool {
	if !t.guard.refusesAddr(peer) {
		return false
	}
	if t.refused != nil {
		t.refused.Inc()
	}
	return true
}

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
	// poller, when set, takes over reading the relayed UDP sockets (the
	// UDP listener's allocations; nil for TCP clients and off Linux).
	poller *relayPoller
	// failed is told when no relay address could be opened.
	failed func(error)
}

// Validate implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) Validate() error { return g.inner.Validate() }

// AllocatePacketConn implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.inner.AllocatePacketConn(conf)
	if err != nil {
		if g.failed != nil {
			g.failed(err)
		}
		return nil, nil, err
	}
	g.relays.open.Add(1)
	r := g.relays.add(addr)
	if g.poller != nil {
		if pc, ok := g.poller.adopt(conn, r); ok {
			return pc, addr, nil
		}
	}
	return &relayPacketConn{PacketConn: conn, table: g.relays, relay: r}, addr, nil
}

// AllocateListener implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) AllocateListener(conf pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	ln, addr, err := g.inner.AllocateListener(conf)
	if err != nil {
		if g.failed != nil {
			g.failed(err)
		}
		return nil, nil, err
	}
	g.relays.open.Add(1)
	return &relayListener{Listener: ln, table: g.relays, relay: g.relays.add(addr)}, addr, nil
}

// AllocateConn implements pionturn.RelayAddressGenerator.
func (g *countingGenerator) AllocateConn(conf pionturn.AllocateConnConfig) (net.Conn, error) {
	if g.relays.guarded(conf.RemoteAddr) {
		return nil, fmt.Errorf("relay to %s refused: it is one of the appliance's own services", conf.RemoteAddr)
	}
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
	if c.table.guarded(addr) {
		return len(p), nil // dropped, as a datagram to a peer without permission is
	}
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
