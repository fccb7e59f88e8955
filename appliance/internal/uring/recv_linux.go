package uring

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RecvBatch reads what is queued on many IPv4 UDP sockets: one RECVMSG
// submission per socket (or a few, see perSocket) in one io_uring_enter(2)
// per round, or recvmsg(2) per datagram where the kernel refuses io_uring.
// One goroutine uses a RecvBatch; the sockets it reads must stay open until
// the Read that names them returns.
type RecvBatch struct {
	ring    *Ring
	ringErr error
	per     int // reads per socket per round
	size    int // bytes of each slot's datagram buffer
	control int // bytes of each slot's control buffer
	// Slot j: its buffers, and a msghdr that always points at them.
	bufs  [][]byte
	ctrls [][]byte
	names []unix.RawSockaddrInet4
	iovs  []unix.Iovec
	msgs  []unix.Msghdr
	// One submission: the sockets, fresh copies of the slots' msghdrs (the
	// kernel writes the lengths back), each read's result and socket index.
	sfds  []int32
	smsgs []unix.Msghdr
	res   []int32
	owner []int
	// The sockets a round reads, and those the next one reads again.
	round, again []int
}

// recvRounds bounds how many times one Read comes back to a socket that
// still had datagrams queued.
const recvRounds = 4

// NewRecvBatch returns a batch that reads from up to sockets sockets per
// submission, perSocket datagrams each per round, datagrams of up to size
// bytes (longer ones are dropped) and control messages of up to control
// bytes.
func NewRecvBatch(sockets, perSocket, size, control int) *RecvBatch {
	slots := sockets * perSocket
	b := newRecvBatch(slots, perSocket, size, control)
	r, err := New(uint32(slots))
	if err == nil {
		err = r.probeRecvInline()
	}
	if err != nil {
		b.ringErr = err
		return b
	}
	b.ring = r // io_uring_setup rounds the entries up (or fails): the ring holds every slot
	return b
}

// NewRecvmsgBatch returns a batch that reads each datagram with recvmsg(2),
// as a batch does once its ring has failed.
func NewRecvmsgBatch(perSocket, size, control int) *RecvBatch {
	b := newRecvBatch(perSocket, perSocket, size, control)
	b.ringErr = errRecvmsg
	return b
}

var errRecvmsg = errors.New("io_uring: not used (recvmsg batch)")

func newRecvBatch(slots, perSocket, size, control int) *RecvBatch {
	return &RecvBatch{per: max(1, perSocket), size: size, control: control, bufs: make([][]byte, slots), ctrls: make([][]byte, slots),
		names: make([]unix.RawSockaddrInet4, slots), iovs: make([]unix.Iovec, slots), msgs: make([]unix.Msghdr, slots),
		sfds: make([]int32, slots), smsgs: make([]unix.Msghdr, slots), res: make([]int32, slots), owner: make([]int, slots)}
}

// slot returns slot j's msghdr, giving the slot its buffers on first use
// (a batch sized for many sockets may only ever read a few).
func (b *RecvBatch) slot(j int) unix.Msghdr {
	if b.bufs[j] == nil {
		b.bufs[j] = make([]byte, b.size)
		b.iovs[j].Base = &b.bufs[j][0]
		b.iovs[j].SetLen(b.size)
		b.msgs[j] = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&b.names[j])), Namelen: unix.SizeofSockaddrInet4, Iov: &b.iovs[j], Iovlen: 1}
		if b.control > 0 {
			b.ctrls[j] = make([]byte, b.control)
			b.msgs[j].Control = &b.ctrls[j][0]
			b.msgs[j].SetControllen(b.control)
		}
	}
	return b.msgs[j]
}

// RingErr is nil while the batch reads through io_uring, and otherwise says
// why it reads each datagram with recvmsg.
func (b *RecvBatch) RingErr() error { return b.ringErr }

