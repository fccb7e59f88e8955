package turn

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// peerPolicy decides which peer IPs a client may open permissions to. Its
// zero value allows nothing.
type peerPolicy struct {
	any      bool
	local    bool
	prefixes []netip.Prefix
	// hostAddrs are this host's interface addresses, taken when the server
	// starts; only consulted when local is set.
	hostAddrs map[netip.Addr]struct{}
}

// parsePeerPolicy reads Config.AllowedPeers.
func parsePeerPolicy(entries []string) (peerPolicy, error) {
	var p peerPolicy
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		switch strings.ToLower(e) {
		case "any":
			p.any = true
			continue
		case "local":
			p.local = true
			continue
		}
		if strings.Contains(e, "/") {
			prefix, err := netip.ParsePrefix(e)
			if err != nil {
				return peerPolicy{}, fmt.Errorf("turn allowed peers %q: want local, any, an IP or a CIDR: %w", raw, err)
			}
			p.prefixes = append(p.prefixes, prefix.Masked())
			continue
		}
		addr, err := netip.ParseAddr(e)
		if err != nil {
			return peerPolicy{}, fmt.Errorf("turn allowed peers %q: want local, any, an IP or a CIDR: %w", raw, err)
		}
		addr = addr.Unmap()
		p.prefixes = append(p.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return p, nil
}

// withHostAddrs returns p with this host's interface addresses loaded.
func (p peerPolicy) withHostAddrs(addrs []net.Addr) peerPolicy {
	p.hostAddrs = make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			p.hostAddrs[addr.Unmap()] = struct{}{}
		}
	}
	return p
}

// allows reports whether peer may be relayed to.
func (p peerPolicy) allows(peer net.IP) bool {
	addr, ok := netip.AddrFromSlice(peer)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	if addr.IsUnspecified() || addr.IsMulticast() {
		return false
	}
	if p.any {
		return true
	}
	if p.local {
		if addr.IsLoopback() {
			return true
		}
		if _, ok := p.hostAddrs[addr]; ok {
			return true
		}
	}
	for _, prefix := range p.prefixes {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}
