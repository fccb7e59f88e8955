package clock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SharedKey is the Redis key holding the lab clock's offset ahead of wall
// time, in milliseconds, for every appliance sharing that Redis; changes
// are published on the channel of the same name.
const SharedKey = "cxlab:lab-clock:offset-ms"

// raiseScript stores the offset ARGV[1] if it is ahead of the stored one and
// publishes it; it answers 1 when it did. The offset only ever grows, as the
// lab clock never goes backwards.
var raiseScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local new = tonumber(ARGV[1])
if new > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('PUBLISH', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// Shared keeps a Lab clock in step with the other appliances sharing one
// Redis: moving the clock on any of them moves it on all (a scheduled
// callback comes due for every monitor at once, not early for some), and an
// appliance starting, or restarting, takes up the offset already there.
type Shared struct {
	lab *Lab
	rdb redis.UniversalClient
	log *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewShared returns the component that shares lab through rdb.
func NewShared(lab *Lab, rdb redis.UniversalClient, log *slog.Logger) *Shared {
	s := &Shared{lab: lab, rdb: rdb, log: log}
	lab.OnAdvance(func(time.Time) { s.publish() })
	return s
}

// Name returns "lab-clock".
func (s *Shared) Name() string { return "lab-clock" }

// Start subscribes to the others' moves, then takes up the stored offset
// and offers this clock's own (an offset moved before Start counts).
func (s *Shared) Start(ctx context.Context) error {
	sub := s.rdb.Subscribe(context.WithoutCancel(ctx), SharedKey)
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return fmt.Errorf("lab clock: subscribe to %s: %w", SharedKey, err)
	}
	v, err := s.rdb.Get(ctx, SharedKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		_ = sub.Close()
		return fmt.Errorf("lab clock: read %s: %w", SharedKey, err)
	}
	if v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.takeUp(ms, "start")
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	s.cancel, s.done = cancel, make(chan struct{})
	done := s.done
	s.mu.Unlock()
	s.publish()
	go func() {
		defer close(done)
		defer func() { _ = sub.Close() }()
		ch := sub.Channel()
		for {
			select {
			case <-runCtx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				if ms, err := strconv.ParseInt(m.Payload, 10, 64); err == nil {
					s.takeUp(ms, "another appliance")
				}
			}
		}
	}()
	return nil
}

// Stop ends the subscription.
func (s *Shared) Stop(context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// takeUp moves the clock to an offset of ms milliseconds if that is ahead.
func (s *Shared) takeUp(ms int64, from string) {
	if now, moved := s.lab.AdvanceTo(time.Duration(ms) * time.Millisecond); moved {
		s.log.Info("lab clock moved", "by", from, "offset", time.Duration(ms)*time.Millisecond, "now", now.UTC().Format(time.RFC3339))
	}
}

// publish offers this clock's offset to the others; the script keeps the
// greatest, so an offset taken up from them is not sent back.
func (s *Shared) publish() {
	s.mu.Lock()
	running := s.cancel != nil
	s.mu.Unlock()
	if !running {
		return // Start publishes what was moved before it
	}
	ms := s.lab.Offset().Milliseconds()
	if ms <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := raiseScript.Run(ctx, s.rdb, []string{SharedKey}, ms).Err(); err != nil {
		s.log.Warn("lab clock: share the move with the other appliances failed", "err", err)
	}
}
