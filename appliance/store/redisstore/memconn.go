package redisstore

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// memPipe returns the two ends of an in-memory connection for the embedded
// server: RESP still flows as bytes, but a round trip costs two goroutine
// wake-ups and no system call (HSET from 8 clients on 2 CPUs: 6.2 us of CPU
// against 21.5 us over a Unix socket pair). net.Pipe makes no system call
// either (9.0 us), but it is unbuffered: miniredis writes each reply before
// it reads the next command, so a pipeline's first reply would wait for the
// client, which is still writing the rest. Here a write never waits: each
// direction buffers what its reader has not taken yet, however much, and
// holds on to no more than a small buffer once drained. grpc's bufconn
// buffers too, but in a fixed ring allocated at full size per connection.
func memPipe() (client, server net.Conn) {
	a, b := newMemHalf(), newMemHalf()
	return &memConn{rd: a, wr: b, name: "redis-client"}, &memConn{rd: b, wr: a, name: "redis-server"}
}

// keepBuffer is the most a drained direction keeps allocated.
const keepBuffer = 64 << 10

// memHalf carries bytes one way.
type memHalf struct {
	// readMu lets one read at a time wait, with timer as its deadline's
	// clock (go-redis sets a read deadline for every command).
	readMu sync.Mutex
	timer  *time.Timer

	mu       sync.Mutex
	buf      []byte
	off      int       // buf[off:] is unread
	deadline time.Time // the reader's
	wclosed  bool      // the writer closed: EOF once drained
	rclosed  bool      // the reader closed: writes fail
	// wake has a token whenever the reader should look again (data, a close
	// or a new deadline); a spare token only costs a loop.
	wake chan struct{}
}

func newMemHalf() *memHalf { return &memHalf{wake: make(chan struct{}, 1)} }

func (h *memHalf) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *memHalf) read(p []byte) (int, error) {
	h.readMu.Lock()
	defer h.readMu.Unlock()
	armed := false
	defer func() {
		if armed {
			h.timer.Stop()
		}
	}()
	for {
		h.mu.Lock()
		switch {
		case h.rclosed:
			h.mu.Unlock()
			return 0, net.ErrClosed
		case h.off < len(h.buf):
			n := copy(p, h.buf[h.off:])
			h.off += n
			if h.off == len(h.buf) {
				h.off, h.buf = 0, h.buf[:0]
				if cap(h.buf) > keepBuffer {
					h.buf = nil
				}
			}
			h.mu.Unlock()
			return n, nil
		case h.wclosed:
			h.mu.Unlock()
			return 0, io.EOF
		case len(p) == 0:
			h.mu.Unlock()
			return 0, nil
		}
		dl := h.deadline
		h.mu.Unlock()
		if dl.IsZero() {
			<-h.wake
			continue
		}
		wait := time.Until(dl)
		if wait <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		if h.timer == nil {
			h.timer = time.NewTimer(wait)
		} else {
			h.timer.Reset(wait)
		}
		armed = true
		select {
		case <-h.wake:
		case <-h.timer.C:
		}
	}
}

func (h *memHalf) write(p []byte, deadline time.Time) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.wclosed, h.rclosed:
		return 0, io.ErrClosedPipe
	case !deadline.IsZero() && !time.Now().Before(deadline):
		return 0, os.ErrDeadlineExceeded
	}
	h.buf = append(h.buf, p...)
	h.signal()
	return len(p), nil
}

func (h *memHalf) closeRead() {
	h.mu.Lock()
	h.rclosed, h.buf, h.off = true, nil, 0
	h.mu.Unlock()
	h.signal()
}

func (h *memHalf) closeWrite() {
	h.mu.Lock()
	h.wclosed = true
	h.mu.Unlock()
	h.signal()
}

func (h *memHalf) setDeadline(t time.Time) {
	h.mu.Lock()
	h.deadline = t
	h.mu.Unlock()
	h.signal()
}

// memConn is one end: it reads rd and writes wr.
type memConn struct {
	rd, wr *memHalf
	name   string

	mu        sync.Mutex
	wdeadline time.Time
	closeOnce sync.Once
}

func (c *memConn) Read(p []byte) (int, error) { return c.rd.read(p) }

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	dl := c.wdeadline
	c.mu.Unlock()
	return c.wr.write(p, dl)
}

// Close ends both directions: this end's reads fail at once, the peer reads
// what was written and then EOF, and writes either way fail.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		c.rd.closeRead()
		c.wr.closeWrite()
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr(c.name) }
func (c *memConn) RemoteAddr() net.Addr { return memAddr(c.name) }

func (c *memConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.rd.setDeadline(t)
	return nil
}

// SetWriteDeadline only matters once passed: a write never waits.
func (c *memConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdeadline = t
	c.mu.Unlock()
	return nil
}

type memAddr string

func (a memAddr) Network() string { return "memory" }
func (a memAddr) String() string  { return string(a) }
