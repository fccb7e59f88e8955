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

// copyCols names the columns written by insertBatch, in value order.
var copyCols = []string{"id", "tenant", "service", "virtual_queue", "phone_number", "desired_time", "immediate",
	"offer_type", "priority", "language", "extra", "user_data", "state", "reason", "max_dial_attempts",
	"retry_delay_sec", "slot_start", "history", "created_at", "updated_at"}

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

// insertBatch writes new callbacks with COPY inside tx.
func (s *store) insertBatch(ctx context.Context, tx pgx.Tx, cbs []*Callback) error {
	rows := make([][]any, 0, len(cbs))
	for _, c := range cbs {
		id, err := uuid.Parse(string(c.ID))
		if err != nil {
			return fmt.Errorf("insert callback: id %q: %w", c.ID, err)
		}
		extra, err := jsonOrNil(c.Extra)
		if err != nil {
			return fmt.Errorf("insert callback %s: %w", c.ID, err)
		}
		ud, err := jsonOrNil(c.UserData)
		if err != nil {
			return fmt.Errorf("insert callback %s: %w", c.ID, err)
		}
		hist, err := json.Marshal(c.History)
		if err != nil {
			return fmt.Errorf("insert callback %s: %w", c.ID, err)
		}
		var extraV, udV any
		if extra != nil {
			extraV = json.RawMessage(extra)
		}
		if ud != nil {
			udV = json.RawMessage(ud)
		}
		rows = append(rows, []any{[16]byte(id), string(c.Tenant), c.Service, c.VirtualQueue, c.PhoneNumber,
			c.DesiredTime, c.Immediate, c.OfferType, c.Priority, c.Language, extraV, udV, string(c.State), c.Reason,
			int32(c.MaxDialAttempts), int32(c.RetryDelaySec), c.SlotStart, json.RawMessage(hist), c.CreatedAt, c.UpdatedAt})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"ges", "callbacks"}, copyCols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("insert callbacks: %w", err)
	}
	return nil
}

// activeCounts returns, per (tenant, number), how many callbacks are not COMPLETED.
func (s *store) activeCounts(ctx context.Context, tx pgx.Tx, keys [][2]string) (map[[2]string]int, error) {
	tenants := make([]string, len(keys))
	numbers := make([]string, len(keys))
	for i, k := range keys {
		tenants[i], numbers[i] = k[0], k[1]
	}
	rows, err := tx.Query(ctx, `SELECT c.tenant, c.phone_number, count(*) FROM ges.callbacks c
		JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS k(tenant, phone) ON c.tenant = k.tenant AND c.phone_number = k.phone
		WHERE c.state <> 'COMPLETED' GROUP BY 1, 2`, tenants, numbers)
	if err != nil {
		return nil, fmt.Errorf("count active callbacks: %w", err)
	}
	out := map[[2]string]int{}
	for rows.Next() {
		var t, n string
		var cnt int
		if err := rows.Scan(&t, &n, &cnt); err != nil {
			return nil, fmt.Errorf("count active callbacks: %w", err)
		}
		out[[2]string{t, n}] = cnt
	}
	return out, rows.Err()
}

// validUUID reports whether id parses as a UUID (others cannot exist; skip the query).
func validUUID(id CallbackID) bool {
	_, err := uuid.Parse(string(id))
	return err == nil
}

// get returns one callback; tenant "" matches any tenant (ORS reports).
func (s *store) get(ctx context.Context, tenant TenantID, id CallbackID) (*Callback, error) {
	if !validUUID(id) {
		return nil, ErrNotFound
	}
	row := s.pool.QueryRow(ctx, `SELECT `+callbackCols+` FROM ges.callbacks WHERE id = $1::uuid AND ($2 = '' OR tenant = $2)`,
		string(id), string(tenant))
	c, err := scanCallback(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get callback: %w", err)
	}
	return c, nil
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
		ids, now, historyJSON(StateQueued, "", now))
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

