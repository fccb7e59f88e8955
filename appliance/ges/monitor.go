package ges

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// commitCreates writes one batch of new callbacks in one transaction,
// enforcing the per-number limit inside it, then hands the immediate ones to
// ORS and indexes the scheduled ones in Redis. A create is acknowledged only after its transaction committed and its
// due entry is in Redis.
func (s *Service) commitCreates(ctx context.Context, batch []*Callback) []error {
	results := make([]error, len(batch))
	ok, err := s.st.insertBatch(ctx, batch, s.cfg.MaxActivePerNumber)
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		// A data exception belongs to one callback the API's checks let
		// through: commit each alone so it fails only its own request.
		if len(batch) > 1 {
			for i := range batch {
				results[i] = s.commitCreates(ctx, batch[i:i+1])[0]
			}
			return results
		}
		s.log.Error("commit callback", "err", err, "callback", batch[0].ID)
		results[0] = invalidf("the callback holds a value that cannot be stored: %s", pe.Message)
		return results
	}
	if err != nil {
		s.log.Error("commit callbacks", "err", err, "batch", len(batch))
		for i := range results {
			results[i] = errorf(ErrUnavailable, "callback could not be stored")
		}
		return results
	}
	var ids []string
	var due []time.Time
	var now []*Callback
	for i, c := range batch {
		switch {
		case !ok[c.ID]:
			results[i] = errorf(ErrThrottled, "phoneNumber %s already has the maximum of %d active callbacks",
				c.PhoneNumber, s.cfg.MaxActivePerNumber)
		case c.State == StateQueued:
			now = append(now, c)
		default:
			ids, due = append(ids, string(c.ID)), append(due, c.DesiredTime)
		}
	}
	if len(now) > 0 {
		s.handOver(ctx, now, s.clock.Now())
	}
	if len(ids) > 0 {
		if err := s.idx.addDue(ctx, ids, due); err != nil {
			// Committed is committed: the record is safe, and the next index
			// rebuild (forced here) picks it up.
			s.log.Warn("index new callbacks", "err", err, "count", len(ids))
			_ = s.rdb.Del(ctx, builtKey).Err()
		}
		s.kick()
	}
	return results
}

