package ges

import (
	"context"
	"fmt"
	"strconv"
)

// Queue state in Redis. While a callback waits in ORS's queue its position,
// estimated wait and ORS session change with every report but its state does
// not; those reports go to a small Redis hash instead of rewriting the
// PostgreSQL row (which cost a new row version, index entries and vacuum work
// per report). PostgreSQL keeps every state change. Reads of a QUEUED callback
// lay the hash over the row.
//
// The hashes carry no TTL: every key with a TTL costs the embedded Redis work
// on each clock step, and a queue holds thousands. A hash goes when its
// callback changes state, is cancelled, or is purged while still QUEUED.
const livePrefix = "ges:live:"

// liveState is what a QUEUED callback's latest report said.
type liveState struct {
	position, ewt int
	orsSession    string
}

func liveKey(id CallbackID) string { return livePrefix + string(id) }

// setLive stores the queue state of QUEUED callbacks.
func (x *index) setLive(ctx context.Context, ids []CallbackID, st []liveState) error {
	pipe := x.rdb.Pipeline()
	for i, id := range ids {
		pipe.HSet(ctx, liveKey(id), "pos", st[i].position, "ewt", st[i].ewt, "ors", st[i].orsSession)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store queue state: %w", err)
	}
	return nil
}

// dropLive forgets the queue state of callbacks that changed state.
func (x *index) dropLive(ctx context.Context, ids []CallbackID) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = liveKey(id)
	}
	if err := x.rdb.Unlink(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("drop queue state: %w", err)
	}
	return nil
}

// overlayLive lays the Redis queue state over the QUEUED callbacks in cbs. A
// Redis failure leaves the stored values: a read never fails for it.
func (s *Service) overlayLive(ctx context.Context, cbs ...*Callback) {
	var queued []*Callback
	for _, c := range cbs {
		if c != nil && c.State == StateQueued {
			queued = append(queued, c)
		}
	}
	if len(queued) == 0 {
		return
	}
	pipe := s.rdb.Pipeline()
	for _, c := range queued {
		pipe.HMGet(ctx, liveKey(c.ID), "pos", "ewt", "ors")
	}
	cmds, err := pipe.Exec(ctx)
	if err != nil && len(cmds) != len(queued) {
		return
	}
	for i, cmd := range cmds {
		vals, err := cmd.(interface{ Result() ([]any, error) }).Result()
		if err != nil || len(vals) != 3 || vals[0] == nil {
			continue
		}
		c := queued[i]
		if v, ok := vals[0].(string); ok {
			c.PositionInQueue, _ = strconv.Atoi(v)
		}
		if v, ok := vals[1].(string); ok {
			c.EstimatedWait, _ = strconv.Atoi(v)
		}
		if v, ok := vals[2].(string); ok && v != "" {
			c.ORSSessionID = v
		}
	}
}
