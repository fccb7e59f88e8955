package turn

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// portGuard keeps clients from relaying to the appliance's own services. The
// peer policy decides by address only (pion asks it with the peer's IP), and
// its default allows this host, where the gateway's media port is a peer
// every relayed call needs. The same host also serves the HTTP APIs, Redis,
// PostgreSQL, SIP and this TURN server; a client must not reach them through
// a relay, whatever the policy says, so relaying to those ports on this host
// is refused here, by port, where the peer's port is known.
type portGuard struct {
	// ports lists the protected ports; nil protects nothing.
	ports func() []int
	// local reports whether an address is this host's.
	local func(netip.Addr) bool
	// set caches ports(), refreshed on every permission request: a client
	// needs a permission before it can send anything, and the appliance's
	// ports are fixed once it serves.
	set atomic.Pointer[map[uint16]struct{}]
}

// refresh re-reads the protected ports.
func (g *portGuard) refresh() {
	if g == nil || g.ports == nil {
		return
	}
	m := map[uint16]struct{}{}
	for _, p := range g.ports() {
		if p > 0 && p <= 65535 {
			m[uint16(p)] = struct{}{}
		}
	}
	g.set.Store(&m)
}

// refuses reports whether peer is one of the protected services.
func (g *portGuard) refuses(peer netip.AddrPort) bool {
	if g == nil {
		return false
	}
	m := g.set.Load()
	if m == nil {
		return false
	}
	if _, ok := (*m)[peer.Port()]; !ok {
		return false
	}
	return g.local(peer.Addr().Unmap())
}

// refusesAddr is refuses for a net.Addr (UDP or TCP); other kinds pass.
func (g *portGuard) refusesAddr(a net.Addr) bool {
	var ap netip.AddrPort
	switch v := a.(type) {
	case *net.UDPAddr:
		ap = v.AddrPort()
	case *net.TCPAddr:
		ap = v.AddrPort()
	default:
		return false
	}
	return g.refuses(ap)
}
