package uring

import (
	"errors"
	"math"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batch queues IPv4 datagrams, each to leave from its own socket, and sends
// what is queued with one submission of its ring per Flush, or with one
// sendmsg(2) each where the kernel refuses io_uring. It copies each payload,
// so callers may reuse theirs at once. One goroutine uses a Batch; the
// sockets it names must stay open until the Flush that sends them returns.
type Batch struct {
	ring    *Ring
	ringErr error // why ring is nil
	n       int
	// Slot i: its socket, address, payload, and a msghdr that always points
	// at slot i's address and payload.
	fds   []int32
	names []unix.RawSockaddrInet4
	iovs  []unix.Iovec
	msgs  []unix.Msghdr
	bufs  [][]byte
	// One flush's submission: the slots not skipped, compacted (a copy:
	// slot msghdrs keep pointing at their own slot), and each send's result.
	slot  []int
	sfds  []int32
	smsgs []unix.Msghdr
	res   []int32
}

// NewBatch returns a batch of at most n datagrams (at most the ring's
// entries when io_uring is allowed).
func NewBatch(n int) *Batch {
	r, err := New(uint32(n))
	if err != nil {
		b := NewSendmsgBatch(n)
		b.ringErr = err
		return b
	}
	b := NewSendmsgBatch(min(n, r.Entries()))
	b.ring, b.ringErr = r, nil
	return b
}

// NewSendmsgBatch returns a batch of n datagrams that sends each with
// sendmsg(2), as a batch does once its ring has failed.
func NewSendmsgBatch(n int) *Batch {
	b := &Batch{ringErr: errSendmsg, fds: make([]int32, n), names: make([]unix.RawSockaddrInet4, n), iovs: make([]unix.Iovec, n),
		msgs: make([]unix.Msghdr, n), bufs: make([][]byte, n),
		slot: make([]int, n), sfds: make([]int32, n), smsgs: make([]unix.Msghdr, n), res: make([]int32, n)}
	for i := range b.msgs {
		b.msgs[i] = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&b.names[i])), Namelen: unix.SizeofSockaddrInet4, Iov: &b.iovs[i], Iovlen: 1}
	}
	return b
}

// errSendmsg is RingErr of a batch made to send with sendmsg.
var errSendmsg = errors.New("io_uring: not used (sendmsg batch)")

// errClosed is RingErr once Close released the ring.
var errClosed = errors.New("io_uring: batch closed")

// RingErr is nil while the batch submits through io_uring, and otherwise
// says why it sends each datagram with sendmsg (the kernel refused the ring,
// or the ring failed).
func (b *Batch) RingErr() error { return b.ringErr }

// Full reports whether Queue would refuse the next datagram.
func (b *Batch) Full() bool { return b.n == len(b.msgs) }

// Queue copies p to be sent from socket fd to the IPv4 address to by the
// next Flush, and returns its place in that flush. It returns -1, queuing
// nothing, when the batch is full or to is not IPv4.
func (b *Batch) Queue(fd int32, p []byte, to netip.AddrPort) int {
	a := to.Addr().Unmap()
	if b.Full() || !a.Is4() {
		return -1
	}
	i := b.n
	b.bufs[i] = append(b.bufs[i][:0], p...)
	b.fds[i] = fd
	port := to.Port()
	b.names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4(), Port: port<<8 | port>>8} // network byte order
	b.iovs[i].Base = nil
	if len(p) > 0 {
		b.iovs[i].Base = &b.bufs[i][0]
	}
	b.iovs[i].SetLen(len(p))
	b.n++
	return i
}

// Flush sends what is queued, except the datagrams skip (when not nil)
// names by their place, and reports each sent datagram's result to sent
// (when not nil) by its place: the bytes sent, or a negative errno (-EAGAIN
// when the socket buffer was full; the datagram is dropped, as a full buffer
// drops it).
func (b *Batch) Flush(skip func(i int) bool, sent func(i int, res int32)) {
	k := 0
	for i := range b.n {
		if skip != nil && skip(i) {
			continue
		}
		b.slot[k], b.sfds[k], b.smsgs[k], b.res[k] = i, b.fds[i], b.msgs[i], unsent
		k++
	}
	b.n = 0
	if k == 0 {
		return
	}
	if b.ring != nil {
		if err := b.ring.SendMsgs(b.sfds[:k], b.smsgs[:k], b.res[:k]); err != nil {
			// The ring is unusable: from here datagrams go one by one,
			// starting with those of this batch it did not send.
			_ = b.ring.Close()
			b.ring, b.ringErr = nil, err
		}
	}
	for j := range k {
		if b.res[j] == unsent {
			b.res[j] = sendmsg(b.sfds[j], &b.smsgs[j])
		}
		if sent != nil {
			sent(b.slot[j], b.res[j])
		}
	}
}

// Close releases the ring; what is still queued is dropped.
func (b *Batch) Close() {
	b.n = 0
	if b.ring != nil {
		_ = b.ring.Close()
		b.ring, b.ringErr = nil, errClosed
	}
}

// unsent marks a result the ring has not filled in.
const unsent = math.MinInt32

// sendmsg sends one datagram: its byte count or a negative errno.
func sendmsg(fd int32, m *unix.Msghdr) int32 {
	n, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(m)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return -int32(errno)
	}
	return int32(n)
}
