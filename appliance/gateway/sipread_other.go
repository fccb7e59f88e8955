//go:build !linux

package gateway

import "time"

// sipControlSize is 0: off Linux each call's goroutine reads its socket.
const sipControlSize = 0

func sweepReadsSIP(int32) bool { return false }

func arrival([]byte) (time.Time, bool) { return time.Time{}, false }
