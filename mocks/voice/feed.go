package voice

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
)

// FeedCall is a call as the event feed reports it.
type FeedCall struct {
	ID       CallID
	Kind     string // internal, inbound, callback, outbound
	State    string // dialing, queued, ivr, ringing, connected, held, ended
	From, To string
	AgentDN  DN
	// LeftDN is set in the event of a call that rang at an agent who did
	// not take it (no answer, or a reject) and went back to its queue: the
	// call is over for that DN while it goes on elsewhere.
	LeftDN   DN
	UserData map[string]string
}

// FeedEvent is one change at an agent DN: an agent state (Agent set) or a
// call state (Call set).
type FeedEvent struct {
	Tenant TenantID
	Agent  *AgentView
	Call   *FeedCall
}

// involves reports whether the event concerns dn.
func (e FeedEvent) involves(dn DN) bool {
	if e.Agent != nil {
		return e.Agent.DN == dn
	}
	c := e.Call
	return c.AgentDN == dn || DN(c.From) == dn || DN(c.To) == dn || (c.LeftDN != "" && c.LeftDN == dn)
}

// feed fans call and agent changes out to subscribers. Delivery never blocks
// Voice: a subscriber whose buffer is full is dropped and its channel closed,
// which tells it that it missed events and must read the state afresh.
type feed struct {
	n    atomic.Int32 // subscribers, read without the lock on every change
	mu   sync.Mutex
	subs map[subscriber]struct{}
}

type subscriber interface {
	// offer delivers e if it matches; false means the buffer was full.
	offer(e FeedEvent) bool
	close()
}

type subscription[T any] struct {
	tenant TenantID
	dn     DN
	conv   func(FeedEvent) T
	ch     chan T
}

func (s *subscription[T]) offer(e FeedEvent) bool {
	if e.Tenant != s.tenant || !e.involves(s.dn) {
		return true
	}
	select {
	case s.ch <- s.conv(e):
		return true
	default:
		return false
	}
}

func (s *subscription[T]) close() { close(s.ch) }

// Subscribe delivers, converted by conv, the agent and call changes at dn of
// tenant, buffering up to buffer of them. The channel is closed when cancel is
// called or when the subscriber fell buffer events behind. conv runs on the
// goroutine that changed the state, under Voice's locks: it must be cheap and
// must not call back into Voice.
func Subscribe[T any](s *Server, tenant TenantID, dn DN, buffer int, conv func(FeedEvent) T) (events <-chan T, cancel func()) {
	sub := &subscription[T]{tenant: tenant, dn: dn, conv: conv, ch: make(chan T, max(buffer, 1))}
	f := &s.feed
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[subscriber]struct{}{}
	}
	f.subs[sub] = struct{}{}
	f.n.Store(int32(len(f.subs)))
	f.mu.Unlock()
	return sub.ch, func() { f.remove(sub) }
}

func (f *feed) remove(sub subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, found := f.subs[sub]; found {
		delete(f.subs, sub)
		f.n.Store(int32(len(f.subs)))
		sub.close()
	}
}

func (f *feed) active() bool { return f != nil && f.n.Load() > 0 }

func (f *feed) publish(e FeedEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		if !sub.offer(e) {
			delete(f.subs, sub)
			sub.close()
		}
	}
	f.n.Store(int32(len(f.subs)))
}

// publishLocked reports the call's state; the caller holds c.mu, which keeps
// one call's events in order.
func (c *call) publishLocked() { c.publishLeftLocked("") }

// publishLeftLocked reports the call's state, telling left (when not empty)
// that the call is no longer at its DN.
func (c *call) publishLeftLocked(left DN) {
	if !c.feed.active() {
		return
	}
	c.feed.publish(FeedEvent{Tenant: c.tenant, Call: &FeedCall{ID: c.id, Kind: c.kind, State: c.state, From: c.from, To: c.to,
		AgentDN: c.agent.dn, LeftDN: left, UserData: maps.Clone(c.userData)}})
}

