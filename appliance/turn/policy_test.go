package turn

import (
	"net"
	"testing"
)

func TestPeerPolicyAllows(t *testing.T) {
	hostAddrs := []net.Addr{&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(24, 32)}}
	for _, tc := range []struct {
		entries []string
		peer    string
		want    bool
	}{
		{[]string{"local"}, "127.0.0.1", true},
		{[]string{"local"}, "127.8.9.10", true},
		{[]string{"local"}, "::1", true},
		{[]string{"local"}, "10.1.2.3", true},  // this host's interface address
		{[]string{"local"}, "10.1.2.4", false}, // a neighbour on that subnet
		{[]string{"local"}, "8.8.8.8", false},
		{[]string{"local"}, "0.0.0.0", false},
		{[]string{"any"}, "8.8.8.8", true},
		{[]string{"any"}, "224.0.0.1", false},
		{[]string{"192.168.0.0/16"}, "192.168.44.1", true},
		{[]string{"192.168.0.0/16"}, "127.0.0.1", false},
		{[]string{"203.0.113.7"}, "203.0.113.7", true},
		{[]string{"203.0.113.7"}, "203.0.113.8", false},
		{[]string{"local", "2001:db8::/32"}, "2001:db8::1", true},
		{nil, "127.0.0.1", false},
	} {
		p, err := parsePeerPolicy(tc.entries)
		if err != nil {
			t.Fatalf("parsePeerPolicy(%v): %v", tc.entries, err)
		}
		p = p.withHostAddrs(hostAddrs)
		if got := p.allows(net.ParseIP(tc.peer)); got != tc.want {
			t.Errorf("%v allows %s = %v, want %v", tc.entries, tc.peer, got, tc.want)
		}
	}
	for _, bad := range []string{"everyone", "10.0.0.0/33", "10.0.0"} {
		if _, err := parsePeerPolicy([]string{bad}); err == nil {
			t.Errorf("parsePeerPolicy(%q) accepted", bad)
		}
	}
}
