// Package clock is the appliance's notion of time. Production code reads time
// through a Clock so that a lab operator (console, tests) can move it forward to
// show scheduled callbacks coming due or records being purged.
package clock

import (
	"sync"
	"time"
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// System is the wall clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Lab is a wall clock with a movable offset, shared by every component of one
// appliance. Moving it never goes backwards.
type Lab struct {
	mu        sync.RWMutex
	offset    time.Duration
	listeners []func(time.Time)
}

// NewLab returns a Lab clock at wall time.
func NewLab() *Lab { return &Lab{} }

// Now returns wall time plus the offset.
func (c *Lab) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return time.Now().Add(c.offset)
}

// Offset returns how far the clock has been moved ahead of wall time.
func (c *Lab) Offset() time.Duration {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.offset
}

// Advance moves the clock forward by d (negative values are ignored) and tells
// every listener the new time.
func (c *Lab) Advance(d time.Duration) time.Time {
	now, _ := c.move(func(cur time.Duration) (time.Duration, bool) { return cur + max(d, 0), true })
	return now
}

// AdvanceTo moves the clock to offset ahead of wall time if that is ahead
// of where it is, telling every listener; it reports whether it moved.
func (c *Lab) AdvanceTo(offset time.Duration) (time.Time, bool) {
	return c.move(func(cur time.Duration) (time.Duration, bool) { return offset, offset > cur })
}

// move sets the offset to what next makes of the current one and, if next
// says so, tells every listener the new time.
func (c *Lab) move(next func(time.Duration) (time.Duration, bool)) (time.Time, bool) {
	c.mu.Lock()
	offset, moved := next(c.offset)
	if moved {
		c.offset = offset
	}
	now := time.Now().Add(c.offset)
	ls := append([]func(time.Time){}, c.listeners...)
	c.mu.Unlock()
	if moved {
		for _, f := range ls {
			f(now)
		}
	}
	return now, moved
}

// OnAdvance registers f to be called after each Advance with the new time.
func (c *Lab) OnAdvance(f func(time.Time)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners = append(c.listeners, f)
}

var (
	_ Clock = System{}
	_ Clock = (*Lab)(nil)
)