// publishAgentLocked reports an agent's state; the caller holds s.mu.
func (s *Server) publishAgentLocked(a *agent) {
	if !s.feed.active() {
		return
	}
	v := s.agentViewLocked(a)
	s.feed.publish(FeedEvent{Tenant: a.key.tenant, Agent: &v})
}

// AgentAt returns the agent DN of a tenant; a DN Voice never saw registered is
// LoggedOut.
func (s *Server) AgentAt(tenant TenantID, dn DN) AgentView {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.agents[agentKey{tenant: tenant, dn: dn}]; a != nil {
		return s.agentViewLocked(a)
	}
	return AgentView{TenantID: tenant, DN: dn, State: LoggedOut}
}

// SetAgentStateAt sets a registered DN Ready, NotReady or AfterCallWork
// (wrap-up until Ready) as an agent desktop asks for it (third-party agent
// state control).
func (s *Server) SetAgentStateAt(tenant TenantID, dn DN, st AgentState) error {
	_, err := s.setAgentState(agentKey{tenant: tenant, dn: dn}, st)
	return err
}

// CallsAt returns the live calls in which dn takes part.
func (s *Server) CallsAt(tenant TenantID, dn DN) []FeedCall {
	s.mu.Lock()
	cs := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		if c.tenant == tenant {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	var out []FeedCall
	for _, c := range cs {
		c.mu.Lock()
		fc := FeedCall{ID: c.id, Kind: c.kind, State: c.state, From: c.from, To: c.to, AgentDN: c.agent.dn,
			UserData: maps.Clone(c.userData)}
		c.mu.Unlock()
		if (FeedEvent{Call: &fc}).involves(dn) && fc.State != "ended" {
			out = append(out, fc)
		}
	}
	return out
}

// ControlCall applies a third-party call control operation (answer, hold,
// resume, hangup) to the leg of call id that faces dn: the caller's leg when
// dn placed the call, else the leg Voice offered to dn. Unlike CallOp it
// picks the leg by the DN, so it also answers a direct call still ringing.
func (s *Server) ControlCall(ctx context.Context, tenant TenantID, dn DN, id CallID, op string) error {
	c := s.findCall(id)
	if c == nil || c.tenant != tenant {
		return errCallNotFound
	}
	c.mu.Lock()
	fc := FeedCall{From: c.from, To: c.to, AgentDN: c.agent.dn}
	st, a, b := c.state, c.a, c.b
	c.mu.Unlock()
	if !(FeedEvent{Call: &fc}).involves(dn) {
		return errNotYours
	}
	if st == "ended" {
		return errCallState
	}
	if op == "hangup" {
		if st == "ringing" && fc.AgentDN == dn && DN(fc.From) != dn && b != nil && (c.kind == kindCallback || c.kind == kindInbound) {
			// The agent rejects a call a queue offered: only its leg ends,
			// and the call goes back to the queue (as when it rings out).
			b.hangup(ctx)
			return nil
		}
		s.endCall(c, nil, "released by 3pcc")
		return nil
	}
	l := b
	if DN(fc.From) == dn && fc.AgentDN != dn {
		l = a
	}
	want := map[string]string{"answer": "ringing", "hold": "connected", "resume": "held"}[op]
	if l == nil || want == "" || st != want {
		return errCallState
	}
	event := "talk"
	if op == "hold" {
		event = "hold"
	}
	return l.notify(ctx, event)
}

// IsNotFound reports whether err of ControlCall means no such call (at that DN).
func IsNotFound(err error) bool {
	return errors.Is(err, errCallNotFound) || errors.Is(err, errNotYours)
}

// IsRefused reports whether err of ControlCall or SetAgentStateAt is a
// refusal in the current state (not registered, busy, wrong call state, no
// remote control), as opposed to a failure to reach the endpoint.
func IsRefused(err error) bool {
	for _, e := range []error{errNotRegistered, errBadState, errAgentBusy, errNoRemoteCtl, errCallState} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
