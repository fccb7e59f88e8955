package ges

import (
	"context"
	"errors"
	"fmt"
	"github.com/google/uuid"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestPurgeAfter14Days(t *testing.T) {
	e := newEnv(t)
	old := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550100"})
	pos := 1
	if err := e.svc.ApplyReport(context.Background(), old, StateReport{State: StateQueued, PositionInQueue: &pos}); err != nil {
		t.Fatal(err)
	}
	later := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550101",
		"desiredTime": e.clk.Now().Add(48 * time.Hour).Format(time.RFC3339)})
	e.clk.Advance(14*24*time.Hour - time.Minute)
	e.svc.Wake()
	e.svc.purgeOnce(context.Background()) // deterministic: the loop may not have run yet
	e.retrieve(old)                       // still there one minute before 14 days
	e.clk.Advance(2 * time.Minute)
	e.svc.Wake()
	waitFor(t, "purge", func() bool {
		return e.api("POST", "/engagement/v3/callbacks/retrieve", map[string]any{"id": old}).code == 404
	})
	// The purge drops the queue state right after it deletes the rows.
	waitFor(t, "queue state of the purged callback dropped", func() bool { return e.mr.HGet(liveHash, string(old)) == "" })
	// ORS, which still had it in its queue, is told to drop it, as for a cancel.
	cancelled := false
	for _, m := range e.streamEntries() {
		if cb, _ := m.Values["callback"].(string); strings.Contains(cb, `"cancel"`) && strings.Contains(cb, string(old)) {
			cancelled = true
		}
	}
	if !cancelled {
		t.Fatalf("no cancel entry on the stream for the callback still QUEUED at the end of retention")
	}
	// The scheduled one came due while the clock moved.
	waitFor(t, "later callback QUEUED", func() bool { return e.retrieve(later)["callbackState"] == "QUEUED" })
}

func TestRestartLosesNothing(t *testing.T) {
	e := newEnv(t)
	due := e.clk.Now().Add(2 * time.Hour)
	var ids []CallbackID
	for i := range 3 {
		ids = append(ids, e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": fmt.Sprintf("+1202555010%d", i),
			"desiredTime": due.Format(time.RFC3339)}))
	}
	ctx := context.Background()
	if err := e.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e.mr.FlushAll() // Redis restarts empty
	svc2 := e.newService()
	av, err := svc2.Availability(ctx, demoTenant, "CB_Support", AvailabilityQuery{Start: due, End: due.Add(time.Minute)})
	if err != nil || len(av.Slots) != 1 || av.Slots[0].Capacity != 2 {
		t.Fatalf("slot counter after rebuild = %+v %v, want 2 left", av, err)
	}
	e.clk.Advance(2*time.Hour + time.Second)
	svc2.Wake()
	for _, id := range ids {
		waitFor(t, "queued after restart", func() bool {
			c, err := svc2.Get(ctx, demoTenant, id)
			return err == nil && c.State == StateQueued
		})
	}
	if n := len(e.streamEntries()); n != 3 {
		t.Fatalf("stream entries = %d, want 3", n)
	}
	// Redis emptied while running: the monitor notices and rebuilds.
	later := e.create2(svc2, e.clk.Now().Add(time.Hour))
	e.mr.FlushAll()
	svc2.Wake()
	waitFor(t, "index rebuilt", func() bool { return e.mr.Exists(builtKey) })
	if s, _ := e.mr.ZScore(dueKey, string(later)); s == 0 {
		t.Fatal("rebuilt index lacks the scheduled callback")
	}
}

