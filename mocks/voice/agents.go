package voice

import (
	"context"
	"slices"
	"sort"
	"time"
)

// AgentState is the routing state of a DN.
type AgentState string

// Agent states.
const (
	LoggedOut     AgentState = "LoggedOut"
	NotReady      AgentState = "NotReady"
	Ready         AgentState = "Ready"
	Busy          AgentState = "Busy"
	AfterCallWork AgentState = "AfterCallWork"
)

type agentKey struct {
	tenant TenantID
	dn     DN
}

type agent struct {
	key        agentKey
	user       string
	skills     []string
	state      AgentState
	since      time.Time
	readySince time.Time
	call       CallID
	timer      *time.Timer
}

type queueKey struct {
	tenant TenantID
	vq     string
}

// queue is a virtual queue: waiting interactions and recent handle times.
type queue struct {
	key     queueKey
	waiters []*waiter
	handle  []time.Duration // most recent handle times, for AHT
}

// waiter is an interaction (inbound call or callback) waiting for an agent.
type waiter struct {
	q        queueKey
	priority int
	seq      uint64
	enq      time.Time
	got      chan agentKey // receives the reserved agent, once
	removed  bool
	// parked, when set, takes the reserved agent instead of got (see
	// Server.reserved).
	parked *session
	handed bool // an agent was reserved for it
	// owner is the callback session waiting here (parked or re-queued), and
	// reportedPos the position it last reported (see refreshPositions).
	owner       *session
	reportedPos int
}

func (s *Server) queueLocked(k queueKey) *queue {
	q := s.queues[k]
	if q == nil {
		q = &queue{key: k}
		s.queues[k] = q
	}
	return q
}

// agentRegisteredLocked moves a DN from LoggedOut to NotReady when it registers.
func (s *Server) agentRegisteredLocked(b *binding) {
	k := agentKey{tenant: b.key.tenant, dn: DN(b.key.user)}
	a := s.agents[k]
	if a == nil {
		a = &agent{key: k, state: LoggedOut}
		s.agents[k] = a
	}
	a.user = b.userName
	if s.snap != nil {
		if t := s.snap.byID[k.tenant]; t != nil {
			if u, ok := t.user(a.user); ok {
				a.skills = slices.Clone(u.Skills)
			}
		}
	}
	if a.state == LoggedOut {
		s.setAgentLocked(a, NotReady)
	}
}

func (s *Server) agentUnregisteredLocked(key bindKey) {
	a := s.agents[agentKey{tenant: key.tenant, dn: DN(key.user)}]
	if a == nil {
		return
	}
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	s.setAgentLocked(a, LoggedOut)
}

func (s *Server) setAgentLocked(a *agent, st AgentState) {
	if a.timer != nil && st != AfterCallWork {
		a.timer.Stop()
		a.timer = nil
	}
	now := s.clk.Now()
	changed := a.state != st
	if changed {
		a.since = now
	}
	a.state = st
	if st != Busy && st != AfterCallWork {
		a.call = "" // the call (kept through wrap-up) is over
	}
	if changed {
		s.publishAgentLocked(a)
	}
	if st == Ready {
		a.readySince = now
		// The agent's queues are served best head first (priority, then
		// arrival: waiter seqs are global), not in the order of its skills.
		ks := make([]queueKey, 0, len(a.skills))
		for _, sk := range a.skills {
			if q := s.queues[queueKey{tenant: a.key.tenant, vq: sk}]; q != nil && len(q.waiters) > 0 {
				ks = append(ks, q.key)
			}
		}
		slices.SortStableFunc(ks, func(x, y queueKey) int {
			switch hx, hy := s.queues[x].waiters[0], s.queues[y].waiters[0]; {
			case hx.before(hy):
				return -1
			case hy.before(hx):
				return 1
			}
			return 0
		})
		for _, k := range ks {
			s.dispatchLocked(k)
		}
	}
}

