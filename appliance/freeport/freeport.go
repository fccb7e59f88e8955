// Package freeport picks a loopback port for a server that binds it later
// (PostgreSQL, a child process, or a listener whose number is needed before it
// starts). It picks below the kernel's ephemeral range where it can: ports in
// that range go to every outgoing connection and every listener on port 0,
// and on a busy machine one of those takes a port picked there within the
// seconds before the server binds it.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Networks a picked port must be free on.
const (
	TCP = 1 << iota
	UDP
)

// span is how far below the ephemeral range ports are picked.
const span = 10000

// Pick returns the first of n consecutive ports free on host now, on every
// network in nets (TCP, UDP or both).
func Pick(host string, nets, n int) (int, error) {
	if n < 1 || nets&(TCP|UDP) == 0 {
		return 0, errors.New("freeport: nothing to pick")
	}
	if lo, ok := ephemeralLow(); ok && lo-span >= 1024 {
		for range 50 {
			base := lo - span + rand.IntN(span-n+1)
			if free(host, nets, base, n) {
				return base, nil
			}
		}
	}
	// No range known (not Linux) or nothing free below it: the kernel's pick.
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("freeport: %w", err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if free(host, nets, base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("freeport: no %d free port(s) on %s", n, host)
}

// free reports whether ports base..base+n-1 can be bound on host now.
func free(host string, nets, base, n int) bool {
	for p := base; p < base+n; p++ {
		if p > 65535 {
			return false
		}
		addr := net.JoinHostPort(host, strconv.Itoa(p))
		if nets&TCP != 0 {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return false
			}
			_ = ln.Close()
		}
		if nets&UDP != 0 {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return false
			}
			_ = pc.Close()
		}
	}
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	return lo, err == nil
}
