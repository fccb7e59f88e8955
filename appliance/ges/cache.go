package ges

import (
	"sync"
	"time"
)

// ttlCache is a small map whose entries expire; now is the service clock.
type ttlCache[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]ttlEntry[V]
	now func() time.Time
	max int
}

type ttlEntry[V any] struct {
	v       V
	stored  time.Time
	expires time.Time
}

func newTTLCache[K comparable, V any](now func() time.Time, max int) *ttlCache[K, V] {
	return &ttlCache[K, V]{m: map[K]ttlEntry[V]{}, now: now, max: max}
}

// get returns a live entry and its age.
func (c *ttlCache[K, V]) get(k K) (V, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	now := c.now()
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, 0, false
	}
	return e.v, now.Sub(e.stored), true
}

// put stores v for ttl, dropping expired entries first when the map is full so
// that random keys (unknown API keys) cannot grow it without bound.
func (c *ttlCache[K, V]) put(k K, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, stored: now, expires: now.Add(ttl)}
}

// drop forgets k.
func (c *ttlCache[K, V]) drop(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}
