package voice

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Several Voice processes may share one Redis (and GES one PostgreSQL). A
// callback's start entry is pending to one consumer at a time, and that
// consumer alone may dial its customer: a consumer whose lease lapsed (its
// process was paused, or cut off from Redis, for longer than ClaimMinIdle)
// has had its entries claimed by another, and an entry Redis lost (emptied,
// or failed over without it) is handed over again by GES under a new id.
// Either way the old session lives on in the old process's memory, so every
// dial is fenced: it goes ahead only while the session's entry is still
// pending to this consumer, checked in Redis in the same script that counts
// the dial.

// resultSuperseded ends a session whose entry is no longer this consumer's:
// it stops without a report to GES and without acknowledging the entry.
const resultSuperseded = "superseded"

// errSuperseded is the fence's answer when the session's entry is pending to
// another consumer.
var errSuperseded = errors.New("the callback's stream entry is another consumer's")

// errEntryGone is the fence's answer when the session's entry is no longer
// in Redis (emptied, or failed over without it).
var errEntryGone = errors.New("the callback's stream entry is gone from Redis")

// fenceScript counts one dial of a callback's customer if, and only if, the
// callback's entry (ARGV[2]) is still pending to this consumer (ARGV[3]) in
// the group (ARGV[1]). It answers the dial's number, counting from at least
// ARGV[5] (the dials made before the entry was added), -1 when the entry is
// another consumer's, or -2 when it is gone. The count lives in a hash (KEYS[2]) so that
// a consumer taking a callback over goes on from the dials already made.
var fenceScript = redis.NewScript(`
local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(p) ~= 'table' or p.err or #p == 0 then return -2 end
if p[1][2] ~= ARGV[3] then return -1 end
local n = redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
local floor = tonumber(ARGV[5])
if n <= floor then
  n = floor + 1
  redis.call('HSET', KEYS[2], ARGV[4], n)
end
return n
`)

// attemptsKey is the hash of dial counts, one field per running callback.
func (s *Server) attemptsKey() string { return s.cfg.Stream + ":ors-attempts" }

// cancelChannel carries cancels between the processes sharing the stream:
// GES's cancel entry reaches one consumer, which may not be the one running
// the callback.
func (s *Server) cancelChannel() string { return s.cfg.Stream + ":ors-cancel" }

// fence reserves the session's next dial (see fenceScript). errSuperseded
// and errEntryGone mean the session must stop (the session is marked
// superseded, and for a gone entry GES is told first: see giveBack); another
// error means Redis could not say, and the session must not dial yet.
func (s *Server) fence(ctx context.Context, ss *session) (int, error) {
	ss.mu.Lock()
	msgID, made := ss.msgID, ss.attempts
	ss.mu.Unlock()
	floor := max(made, ss.entry.priorAttempts)
	n, err := fenceScript.Run(ctx, s.rdb, []string{s.cfg.Stream, s.attemptsKey()},
		s.cfg.Group, msgID, s.cfg.Consumer, string(ss.entry.id), floor).Int()
	switch {
	case err != nil:
		return 0, fmt.Errorf("check the callback is still this consumer's: %w", err)
	case n == -2:
		s.giveBack(ss)
		return 0, errEntryGone
	case n < 0:
		s.supersede(ss)
		return 0, errSuperseded
	}
	ss.mu.Lock()
	ss.attempts = n
	ss.mu.Unlock()
	return n, nil
}

// supersede stops the session's reports: its entry is another consumer's.
func (s *Server) supersede(ss *session) {
	ss.mu.Lock()
	ss.superseded = true
	ss.mu.Unlock()
}

// giveBack tells GES that this session no longer holds its callback, whose
// entry Redis lost, then stops the session's reports. GES drops its mark that
// ORS holds the callback (a report of this session may have written it after
// Redis was emptied), so that it hands the callback over again: without
// this, the callback stayed QUEUED with no session anywhere.
func (s *Server) giveBack(ss *session) {
	if err := s.report(ss, StateReport{State: stQueued, Released: true}); err != nil && !errors.Is(err, errSuperseded) && !errors.Is(err, errSessionOver) {
		s.log.Warn("ors: telling GES a callback whose entry Redis lost is no longer held here failed", "callback", ss.entry.id, "err", err)
	}
	s.supersede(ss)
}