// A callback whose call was up (PROCESSING) when the process died, taking its
// embedded Redis and its calls along, is completed at the next start: no
// report will ever end it, it cannot be cancelled, and running it again would
// call a customer who already reached an agent.
func TestLostCallCompletedAtRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	talking := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550100"})
	routed := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550101"})
	for _, r := range []struct {
		id CallbackID
		st State
	}{{talking, StateRouting}, {talking, StateProcessing}, {routed, StateRouting}} {
		if err := e.svc.ApplyReport(ctx, r.id, StateReport{State: r.st, AgentDN: "7001"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e.mr.FlushAll() // the embedded Redis died with the process
	svc2 := e.newService()
	got, err := svc2.Get(ctx, demoTenant, talking)
	if err != nil || got.State != StateCompleted || got.Reason != ReasonAgentConnected {
		t.Fatalf("the PROCESSING callback after the restart: %+v %v, want COMPLETED (AGENT_CONNECTED)", got, err)
	}
	if last := got.History[len(got.History)-1]; last.State != StateCompleted || last.Reason != ReasonAgentConnected {
		t.Errorf("last history entry %+v, want COMPLETED AGENT_CONNECTED", last)
	}
	if c, err := svc2.Get(ctx, demoTenant, routed); err != nil || c.State != StateRouting {
		t.Fatalf("the ROUTING callback after the restart: %+v %v; it waits for ORS again", c, err)
	}
	for _, m := range e.streamEntries() {
		if id := entryOf(t, m)["id"]; id == string(talking) {
			t.Fatalf("the completed callback was handed to ORS again: %v", entryOf(t, m))
		}
	}
	if len(e.streamEntries()) != 1 {
		t.Fatalf("stream entries after the restart: %d, want 1 (the ROUTING callback)", len(e.streamEntries()))
	}
}

// A second ORS session for a callback already PROCESSING (it took the stream
// entry over from an ORS that died with the call) is refused with 409, and
// the callback is completed rather than run again.
func TestSecondORSSessionForAConnectedCallback(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550100"})
	for _, st := range []State{StateRouting, StateProcessing} {
		if err := e.svc.ApplyReport(ctx, id, StateReport{State: st, AgentDN: "7001"}); err != nil {
			t.Fatal(err)
		}
	}
	pos := 1
	if r := e.report(id, "ors_client", map[string]any{"state": "QUEUED", "positionInQueue": pos, "orsSessionId": "second"}); r.code != http.StatusConflict {
		t.Fatalf("QUEUED report for a PROCESSING callback: %d %s, want 409", r.code, r.Status.Message)
	}
	got := e.retrieve(id)
	if got["callbackState"] != "COMPLETED" || got["callbackReason"] != ReasonAgentConnected {
		t.Fatalf("callback after a second ORS session: %v (%v), want COMPLETED (AGENT_CONNECTED)", got["callbackState"], got["callbackReason"])
	}
	// The same session's own reports still apply: PROCESSING again is no change.
	id2 := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550101"})
	for _, st := range []State{StateRouting, StateProcessing, StateProcessing, StateCompleted} {
		if err := e.svc.ApplyReport(ctx, id2, StateReport{State: st, Reason: map[bool]string{true: ReasonAgentConnected}[st == StateCompleted]}); err != nil {
			t.Fatalf("report %s: %v", st, err)
		}
	}
}

// create2 books a scheduled callback directly on svc.
func (e *env) create2(svc *Service, at time.Time) CallbackID {
	e.t.Helper()
	id, err := svc.Create(context.Background(), demoTenant, CreateRequest{ServiceName: "CB_Support", PhoneNumber: "+12025550107", DesiredTime: &at})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestTwoMonitorsNeverDoubleRun(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxActivePerNumber: 1000, PollInterval: 5 * time.Millisecond}))
	other := e.newService()
	due := e.clk.Now().Add(time.Hour)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := e.svc
			if i%2 == 1 {
				svc = other
			}
			at := due.Add(time.Duration(i%7) * time.Second)
			if _, err := svc.Create(context.Background(), demoTenant, CreateRequest{ServiceName: "CB_Support",
				PhoneNumber: fmt.Sprintf("+1202555%04d", i), DesiredTime: &at}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Capacity 5 per slot spreads the 200 bookings over later slots; move past them all.
	e.clk.Advance(2 * 24 * time.Hour)
	e.svc.Wake()
	other.Wake()
	waitFor(t, "all dispatched", func() bool { return len(e.streamEntries()) >= n })
	// Let both monitors run a few more rounds; nothing may be sent twice.
	for range 5 {
		e.svc.Wake()
		other.Wake()
		e.svc.dispatchDue(context.Background())
		other.dispatchDue(context.Background())
	}
	seen := map[string]int{}
	for _, m := range e.streamEntries() {
		seen[entryOf(t, m)["id"].(string)]++
	}
	if len(seen) != n {
		t.Fatalf("distinct callbacks started = %d, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("callback %s started %d times", id, c)
		}
	}
}

// A node that dies between PostgreSQL and Redis while Redis lives on (an
// external Redis shared by several nodes) strands callbacks: claimed from the
// due index but still SCHEDULED, or QUEUED without a start entry on the
// stream. The surviving node hands each over exactly once, after
// StrandedAfter, and leaves a hand-over younger than that to the node doing it.
func TestStrandedCallbacksAreHandedOverOnce(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxActivePerNumber: 1000}))
	ctx := context.Background()
	due := e.clk.Now().Add(time.Hour)
	claimed := e.create2(e.svc, due) // claimed by the dead node, never marked QUEUED
	unsent := e.create2(e.svc, due)  // marked QUEUED, start entry never added
	handed := e.create2(e.svc, due)  // handed over normally
	back := e.create2(e.svc, due)    // handed over, routed, then back in ORS's queue
	for _, id := range []CallbackID{claimed, unsent, handed, back} {
		if _, err := e.mr.ZRem(dueKey, string(id)); err != nil { // the dead node's claim
			t.Fatal(err)
		}
	}
	e.clk.Set(due)
	for _, id := range []CallbackID{unsent, handed, back} {
		cbs, err := e.svc.st.markQueued(ctx, []string{string(id)}, e.clk.Now())
		if err != nil || len(cbs) != 1 {
			t.Fatalf("mark queued: %d %v", len(cbs), err)
		}
		if id != unsent {
			e.svc.handOver(ctx, cbs, e.clk.Now())
		}
	}
	for _, st := range []State{StateRouting, StateQueued} {
		if err := e.svc.ApplyReport(ctx, back, StateReport{State: st}); err != nil {
			t.Fatalf("report %s: %v", st, err)
		}
	}
	// An ASAP create committed to PostgreSQL; the node died before the stream.
	asap := func() CallbackID {
		now := e.clk.Now()
		c := &Callback{ID: CallbackID(uuid.NewString()), Tenant: demoTenant, Service: "CB_Support", VirtualQueue: "VQ_Support",
			PhoneNumber: "+12025550188", Immediate: true, OfferType: OfferASAP, Language: "en-US", State: StateQueued,
			MaxDialAttempts: 1, CreatedAt: now, UpdatedAt: now, DesiredTime: now}
		if ok, err := e.svc.st.insertBatch(ctx, []*Callback{c}, 1000); err != nil || !ok[c.ID] {
			t.Fatalf("insert: %v %v", ok, err)
		}
		return c.ID
	}
	created := asap()
	starts := func() map[string]int {
		n := map[string]int{}
		for _, m := range e.streamEntries() {
			if v := entryOf(t, m); v["action"] == "start" {
				n[v["id"].(string)]++
			}
		}
		return n
	}

	// Within StrandedAfter a living node may still be between the stores.
	e.svc.recoverStranded(ctx)
	if got := starts(); len(got) != 2 || got[string(handed)] != 1 || got[string(back)] != 1 {
		t.Fatalf("start entries before StrandedAfter = %v, want only the two handed over", got)
	}

	e.clk.Advance(time.Minute + time.Second)
	young := asap() // stranded only a moment ago
	for range 3 {   // recovery, then rounds that must not send anything again
		e.svc.recoverStranded(ctx)
		e.svc.dispatchDue(ctx)
	}
	got := starts()
	for _, id := range []CallbackID{claimed, unsent, handed, back, created} {
		if got[string(id)] != 1 {
			t.Errorf("callback %s: %d start entries, want 1 (all: %v)", id, got[string(id)], got)
		}
		if st := e.retrieve(id)["callbackState"]; st != "QUEUED" {
			t.Errorf("callback %s is %v, want QUEUED", id, st)
		}
	}
	if got[string(young)] != 0 {
		t.Errorf("a callback QUEUED %s ago was handed over again; the node doing it may still be alive", time.Second)
	}
}

