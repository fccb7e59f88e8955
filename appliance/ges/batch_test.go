package ges

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
			var ge *Error
			switch {
			case err == nil:
				ok[num].Add(1)
			case errors.As(err, &ge) && ge.Kind == ErrThrottled:
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
		{id: id, r: StateReport{State: StateRouting, AgentDN: "7001"}},
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
