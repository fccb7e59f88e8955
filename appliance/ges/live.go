package ges

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Queue state in Redis. While a callback waits in ORS's queue its position,
// estimated wait and ORS session change with every report but its state does
// not; those reports go to Redis instead of rewriting the PostgreSQL row
// (which cost a new row version, index entries and vacuum work per report).
// PostgreSQL keeps every state change. Reads of a QUEUED callback lay the
// queue state over the row.
//
// All queue states share one hash, a field per callback: the embedded Redis
// walks and sorts every key each time its clock steps, so a key per waiting
// callback made every command slower as the queue grew. The fields carry no
// TTL; one goes when its callback changes state, is cancelled, or is purged.
//
// A callback's field is written with queuedMark when GES hands it to ORS, so
// the field's presence tells a QUEUED report that its callback still waits
// without asking PostgreSQL (see queuedAmong). A missing field (Redis lost
// it, or the callback moved on) sends the report to PostgreSQL.
const liveHash = "ges:{idx}:live"

// queuedMark is the value of a QUEUED callback's field before ORS's first
// report; it carries no queue state (decodeLive refuses it).
const queuedMark = "-"

// liveState is what a QUEUED callback's latest report said.
type liveState struct {
	position, ewt int
	orsSession    string
}

// liveOf is the queue state a QUEUED report carries.
func liveOf(r StateReport) liveState {
	st := liveState{orsSession: r.ORSSessionID}
	if r.PositionInQueue != nil {
		st.position = *r.PositionInQueue
	}
	if r.EstimatedWait != nil {
		st.ewt = *r.EstimatedWait
	}
	return st
}

func (l liveState) encode() string {
	return strconv.Itoa(l.position) + " " + strconv.Itoa(l.ewt) + " " + l.orsSession
}

func decodeLive(v string) (liveState, bool) {
	f := strings.SplitN(v, " ", 3)
	if len(f) != 3 {
		return liveState{}, false
	}
	pos, err1 := strconv.Atoi(f[0])
	ewt, err2 := strconv.Atoi(f[1])
	return liveState{position: pos, ewt: ewt, orsSession: f[2]}, err1 == nil && err2 == nil
}

// setLive stores the queue state of QUEUED callbacks (one command).
func (x *index) setLive(ctx context.Context, ids []CallbackID, st []liveState) error {
	args := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		args = append(args, string(id), st[i].encode())
	}
	if err := x.rdb.HSet(ctx, liveHash, args...).Err(); err != nil {
		return fmt.Errorf("store queue state: %w", err)
	}
	return nil
}

// markedQueued reports which of ids have a field in the live hash (one command).
func (x *index) markedQueued(ctx context.Context, ids []string) ([]bool, error) {
	vals, err := x.rdb.HMGet(ctx, liveHash, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read queue state: %w", err)
	}
	out := make([]bool, len(ids))
	for i, v := range vals {
		out[i] = v != nil
	}
	return out, nil
}

// dropLive forgets the queue state of callbacks that changed state (one command).
func (x *index) dropLive(ctx context.Context, ids []CallbackID) error {
	if len(ids) == 0 {
		return nil
	}
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = string(id)
	}
	if err := x.rdb.HDel(ctx, liveHash, fields...).Err(); err != nil {
		return fmt.Errorf("drop queue state: %w", err)
	}
	return nil
}

// getLive reads the queue state of ids (one command); missing ones are absent.
func (x *index) getLive(ctx context.Context, ids []CallbackID) (map[CallbackID]liveState, error) {
	fields := make([]string, len(ids))
	for i, id := range ids {
		fields[i] = string(id)
	}
	vals, err := x.rdb.HMGet(ctx, liveHash, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read queue state: %w", err)
	}
	out := make(map[CallbackID]liveState, len(ids))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if st, ok := decodeLive(s); ok {
				out[ids[i]] = st
			}
		}
	}
	return out, nil
}

// overlayLive lays the Redis queue state over the QUEUED callbacks in cbs. A
// Redis failure leaves the stored values: a read never fails for it.
func (s *Service) overlayLive(ctx context.Context, cbs ...*Callback) {
	var ids []CallbackID
	for _, c := range cbs {
		if c != nil && c.State == StateQueued {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	live, err := s.idx.getLive(ctx, ids)
	if err != nil {
		return
	}
	for _, c := range cbs {
		if st, ok := live[c.ID]; ok && c.State == StateQueued {
			c.PositionInQueue, c.EstimatedWait = st.position, st.ewt
			if st.orsSession != "" {
				c.ORSSessionID = st.orsSession
			}
		}
	}
}

// dropLiveOfScript drops the queue state of callback ARGV[i] if the ORS
// session ARGV[i+1] wrote it (its encoding ends with the session id), or if
// it names no session.
var dropLiveOfScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local s = ARGV[i+1]
    local tail = string.match(v, '^%S+ %S+ (%S*)$') or ''
    if tail == '' or tail == s then redis.call('HDEL', KEYS[1], ARGV[i]) end
  end
end
return 0
`)

// dropLiveOf forgets the queue state of callbacks their ORS sessions gave
// back, leaving any written by another session (one script).
func (x *index) dropLiveOf(ctx context.Context, ids []CallbackID, sessions []string) error {
	args := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		args = append(args, string(id), sessions[i])
	}
	if err := dropLiveOfScript.Run(ctx, x.rdb, []string{liveHash}, args...).Err(); err != nil {
		return fmt.Errorf("drop queue state: %w", err)
	}
	return nil
}