// TestRedisBudgetPerCallback measures Redis commands from create to COMPLETED for
// an immediate callback, and per-callback storage in Redis and PostgreSQL.
func TestRedisBudgetPerCallback(t *testing.T) {
	e := newEnv(t, withConfig(Config{PollInterval: time.Hour, MaxActivePerNumber: 1000}))
	ctx := context.Background()
	e.svc.dispatchDue(ctx) // settle start-up traffic
	const n = 20
	before := e.mr.CommandCount()
	for i := range n {
		id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": fmt.Sprintf("+1202555%04d", i)})
		waitFor(t, "queued", func() bool { c, _ := e.svc.Get(ctx, demoTenant, id); return c.State == StateQueued })
		for _, st := range []string{"QUEUED", "ROUTING", "PROCESSING"} {
			e.report(id, "ors_client", map[string]any{"state": st})
		}
		e.report(id, "ors_client", map[string]any{"state": "COMPLETED", "reason": "AGENT_CONNECTED"})
	}
	perCallback := float64(e.mr.CommandCount()-before) / n
	t.Logf("redis commands per immediate callback: %.1f", perCallback)
	if perCallback > 20 {
		t.Fatalf("redis commands per callback = %.1f, budget 20", perCallback)
	}
	// Storage: scheduled callbacks without user data.
	const m = 500
	at := e.clk.Now().Add(24 * time.Hour)
	var pgBefore int64
	e.pool.QueryRow(ctx, `SELECT pg_total_relation_size('ges.callbacks')`).Scan(&pgBefore)
	memBefore := redisBytes(e)
	for i := range m {
		svcAt := at.Add(time.Duration(i%40) * 30 * time.Minute)
		if _, err := e.svc.Create(ctx, demoTenant, CreateRequest{ServiceName: "CB_Support",
			PhoneNumber: fmt.Sprintf("+1303555%04d", i), DesiredTime: &svcAt}); err != nil {
			t.Fatal(err)
		}
	}
	var pgAfter int64
	e.pool.Exec(ctx, `VACUUM ges.callbacks`)
	e.pool.QueryRow(ctx, `SELECT pg_total_relation_size('ges.callbacks')`).Scan(&pgAfter)
	pgPer := float64(pgAfter-pgBefore) / m
	redisPer := float64(redisBytes(e)-memBefore) / m
	t.Logf("storage per scheduled callback: postgres %.0f B, redis %.0f B", pgPer, redisPer)
	if pgPer > 2048 || redisPer > 1024 {
		t.Fatalf("storage per callback: postgres %.0f B (budget 2048), redis %.0f B (budget 1024)", pgPer, redisPer)
	}
}