// unmarkQueued puts callbacks whose hand-over to ORS failed back to SCHEDULED.
func (s *store) unmarkQueued(ctx context.Context, ids []string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE ges.callbacks SET state = 'SCHEDULED', updated_at = $2,
		history = history || $3::jsonb WHERE id = ANY($1::uuid[]) AND state = 'QUEUED' AND ors_session_id = ''`,
		ids, now, historyJSON(StateScheduled, "ORS_SUBMIT_FAILED", now))
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
		string(id), string(tenant)))
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
		history = history || $4::jsonb WHERE id = $1::uuid`, string(id), reason, now, historyJSON(StateCompleted, reason, now)); err != nil {
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
}

// applyReport records an ORS state report; ErrCompleted when the callback is already finished.
func (s *store) applyReport(ctx context.Context, id CallbackID, r StateReport, now time.Time) (*Callback, error) {
	if !validUUID(id) {
		return nil, ErrNotFound
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("state report: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after commit this is a no-op
	c, err := scanCallback(tx.QueryRow(ctx, `SELECT `+callbackCols+` FROM ges.callbacks WHERE id = $1::uuid FOR UPDATE`, string(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("state report: %w", err)
	}
	if c.State == StateCompleted {
		return c, ErrCompleted
	}
	at := r.At
	if at.IsZero() {
		at = now
	}
	if r.State != "" && r.State != c.State {
		c.History = append(c.History, HistoryEntry{State: r.State, Reason: r.Reason, At: at.UTC()})
		c.State = r.State
	}
	if c.State == StateCompleted {
		c.Reason = r.Reason
	}
	if r.ORSSessionID != "" {
		c.ORSSessionID = r.ORSSessionID
	}
	if r.PositionInQueue != nil {
		c.PositionInQueue = *r.PositionInQueue
	}
	if r.EstimatedWait != nil {
		c.EstimatedWait = *r.EstimatedWait
	}
	if r.DialAttempts != nil {
		c.DialAttempts = *r.DialAttempts
	}
	if r.AgentDN != "" {
		c.AgentDN = r.AgentDN
	}
	c.UpdatedAt = now
	hist, err := json.Marshal(c.History)
	if err != nil {
		return nil, fmt.Errorf("state report: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE ges.callbacks SET state = $2, reason = $3, ors_session_id = $4, position_in_queue = $5,
		estimated_wait = $6, dial_attempts = $7, agent_dn = $8, history = $9::jsonb, updated_at = $10 WHERE id = $1::uuid`,
		string(id), string(c.State), c.Reason, c.ORSSessionID, c.PositionInQueue, c.EstimatedWait, c.DialAttempts,
		c.AgentDN, hist, now); err != nil {
		return nil, fmt.Errorf("state report: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("state report: %w", err)
	}
	return c, nil
}

// purge deletes callbacks whose desired time is before cutoff and call-in
// requests that expired before it; it returns how many callbacks went.
func (s *store) purge(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM ges.callbacks WHERE desired_time < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("purge callbacks: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM ges.callin_requests WHERE expires_at < $1`, cutoff); err != nil {
		return 0, fmt.Errorf("purge call-in requests: %w", err)
	}
	return tag.RowsAffected(), nil
}

// scheduled returns every SCHEDULED callback's id and due time (index rebuild).
func (s *store) scheduled(ctx context.Context) (ids []string, due []time.Time, err error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text, desired_time FROM ges.callbacks WHERE state = 'SCHEDULED'`)
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

// waitingCount counts callbacks waiting for an agent in a virtual queue.
func (s *store) waitingCount(ctx context.Context, tenant TenantID, vq string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM ges.callbacks WHERE tenant = $1 AND virtual_queue = $2
		AND state IN ('QUEUED', 'ROUTING')`, string(tenant), vq).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count waiting callbacks: %w", err)
	}
	return n, nil
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