// monitor hands due callbacks to ORS. It sleeps until the next known due time,
// a local create, a clock move (Wake) or the poll interval, whichever is first,
// so an idle GES costs Redis one script call per poll interval.
func (s *Service) monitor(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wakeCh:
		case <-timer.C:
		}
		next := s.dispatchDue(ctx)
		wait := s.cfg.PollInterval
		if !next.IsZero() {
			if d := next.Sub(s.clock.Now()); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// dispatchDue claims every due callback and publishes it; it returns the next due time.
func (s *Service) dispatchDue(ctx context.Context) time.Time {
	const claimBatch = 500
	for {
		now := s.clock.Now()
		ids, next, err := s.idx.claim(ctx, now, claimBatch)
		if errors.Is(err, errIndexMissing) {
			if s.rebuildIndex(ctx) != nil {
				return time.Time{}
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("claim due callbacks", "err", err)
			}
			return time.Time{}
		}
		if len(ids) > 0 {
			// Claimed ids are out of the index: finish handing them over even
			// if Stop cancels ctx meanwhile, or they would wait for a rebuild.
			opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			s.dispatch(opCtx, ids, now)
			cancel()
		}
		if len(ids) < claimBatch {
			return next
		}
	}
}

// dispatch moves claimed callbacks to QUEUED and XADDs a start entry for each.
// Only callbacks still SCHEDULED in PostgreSQL are moved, so a callback cancelled
// meanwhile, or claimed by another node after an index rebuild, is skipped.
func (s *Service) dispatch(ctx context.Context, ids []string, now time.Time) {
	cbs, err := s.st.markQueued(ctx, ids, now)
	if err != nil {
		s.log.Warn("mark callbacks queued", "err", err, "count", len(ids))
		s.requeue(ctx, ids, now)
		return
	}
	s.handOver(ctx, cbs, now)
}

// handOver XADDs a start entry for each QUEUED callback. If Redis refuses, the
// callbacks go back to SCHEDULED and into the due index a little later, so the
// monitor tries again.
func (s *Service) handOver(ctx context.Context, cbs []*Callback, now time.Time) {
	entries := make([]map[string]any, len(cbs))
	queued := make([]CallbackID, len(cbs))
	for i, c := range cbs {
		entries[i], queued[i] = startEntry(c), c.ID
	}
	if err := s.idx.publish(ctx, entries, queued); err != nil {
		s.log.Warn("submit callbacks to ORS", "err", err, "count", len(cbs))
		moved := make([]string, len(cbs))
		for i, c := range cbs {
			moved[i] = string(c.ID)
		}
		if err := s.st.unmarkQueued(ctx, moved, now); err != nil {
			s.log.Warn("return callbacks to scheduled", "err", err)
		}
		s.requeue(ctx, moved, now)
	}
}

// requeue puts ids back into the due index a little later.
func (s *Service) requeue(ctx context.Context, ids []string, now time.Time) {
	due := make([]time.Time, len(ids))
	for i := range due {
		due[i] = now.Add(5 * time.Second)
	}
	if err := s.idx.addDue(ctx, ids, due); err != nil {
		s.log.Warn("requeue callbacks", "err", err)
	}
}

// streamCallback is the one field, "callback", of a contract-7 entry: what
// ORS needs to run or stop the callback, as one JSON object. One field rather
// than one per value because an entry stays in Redis while its callback
// waits, thousands at a time, and the embedded Redis keeps every field name
// and value as an allocation of its own that each garbage collection marks.
type streamCallback struct {
	Action          string     `json:"action"`
	ID              CallbackID `json:"id"`
	CCID            TenantID   `json:"ccid"`
	Service         string     `json:"service,omitempty"`
	VirtualQueue    string     `json:"virtualQueue,omitempty"`
	PhoneNumber     string     `json:"phoneNumber,omitempty"`
	DesiredTime     string     `json:"desiredTime,omitempty"`
	Priority        float64    `json:"priority,omitempty"`
	MaxDialAttempts int        `json:"maxDialAttempts,omitempty"`
	RetryDelaySec   int        `json:"retryDelaySec,omitempty"`
	// DialAttempts is how many times the customer was dialled already: a
	// callback handed over again (Redis lost its entry) keeps its count.
	DialAttempts int            `json:"dialAttempts,omitempty"`
	UserData     map[string]any `json:"userData,omitempty"`
}

// startEntry is the contract-7 stream entry that asks ORS to run a callback.
func startEntry(c *Callback) map[string]any {
	cb := streamCallback{Action: "start", ID: c.ID, CCID: c.Tenant, Service: c.Service, VirtualQueue: c.VirtualQueue,
		PhoneNumber: c.PhoneNumber, DesiredTime: formatTime(c.DesiredTime), Priority: c.Priority,
		MaxDialAttempts: c.MaxDialAttempts, RetryDelaySec: c.RetryDelaySec, DialAttempts: c.DialAttempts, UserData: c.UserData}
	b, err := json.Marshal(cb)
	if err != nil { // userData came from JSON, so this cannot happen; hand the callback over without it
		cb.UserData = nil
		b, _ = json.Marshal(cb)
	}
	return map[string]any{"callback": string(b)}
}

// cancelEntry is the contract-7 stream entry that asks ORS to stop a callback.
func cancelEntry(c *Callback) map[string]any {
	b, _ := json.Marshal(streamCallback{Action: "cancel", ID: c.ID, CCID: c.Tenant})
	return map[string]any{"callback": string(b)}
}

// purger deletes records past retention (seed 004: 14 days after the desired
// time) and refreshes ges_monitor_size, every PurgeInterval and on Wake.
func (s *Service) purger(ctx context.Context) {
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	r := time.NewTicker(s.cfg.StrandedAfter / 2)
	defer r.Stop()
	s.recoverStranded(ctx)
	s.purgeOnce(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.C:
			s.recoverStranded(ctx)
		case <-t.C:
			s.purgeOnce(ctx)
		case <-s.purgeCh:
			s.purgeOnce(ctx)
		}
	}
}