// Read takes every datagram queued on each socket fds[i] (up to recvRounds
// rounds of perSocket each) and hands it to got with i, its sender and its
// control messages, in each socket's order. data and control are reused
// once got returns. A datagram from anything but an IPv4 sender, or longer
// than the batch's size, is dropped.
func (b *RecvBatch) Read(fds []int32, got func(i int, data []byte, from netip.AddrPort, control []byte)) {
	b.round = b.round[:0]
	for i := range fds {
		b.round = append(b.round, i)
	}
	perSub := len(b.msgs) / b.per
	for range recvRounds {
		if len(b.round) == 0 {
			return
		}
		b.again = b.again[:0]
		for start := 0; start < len(b.round); start += perSub {
			b.readSome(fds, b.round[start:min(start+perSub, len(b.round))], got)
		}
		b.round, b.again = b.again, b.round
	}
}

// readSome reads perSocket datagrams from each of the sockets named by idx.
func (b *RecvBatch) readSome(fds []int32, idx []int, got func(int, []byte, netip.AddrPort, []byte)) {
	k := 0
	for _, i := range idx {
		for range b.per {
			b.sfds[k], b.smsgs[k], b.res[k], b.owner[k] = fds[i], b.slot(k), unsent, i
			k++
		}
	}
	if b.ring != nil {
		if err := b.ring.RecvMsgs(b.sfds[:k], b.smsgs[:k], b.res[:k]); err != nil {
			_ = b.ring.Close()
			b.ring, b.ringErr = nil, err
		}
	}
	for j := 0; j < k; j += b.per {
		full, empty := true, false
		for r := j; r < j+b.per; r++ {
			if b.res[r] == unsent {
				if empty {
					b.res[r] = -int32(unix.EAGAIN) // not read: the socket was just found empty
				} else {
					b.res[r] = recvmsg(b.sfds[r], &b.smsgs[r])
				}
			}
			// The ring's reads all ran: after an empty one, a later one may
			// still have found a datagram that arrived in between.
			n := b.res[r]
			if n < 0 {
				full, empty = false, true
				continue
			}
			m := &b.smsgs[r]
			if m.Flags&unix.MSG_TRUNC != 0 || b.names[r].Family != unix.AF_INET {
				continue
			}
			p := b.names[r].Port
			from := netip.AddrPortFrom(netip.AddrFrom4(b.names[r].Addr), p<<8|p>>8)
			got(b.owner[r], b.bufs[r][:n], from, b.ctrls[r][:m.Controllen])
		}
		if full {
			b.again = append(b.again, b.owner[j])
		}
	}
}

// Close releases the ring.
func (b *RecvBatch) Close() {
	if b.ring != nil {
		_ = b.ring.Close()
		b.ring, b.ringErr = nil, errClosed
	}
}

// recvmsg reads one datagram: its byte count or a negative errno.
func recvmsg(fd int32, m *unix.Msghdr) int32 {
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(m)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return -int32(errno)
	}
	return int32(n)
}

// probeRecvInline checks that a RECVMSG with MSG_DONTWAIT on an empty socket
// completes at once with -EAGAIN, as Read relies on: a kernel that would
// wait for a datagram instead would stall the reader.
func (r *Ring) probeRecvInline() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("io_uring: probe socket: %w", err)
	}
	defer func() { _ = unix.Close(fd) }()
	var name unix.RawSockaddrInet4
	buf := make([]byte, 16)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	m := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&name)), Namelen: unix.SizeofSockaddrInet4, Iov: &iov, Iovlen: 1}
	tail := atomic.LoadUint32(r.sqTail)
	r.sqes[tail&*r.sqMask] = sqe{opcode: opRecvmsg, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(&m))), len: 1, msgFlags: unix.MSG_DONTWAIT} //nolint:gosec // a descriptor fits
	atomic.StoreUint32(r.sqTail, tail+1)
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 1, 0, 0, 0, 0); errno != 0 {
		_ = r.Close()
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
	head, ctail := atomic.LoadUint32(r.cqHead), atomic.LoadUint32(r.cqTail)
	if head == ctail {
		// The read is waiting for a datagram; closing the ring cancels it.
		_ = r.Close()
		return errors.New("io_uring: this kernel waits on RECVMSG with MSG_DONTWAIT")
	}
	res := r.cqes[head&r.cqMask].res
	atomic.StoreUint32(r.cqHead, ctail)
	if res != -int32(unix.EAGAIN) {
		_ = r.Close()
		return fmt.Errorf("io_uring: a RECVMSG probe on an empty socket gave %d, not -EAGAIN", res)
	}
	return nil
}
