//go:build !linux

package uring

import (
	"errors"
	"net/netip"
)

// Batch queues nothing off Linux: callers send each datagram on its own.
type Batch struct{}

// NewBatch returns a batch that takes no datagram.
func NewBatch(int) *Batch { return &Batch{} }

// NewSendmsgBatch returns a batch that takes no datagram.
func NewSendmsgBatch(int) *Batch { return &Batch{} }

// RingErr says io_uring is unsupported.
func (*Batch) RingErr() error { return errors.ErrUnsupported }

// Full is true.
func (*Batch) Full() bool { return true }

// Queue refuses every datagram.
func (*Batch) Queue(int32, []byte, netip.AddrPort) int { return -1 }

// Flush does nothing.
func (*Batch) Flush(func(int) bool, func(int, int32)) {}

// Close does nothing.
func (*Batch) Close() {}

// RecvBatch reads nothing off Linux: callers read each socket on its own.
type RecvBatch struct{}

// NewRecvBatch returns a batch that reads nothing.
func NewRecvBatch(int, int, int, int) *RecvBatch { return &RecvBatch{} }

// NewRecvmsgBatch returns a batch that reads nothing.
func NewRecvmsgBatch(int, int, int) *RecvBatch { return &RecvBatch{} }

// RingErr says io_uring is unsupported.
func (*RecvBatch) RingErr() error { return errors.ErrUnsupported }

// Read reads nothing.
func (*RecvBatch) Read([]int32, func(int, []byte, netip.AddrPort, []byte)) {}

// Close does nothing.
func (*RecvBatch) Close() {}
