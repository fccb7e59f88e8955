package ges

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The per-number limit holds when creates for one number race through two
// services sharing PostgreSQL and Redis (two appliance nodes), and when several
// land in one group-commit batch.
func TestPerNumberLimitAcrossNodes(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxActivePerNumber: 3}))
	nodes := []*Service{e.svc, e.newService(), e.newService()}
	const numbers, each = 20, 9
	var ok [numbers]atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range numbers * each {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			num := i % numbers
			_, err := nodes[i%len(nodes)].Create(context.Background(), demoTenant,
				CreateRequest{ServiceName: "CB_Support", PhoneNumber: fmt.Sprintf("+1202555%04d", num)})
			switch {
			case err == nil:
				ok[num].Add(1)
			case errors.Is(err, ErrThrottled):
			default:
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	for num := range numbers {
		if got := ok[num].Load(); got != 3 {
			t.Errorf("number %d: %d callbacks accepted, want exactly the limit of 3", num, got)
		}
	}
}

// Within one group-commit batch the limit counts the batch's earlier
// callbacks for the number: with 1 already live and a limit of 3, the first
// two of five new ones for that number are stored, and a callback for
// another number in the same batch is not held back by them.
func TestPerNumberLimitWithinOneBatch(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxActivePerNumber: 3}))
	ctx := context.Background()
	e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550111"})
	now := e.clk.Now()
	cb := func(phone string) *Callback {
		return &Callback{ID: CallbackID(uuid.NewString()), Tenant: demoTenant, Service: "CB_Support", VirtualQueue: "VQ_Support",
			PhoneNumber: phone, Immediate: true, OfferType: OfferASAP, Language: "en-US", State: StateScheduled,
			MaxDialAttempts: 1, CreatedAt: now, UpdatedAt: now, DesiredTime: now}
	}
	batch := []*Callback{cb("+12025550111"), cb("+12025550111"), cb("+12025550222"), cb("+12025550111"), cb("+12025550111"), cb("+12025550111")}
	ok, err := e.svc.st.insertBatch(ctx, batch, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range batch {
		if want := i <= 2; ok[c.ID] != want {
			t.Errorf("callback %d of the batch (%s): stored %v, want %v", i, c.PhoneNumber, ok[c.ID], want)
		}
	}
}

