//go:build linux

package gateway

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The pacer's sweep reads every call's RTP socket (frameScratch.readSIP)
// instead of a goroutine per call. That goroutine woke for each datagram
// through the runtime's poller and read twice (the datagram, then EAGAIN);
// the sweep reads all its calls' sockets with one io_uring submission. The
// jitter buffer is played by the same sweep, so a datagram waits no longer
// than it did: it waited in the buffer, now in the socket. The kernel stamps
// each datagram's arrival (SO_TIMESTAMPNS), so the jitter estimate still
// sees when it arrived, not when the sweep came.

// sipControlSize holds one SCM_TIMESTAMPNS control message.
var sipControlSize = unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))

// sweepReadsSIP reports whether the sweep reads the socket with descriptor
// fd, and asks the kernel to stamp its datagrams' arrival. Without the
// stamps (refused), a datagram counts as arriving when the sweep reads it.
func sweepReadsSIP(fd int32) bool {
	if fd < 0 {
		return false
	}
	_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	return true
}

// arrival is the kernel's receive time from a datagram's control messages
// (SCM_TIMESTAMPNS, the only one the socket asks for).
func arrival(control []byte) (time.Time, bool) {
	if len(control) < unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
		return time.Time{}, false
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&control[0]))
	if h.Level != unix.SOL_SOCKET || h.Type != unix.SCM_TIMESTAMPNS {
		return time.Time{}, false
	}
	ts := (*unix.Timespec)(unsafe.Pointer(&control[unix.CmsgLen(0)]))
	return time.Unix(ts.Unix()), true
}