// redisBytes approximates the data held in Redis: key names plus values/members.
func redisBytes(e *env) int {
	total := 0
	for _, k := range e.mr.Keys() {
		total += len(k)
		switch e.mr.Type(k) {
		case "string":
			v, _ := e.mr.Get(k)
			total += len(v) + 16
		case "zset":
			ms, _ := e.mr.ZMembers(k)
			for _, m := range ms {
				total += len(m) + 16
			}
		}
	}
	return total
}

// The create insert runs on one generic plan per connection. A plan made
// while the table is tiny and analyzed (a sequential scan is then cheapest)
// must still look a number's active callbacks up in callbacks_active_number,
// or every create would scan the table once it has grown.
func TestCreateInsertPlanUsesTheIndexFromATinyTable(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550140"})
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "ANALYZE ges.callbacks"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // nothing to keep
	if _, err := tx.Exec(ctx, genericPlanSQL); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "PREPARE create_insert AS "+insertCallbacksSQL); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, "EXPLAIN EXECUTE create_insert("+strings.Repeat("NULL, ", 21)+"3)")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "callbacks_active_number") || strings.Contains(plan, "Seq Scan on callbacks") {
		t.Fatalf("generic plan of the create insert on a tiny analyzed table:\n%s", plan)
	}
}

// A shared Redis emptied while a callback waits between dials loses its
// start entry and its queue mark: GES hands the callback over again, and the
// new entry carries the dials already made, so that ORS does not start the
// count over (maxDialAttempts bounds the dials of the callback, not of one
// hand-over).
func TestCallbackHandedOverAgainKeepsItsDialCount(t *testing.T) {
	e := newEnv(t, withConfig(Config{PollInterval: time.Hour, MaxActivePerNumber: 1000}))
	ctx := context.Background()
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550177"})
	waitFor(t, "queued", func() bool { c, _ := e.svc.Get(ctx, demoTenant, id); return c.State == StateQueued })
	one := 1
	for _, st := range []State{StateRouting, StateQueued} { // dialled once, busy, waiting to retry
		if err := e.svc.ApplyReport(ctx, id, StateReport{State: st, DialAttempts: &one, ORSSessionID: uuid.NewString()}); err != nil {
			t.Fatalf("report %s: %v", st, err)
		}
	}
	e.mr.FlushAll()
	e.clk.Advance(time.Minute + time.Second)
	e.svc.recoverStranded(ctx)
	var starts []map[string]any
	for _, m := range e.streamEntries() {
		if v := entryOf(t, m); v["action"] == "start" && v["id"] == string(id) {
			starts = append(starts, v)
		}
	}
	if len(starts) != 1 {
		t.Fatalf("%d start entries after Redis was emptied, want 1", len(starts))
	}
	if got := starts[0]["dialAttempts"]; got != float64(1) {
		t.Fatalf("dialAttempts in the new start entry = %v, want 1", got)
	}
}

