package redisstore

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// What one end writes, the other reads, in order; a write never waits for
// the reader, however much is written.
func TestMemPipeCarriesBytesBothWaysWithoutWaiting(t *testing.T) {
	c, s := memPipe()
	defer c.Close()
	defer s.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB, more than a socket buffer
	for _, chunk := range [][]byte{big[:1000], big[1000:]} {
		if n, err := c.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("write %d bytes: %d, %v", len(chunk), n, err)
		}
	}
	if _, err := s.Write([]byte("+OK\r\n")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(big))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("server read %v; the bytes differ: %t", err, !bytes.Equal(got, big))
	}
	reply := make([]byte, 16)
	if n, err := c.Read(reply); err != nil || string(reply[:n]) != "+OK\r\n" {
		t.Fatalf("client read %q, %v", reply[:n], err)
	}
}

// A read waits for data, and a later write wakes it.
func TestMemPipeReadWaitsForAWrite(t *testing.T) {
	c, s := memPipe()
	defer c.Close()
	defer s.Close()
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 8)
		n, err := s.Read(b)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b[:n])
	}()
	select {
	case g := <-got:
		t.Fatalf("read returned %q before anything was written", g)
	case <-time.After(20 * time.Millisecond):
	}
	if _, err := c.Write([]byte("PING")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "PING" {
		t.Fatalf("read %q, want PING", g)
	}
}

// A read deadline ends a waiting read with a timeout (as go-redis expects of
// a blocking command's connection); a deadline moved while the read waits
// applies, and clearing it lets the read wait for data again.
func TestMemPipeReadDeadlines(t *testing.T) {
	c, s := memPipe()
	defer c.Close()
	defer s.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 4))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Fatalf("read gave up after %s, before its deadline", waited)
	}

	_ = c.SetReadDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 4))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it wait on the hour-long deadline
	_ = c.SetReadDeadline(time.Now())
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after its deadline was moved to now: %v, want a timeout", err)
	}

	_ = c.SetReadDeadline(time.Time{})
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 4)); err != nil || n != 1 {
		t.Fatalf("read with the deadline cleared: %d, %v", n, err)
	}

	_ = s.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := s.Write([]byte("late")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v, want a timeout", err)
	}
}

// Closing one end wakes its own waiting read (how the ORS consumer interrupts
// a blocking XREADGROUP), lets the peer read what was written before EOF,
// and fails writes either way.
func TestMemPipeClose(t *testing.T) {
	c, s := memPipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 4))
		done <- err
	}()
	if _, err := c.Write([]byte("QUIT")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // let the read wait
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a read waiting on the closed end: %v, want net.ErrClosed", err)
	}
	b, err := io.ReadAll(s)
	if err != nil || string(b) != "QUIT" {
		t.Fatalf("the peer read %q, %v; want what was written, then EOF", b, err)
	}
	if _, err := s.Write([]byte("+OK\r\n")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("a write to the closed end: %v, want io.ErrClosedPipe", err)
	}
	if _, err := c.Write([]byte("PING")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("a write from the closed end: %v, want io.ErrClosedPipe", err)
	}
	_ = s.Close()
}
