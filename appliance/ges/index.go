package ges

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys. The due set and its "built" marker share a hash tag so one script
// may touch both on a cluster.
const (
	dueKey = "ges:{idx}:due"
	// builtKey marks an index rebuilt from PostgreSQL. Its name changes when
	// the key layout does, so that an upgraded node sharing an external Redis
	// rebuilds instead of trusting keys it no longer reads.
	builtKey = "ges:{idx}:built:2"
	// slotPrefix keeps slot counters under the index's hash tag: a booking
	// checks the built marker in the same script.
	slotPrefix = "ges:{idx}:slot:"
	// slotKeyLife is how long after its start a slot counter is kept.
	slotKeyLife = 48 * time.Hour
	// StreamName is the Redis stream ORS consumes (contract 7).
	StreamName = "NewCallbackStream"
	// StreamGroup is the consumer group ORS reads with (contract 7).
	StreamGroup = "ors"
)

// claimScript atomically takes due callback ids out of the due set, so that of
// several monitors sharing one Redis exactly one gets each id. It also returns
// the next due score, and -1 alone when the index was never built (empty Redis).
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {ids, nxt[2] or ''}
`)

// reserveScript books one place in a slot counter if capacity allows; it
// returns the new count, -1 when the slot is full, or -2 when the index was
// never built (Redis restarted empty): a counter missing then means "unknown",
// not zero, and booking on it could overbook the slot.
var reserveScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return -2 end
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c >= tonumber(ARGV[1]) then return -1 end
c = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return c
`)