// After Redis was emptied, a waiting ORS session's report wrote the queue
// mark again, and GES, seeing it, never handed the callback over again: once
// the session found its entry gone it ended, and the callback stayed QUEUED
// with no session anywhere. ORS now gives such a callback back (a QUEUED
// report marked released): GES drops the mark that session wrote, and its
// stranded scan hands the callback over again; a mark of another session
// stays.
func TestCallbackGivenBackByORSIsHandedOverAgain(t *testing.T) {
	e := newEnv(t, withConfig(Config{PollInterval: time.Hour, MaxActivePerNumber: 1000}))
	ctx := context.Background()
	queued := func(phone string) CallbackID {
		id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": phone})
		waitFor(t, "queued", func() bool { c, _ := e.svc.Get(ctx, demoTenant, id); return c.State == StateQueued })
		return id
	}
	stale, other, ringing := queued("+12025550171"), queued("+12025550172"), queued("+12025550173")
	one := 1
	if err := e.svc.ApplyReport(ctx, ringing, StateReport{State: StateRouting, DialAttempts: &one, ORSSessionID: "s-ring"}); err != nil {
		t.Fatal(err)
	}
	e.mr.FlushAll()
	pos := 1
	// Reports of sessions still in memory write marks again.
	for id, sess := range map[CallbackID]string{stale: "s-stale", other: "s-other", ringing: "s-ring"} {
		if err := e.svc.ApplyReport(ctx, id, StateReport{State: StateQueued, PositionInQueue: &pos, ORSSessionID: sess}); err != nil {
			t.Fatalf("report %s: %v", id, err)
		}
	}
	// stale's and ringing's sessions find their entries gone; other's mark
	// was written by a session other than the one giving it back.
	for id, sess := range map[CallbackID]string{stale: "s-stale", other: "s-gone", ringing: "s-ring"} {
		if err := e.svc.ApplyReport(ctx, id, StateReport{State: StateQueued, Released: true, ORSSessionID: sess}); err != nil {
			t.Fatalf("give back %s: %v", id, err)
		}
	}
	e.clk.Advance(time.Minute + time.Second)
	e.svc.recoverStranded(ctx)
	starts := map[string]int{}
	for _, m := range e.streamEntries() {
		if v := entryOf(t, m); v["action"] == "start" {
			starts[v["id"].(string)]++
		}
	}
	if starts[string(stale)] != 1 || starts[string(ringing)] != 1 || starts[string(other)] != 0 {
		t.Fatalf("start entries after the give-backs: %v (stale %s, ringing %s, other %s)", starts, stale, ringing, other)
	}
	if st := e.retrieve(ringing)["callbackState"]; st != "QUEUED" {
		t.Fatalf("a callback given back while ROUTING is %v, want QUEUED", st)
	}
	// Redis emptied again before the next session routed it: that session's
	// give-back is its own too (the row holds no session after a give-back).
	if err := e.svc.ApplyReport(ctx, ringing, StateReport{State: StateQueued, Released: true, ORSSessionID: "s-next"}); err != nil {
		t.Fatalf("second give-back: %v", err)
	}
}

// A give-back speaks only for the session that sends it: a stale session
// (Redis lost its entry) giving back a callback another session has taken
// since, and is routing or connected, changes nothing.
func TestGiveBackOfAnotherSessionsCallbackChangesNothing(t *testing.T) {
	e := newEnv(t, withConfig(Config{PollInterval: time.Hour, MaxActivePerNumber: 1000}))
	ctx := context.Background()
	var ids []CallbackID
	for i, st := range []State{StateRouting, StateProcessing} {
		id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": fmt.Sprintf("+1202555018%d", i)})
		waitFor(t, "queued", func() bool { c, _ := e.svc.Get(ctx, demoTenant, id); return c.State == StateQueued })
		for _, s := range []State{StateRouting, st} {
			if err := e.svc.ApplyReport(ctx, id, StateReport{State: s, ORSSessionID: "s-new"}); err != nil && s == st {
				t.Fatalf("report %s: %v", s, err)
			}
		}
		ids = append(ids, id)
	}
	for i, want := range []string{"ROUTING", "PROCESSING"} {
		err := e.svc.ApplyReport(ctx, ids[i], StateReport{State: StateQueued, Released: true, ORSSessionID: "s-stale"})
		if !errors.Is(err, ErrCompleted) {
			t.Errorf("give-back by a stale session of a %s callback: %v, want refused", want, err)
		}
		if st := e.retrieve(ids[i])["callbackState"]; st != want {
			t.Errorf("callback %s after the stale give-back, want %s", st, want)
		}
	}
}
