package faults

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// TestFaultSIGTERMDuringLiveCalls sends SIGTERM to cxlab while an agent is in
// a callback call: cxlab must exit within 5 s, the agent must receive BYE,
// and after a restart the callback must be in a truthful state (not still
// PROCESSING a call that no longer exists).
func TestFaultSIGTERMDuringLiveCalls(t *testing.T) {
	needFaults(t)
	dir := labDir(t)
	l := startLab(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	a := agent.New(agent.Config{
		URL:        l.ep.base(),
		Token:      agent.PasswordGrant(nil, l.ep.base(), "cxlab-console", "console-secret", "agent1", "agent123"),
		AutoAnswer: true, PlayHz: 1000, BindIP: "127.0.0.1",
	})
	if err := a.SignIn(ctx); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if a.DN() != "7001" {
		t.Fatalf("signed in as DN %q, want 7001", a.DN())
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = a.Run(runCtx) }()
	defer func() { stopRun(); <-runDone }()
	// Events are dropped when nobody reads: collect them from the start.
	var (
		evMu   sync.Mutex
		events []string
	)
	bye := make(chan time.Time, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-runDone:
				return
			case e := <-a.Events():
				evMu.Lock()
				events = append(events, e.Type)
				evMu.Unlock()
				if e.Type == "BYE" {
					select {
					case bye <- time.Now():
					default:
					}
				}
			}
		}
	}()
	if err := a.SetState(ctx, "Ready"); err != nil {
		t.Fatalf("set Ready: %v", err)
	}

	g := newGES(l.ep, 2)
	defer g.close()
	id, code, err := g.create(ctx, "+12025550100", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("create: %d %v", code, err)
	}
	waitUntil(t, 60*time.Second, "the callback to reach PROCESSING", func() bool {
		cb, code, err := g.retrieve(ctx, id)
		return err == nil && code == http.StatusOK && cb.State == "PROCESSING"
	})
	waitUntil(t, 15*time.Second, "the agent to hear the customer", func() bool { return a.Heard().AudioMS > 300 })
	g.close()

	evMu.Lock()
	seenBefore := len(events)
	evMu.Unlock()
	t0 := time.Now()
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code = l.waitExit(t, 10*time.Second)
	took := time.Since(t0)
	var byeAfter time.Duration
	select {
	case at := <-bye:
		byeAfter = at.Sub(t0)
	case <-time.After(5 * time.Second):
		byeAfter = -time.Nanosecond
	}
	inCall := a.InCall()
	stopRun()
	<-runDone
	<-readerDone
	after := strings.Join(events[seenBefore:], ",")
	waitNoPostgres(t, dir, 10*time.Second)

	l2 := startLab(t, dir)
	g2 := newGES(l2.ep, 2)
	defer g2.close()
	cb, rcode, err := g2.retrieve(ctx, id)
	if err != nil || rcode != http.StatusOK {
		t.Fatalf("retrieve after restart: %d %v", rcode, err)
	}
	t.Logf("SUMMARY SIGTERM during a live call: exit code %d after %s; agent BYE after %v (-1ns: none within 5 s), agent still in call: %v, agent events after SIGTERM [%s]; after restart the callback is %s/%s",
		code, took.Round(time.Millisecond), byeAfter, inCall, after, cb.State, cb.Reason)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if took > 5*time.Second {
		t.Errorf("cxlab took %s to exit after SIGTERM, want at most 5 s", took)
	}
	if byeAfter < 0 {
		t.Errorf("the agent received no BYE when cxlab stopped")
	}
	if cb.State == "PROCESSING" || cb.State == "ROUTING" {
		t.Errorf("after restart the callback is still %s, though its call ended with the old process", cb.State)
	}
	if code := stopLab(t, l2); code != 0 {
		t.Errorf("second run exited %d after SIGTERM", code)
	}
}
