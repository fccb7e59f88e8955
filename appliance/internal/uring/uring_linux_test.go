package uring

import (
	"fmt"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestKernelStructSizes(t *testing.T) {
	for name, got := range map[string]uintptr{"io_uring_params": unsafe.Sizeof(params{}), "io_uring_sqe": unsafe.Sizeof(sqe{}), "io_uring_cqe": unsafe.Sizeof(cqe{})} {
		want := map[string]uintptr{"io_uring_params": 120, "io_uring_sqe": 64, "io_uring_cqe": 16}[name]
		if got != want {
			t.Errorf("%s is %d bytes; the kernel's is %d", name, got, want)
		}
	}
}

func newRingOrSkip(t *testing.T, n uint32) *Ring {
	t.Helper()
	r, err := New(n)
	if err != nil {
		// Containers with Docker's default seccomp profile refuse
		// io_uring; the TURN server then sends with sendto.
		t.Skipf("io_uring unavailable here: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Each datagram leaves from its own socket, in one call, and arrives whole;
// a send on a closed descriptor fails alone. The ring is reused across calls
// (its indexes wrap).
func TestSendMsgsFromManySockets(t *testing.T) {
	r := newRingOrSkip(t, 8)
	if r.Entries() != 8 {
		t.Fatalf("Entries = %d, want 8", r.Entries())
	}
	dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	const socks = 8
	fds, lports := loopbackSockets(t, socks)
	ports := map[int]int{} // source port -> socket index
	for i, p := range lports {
		ports[p] = i
	}
	port := dst.LocalAddr().(*net.UDPAddr).Port
	name := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{127, 0, 0, 1}}
	name.Port = uint16(port>>8) | uint16(port&0xff)<<8 // network order
	payloads := make([][]byte, socks)
	iovs := make([]unix.Iovec, socks)
	msgs := make([]unix.Msghdr, socks)
	res := make([]int32, socks)
	buf := make([]byte, 2048)
	for round := range 5 {
		for i := range msgs {
			payloads[i] = []byte(fmt.Sprintf("round %d from socket %d %s", round, i, make([]byte, i*10)))
			iovs[i] = unix.Iovec{Base: &payloads[i][0]}
			iovs[i].SetLen(len(payloads[i]))
			msgs[i] = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&name)), Namelen: unix.SizeofSockaddrInet4, Iov: &iovs[i], Iovlen: 1}
		}
		if err := r.SendMsgs(fds, msgs, res); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i, n := range res {
			if int(n) != len(payloads[i]) {
				t.Fatalf("round %d: send %d returned %d, want %d", round, i, n, len(payloads[i]))
			}
		}
		got := map[int]bool{}
		for range socks {
			_ = dst.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := dst.ReadFromUDP(buf)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			i, ok := ports[from.Port]
			if !ok || string(buf[:n]) != string(payloads[i]) {
				t.Fatalf("round %d: %q from port %d (socket %d, known %v)", round, buf[:n], from.Port, i, ok)
			}
			got[i] = true
		}
		if len(got) != socks {
			t.Fatalf("round %d: datagrams from %d sockets, want %d", round, len(got), socks)
		}
	}

	// A bad descriptor fails its own send only.
	fds[3] = -1
	if err := r.SendMsgs(fds[:4], msgs[:4], res[:4]); err != nil {
		t.Fatal(err)
	}
	if res[3] != -int32(unix.EBADF) || res[0] != int32(len(payloads[0])) {
		t.Fatalf("results %v, want the 4th -EBADF (%d) and the others sent", res[:4], -int32(unix.EBADF))
	}
	if err := r.SendMsgs(fds, msgs[:socks+0], res); err != nil {
		t.Fatal(err)
	}
	if err := r.SendMsgs(make([]int32, 9), make([]unix.Msghdr, 9), make([]int32, 9)); err == nil {
		t.Fatal("9 messages into a ring of 8 accepted")
	}
}

// loopbackSockets opens n UDP sockets bound to loopback, closed when the test
// ends, and returns their descriptors and ports.
func loopbackSockets(t *testing.T, n int) ([]int32, []int) {
	t.Helper()
	fds, ports := make([]int32, n), make([]int, n)
	for i := range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		fds[i], ports[i] = int32(fd), sa.(*unix.SockaddrInet4).Port //nolint:gosec // a descriptor fits
	}
	return fds, ports
}
