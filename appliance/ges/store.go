package ges

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// store is the PostgreSQL repository of callbacks and call-in requests.
type store struct {
	pool *pgxpool.Pool
}

// callbackCols is the column list every callback query reads, in scan order.
const callbackCols = `id::text, tenant, service, virtual_queue, phone_number, desired_time, immediate, offer_type,
	priority, language, extra, user_data, state, reason, position_in_queue, estimated_wait, dial_attempts,
	ors_session_id, agent_dn, max_dial_attempts, retry_delay_sec, slot_start, history, created_at, updated_at`

// scanCallback reads one row selected with callbackCols.
func scanCallback(row pgx.Row) (*Callback, error) {
	var c Callback
	var extra, ud, hist []byte
	var state string
	if err := row.Scan(&c.ID, &c.Tenant, &c.Service, &c.VirtualQueue, &c.PhoneNumber, &c.DesiredTime, &c.Immediate,
		&c.OfferType, &c.Priority, &c.Language, &extra, &ud, &state, &c.Reason, &c.PositionInQueue,
		&c.EstimatedWait, &c.DialAttempts, &c.ORSSessionID, &c.AgentDN, &c.MaxDialAttempts, &c.RetryDelaySec,
		&c.SlotStart, &hist, &c.CreatedAt, &c.UpdatedAt); err != nil {
		return nil, err
	}
	c.State = State(state)
	if len(extra) > 0 {
		if err := json.Unmarshal(extra, &c.Extra); err != nil {
			return nil, fmt.Errorf("callback %s extra: %w", c.ID, err)
		}
	}
	if len(ud) > 0 {
		if err := json.Unmarshal(ud, &c.UserData); err != nil {
			return nil, fmt.Errorf("callback %s user data: %w", c.ID, err)
		}
	}
	if err := json.Unmarshal(hist, &c.History); err != nil {
		return nil, fmt.Errorf("callback %s history: %w", c.ID, err)
	}
	return &c, nil
}

// jsonOrNil encodes v, or returns nil (SQL NULL) for an empty map.
func jsonOrNil(m map[string]any) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	return json.Marshal(m)
}