// setAgentState is the agent's own state request (HTTP API).
func (s *Server) setAgentState(k agentKey, st AgentState) (AgentState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[k]
	if a == nil || a.state == LoggedOut {
		return LoggedOut, errNotRegistered
	}
	switch st {
	case Ready, NotReady, AfterCallWork:
	default:
		return a.state, errBadState
	}
	if a.state == Busy {
		return a.state, errAgentBusy
	}
	if st == AfterCallWork && a.timer != nil {
		// Asked for by the agent, wrap-up lasts until the agent is Ready
		// (as T-Server's AfterCallWork work mode does), not the timed
		// wrap-up that follows a call.
		a.timer.Stop()
		a.timer = nil
	}
	s.setAgentLocked(a, st)
	return a.state, nil
}

// releaseAgent ends an agent's part in an interaction: wrap-up (then Ready),
// straight to Ready, or NotReady (did not answer).
func (s *Server) releaseAgent(k agentKey, next AgentState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[k]
	if a == nil || a.state == LoggedOut || s.stopping {
		return
	}
	if next == AfterCallWork && s.cfg.WrapUpTime < 0 {
		next = Ready
	}
	if next == AfterCallWork {
		s.setAgentLocked(a, AfterCallWork)
		a.timer = time.AfterFunc(s.cfg.WrapUpTime, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if a.state == AfterCallWork && !s.stopping {
				a.timer = nil
				s.setAgentLocked(a, Ready)
			}
		})
		return
	}
	s.setAgentLocked(a, next)
}

// markBusy flags an agent as on a call it did not get from a queue (a direct
// call to or from its DN) and returns the state to restore afterwards.
func (s *Server) markBusy(k agentKey, c CallID) AgentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.agents[k]
	if a == nil || a.state == LoggedOut || a.state == Busy {
		return ""
	}
	prev := a.state
	s.setAgentLocked(a, Busy)
	a.call = c
	if prev == Ready || prev == AfterCallWork {
		return AfterCallWork
	}
	return prev
}

// assignCall records which call a reserved agent is on.
func (s *Server) assignCall(k agentKey, c CallID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.agents[k]; a != nil {
		a.call = c
	}
}

// enqueue adds an interaction to a virtual queue and dispatches at once.
func (s *Server) enqueue(k queueKey, priority int, front bool) *waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiterSeq++
	w := &waiter{q: k, priority: priority, seq: s.waiterSeq, enq: s.clk.Now(), got: make(chan agentKey, 1)}
	if front {
		w.seq = 0
	}
	s.insertLocked(w)
	return w
}

// insertLocked puts w after every waiter that goes first (higher priority,
// or same priority and earlier) and dispatches. A binary search keeps it
// O(log n) when thousands of callbacks wait with no agent Ready.
func (s *Server) insertLocked(w *waiter) {
	q := s.queueLocked(w.q)
	i := sort.Search(len(q.waiters), func(i int) bool { return w.before(q.waiters[i]) })
	q.waiters = slices.Insert(q.waiters, i, w)
	s.dispatchLocked(w.q)
}

// dequeue removes a waiter that gave up; if an agent was already reserved
// for it, the agent returns to Ready.
func (s *Server) dequeue(w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeWaiterLocked(w)
	select {
	case k := <-w.got:
		if a := s.agents[k]; a != nil && a.state == Busy {
			s.setAgentLocked(a, Ready)
		}
	default:
	}
}

// position is a waiter's 1-based place in its queue (0 once it left).
func (s *Server) position(w *waiter) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return indexOf(s.queueLocked(w.q).waiters, w) + 1
}

// indexOf finds w in sorted waiters, or -1: the first that does not go
// before w, then over equals (front re-queues share seq 0).
func indexOf(ws []*waiter, w *waiter) int {
	for i := sort.Search(len(ws), func(i int) bool { return !ws[i].before(w) }); i < len(ws); i++ {
		if ws[i] == w {
			return i
		}
		if w.before(ws[i]) {
			break
		}
	}
	return -1
}

// removeWaiterLocked takes w out of its queue (if still there) for good.
func (s *Server) removeWaiterLocked(w *waiter) {
	q := s.queueLocked(w.q)
	if i := indexOf(q.waiters, w); i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
	}
	w.removed = true
}

// enqueueParked queues a parked session's waiter; false means it was
// unparked (cancelled) before it could be queued.
func (s *Server) enqueueParked(w *waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.removed {
		return false
	}
	s.waiterSeq++
	w.seq, w.enq = s.waiterSeq, s.clk.Now()
	s.insertLocked(w)
	return true
}