// relayCancel passes a cancel for a callback this process does not run to
// the other processes.
func (s *Server) relayCancel(ctx context.Context, id CallbackID) {
	if err := s.rdb.Publish(ctx, s.cancelChannel(), string(id)).Err(); err != nil && ctx.Err() == nil {
		s.log.Warn("ors: pass a cancel on to the other processes failed", "callback", id, "err", err)
	}
}

// watchCancels applies the cancels other processes relay until ctx ends.
func (s *Server) watchCancels(ctx context.Context, sub *redis.PubSub) {
	defer func() { _ = sub.Close() }()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			s.mu.Lock()
			ss := s.sessions[CallbackID(m.Payload)]
			s.mu.Unlock()
			if ss != nil {
				s.log.Info("ors: cancel relayed by another process", "callback", m.Payload)
				s.cancelSession(ss)
			}
		}
	}
}

// checkSessions runs when this consumer's lease lapsed (it renewed it too
// late), or when Redis lost its data (the consumer group or the lease key
// gone): every session whose
// entry is no longer pending to this consumer stops reporting to GES; a
// session whose entry is gone tells GES it no longer holds the callback
// (giveBack). Parked ones are dropped at once, so that they hold no queue
// place; running ones stop dialling (the fence would refuse them).
func (s *Server) checkSessions(ctx context.Context, why string) {
	s.checkMu.Lock() // the lease renewal and the stream reader may both find a loss
	defer s.checkMu.Unlock()
	mine := map[string]bool{}
	start := "-"
	for range 1000 {
		pend, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.cfg.Stream, Group: s.cfg.Group,
			Start: start, End: "+", Count: 1000, Consumer: s.cfg.Consumer}).Result()
		if err != nil && !isNoGroup(err) {
			if ctx.Err() == nil {
				s.log.Warn("ors: list own pending entries failed", "err", err, "after", why)
			}
			return
		}
		for _, p := range pend {
			mine[p.ID] = true
		}
		if len(pend) < 1000 {
			break
		}
		start = "(" + pend[len(pend)-1].ID
	}
	s.mu.Lock()
	var lost []*session
	for _, ss := range s.sessions {
		ss.mu.Lock()
		// A connected call goes on: it dials nobody, and its COMPLETED is
		// the callback's end.
		if !mine[ss.msgID] && !ss.superseded && ss.state != stProcessing {
			lost = append(lost, ss)
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	gone, taken := 0, 0
	for _, ss := range lost {
		ss.mu.Lock()
		msgID := ss.msgID
		ss.mu.Unlock()
		p, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.cfg.Stream, Group: s.cfg.Group,
			Start: msgID, End: msgID, Count: 1}).Result()
		switch {
		case err != nil && !isNoGroup(err):
			continue // cannot tell: the fence decides at the next dial
		case len(p) == 0:
			s.giveBack(ss)
			gone++
		case p[0].Consumer == s.cfg.Consumer:
			continue // read meanwhile (a session started or took up a new entry)
		default:
			s.supersede(ss)
			taken++
		}
		ss.mu.Lock()
		cancel := ss.cancel
		ss.mu.Unlock()
		switch {
		case s.unpark(&ss.w):
			s.met.queueWaiting.Dec()
			s.endSession(ss, resultSuperseded)
		case cancel != nil:
			// Running: it stops dialling and reporting; a call already
			// connected is left to end by itself.
			cancel()
		}
	}
	if gone+taken > 0 {
		s.log.Warn("ors: callbacks no longer this consumer's are left to the others or handed back to GES",
			"after", why, "taken_over", taken, "entry_gone", gone)
	}
}

func isNoGroup(err error) bool {
	return err != nil && (errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key"))
}
