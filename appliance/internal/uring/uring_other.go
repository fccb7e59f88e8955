//go:build !linux

package uring

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Ring is unavailable off Linux.
type Ring struct{}

// New fails off Linux: callers send each datagram on its own.
func New(uint32) (*Ring, error) { return nil, errors.ErrUnsupported }

// Entries is 0.
func (*Ring) Entries() int { return 0 }

// SendMsgs is unsupported.
func (*Ring) SendMsgs([]int32, []unix.Msghdr, []int32) error { return errors.ErrUnsupported }

// RecvMsgs is unsupported.
func (*Ring) RecvMsgs([]int32, []unix.Msghdr, []int32) error { return errors.ErrUnsupported }

// Close does nothing.
func (*Ring) Close() error { return nil }