// recoverStranded hands over what a node left half done when it died between
// PostgreSQL and Redis while Redis outlived it (an external Redis; an
// embedded one dies with the node and is rebuilt from PostgreSQL on start):
//   - a callback the monitor had claimed from the due index but not yet
//     marked QUEUED stays SCHEDULED and overdue, out of the index: it goes
//     back in (the conditional QUEUED mark keeps a second monitor from
//     running one that is only slow);
//   - a callback marked QUEUED (or created ASAP) whose start entry was never
//     added has no queue mark, which publish adds in the same transaction as
//     the entry: it is handed over again.
//
// Only callbacks stranded for longer than StrandedAfter count, well past the
// time a living node takes between the two stores, so that none is handed
// over twice.
func (s *Service) recoverStranded(ctx context.Context) {
	now := s.clock.Now()
	cutoff := now.Add(-s.cfg.StrandedAfter)
	if err := s.restoreClaimed(ctx, cutoff); err != nil {
		if ctx.Err() == nil { // else stopping (a start that failed elsewhere): nothing to warn about
			s.log.Warn("recover stranded callbacks", "err", err)
		}
		return
	}
	if err := s.handOverUnsent(ctx, cutoff, now); err != nil && ctx.Err() == nil {
		s.log.Warn("recover stranded callbacks", "err", err)
	}
}

// restoreClaimed puts the SCHEDULED callbacks due before cutoff back into the
// due index, where they normally are already.
func (s *Service) restoreClaimed(ctx context.Context, cutoff time.Time) error {
	ids, due, err := s.st.scheduled(ctx, cutoff)
	if err != nil {
		return err
	}
	for i := 0; i < len(ids); i += 1000 {
		j := min(i+1000, len(ids))
		if err := s.idx.restoreDue(ctx, ids[i:j], due[i:j]); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		s.kick() // due now: the monitor need not wait for its next poll
	}
	return nil
}

// handOverUnsent hands over the callbacks QUEUED since before cutoff that
// have no queue mark.
func (s *Service) handOverUnsent(ctx context.Context, cutoff, now time.Time) error {
	queued, err := s.st.queuedBefore(ctx, cutoff)
	if err != nil {
		return err
	}
	var unmarked []string
	for i := 0; i < len(queued); i += 1000 {
		chunk := queued[i:min(i+1000, len(queued))]
		marked, err := s.idx.markedQueued(ctx, chunk)
		if err != nil {
			return err
		}
		for k, ok := range marked {
			if !ok {
				unmarked = append(unmarked, chunk[k])
			}
		}
	}
	if len(unmarked) == 0 {
		return nil
	}
	got, err := s.st.getMany(ctx, unmarked)
	if err != nil {
		return err
	}
	cbs := make([]*Callback, 0, len(got))
	for _, c := range got {
		if c.State == StateQueued { // not moved on meanwhile
			cbs = append(cbs, c)
		}
	}
	if len(cbs) == 0 {
		return nil
	}
	s.log.Warn("handing over again QUEUED callbacks of which Redis holds no trace (never added, or Redis lost them)", "count", len(cbs))
	for i := 0; i < len(cbs); i += 500 {
		s.handOver(ctx, cbs[i:min(i+500, len(cbs))], now)
	}
	return nil
}

// purgeOnce runs one purge and gauge refresh.
func (s *Service) purgeOnce(ctx context.Context) {
	cutoff := s.clock.Now().Add(-s.cfg.Retention)
	// A callback still waiting when its record expires is ended first, as a
	// cancel is (COMPLETED FAIL_TIMEOUT_TTL, a cancel entry to ORS, its slot
	// freed): deleted as it was, ORS kept it in its queue for ever, counted
	// in positions and waiting calls.
	tenants, ids, err := s.st.unfinishedBefore(ctx, cutoff)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("purge: list unfinished callbacks", "err", err)
	}
	for i, id := range ids {
		if err := s.Cancel(ctx, tenants[i], id, ReasonFailTimeoutTTL); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCompleted) && !errors.Is(err, ErrInvalid) {
			s.log.Warn("purge: end unfinished callback", "err", err, "id", id)
		}
	}
	if len(ids) > 0 {
		s.log.Info("ended callbacks unfinished at the end of retention", "count", len(ids), "reason", ReasonFailTimeoutTTL)
	}
	n, gone, err := s.st.purge(ctx, cutoff)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("purge callbacks", "err", err)
		}
		return
	}
	for i := 0; i < len(gone); i += 1000 {
		if err := s.idx.dropLive(ctx, gone[i:min(i+1000, len(gone))]); err != nil {
			s.log.Warn("drop queue state of purged callbacks", "err", err)
			break
		}
	}
	if n > 0 {
		s.log.Info("purged expired callbacks", "count", n)
	}
	sizes, err := s.st.liveSizes(ctx)
	if err != nil {
		return
	}
	s.m.monitorSize.Reset()
	for k, v := range sizes {
		s.m.monitorSize.WithLabelValues(k[1], k[0]).Set(float64(v))
	}
}