// releaseScript gives a place back, never going below zero.
var releaseScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
`)

// index is GES's use of Redis: the due-time index, slot counters and the ORS stream.
type index struct {
	rdb    redis.UniversalClient
	maxLen int64
}

// slotKey names the booking counter of one slot.
func slotKey(tenant TenantID, service string, start time.Time) string {
	return slotPrefix + string(tenant) + ":" + service + ":" + strconv.FormatInt(start.Unix(), 10)
}

// reserve books a place in a slot; false when the slot is full. The counter
// lives for ttl; TTLs are relative because Redis's clock is the wall clock while
// ours may be the lab clock, moved ahead.
func (x *index) reserve(ctx context.Context, key string, capacity int, ttl time.Duration) (bool, error) {
	n, err := reserveScript.Run(ctx, x.rdb, []string{key, builtKey}, capacity, max(ttl, time.Hour).Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("reserve slot: %w", err)
	}
	if n == -2 {
		return false, errIndexMissing
	}
	return n >= 0, nil
}

// release frees a place in a slot.
func (x *index) release(ctx context.Context, key string) error {
	if err := releaseScript.Run(ctx, x.rdb, []string{key}).Err(); err != nil {
		return fmt.Errorf("release slot: %w", err)
	}
	return nil
}

// booked reads slot counters; missing keys count 0 once the index is built.
func (x *index) booked(ctx context.Context, keys []string) ([]int, error) {
	out := make([]int, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := x.rdb.MGet(ctx, append(keys, builtKey)...).Result()
	if err != nil {
		return nil, fmt.Errorf("read slot counters: %w", err)
	}
	if vals[len(keys)] == nil {
		return nil, errIndexMissing
	}
	for i, v := range vals[:len(keys)] {
		if s, ok := v.(string); ok {
			out[i], _ = strconv.Atoi(s)
		}
	}
	return out, nil
}

// addDue indexes callbacks by due time (one ZADD for the whole batch).
func (x *index) addDue(ctx context.Context, ids []string, due []time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	if err := x.rdb.ZAdd(ctx, dueKey, dueMembers(ids, due)...).Err(); err != nil {
		return fmt.Errorf("index due callbacks: %w", err)
	}
	return nil
}

// restoreDue puts ids back into the due index unless they are there already
// (ZADD NX: a later time set by a retry stays).
func (x *index) restoreDue(ctx context.Context, ids []string, due []time.Time) error {
	if err := x.rdb.ZAddNX(ctx, dueKey, dueMembers(ids, due)...).Err(); err != nil {
		return fmt.Errorf("restore due callbacks: %w", err)
	}
	return nil
}

// dueMembers pairs ids with their due times (milliseconds) for the due index.
func dueMembers(ids []string, due []time.Time) []redis.Z {
	zs := make([]redis.Z, len(ids))
	for i := range ids {
		zs[i] = redis.Z{Score: float64(due[i].UnixMilli()), Member: ids[i]}
	}
	return zs
}

// removeDue drops a callback from the due index.
func (x *index) removeDue(ctx context.Context, id CallbackID) error {
	if err := x.rdb.ZRem(ctx, dueKey, string(id)).Err(); err != nil {
		return fmt.Errorf("unindex callback: %w", err)
	}
	return nil
}

// errIndexMissing says Redis lost the index (restarted empty) and it must be rebuilt.
var errIndexMissing = errors.New("due index missing")

// claim takes up to limit ids due at now. next is the following due time (zero if none).
func (x *index) claim(ctx context.Context, now time.Time, limit int) (ids []string, next time.Time, err error) {
	res, err := claimScript.Run(ctx, x.rdb, []string{dueKey, builtKey}, now.UnixMilli(), limit).Slice()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("claim due callbacks: %w", err)
	}
	if len(res) == 1 {
		return nil, time.Time{}, errIndexMissing
	}
	if arr, ok := res[0].([]any); ok {
		for _, v := range arr {
			if s, ok := v.(string); ok {
				ids = append(ids, s)
			}
		}
	}
	if s, ok := res[1].(string); ok && s != "" {
		if f, perr := strconv.ParseFloat(s, 64); perr == nil {
			next = time.UnixMilli(int64(f))
		}
	}
	return ids, next, nil
}

// rebuild restores the due index and slot counters from PostgreSQL, then marks the
// index as built. Safe to run on several nodes at once (all writes are idempotent).
func (x *index) rebuild(ctx context.Context, st *store, now time.Time) error {
	ids, due, err := st.scheduled(ctx, time.Time{})
	if err != nil {
		return err
	}
	for i := 0; i < len(ids); i += 1000 {
		j := min(i+1000, len(ids))
		if err := x.addDue(ctx, ids[i:j], due[i:j]); err != nil {
			return err
		}
	}
	books, err := st.slotBookings(ctx, now.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	for i := 0; i < len(books); i += 1000 {
		pipe := x.rdb.Pipeline()
		for _, b := range books[i:min(i+1000, len(books))] {
			// NX: a node that finished its rebuild first may already be
			// booking on these counters; a slower rebuild must not reset them.
			pipe.SetNX(ctx, slotKey(b.tenant, b.service, b.start), b.count, max(b.start.Add(slotKeyLife).Sub(now), time.Hour))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("rebuild slot counters: %w", err)
		}
	}
	if err := x.rdb.Set(ctx, builtKey, now.UTC().Format(time.RFC3339), 0).Err(); err != nil {
		return fmt.Errorf("rebuild slot counters: %w", err)
	}
	return nil
}

// ensureGroup creates the ORS consumer group from the start of the stream, so
// entries added before ORS first reads are not skipped.
func (x *index) ensureGroup(ctx context.Context) error {
	err := x.rdb.XGroupCreateMkStream(ctx, StreamName, StreamGroup, "0").Err()
	if err != nil && !isBusyGroup(err) {
		return fmt.Errorf("create consumer group %s on %s: %w", StreamGroup, StreamName, err)
	}
	return nil
}

// isBusyGroup reports Redis's "group already exists" error.
func isBusyGroup(err error) bool {
	return err != nil && len(err.Error()) >= 9 && err.Error()[:9] == "BUSYGROUP"
}

// publish XADDs entries to NewCallbackStream in one transaction. The callbacks
// in queued (those the entries start) get their queuedMark in it too, so the
// mark is there before ORS can read the entry, and a QUEUED callback without
// a mark was never handed over (see recoverStranded).
func (x *index) publish(ctx context.Context, entries []map[string]any, queued []CallbackID) error {
	if len(entries) == 0 {
		return nil
	}
	pipe := x.rdb.TxPipeline()
	if len(queued) > 0 {
		args := make([]any, 0, 2*len(queued))
		for _, id := range queued {
			args = append(args, string(id), queuedMark)
		}
		pipe.HSet(ctx, liveHash, args...)
	}
	for _, e := range entries {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: StreamName, MaxLen: x.maxLen, Approx: true, Values: e})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("xadd %s: %w", StreamName, err)
	}
	return nil
}