// unpark takes a parked waiter out of its queue unless an agent was already
// reserved for it; true means the caller now owns the session.
func (s *Server) unpark(w *waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.handed {
		return false
	}
	wasRemoved := w.removed
	s.removeWaiterLocked(w)
	return !wasRemoved
}

// before reports whether w is served before o: higher priority first, then
// earlier arrival.
func (w *waiter) before(o *waiter) bool {
	if w.priority != o.priority {
		return w.priority > o.priority
	}
	return w.seq < o.seq
}

// dispatchLocked hands the longest-idle Ready agents with the queue's skill
// to the queue's waiters in priority order.
func (s *Server) dispatchLocked(k queueKey) {
	q := s.queues[k]
	if q == nil || s.stopping {
		return
	}
	for len(q.waiters) > 0 {
		var best *agent
		for _, a := range s.agents {
			if a.key.tenant != k.tenant || a.state != Ready || !slices.Contains(a.skills, k.vq) {
				continue
			}
			if _, ok := s.bindings[bindKey{tenant: a.key.tenant, user: string(a.key.dn)}]; !ok {
				continue
			}
			if best == nil || a.readySince.Before(best.readySince) {
				best = a
			}
		}
		if best == nil {
			return
		}
		w := q.waiters[0]
		q.waiters = q.waiters[1:]
		s.setAgentLocked(best, Busy)
		w.handed = true
		if w.parked != nil {
			s.reserved(w.parked, best.key)
			continue
		}
		w.got <- best.key
	}
}

// recordHandle notes one handled interaction's duration for AHT.
func (s *Server) recordHandle(k queueKey, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueLocked(k)
	q.handle = append(q.handle, d)
	if len(q.handle) > 50 {
		q.handle = q.handle[len(q.handle)-50:]
	}
}

// QueueStats are a virtual queue's live statistics (they feed GWS
// statistics and so GES's estimated wait time).
type QueueStats struct {
	// ReadyAgents are Ready agents with the queue's skill.
	ReadyAgents int `json:"readyAgents"`
	// LoggedInAgents are registered agents with the skill, whatever their state.
	LoggedInAgents int `json:"loggedInAgents"`
	// BusyAgents are agents with the skill on a call, reserved, or in wrap-up.
	BusyAgents int `json:"busyAgents"`
	// WaitingCalls are inbound calls and callbacks waiting in the queue.
	WaitingCalls int `json:"waitingCalls"`
	// AverageHandlingTime is the mean talk time of the last 50 interactions, in seconds.
	AverageHandlingTime float64 `json:"averageHandlingTime"`
	// ExpectedWaitTime is the wait a new interaction should expect, in seconds.
	ExpectedWaitTime float64 `json:"expectedWaitTime"`
}

// defaultAHT stands in for the handle time of a queue that has none yet.
const defaultAHT = 60 * time.Second

// QueueStats returns the statistics of one virtual queue of a tenant.
func (s *Server) QueueStats(_ context.Context, ccid TenantID, vq string) QueueStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queueStatsLocked(queueKey{tenant: ccid, vq: vq})
}

func (s *Server) queueStatsLocked(k queueKey) QueueStats {
	var st QueueStats
	for _, a := range s.agents {
		if a.key.tenant != k.tenant || !slices.Contains(a.skills, k.vq) || a.state == LoggedOut {
			continue
		}
		st.LoggedInAgents++
		switch a.state {
		case Ready:
			st.ReadyAgents++
		case Busy, AfterCallWork:
			st.BusyAgents++
		}
	}
	aht := defaultAHT
	if q := s.queues[k]; q != nil {
		st.WaitingCalls = len(q.waiters)
		if len(q.handle) > 0 {
			var sum time.Duration
			for _, d := range q.handle {
				sum += d
			}
			aht = sum / time.Duration(len(q.handle))
			st.AverageHandlingTime = aht.Seconds()
		}
	}
	if st.WaitingCalls >= st.ReadyAgents {
		// Each staffed agent frees up once per AHT; the newcomer waits for
		// everyone ahead of it.
		staffed := max(st.ReadyAgents+st.BusyAgents, 1)
		st.ExpectedWaitTime = float64(st.WaitingCalls-st.ReadyAgents+1) * aht.Seconds() / float64(staffed)
	}
	return st
}