// genericPlanSQL makes the rest of a transaction use generic plans, with
// sequential scans off (see insertBatch).
const genericPlanSQL = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true)`

// insertCallbacksSQL inserts a batch of callbacks given as parallel arrays,
// each only if its number stays within $22 active callbacks.
const insertCallbacksSQL = `INSERT INTO ges.callbacks (id, tenant, service, virtual_queue, phone_number, desired_time, immediate,
		offer_type, priority, language, extra, user_data, state, reason, max_dial_attempts, retry_delay_sec, slot_start,
		history, created_at, updated_at)
	SELECT id, tenant, service, virtual_queue, phone_number, desired_time, immediate, offer_type, priority, language,
		extra::jsonb, user_data::jsonb, state, reason, max_dial_attempts, retry_delay_sec, slot_start, history::jsonb,
		created_at, updated_at
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bool[],
			$8::text[], $9::float8[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::int[], $16::int[],
			$17::timestamptz[], $18::text[], $19::timestamptz[], $20::timestamptz[], $21::int[])
		AS u(id, tenant, service, virtual_queue, phone_number, desired_time, immediate, offer_type, priority, language,
			extra, user_data, state, reason, max_dial_attempts, retry_delay_sec, slot_start, history, created_at,
			updated_at, rank)
	WHERE u.rank + (SELECT count(*) FROM ges.callbacks c
		WHERE c.tenant = u.tenant AND c.phone_number = u.phone_number AND c.state <> 'COMPLETED') <= $22
	RETURNING id::text`

// insertBatch stores new callbacks in one round trip and one transaction and
// returns the ids it accepted. The per-number limit is enforced in the same
// statement: a callback is refused when its number already has maxActive live
// callbacks, counting those earlier in the batch. An advisory lock per number,
// taken first, makes the count exact across every process sharing the database.
func (s *store) insertBatch(ctx context.Context, cbs []*Callback, maxActive int) (map[CallbackID]bool, error) {
	n := len(cbs)
	var (
		ids, tenants, services, vqs, phones  = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		desired, created, updated            = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		immediate                            = make([]bool, n)
		offers, langs, states, reasons, hist = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		prio                                 = make([]float64, n)
		extra, ud                            = make([]*string, n), make([]*string, n)
		maxDials, retry                      = make([]int32, n), make([]int32, n)
		slots                                = make([]*time.Time, n)
		locks                                = make([]string, 0, n)
		// rank is each callback's place among the batch's callbacks for the
		// same number (1 for the first), so that the limit counts those
		// earlier in the batch; computed here, the statement needs no window
		// function, which took a third of its planning.
		rank = make([]int32, n)
		seen = make(map[string]int32, n)
	)
	for i, c := range cbs {
		ex, err := jsonOrNil(c.Extra)
		if err != nil {
			return nil, fmt.Errorf("insert callback %s: %w", c.ID, err)
		}
		u, err := jsonOrNil(c.UserData)
		if err != nil {
			return nil, fmt.Errorf("insert callback %s: %w", c.ID, err)
		}
		h, err := json.Marshal(c.History)
		if err != nil {
			return nil, fmt.Errorf("insert callback %s: %w", c.ID, err)
		}
		if ex != nil {
			v := string(ex)
			extra[i] = &v
		}
		if u != nil {
			v := string(u)
			ud[i] = &v
		}
		ids[i], tenants[i], services[i], vqs[i], phones[i] = string(c.ID), string(c.Tenant), c.Service, c.VirtualQueue, c.PhoneNumber
		desired[i], immediate[i], offers[i], prio[i], langs[i] = c.DesiredTime, c.Immediate, c.OfferType, c.Priority, c.Language
		states[i], reasons[i], maxDials[i], retry[i] = string(c.State), c.Reason, int32(c.MaxDialAttempts), int32(c.RetryDelaySec)
		slots[i], hist[i], created[i], updated[i] = c.SlotStart, string(h), c.CreatedAt, c.UpdatedAt
		key := string(c.Tenant) + "/" + c.PhoneNumber
		seen[key]++
		rank[i] = seen[key]
		locks = append(locks, key)
	}
	var b pgx.Batch
	// The pool plans every execution afresh (force_custom_plan, see newPool),
	// and planning this insert took as long as running it (0.23 of 0.54 ms
	// for 4 callbacks). Its plan does not depend on the parameters: one
	// generic plan per connection serves, with sequential scans off so that
	// a plan made while the table was tiny still looks numbers up in
	// callbacks_active_number once it has grown. Both settings end with the
	// transaction.
	b.Queue(genericPlanSQL)
	// Statements of one batch run in one implicit transaction; the locks are
	// taken in a fixed order so that two writers cannot deadlock.
	b.Queue(`SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT hashtextextended(x, 0) AS k FROM unnest($1::text[]) x ORDER BY 1) l`, locks)
	b.Queue(insertCallbacksSQL,
		uuidArgs(ids), tenants, services, vqs, phones, desired, immediate, offers, prio, langs, extra, ud, states, reasons,
		maxDials, retry, slots, hist, created, updated, rank, maxActive)
	br := s.pool.SendBatch(ctx, &b)
	defer br.Close() //nolint:errcheck // the error is read below
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("insert callbacks: plan settings: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("insert callbacks: lock numbers: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("insert callbacks: %w", err)
	}
	accepted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("insert callbacks: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("insert callbacks: %w", err)
	}
	out := make(map[CallbackID]bool, len(accepted))
	for _, id := range accepted {
		out[CallbackID(id)] = true
	}
	return out, nil
}

// uuidArg and uuidArgs convert ids for uuid parameters. pgx sends [16]byte
// values in binary; a string it would first try to encode in binary, fail,
// build an error that formats the whole value, and then send as text, which
// cost 2% of the appliance's CPU at 3,000 creates/s. Ids are validated (or
// generated) before they get here; one that is not a UUID becomes the nil
// UUID, which no row has.
func uuidArg(id string) uuid.UUID {
	u, err := uuid.Parse(id)
	if err != nil {
		return uuid.Nil
	}
	return u
}

func uuidArgs(ids []string) []uuid.UUID {
	out := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		out[i] = uuidArg(id)
	}
	return out
}

// validUUID reports whether id parses as a UUID (others cannot exist; skip the query).
func validUUID(id CallbackID) bool {
	_, err := uuid.Parse(string(id))
	return err == nil
}

// getMany reads the callbacks among ids (valid UUIDs), whatever their tenant.
func (s *store) getMany(ctx context.Context, ids []string) (map[CallbackID]*Callback, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+callbackCols+` FROM ges.callbacks WHERE id = ANY($1::uuid[])`, uuidArgs(ids))
	if err != nil {
		return nil, fmt.Errorf("get callbacks: %w", err)
	}
	defer rows.Close()
	out := make(map[CallbackID]*Callback, len(ids))
	for rows.Next() {
		c, err := scanCallback(rows)
		if err != nil {
			return nil, fmt.Errorf("get callbacks: %w", err)
		}
		out[c.ID] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get callbacks: %w", err)
	}
	return out, nil
}

// historyJSON is one history entry as a JSON array, ready for `history || $n`.
func historyJSON(st State, reason string, at time.Time) []byte {
	b, _ := json.Marshal([]HistoryEntry{{State: st, Reason: reason, At: at.UTC()}})
	return b
}

// markQueued moves due SCHEDULED callbacks to QUEUED and returns those it moved.
// The conditional update is what keeps two monitors from running one callback twice.
func (s *store) markQueued(ctx context.Context, ids []string, now time.Time) ([]*Callback, error) {
	rows, err := s.pool.Query(ctx, `UPDATE ges.callbacks SET state = 'QUEUED', updated_at = $2,
		history = history || $3::jsonb WHERE id = ANY($1::uuid[]) AND state = 'SCHEDULED' RETURNING `+callbackCols,
		uuidArgs(ids), now, historyJSON(StateQueued, "", now))
	if err != nil {
		return nil, fmt.Errorf("mark queued: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Callback, error) { return scanCallback(r) })
}

// waitingForORS returns the callbacks handed to ORS but not yet with an agent
// (QUEUED, ROUTING): what a lost NewCallbackStream would forget.
func (s *store) waitingForORS(ctx context.Context) ([]*Callback, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+callbackCols+` FROM ges.callbacks WHERE state IN ('QUEUED', 'ROUTING')`)
	if err != nil {
		return nil, fmt.Errorf("callbacks waiting for ORS: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Callback, error) { return scanCallback(r) })
}

// completeProcessing ends the PROCESSING callbacks among ids (every one when
// ids is nil) with AGENT_CONNECTED, and says how many.
func (s *store) completeProcessing(ctx context.Context, ids []string, now time.Time) (int64, error) {
	q := `UPDATE ges.callbacks SET state = 'COMPLETED', reason = $2, updated_at = $1,
		history = history || $3::jsonb WHERE state = 'PROCESSING'`
	args := []any{now, ReasonAgentConnected, historyJSON(StateCompleted, ReasonAgentConnected, now)}
	if ids != nil {
		q, args = q+` AND id = ANY($4::uuid[])`, append(args, uuidArgs(ids))
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("complete connected callbacks: %w", err)
	}
	return tag.RowsAffected(), nil
}

// unmarkQueued puts callbacks whose hand-over to ORS failed back to SCHEDULED.
func (s *store) unmarkQueued(ctx context.Context, ids []string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE ges.callbacks SET state = 'SCHEDULED', updated_at = $2,
		history = history || $3::jsonb WHERE id = ANY($1::uuid[]) AND state = 'QUEUED' AND ors_session_id = ''`,
		uuidArgs(ids), now, historyJSON(StateScheduled, "ORS_SUBMIT_FAILED", now))
	if err != nil {
		return fmt.Errorf("unmark queued: %w", err)
	}
	return nil
}

