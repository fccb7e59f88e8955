package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// TestCallerHangsUpRingingCall: a caller who hangs up its own outgoing call
// before the answer (BYE through /message) cancels the INVITE, and gets no
// gateway error for it: the JS library would hand one to onGatewayError.
func TestCallerHangsUpRingingCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	l.voice.ring.Store(true)
	a := agent.New(agent.Config{URL: l.base, DN: "7004", Password: "dnpass", AutoAnswer: true, PCMU: true, BindIP: "127.0.0.1"})
	runAgent(ctx, t, l, a)

	called := make(chan error, 1)
	go func() { called <- a.Call(ctx, "+12025550100") }()
	var id string
	select {
	case id = <-l.voice.ringing:
	case <-ctx.Done():
		t.Fatal("the call did not ring at Voice")
	}
	// The caller hangs up once the gateway has the ringing call's dialog,
	// as a person does, after hearing it ring.
	eventually(t, 10*time.Second, "the gateway holds the ringing call", func() bool {
		snap := l.gw.Snapshot()
		return len(snap.Sessions) == 1 && snap.Sessions[0].Call != nil && snap.Sessions[0].Call.SIPCallID == id
	})
	if err := a.Hangup(ctx); err != nil {
		t.Fatalf("hang up: %v", err)
	}
	select {
	case got := <-l.voice.cancels:
		if got != id {
			t.Fatalf("CANCEL for %s, want %s", got, id)
		}
	case <-ctx.Done():
		t.Fatal("Voice got no CANCEL for the call hung up while ringing")
	}
	if err := <-called; err == nil {
		t.Fatal("the hung-up call was answered")
	}

	// Messages reach the client in order: an error for the cancelled call
	// would come before the offer of the next call.
	_, _ = l.voice.call(ctx, t, "7004", 440)
	for e := range a.Events() {
		if e.Type == "ERROR" {
			t.Fatalf("the caller got a gateway error for the call it hung up: %s", e.Body)
		}
		if e.Type == "OFFER" {
			return
		}
	}
}
