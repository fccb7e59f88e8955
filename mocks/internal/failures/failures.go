// Package failures is the failure injection the platform emulators share: an
// operator (console, tests) makes an emulator answer 503 ("down") or answer
// late ("slow") to show how the services that depend on it behave.
package failures

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Failure modes.
const (
	None = "none"
	Down = "down"
	Slow = "slow"
)

// Mode is the injected failure state, as the emulators' ops APIs show it.
type Mode struct {
	Mode    string `json:"mode"`
	DelayMs int    `json:"delayMs"`
}

// Injector holds the current mode. The zero value injects nothing.
type Injector struct {
	mu  sync.RWMutex
	cur Mode
}

// Set changes the mode; slow needs a delay of 1..60000 ms.
func (i *Injector) Set(m Mode) error {
	switch m.Mode {
	case None, Down:
		m.DelayMs = 0
	case Slow:
		if m.DelayMs <= 0 || m.DelayMs > 60000 {
			return errors.New("delayMs must be within 1..60000 for mode slow")
		}
	default:
		return fmt.Errorf("unknown failure mode %q (want none, down or slow)", m.Mode)
	}
	i.mu.Lock()
	i.cur = m
	i.mu.Unlock()
	return nil
}

// Current returns the mode in force.
func (i *Injector) Current() Mode {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.cur.Mode == "" {
		return Mode{Mode: None}
	}
	return i.cur
}

// Middleware applies the mode to a route; down answers with the emulator's
// own 503 error shape.
func (i *Injector) Middleware(down echo.HandlerFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			m := i.Current()
			switch m.Mode {
			case Down:
				return down(c)
			case Slow:
				t := time.NewTimer(time.Duration(m.DelayMs) * time.Millisecond)
				defer t.Stop()
				select {
				case <-t.C:
				case <-c.Request().Context().Done():
					return c.Request().Context().Err()
				}
			}
			return next(c)
		}
	}
}