// complete moves a live callback to COMPLETED with reason, returning it as it was
// before. PROCESSING and COMPLETED callbacks are refused with a 400.
func (s *store) complete(ctx context.Context, tenant TenantID, id CallbackID, reason string, now time.Time) (*Callback, error) {
	if !validUUID(id) {
		return nil, ErrNotFound
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("cancel callback: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after commit this is a no-op
	c, err := scanCallback(tx.QueryRow(ctx, `SELECT `+callbackCols+` FROM ges.callbacks WHERE id = $1::uuid AND tenant = $2 FOR UPDATE`,
		uuidArg(string(id)), string(tenant)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cancel callback: %w", err)
	}
	switch c.State {
	case StateProcessing:
		return nil, invalidf("callback %s is PROCESSING (an agent is handling it) and cannot be cancelled", id)
	case StateCompleted:
		return nil, invalidf("callback %s is already COMPLETED (%s) and cannot be cancelled", id, c.Reason)
	}
	if _, err := tx.Exec(ctx, `UPDATE ges.callbacks SET state = 'COMPLETED', reason = $2, updated_at = $3,
		history = history || $4::jsonb WHERE id = $1::uuid`, uuidArg(string(id)), reason, now, historyJSON(StateCompleted, reason, now)); err != nil {
		return nil, fmt.Errorf("cancel callback: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("cancel callback: %w", err)
	}
	return c, nil
}

// StateReport is an ORS state report (contract 8).
type StateReport struct {
	State           State     `json:"state"`
	Reason          string    `json:"reason"`
	ORSSessionID    string    `json:"orsSessionId"`
	PositionInQueue *int      `json:"positionInQueue"`
	EstimatedWait   *int      `json:"estimatedWaitTime"`
	DialAttempts    *int      `json:"dialAttempts"`
	AgentDN         string    `json:"agentDn"`
	At              time.Time `json:"at"`
	// Released (with state QUEUED): the ORS session no longer holds the
	// callback (Redis lost its stream entry); GES hands it over again.
	Released bool `json:"released"`
}

// reportJob is one ORS state report waiting for the report writer; the
// updated callback is left in out.
type reportJob struct {
	id   CallbackID
	r    StateReport
	want bool // the caller reads out; otherwise only the outcome is needed
	out  *Callback
}

// queuedAmong returns which of ids are QUEUED in PostgreSQL, with their rows
// when full (nil values otherwise).
func (s *store) queuedAmong(ctx context.Context, ids []string, full bool) (map[CallbackID]*Callback, error) {
	// The state is compared here, not in SQL: "AND state = 'QUEUED'" lets the
	// planner AND the primary key with the partial index of waiting callbacks,
	// which reads every waiting callback to find a few.
	if full {
		all, err := s.getMany(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("state report: %w", err)
		}
		for id, c := range all {
			if c.State != StateQueued {
				delete(all, id)
			}
		}
		return all, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id::text, state FROM ges.callbacks WHERE id = ANY($1::uuid[])`, uuidArgs(ids))
	if err != nil {
		return nil, fmt.Errorf("state report: %w", err)
	}
	defer rows.Close()
	out := make(map[CallbackID]*Callback, len(ids))
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			return nil, fmt.Errorf("state report: %w", err)
		}
		if State(state) == StateQueued {
			out[CallbackID(id)] = nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state report: %w", err)
	}
	return out, nil
}

// applyReports records a batch of ORS state reports, one UPDATE per round
// (normally one): reports for the same callback apply in order, one per round.
// Each job gets nil (its out set), ErrNotFound or ErrCompleted; a store failure
// fails the whole batch.
func (s *store) applyReports(ctx context.Context, jobs []*reportJob, now time.Time) ([]error, error) {
	errs := make([]error, len(jobs))
	var pending []int
	for i, j := range jobs {
		if !validUUID(j.id) {
			errs[i] = ErrNotFound
			continue
		}
		pending = append(pending, i)
	}
	for len(pending) > 0 {
		var round, later []int
		seen := map[CallbackID]bool{}
		for _, i := range pending {
			if seen[jobs[i].id] {
				later = append(later, i)
				continue
			}
			seen[jobs[i].id] = true
			round = append(round, i)
		}
		if err := s.applyRound(ctx, jobs, round, errs, now); err != nil {
			return nil, err
		}
		pending = later
	}
	return errs, nil
}

// applyRound applies reports for distinct callbacks in one UPDATE. The row's
// new values are computed in SQL from its current ones, so no row is read
// first; the history entry is appended only when the state changes.
func (s *store) applyRound(ctx context.Context, jobs []*reportJob, round []int, errs []error, now time.Time) error {
	n := len(round)
	var (
		ids, states, reasons, ors, dns, hist = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		pos, ewt, dials                      = make([]*int32, n), make([]*int32, n), make([]*int32, n)
		released                             = make([]bool, n)
	)
	opt := func(p *int) *int32 {
		if p == nil {
			return nil
		}
		v := int32(*p)
		return &v
	}
	for k, i := range round {
		r := jobs[i].r
		at := r.At
		if at.IsZero() {
			at = now
		}
		ids[k], states[k], reasons[k], ors[k], dns[k] = string(jobs[i].id), string(r.State), r.Reason, r.ORSSessionID, r.AgentDN
		e, err := json.Marshal(HistoryEntry{State: r.State, Reason: r.Reason, At: at.UTC()})
		if err != nil {
			return fmt.Errorf("state report: %w", err)
		}
		hist[k] = "[" + string(e) + "]"
		pos[k], ewt[k], dials[k] = opt(r.PositionInQueue), opt(r.EstimatedWait), opt(r.DialAttempts)
		released[k] = r.Released
	}
	// The updated rows are read back only when a caller wants them (the
	// HTTP endpoint answers with the record; the in-process reporter does not).
	returning := "c.id::text"
	for _, i := range round {
		if jobs[i].want {
			returning = prefixed("c.", callbackCols)
			break
		}
	}
	rows, err := s.pool.Query(ctx, `UPDATE ges.callbacks AS c SET
		history = CASE WHEN u.state <> c.state THEN c.history || u.hist::jsonb ELSE c.history END,
		state = u.state,
		reason = CASE WHEN u.state = 'COMPLETED' THEN u.reason ELSE c.reason END,
		ors_session_id = CASE WHEN u.released THEN '' ELSE COALESCE(NULLIF(u.ors, ''), c.ors_session_id) END,
		position_in_queue = COALESCE(u.pos, c.position_in_queue),
		estimated_wait = COALESCE(u.ewt, c.estimated_wait),
		dial_attempts = COALESCE(u.dials, c.dial_attempts),
		agent_dn = COALESCE(NULLIF(u.dn, ''), c.agent_dn),
		updated_at = $10
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::text[], $9::text[], $11::bool[])
		AS u(id, state, reason, ors, pos, ewt, dials, dn, hist, released)
	WHERE c.id = u.id AND c.state <> 'COMPLETED'
		AND NOT (c.state = 'PROCESSING' AND u.state IN ('SCHEDULED', 'QUEUED', 'ROUTING'))
		-- A session giving a callback back speaks only for itself: another
		-- session may be routing it since.
		AND NOT (u.released AND COALESCE(c.ors_session_id, '') NOT IN ('', u.ors))
	RETURNING `+returning, uuidArgs(ids), states, reasons, ors, pos, ewt, dials, dns, hist, now, released)
	if err != nil {
		return fmt.Errorf("state report: %w", err)
	}
	updated, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Callback, error) {
		if returning == "c.id::text" {
			var id string
			err := r.Scan(&id)
			return &Callback{ID: CallbackID(id)}, err
		}
		return scanCallback(r)
	})
	if err != nil {
		return fmt.Errorf("state report: %w", err)
	}
	byID := make(map[CallbackID]*Callback, len(updated))
	for _, c := range updated {
		byID[c.ID] = c
	}
	var missing, stale []string
	for _, i := range round {
		if c := byID[jobs[i].id]; c != nil {
			jobs[i].out = c
			continue
		}
		missing = append(missing, string(jobs[i].id))
		if !jobs[i].r.Released { // a give-back says nothing of the call of another session
			stale = append(stale, string(jobs[i].id))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// A callback goes from PROCESSING only to COMPLETED. An earlier state
	// comes from a second ORS session: one that took the callback over from
	// an ORS that died with its call (a shared Redis kept the stream entry
	// pending). That call is over; its customer had reached an agent. The
	// callback is completed so, and the new session gets 409 and stops
	// rather than call the customer again.
	if len(stale) > 0 { // nil ids would complete every PROCESSING callback
		if _, err := s.completeProcessing(ctx, stale, now); err != nil {
			return fmt.Errorf("state report: %w", err)
		}
	}
	// Not updated: finished already, or unknown.
	rows, err = s.pool.Query(ctx, `SELECT `+callbackCols+` FROM ges.callbacks WHERE id = ANY($1::uuid[])`, uuidArgs(missing))
	if err != nil {
		return fmt.Errorf("state report: %w", err)
	}
	done, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Callback, error) { return scanCallback(r) })
	if err != nil {
		return fmt.Errorf("state report: %w", err)
	}
	for _, c := range done {
		byID[c.ID] = c
	}
	for _, i := range round {
		if jobs[i].out != nil {
			continue
		}
		if c := byID[jobs[i].id]; c != nil {
			jobs[i].out, errs[i] = c, ErrCompleted
		} else {
			errs[i] = ErrNotFound
		}
	}
	return nil
}

// prefixed qualifies each column of a callbackCols-style list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// purge deletes callbacks whose desired time is before cutoff and call-in
// requests that expired before it; it returns how many callbacks went and
// their ids. Their queue state fields go with them: a field normally goes when
// its callback leaves QUEUED, but a report racing that change can leave one.
func (s *store) purge(ctx context.Context, cutoff time.Time) (n int64, ids []CallbackID, err error) {
	rows, err := s.pool.Query(ctx, `DELETE FROM ges.callbacks WHERE desired_time < $1 RETURNING id::text`, cutoff)
	if err != nil {
		return 0, nil, fmt.Errorf("purge callbacks: %w", err)
	}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		ids = append(ids, CallbackID(id))
		return nil
	}); err != nil {
		return 0, nil, fmt.Errorf("purge callbacks: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM ges.callin_requests WHERE expires_at < $1`, cutoff); err != nil {
		return 0, nil, fmt.Errorf("purge call-in requests: %w", err)
	}
	return int64(len(ids)), ids, nil
}

// scheduled returns the id and due time of every SCHEDULED callback (for the
// index rebuild), or of those due before dueBefore unless it is zero.
func (s *store) scheduled(ctx context.Context, dueBefore time.Time) (ids []string, due []time.Time, err error) {
	q, args := `SELECT id::text, desired_time FROM ges.callbacks WHERE state = 'SCHEDULED'`, []any(nil)
	if !dueBefore.IsZero() {
		q, args = q+` AND desired_time < $1`, []any{dueBefore}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list scheduled: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var t time.Time
		if err := rows.Scan(&id, &t); err != nil {
			return nil, nil, fmt.Errorf("list scheduled: %w", err)
		}
		ids, due = append(ids, id), append(due, t)
	}
	return ids, due, rows.Err()
}

// queuedBefore returns the ids of the callbacks QUEUED since before cutoff.
func (s *store) queuedBefore(ctx context.Context, cutoff time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM ges.callbacks WHERE state = 'QUEUED' AND updated_at < $1`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("list queued callbacks: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list queued callbacks: %w", err)
	}
	return ids, nil
}

// unfinishedBefore lists the callbacks with a desired time before cutoff that
// have not reached PROCESSING or COMPLETED (the purge ends them first).
func (s *store) unfinishedBefore(ctx context.Context, cutoff time.Time) (tenants []TenantID, ids []CallbackID, err error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant, id::text FROM ges.callbacks
		WHERE desired_time < $1 AND state IN ('SCHEDULED', 'QUEUED', 'ROUTING')`, cutoff)
	if err != nil {
		return nil, nil, fmt.Errorf("list unfinished callbacks: %w", err)
	}
	var tenant, id string
	if _, err := pgx.ForEachRow(rows, []any{&tenant, &id}, func() error {
		tenants, ids = append(tenants, TenantID(tenant)), append(ids, CallbackID(id))
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("list unfinished callbacks: %w", err)
	}
	return tenants, ids, nil
}

// slotBooking is how many live bookings one slot holds.
type slotBooking struct {
	tenant  TenantID
	service string
	start   time.Time
	count   int
}

// slotBookings counts bookings per slot from since on (counter rebuild); cancelled
// callbacks free their place.
func (s *store) slotBookings(ctx context.Context, since time.Time) ([]slotBooking, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant, service, slot_start, count(*) FROM ges.callbacks
		WHERE slot_start >= $1 AND reason NOT IN ('CANCELLED', 'CANCELLED_BY_ADMIN') GROUP BY 1, 2, 3`, since)
	if err != nil {
		return nil, fmt.Errorf("count slot bookings: %w", err)
	}
	defer rows.Close()
	var out []slotBooking
	for rows.Next() {
		var b slotBooking
		if err := rows.Scan(&b.tenant, &b.service, &b.start, &b.count); err != nil {
			return nil, fmt.Errorf("count slot bookings: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// waitingCounts counts callbacks waiting for an agent in each of vqs (one
// query; a VQ without any is absent).
func (s *store) waitingCounts(ctx context.Context, tenant TenantID, vqs []string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT virtual_queue, count(*) FROM ges.callbacks WHERE tenant = $1
		AND virtual_queue = ANY($2) AND state IN ('QUEUED', 'ROUTING') GROUP BY 1`, string(tenant), vqs)
	if err != nil {
		return nil, fmt.Errorf("count waiting callbacks: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int, len(vqs))
	for rows.Next() {
		var vq string
		var n int
		if err := rows.Scan(&vq, &n); err != nil {
			return nil, fmt.Errorf("count waiting callbacks: %w", err)
		}
		out[vq] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count waiting callbacks: %w", err)
	}
	return out, nil
}

// liveSizes counts live callbacks per tenant and state (ges_monitor_size).
func (s *store) liveSizes(ctx context.Context) (map[[2]string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant, state, count(*) FROM ges.callbacks WHERE state <> 'COMPLETED' GROUP BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("count live callbacks: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]int{}
	for rows.Next() {
		var t, st string
		var n int
		if err := rows.Scan(&t, &st, &n); err != nil {
			return nil, fmt.Errorf("count live callbacks: %w", err)
		}
		out[[2]string{t, st}] = n
	}
	return out, rows.Err()
}

// likeEscape escapes LIKE metacharacters in a user search string.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