// Reports for one callback that share a batch apply in order; unknown and
// finished callbacks get their own answers without failing the others.
func TestReportBatchAppliesInOrder(t *testing.T) {
	e := newEnv(t, withConfig(Config{PollInterval: time.Hour}))
	ctx := context.Background()
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550101"})
	done := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550102"})
	if _, err := e.svc.Report(ctx, done, StateReport{State: StateCompleted, Reason: "AGENT_CONNECTED"}); err != nil {
		t.Fatal(err)
	}
	pos := 4
	jobs := []*reportJob{
		{id: id, r: StateReport{State: StateQueued, ORSSessionID: "ors-1", PositionInQueue: &pos}},
		{id: "3b8f8a52-1111-4111-8111-111111111111", r: StateReport{State: StateRouting}},
		{id: id, r: StateReport{State: StateRouting, AgentDN: "7001"}, want: true},
		{id: done, r: StateReport{State: StateRouting}},
		{id: id, r: StateReport{State: StateProcessing}},
	}
	errs, err := e.svc.st.applyReports(ctx, jobs, e.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[1], ErrNotFound) || !errors.Is(errs[3], ErrCompleted) {
		t.Fatalf("unknown / finished = %v / %v, want not found / completed", errs[1], errs[3])
	}
	for _, i := range []int{0, 2, 4} {
		if errs[i] != nil {
			t.Fatalf("report %d: %v", i, errs[i])
		}
	}
	if got := jobs[2].out; got.State != StateRouting || got.AgentDN != "7001" || got.PositionInQueue != 4 {
		t.Fatalf("after the second report: %+v", got)
	}
	c, err := e.svc.Retrieve(ctx, demoTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	var states []State
	for _, h := range c.History {
		states = append(states, h.State)
	}
	want := []State{StateScheduled, StateQueued, StateRouting, StateProcessing}
	if c.State != StateProcessing || c.ORSSessionID != "ors-1" || c.AgentDN != "7001" || len(states) != len(want) {
		t.Fatalf("callback = state %s ors %q dn %q history %v; want PROCESSING, ors-1, 7001, %v", c.State, c.ORSSessionID, c.AgentDN, states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("history = %v, want %v", states, want)
		}
	}
}

// Reports that keep a callback QUEUED land in Redis, not in its row; reads
// show them; a state change writes the row, keeps the ORS session and drops
// the queue state, so a later re-queue shows its own position.
func TestQueueStateLivesInRedis(t *testing.T) {
	e := newEnv(t, withConfig(Config{PollInterval: time.Hour}))
	ctx := context.Background()
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550103"})
	var updatedAt time.Time
	row := func() (pos int, ors string) {
		t.Helper()
		if err := e.pool.QueryRow(ctx, `SELECT position_in_queue, ors_session_id, updated_at FROM ges.callbacks WHERE id = $1`, string(id)).
			Scan(&pos, &ors, &updatedAt); err != nil {
			t.Fatal(err)
		}
		return pos, ors
	}
	_, _ = row()
	created := updatedAt
	for _, p := range []int{5, 3} {
		pos, ewt := p, 10*p
		if err := e.svc.ApplyReport(ctx, id, StateReport{State: StateQueued, ORSSessionID: "ors-9", PositionInQueue: &pos, EstimatedWait: &ewt}); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.retrieve(id); got["positionInQueue"] != float64(3) || got["estimatedWaitTime"] != float64(30) {
		t.Fatalf("retrieve while queued = %v, want position 3, EWT 30", got)
	}
	page, err := e.svc.List(ctx, ListQuery{Tenant: demoTenant, From: e.clk.Now().Add(-time.Hour), To: e.clk.Now().Add(time.Hour)})
	if err != nil || len(page.Items) != 1 || page.Items[0].PositionInQueue != 3 {
		t.Fatalf("list while queued = %+v %v", page.Items, err)
	}
	if pos, ors := row(); pos != 0 || ors != "" || !updatedAt.Equal(created) {
		t.Fatalf("row rewritten by queue-state reports: position %d, ors %q", pos, ors)
	}
	if e.mr.HGet(liveHash, string(id)) == "" {
		t.Fatal("no queue state in redis")
	}

	if err := e.svc.ApplyReport(ctx, id, StateReport{State: StateRouting, AgentDN: "7001"}); err != nil {
		t.Fatal(err)
	}
	if _, ors := row(); ors != "ors-9" {
		t.Fatalf("ORS session after ROUTING = %q, want it kept from the queue state", ors)
	}
	if e.mr.HGet(liveHash, string(id)) != "" {
		t.Fatal("queue state kept after the callback left QUEUED")
	}
	pos := 2
	if err := e.svc.ApplyReport(ctx, id, StateReport{State: StateQueued, PositionInQueue: &pos}); err != nil {
		t.Fatal(err)
	}
	if got := e.retrieve(id); got["callbackState"] != "QUEUED" || got["positionInQueue"] != float64(2) {
		t.Fatalf("re-queued view = %v, want QUEUED at position 2", got)
	}
}

// A QUEUED report is checked against the queue mark GES writes at hand-over;
// without a mark (Redis lost it) PostgreSQL decides, so a waiting callback still
// takes its report and a cancelled one still refuses it. A field left behind by
// a report that raced a state change goes with the purge.
func TestQueuedReportsCheckTheMarkThenPostgres(t *testing.T) {
	e := newEnv(t, withConfig(Config{PollInterval: time.Hour}))
	ctx := context.Background()
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550104"})
	if got := e.mr.HGet(liveHash, string(id)); got != queuedMark {
		t.Fatalf("queue field at hand-over = %q, want the mark %q", got, queuedMark)
	}
	if got := e.retrieve(id); got["callbackState"] != "QUEUED" || got["positionInQueue"] != float64(0) {
		t.Fatalf("retrieve before ORS reported = %v, want QUEUED at the stored position 0", got)
	}

	e.mr.HDel(liveHash, string(id)) // Redis lost the mark
	pos := 4
	if err := e.svc.ApplyReport(ctx, id, StateReport{State: StateQueued, PositionInQueue: &pos}); err != nil {
		t.Fatalf("QUEUED report without a mark: %v", err)
	}
	if got := e.retrieve(id); got["positionInQueue"] != float64(4) {
		t.Fatalf("retrieve after the report = %v, want position 4", got)
	}

	if err := e.svc.Cancel(ctx, demoTenant, id, ReasonCancelled); err != nil {
		t.Fatal(err)
	}
	if got := e.mr.HGet(liveHash, string(id)); got != "" {
		t.Fatalf("queue field after cancel = %q, want none", got)
	}
	err := e.svc.ApplyReport(ctx, id, StateReport{State: StateQueued, PositionInQueue: &pos})
	if !errors.Is(err, ErrCompleted) {
		t.Fatalf("QUEUED report for a cancelled callback = %v, want ErrCompleted", err)
	}

	e.mr.HSet(liveHash, string(id), "1 10 ors-raced") // what a report racing the cancel can leave
	e.clk.Advance(15 * 24 * time.Hour)
	e.svc.purgeOnce(ctx)
	if got := e.mr.HGet(liveHash, string(id)); got != "" {
		t.Fatalf("queue field of a purged callback = %q, want none", got)
	}
}

// Retrieves answered in one batch each get their own record, a key sees only
// its tenant's callbacks, and an unknown id is not found, as one by one.
func TestRetrievesShareOneRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550105"})
	unknown := CallbackID("6f1c2a44-0d59-4a4e-9a49-5b0b8e0c7f11")
	batch := []*readJob{{tenant: demoTenant, id: id}, {tenant: demoTenant, id: id}, {tenant: "another-tenant", id: id},
		{tenant: "", id: id}, {tenant: demoTenant, id: unknown}}
	errs := e.svc.commitReads(ctx, batch)
	for i, want := range []error{nil, nil, ErrNotFound, nil, ErrNotFound} {
		if (want == nil && errs[i] != nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Fatalf("job %d: err %v, want %v", i, errs[i], want)
		}
	}
	if batch[0].out == nil || batch[1].out == nil || batch[0].out == batch[1].out || batch[0].out.ID != id {
		t.Fatalf("same callback twice: records %p and %p, want two copies of %s", batch[0].out, batch[1].out, id)
	}
	if batch[2].out != nil {
		t.Fatalf("another tenant read %v", batch[2].out)
	}
}

// A callback whose data PostgreSQL refuses (here userData with NUL, which the
// API refuses earlier) fails only its own create: the others in its group
// commit are stored.
func TestBadCallbackFailsOnlyItself(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := e.clk.Now()
	cb := func(phone string, ud map[string]any) *Callback {
		return &Callback{ID: CallbackID(uuid.NewString()), Tenant: demoTenant, Service: "CB_Support", VirtualQueue: "VQ_Support",
			PhoneNumber: phone, OfferType: OfferScheduled, Language: "en-US", State: StateScheduled, UserData: ud,
			MaxDialAttempts: 1, CreatedAt: now, UpdatedAt: now, DesiredTime: now.Add(time.Hour)}
	}
	batch := []*Callback{cb("+12025550131", nil), cb("+12025550132", map[string]any{"a": "x\x00y"}), cb("+12025550133", nil)}
	errs := e.svc.commitCreates(ctx, batch)
	if !errors.Is(errs[1], ErrInvalid) {
		t.Errorf("bad callback: %v, want invalid", errs[1])
	}
	for _, i := range []int{0, 2} {
		if errs[i] != nil {
			t.Fatalf("good callback %d: %v", i, errs[i])
		}
		if got, err := e.svc.Retrieve(ctx, demoTenant, batch[i].ID); err != nil || got.State != StateScheduled {
			t.Fatalf("good callback %d not stored: %+v, %v", i, got, err)
		}
	}
	if _, err := e.svc.Retrieve(ctx, demoTenant, batch[1].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad callback retrievable: %v", err)
	}
}

// A lone request is committed at once however long the linger; once a batch
// was shared (requests arrive faster than commits), the next one waits for
// more, here until it is full since the linger is an hour.
func TestBatcherLingersOnlyWhileRequestsQueueUp(t *testing.T) {
	quit := make(chan struct{})
	sizes := make(chan int, 8)
	b := newBatcher(3, quit, func(_ context.Context, batch []int) []error {
		sizes <- len(batch)
		return make([]error, len(batch))
	})
	b.linger = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { close(quit); cancel(); <-b.done }()
	enqueue := func(v int) chan error {
		j := &job[int]{v: v, done: make(chan error, 1)}
		b.ch <- j
		return j.done
	}
	wait := func(dones ...chan error) {
		t.Helper()
		for _, d := range dones {
			if err := <-d; err != nil {
				t.Fatal(err)
			}
		}
	}
	next := func() int {
		t.Helper()
		select {
		case n := <-sizes:
			return n
		case <-time.After(10 * time.Second):
			t.Fatal("no batch committed")
			return 0
		}
	}

	first := enqueue(1)
	go b.run(ctx)
	wait(first)
	if n := next(); n != 1 {
		t.Fatalf("a lone first request was committed in a batch of %d", n)
	}
	// Queued together, two share a batch; the linger is not used for it
	// since the batch before was alone.
	a, c := enqueue(2), enqueue(3)
	wait(a, c)
	if n := next(); n != 2 {
		t.Fatalf("two queued requests were committed in a batch of %d, want 2", n)
	}
	// Now the batch lingers: three requests sent one after the other, each
	// alone in the queue, end up in one batch.
	var dones []chan error
	for v := range 3 {
		dones = append(dones, enqueue(10+v))
		runtime.Gosched() // give run the chance to take each alone
	}
	wait(dones...)
	if n := next(); n != 3 {
		t.Fatalf("after a shared batch, requests arriving one by one were committed in a batch of %d, want the full 3", n)
	}
}
