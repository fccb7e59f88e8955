package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickIsFreeOnBothNetworksBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		p, err := Pick("127.0.0.1", TCP|UDP, 4)
		if err != nil {
			t.Fatal(err)
		}
		if lo, ok := ephemeralLow(); ok && (p < lo-span || p+3 >= lo) {
			t.Fatalf("picked %d-%d, not within the %d ports below the ephemeral range at %d", p, p+3, span, lo)
		}
		for q := p; q < p+4; q++ {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(q))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("picked %d: %v", q, err)
			}
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Fatalf("picked %d: %v", q, err)
			}
			_ = ln.Close()
			_ = pc.Close()
		}
	}
}

func TestPickSkipsABusyPort(t *testing.T) {
	p, err := Pick("127.0.0.1", TCP, 1)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if free("127.0.0.1", TCP, p, 1) {
		t.Fatalf("port %d reported free while a listener holds it", p)
	}
}

func TestPickRefusesNothing(t *testing.T) {
	if _, err := Pick("127.0.0.1", 0, 1); err == nil {
		t.Fatal("picked a port free on no network")
	}
}
