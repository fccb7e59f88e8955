package voice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unique"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Callback states and reasons reported to GES (contract 8).
const (
	stQueued     = "QUEUED"
	stRouting    = "ROUTING"
	stProcessing = "PROCESSING"
	stCompleted  = "COMPLETED"

	reasonAgentConnected     = "AGENT_CONNECTED"
	reasonFailCallToCustomer = "FAIL_CALL_TO_CUSTOMER"
	reasonFailAgentConnect   = "FAIL_AGENT_CONNECT" // the customer answered but hung up before an agent did (the reference lists no CUSTOMER_ABANDONED)
)

// streamEntry is one NewCallbackStream entry (contract 7). It lives as long
// as its callback waits, so it is kept small: the tenant, service, queue and
// action are interned (a few distinct values shared by thousands of entries)
// and userData stays raw JSON until the callback is dialled.
type streamEntry struct {
	msgID       string
	action      string
	id          CallbackID
	ccid        TenantID
	service     string
	vq          string
	phone       string
	priority    int
	userData    string // a JSON object, or ""
	maxAttempts int
	retryDelay  time.Duration
	// priorAttempts is how many times the customer was dialled before this
	// entry was added (GES hands a callback over again after Redis lost it).
	priorAttempts int
}

// entryCallback is the one field, "callback", of an entry: a JSON object
// with action, id and ccid, and for a start what the session needs.
type entryCallback struct {
	Action          string          `json:"action"`
	ID              CallbackID      `json:"id"`
	CCID            TenantID        `json:"ccid"`
	Service         string          `json:"service"`
	VirtualQueue    string          `json:"virtualQueue"`
	PhoneNumber     string          `json:"phoneNumber"`
	Priority        float64         `json:"priority"`
	MaxDialAttempts int             `json:"maxDialAttempts"`
	RetryDelaySec   int             `json:"retryDelaySec"`
	DialAttempts    int             `json:"dialAttempts"`
	UserData        json.RawMessage `json:"userData"`
}

func parseEntry(m redis.XMessage) (streamEntry, error) {
	e := streamEntry{msgID: m.ID}
	raw, _ := m.Values["callback"].(string)
	var cb entryCallback
	if err := json.Unmarshal([]byte(raw), &cb); err != nil {
		return e, fmt.Errorf("stream entry %s: callback is not a JSON object: %w", m.ID, err)
	}
	e.action, e.id, e.ccid = unique.Make(cb.Action).Value(), cb.ID, TenantID(unique.Make(string(cb.CCID)).Value())
	if e.id == "" || (e.action != "start" && e.action != "cancel") {
		return e, fmt.Errorf("stream entry %s: missing callback.id or bad callback.action %q", m.ID, e.action)
	}
	if e.action == "cancel" {
		return e, nil
	}
	if cb.VirtualQueue == "" || cb.PhoneNumber == "" || e.ccid == "" {
		return e, fmt.Errorf("stream entry %s: start needs callback.ccid, callback.virtualQueue and callback.phoneNumber", m.ID)
	}
	e.service, e.vq = unique.Make(cb.Service).Value(), unique.Make(cb.VirtualQueue).Value()
	e.phone, e.priority = cb.PhoneNumber, int(cb.Priority)
	e.maxAttempts = max(cb.MaxDialAttempts, 1)
	e.retryDelay = time.Duration(max(cb.RetryDelaySec, 0)) * time.Second
	e.priorAttempts = max(cb.DialAttempts, 0)
	switch ud := bytes.TrimSpace(cb.UserData); {
	case len(ud) == 0, string(ud) == "null", string(ud) == "{}":
	case ud[0] == '{':
		e.userData = string(ud)
	default:
		return e, fmt.Errorf("stream entry %s: callback.userData is not a JSON object", m.ID)
	}
	return e, nil
}

// userDataMap decodes the entry's userData (validated by parseEntry).
func (e *streamEntry) userDataMap() map[string]any {
	var ud map[string]any
	if e.userData != "" {
		_ = json.Unmarshal([]byte(e.userData), &ud)
	}
	return ud
}

// session is one ORS callback session. Thousands may wait for agents at once,
// so a waiting (parked) session is this one object: its queue place is the
// embedded waiter, and it has no goroutine, context or channel until run
// starts it with a reserved agent.
type session struct {
	entry streamEntry
	orsID uuid.UUID
	w     waiter // the session's place in its virtual queue while parked

	// reportMu orders the session's reports: a position refresh and the
	// session's own next report (ROUTING, say) never cross.
	reportMu sync.Mutex

	mu sync.Mutex
	// msgID is the stream entry the session runs from; a second hand-over
	// of the callback (GES re-adds it after Redis lost it) replaces it.
	msgID     string
	state     string
	cancelled bool
	// superseded: the entry is another consumer's now (fence.go); the
	// session sends GES nothing more and leaves the entry alone.
	superseded bool
	attempts   int
	agentDN    DN
	// The first QUEUED report and the agent reservation race; whichever
	// finishes second starts the session (see park and reserved).
	reported  bool
	reportErr error
	agent     agentKey
	hasAgent  bool
	// Set by run: the session's context and its end.
	ctx    context.Context
	cancel context.CancelFunc
	ended  chan struct{} // closed by endSession
}

func (ss *session) set(state string) {
	ss.mu.Lock()
	ss.state = state
	ss.mu.Unlock()
}

func (s *Server) ensureGroup(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.cfg.Stream, s.cfg.Group, "0").Err()
	if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("voice start: create consumer group %s on %s: %w", s.cfg.Group, s.cfg.Stream, err)
	}
	return nil
}

// consume reads the stream: first this consumer's own pending entries (a
// restart resumes them), then entries other consumers left idle, then new
// entries with a blocking read.
func (s *Server) consume(ctx context.Context) {
	backoff := func() bool {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	s.heartbeat(ctx) // before anything: this consumer is alive
	// The lease is renewed on a ticker of its own: between blocking reads
	// (ReadBlock, 30 s in the appliance) it went 20 to 50 s unrenewed, close
	// to the minute after which the others take the consumer for dead.
	var renewing sync.WaitGroup
	defer renewing.Wait()
	renewing.Go(func() {
		t := time.NewTicker(s.cfg.ClaimMinIdle / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.heartbeat(ctx)
			}
		}
	})
	for ctx.Err() == nil {
		res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: s.cfg.Group, Consumer: s.cfg.Consumer,
			Streams: []string{s.cfg.Stream, "0"}, Count: 100}).Result()
		if err == nil {
			for _, st := range res {
				for _, m := range st.Messages {
					s.handle(ctx, m)
				}
			}
			break
		}
		if errors.Is(err, redis.Nil) {
			break
		}
		s.log.Warn("ors: reading own pending entries failed", "err", err)
		if !backoff() {
			return
		}
	}
	s.autoclaim(ctx)
	lastClaim := time.Now()
	// The blocking read runs on a connection of its own, closed when ctx ends:
	// go-redis does not interrupt a BLOCK on cancel, and Stop must not wait
	// out a whole ReadBlock.
	var reader redis.Cmdable = s.rdb
	if c, ok := s.rdb.(*redis.Client); ok {
		r := interruptibleClient(c)
		defer func() { _ = r.Close() }()
		stop := context.AfterFunc(ctx, r.interrupt)
		defer stop()
		reader = r
	}
	for ctx.Err() == nil {
		res, err := reader.XReadGroup(ctx, &redis.XReadGroupArgs{Group: s.cfg.Group, Consumer: s.cfg.Consumer,
			Streams: []string{s.cfg.Stream, ">"}, Count: 16, Block: s.cfg.ReadBlock}).Result()
		switch {
		case err == nil:
			for _, st := range res {
				for _, m := range st.Messages {
					s.handle(ctx, m)
				}
			}
		case errors.Is(err, redis.Nil):
		case ctx.Err() != nil:
			return
		default:
			// NOGROUP: the group is gone; UNBLOCKED: the stream was deleted
			// under this blocked read (Redis 7).
			if (strings.Contains(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "UNBLOCKED")) && s.ensureGroup(ctx) == nil {
				// Redis lost the group (emptied, or failed over without it):
				// the entries of the sessions running here went with it.
				s.log.Warn("ors: the consumer group was gone from Redis and is created again")
				s.checkSessions(ctx, "consumer group lost")
			}
			s.log.Warn("ors: stream read failed", "err", err)
			if !backoff() {
				return
			}
		}
		if time.Since(lastClaim) >= s.cfg.ClaimMinIdle/3 {
			s.autoclaim(ctx) // here, so that one goroutine handles entries
			lastClaim = time.Now()
		}
	}
}

// leaseKey is the Redis key a consumer renews while it runs; its value is the
// renewal time in Unix milliseconds.
func (s *Server) leaseKey(consumer string) string {
	return s.cfg.Stream + ":ors-consumer:" + consumer
}

// heartbeat renews this consumer's lease. While the lease is fresh no other
// process claims this consumer's pending entries, so a live session is never
// stolen. One SET per renewal, however many sessions are running: renewing
// each pending entry instead (XCLAIM JUSTID) cost time in proportion to the
// callbacks waiting, and held Redis for all of it.
func (s *Server) heartbeat(ctx context.Context) {
	now := time.Now()
	prev, err := s.rdb.SetArgs(ctx, s.leaseKey(s.cfg.Consumer), strconv.FormatInt(now.UnixMilli(), 10),
		redis.SetArgs{TTL: 2 * s.cfg.ClaimMinIdle, Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		prev, err = "", nil
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("ors: lease renewal failed", "err", err)
		}
		return
	}
	last := s.lastRenewal.Swap(now.UnixNano())
	switch late := now.Sub(time.Unix(0, last)); {
	case last == 0:
	case late > s.cfg.ClaimMinIdle:
		s.log.Warn("ors: this consumer's lease lapsed", "since_last_renewal", late.Round(time.Millisecond))
		s.checkSessions(ctx, "lease lapsed")
	case prev == "":
		// Renewed in time, yet the key is gone. Either Redis lost its data
		// (emptied, or failed over without it), and with it the entries of
		// the sessions running here (another consumer may have recreated
		// the group already, so this consumer's reads need not fail), or
		// the key expired by Redis's clock: the embedded Redis runs on the
		// lab clock, and moving it by more than the key's TTL expires it.
		// checkSessions tells the two apart, session by session.
		s.log.Info("ors: this consumer's lease key was gone from Redis (expired as the lab clock moved, or Redis lost its data): checking the sessions running here")
		s.checkSessions(ctx, "lease key gone")
	}
}

// autoclaim takes over the pending entries of consumers whose lease is older
// than ClaimMinIdle (crashed, or stopped and not restarted). XCLAIM's
// min-idle-time makes two survivors racing for one entry get it once.
func (s *Server) autoclaim(ctx context.Context) {
	consumers, err := s.rdb.XInfoConsumers(ctx, s.cfg.Stream, s.cfg.Group).Result()
	if err != nil {
		if ctx.Err() == nil && !isNoGroup(err) {
			s.log.Warn("ors: list stream consumers failed", "err", err)
		}
		return
	}
	for _, c := range consumers {
		if c.Name == s.cfg.Consumer || c.Pending == 0 || s.alive(ctx, c.Name) {
			continue
		}
		s.claimFrom(ctx, c.Name)
	}
}

// alive reports whether consumer renewed its lease within ClaimMinIdle. On a
// Redis error it answers true: claiming a live consumer's entries is worse
// than waiting for the next round.
func (s *Server) alive(ctx context.Context, consumer string) bool {
	v, err := s.rdb.Get(ctx, s.leaseKey(consumer)).Result()
	if errors.Is(err, redis.Nil) {
		return false
	}
	if err != nil {
		return true
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	return err == nil && time.Since(time.UnixMilli(ms)) < s.cfg.ClaimMinIdle
}

// claimFrom moves a lapsed consumer's pending entries to this one and runs them.
func (s *Server) claimFrom(ctx context.Context, consumer string) {
	for range 100 {
		pend, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.cfg.Stream, Group: s.cfg.Group,
			Start: "-", End: "+", Count: 100, Consumer: consumer}).Result()
		if err != nil || len(pend) == 0 {
			if err != nil && ctx.Err() == nil {
				s.log.Warn("ors: read a lapsed consumer's pending entries failed", "consumer", consumer, "err", err)
			}
			return
		}
		ids := make([]string, len(pend))
		for i, p := range pend {
			ids[i] = p.ID
		}
		// The lease decides that the consumer is gone; the entries' own idle
		// time only keeps two survivors racing from both taking one (the
		// first claim resets it). It was the whole lease: an entry delivered
		// shortly before the consumer died waited up to a lease more. Should
		// a survivor still claim an entry another has just taken, the
		// loser's session is refused at its dial (fence.go).
		msgs, err := s.rdb.XClaim(ctx, &redis.XClaimArgs{Stream: s.cfg.Stream, Group: s.cfg.Group,
			Consumer: s.cfg.Consumer, MinIdle: s.cfg.ClaimMinIdle / 6, Messages: ids}).Result()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("ors: claim a lapsed consumer's entries failed", "consumer", consumer, "err", err)
			}
			return
		}
		if len(msgs) == 0 {
			return // another survivor took them
		}
		s.log.Info("ors: took over callbacks of a consumer that stopped renewing its lease", "consumer", consumer, "count", len(msgs))
		for _, m := range msgs {
			s.handle(ctx, m)
		}
	}
}

// finishEntry acknowledges the entry of a finished session and forgets the
// callback's dial count.
func (s *Server) finishEntry(msgID string, id CallbackID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
	defer cancel()
	pipe := s.rdb.Pipeline()
	pipe.XAck(ctx, s.cfg.Stream, s.cfg.Group, msgID)
	pipe.XDel(ctx, s.cfg.Stream, msgID)
	pipe.HDel(ctx, s.attemptsKey(), string(id))
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("ors: xack failed", "ids", msgID, "err", err)
	}
}

func (s *Server) ack(ids ...string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
	defer cancel()
	// XDEL too: a handled entry has no further reader, and entries kept until
	// the stream's MAXLEN trim would hold the embedded Redis's memory at
	// that many entries for good.
	pipe := s.rdb.Pipeline()
	pipe.XAck(ctx, s.cfg.Stream, s.cfg.Group, ids...)
	pipe.XDel(ctx, s.cfg.Stream, ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Warn("ors: xack failed", "ids", ids, "err", err)
	}
}

// handle applies one stream entry. A start keeps its entry pending until the
// session ends, so that a crash leaves it to be resumed.
func (s *Server) handle(ctx context.Context, m redis.XMessage) {
	if m.Values == nil {
		s.ack(m.ID) // trimmed from the stream while pending
		return
	}
	e, err := parseEntry(m)
	if err != nil {
		s.log.Warn("ors: dropping malformed stream entry", "err", err)
		s.ack(m.ID)
		return
	}
	s.mu.Lock()
	running := s.sessions[e.id]
	_, finished := s.done[e.id]
	s.mu.Unlock()
	switch e.action {
	case "cancel":
		if running != nil {
			s.cancelSession(running)
		} else {
			s.relayCancel(ctx, e.id)
		}
		s.ack(m.ID)
	case "start":
		if finished {
			s.ack(m.ID)
			return
		}
		if running != nil {
			running.mu.Lock()
			prev := running.msgID
			running.msgID = m.ID
			running.mu.Unlock()
			if prev != m.ID {
				// Handed over again (GES found no trace of it in Redis): the
				// session goes on from the new entry, which its dials are
				// now checked against; the old one is done with.
				s.ack(prev)
			}
			return
		}
		ss := &session{entry: e, orsID: uuid.New(), msgID: m.ID}
		// Whole before it is published: a cancel may unpark it at once.
		ss.w = waiter{q: queueKey{tenant: e.ccid, vq: e.vq}, priority: e.priority, parked: ss, owner: ss}
		s.mu.Lock()
		s.sessions[e.id] = ss
		s.mu.Unlock()
		s.met.sessionsActive.Inc()
		s.wg.Add(1) // done in endSession, whichever way the session ends
		s.park(ss)
	}
}

// cancelSession applies GES's cancel: a parked session ends at once, a
// running one has its context cancelled; a connected one is left alone.
func (s *Server) cancelSession(ss *session) {
	ss.mu.Lock()
	cancellable := ss.state == stQueued || ss.state == stRouting || ss.state == ""
	if cancellable {
		ss.cancelled = true
	}
	cancel := ss.cancel
	ss.mu.Unlock()
	switch {
	case !cancellable:
		s.log.Info("ors: cancel ignored, callback already connected", "callback", ss.entry.id)
	case s.unpark(&ss.w):
		s.met.queueWaiting.Dec()
		s.endSession(ss, s.outcome(ss, "cancelled"))
	case cancel != nil:
		cancel()
	}
	// Otherwise an agent was just reserved and run has not yet made the
	// context: run sees cancelled and starts cancelled.
}

// endSession forgets a finished session; result "" (stopping) leaves its
// entry pending for a restart to resume.
func (s *Server) endSession(ss *session, result string) {
	defer s.wg.Done()
	ss.mu.Lock()
	cancel, ended, msgID := ss.cancel, ss.ended, ss.msgID
	if ss.superseded && result != "" {
		result = resultSuperseded
	}
	ss.mu.Unlock()
	if ended != nil {
		defer close(ended)
	}
	if cancel != nil {
		cancel()
	}
	e := ss.entry
	s.met.sessionsActive.Dec()
	// A superseded session's entry is another consumer's now, or gone: it
	// is neither acknowledged nor remembered as done here.
	finished := result != "" && result != resultSuperseded
	s.mu.Lock()
	if s.sessions[e.id] == ss {
		delete(s.sessions, e.id)
	}
	if finished {
		s.done[e.id] = struct{}{}
		s.doneList = append(s.doneList, e.id)
		if len(s.doneList) > 10000 {
			delete(s.done, s.doneList[0])
			s.doneList = s.doneList[1:]
		}
	}
	s.mu.Unlock()
	if result != "" {
		s.met.sessionsTotal.WithLabelValues(result).Inc()
	}
	if finished {
		s.finishEntry(msgID, e.id)
	}
}

// outcome is what a session that ends with reason reports as its result:
// "" while the server stops, "cancelled" when GES cancelled it.
func (s *Server) outcome(ss *session, reason string) string {
	if s.ctx.Err() != nil {
		return ""
	}
	ss.mu.Lock()
	cancelled := ss.cancelled
	ss.mu.Unlock()
	if cancelled {
		return "cancelled"
	}
	return reason
}

// reportQueued tells GES the session waits at w's place, with the queue's
// expected wait in whole seconds.
func (s *Server) reportQueued(ctx context.Context, ss *session, w *waiter) error {
	st := s.QueueStats(ctx, ss.entry.ccid, ss.entry.vq)
	pos := s.position(w)
	s.mu.Lock()
	w.owner, w.reportedPos = ss, 0 // not refreshed before this first report is in
	s.mu.Unlock()
	err := s.report(ss, StateReport{State: stQueued, PositionInQueue: pos, EstimatedWaitTime: int(math.Round(st.ExpectedWaitTime))})
	if err == nil {
		s.mu.Lock()
		w.reportedPos = pos
		s.mu.Unlock()
	}
	return err
}

// maxPositionReports bounds the reports one refresh sends.
const maxPositionReports = 500

// refreshPositions reports again, every PositionReportInterval, the waiting
// callbacks whose place in their queue changed since they last reported
// (those ahead were served or cancelled, or a higher priority came in), so
// that positionInQueue and estimatedWaitTime follow the queue; a queue that
// does not move sends nothing.
func (s *Server) refreshPositions() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PositionReportInterval)
	defer t.Stop()
	type update struct {
		ss       *session
		pos, ewt int
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		var ups []update
		s.mu.Lock()
		for k, q := range s.queues {
			st := s.queueStatsLocked(k)
			staffed := max(st.ReadyAgents+st.BusyAgents, 1)
			aht := defaultAHT.Seconds()
			if st.AverageHandlingTime > 0 {
				aht = st.AverageHandlingTime
			}
			for i, w := range q.waiters {
				pos := i + 1
				if w.owner == nil || w.reportedPos == 0 || w.reportedPos == pos || w.removed || w.handed || len(ups) == maxPositionReports {
					continue
				}
				w.reportedPos = pos
				ewt := 0
				if pos >= st.ReadyAgents {
					ewt = int(math.Round(float64(pos-st.ReadyAgents+1) * aht / float64(staffed)))
				}
				ups = append(ups, update{ss: w.owner, pos: pos, ewt: ewt})
			}
		}
		s.mu.Unlock()
		for _, u := range ups {
			_ = s.reportIf(u.ss, StateReport{State: stQueued, PositionInQueue: u.pos, EstimatedWaitTime: u.ewt},
				func() bool { return u.ss.state == stQueued })
		}
	}
}

// park queues a new session without a goroutine (see session). The QUEUED
// report runs on a short-lived goroutine; an agent reserved meanwhile waits
// for it, so that GES hears QUEUED before ROUTING.
func (s *Server) park(ss *session) {
	ss.set(stQueued)
	s.met.queueWaiting.Inc()
	if !s.enqueueParked(&ss.w) {
		return // cancelled before it was queued; cancelSession ended it
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.reportQueued(s.ctx, ss, &ss.w)
		ss.mu.Lock()
		ss.reported, ss.reportErr = true, err
		ak, has := ss.agent, ss.hasAgent
		ss.mu.Unlock()
		switch {
		case has:
			s.run(ss, ak)
		case err != nil && s.unpark(&ss.w):
			s.met.queueWaiting.Dec()
			s.endSession(ss, s.outcome(ss, stateOver(err)))
		}
		// Otherwise the session waits; if an agent was reserved between the
		// two checks, reserved saw reported and ran it.
	}()
}

// reserved takes the agent dispatch reserved for a parked session. It runs
// with s.mu held and must not block.
func (s *Server) reserved(ss *session, ak agentKey) {
	s.met.queueWaiting.Dec()
	ss.mu.Lock()
	ss.agent, ss.hasAgent = ak, true
	ready := ss.reported
	ss.mu.Unlock()
	if ready {
		s.run(ss, ak)
	}
}

// run starts a session's goroutine with its reserved agent.
func (s *Server) run(ss *session, ak agentKey) {
	ss.mu.Lock()
	ss.ctx, ss.cancel = context.WithCancel(s.ctx)
	if ss.cancelled {
		ss.cancel()
	}
	ss.ended = make(chan struct{})
	reportErr := ss.reportErr
	ss.mu.Unlock()
	go func() {
		if reportErr != nil {
			s.releaseAgent(ak, Ready)
			s.endSession(ss, s.outcome(ss, stateOver(reportErr)))
			return
		}
		s.endSession(ss, s.runSession(ss, &ak))
	}()
}

// unparkAll ends the sessions still parked when the server stops; their
// entries stay pending for a restart to resume.
func (s *Server) unparkAll() {
	s.mu.Lock()
	parked := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		parked = append(parked, ss)
	}
	s.mu.Unlock()
	for _, ss := range parked {
		if s.unpark(&ss.w) {
			s.met.queueWaiting.Dec()
			s.endSession(ss, "")
		}
	}
}

// StateReport is an ORS callback state report to GES, the contract 8 body.
type StateReport struct {
	State             string `json:"state"`
	Reason            string `json:"reason,omitempty"`
	ORSSessionID      string `json:"orsSessionId"`
	PositionInQueue   int    `json:"positionInQueue,omitempty"`
	EstimatedWaitTime int    `json:"estimatedWaitTime,omitempty"` // whole seconds, as GES stores it
	DialAttempts      int    `json:"dialAttempts"`
	AgentDN           string `json:"agentDn,omitempty"`
	At                string `json:"at"`
	// Released (with state QUEUED) says this ORS session no longer holds
	// the callback: its stream entry is gone from Redis, and GES is to hand
	// the callback over again.
	Released bool `json:"released,omitempty"`
}

// Reporter hands a state report to GES and answers with the HTTP status GES
// gives it (200, 404 unknown, 409 already COMPLETED, 5xx retry). The appliance
// passes GES itself when both run in one process.
type Reporter func(ctx context.Context, id CallbackID, r StateReport) (status int, err error)

// errSessionOver means GES answered 409 or 404: stop the session.
var errSessionOver = errors.New("callback finished or unknown in GES")

// report posts a state change to GES. Transient failures are retried a few
// times, then logged: GES stays the source of truth and re-drives.
func (s *Server) report(ss *session, r StateReport) error { return s.reportIf(ss, r, nil) }

// reportIf is report, sent only if cond (called with ss.mu held, after any
// report of the session in flight has been delivered) still holds.
func (s *Server) reportIf(ss *session, r StateReport, cond func() bool) error {
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	ss.reportMu.Lock()
	defer ss.reportMu.Unlock()
	ss.mu.Lock()
	if ss.superseded {
		ss.mu.Unlock()
		return errSuperseded
	}
	if cond != nil && !cond() {
		ss.mu.Unlock()
		return nil
	}
	r.ORSSessionID, r.DialAttempts = ss.orsID.String(), ss.attempts
	if r.AgentDN == "" {
		r.AgentDN = string(ss.agentDN)
	}
	ss.mu.Unlock()
	r.At = s.clk.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00") // milliseconds: reports a second apart still sort in history
	deliver := s.reporter
	if deliver == nil {
		if s.cfg.GESURL == "" {
			return nil
		}
		u := strings.TrimRight(s.cfg.GESURL, "/") + "/engagement/internal/v1/callbacks/" + url.PathEscape(string(ss.entry.id)) + "/state"
		body, _ := json.Marshal(r)
		fresh := false
		deliver = func(ctx context.Context, _ CallbackID, _ StateReport) (int, error) {
			code, err := s.postReport(ctx, u, body, fresh)
			fresh = code == http.StatusUnauthorized
			return code, err
		}
	}
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * 300 * time.Millisecond)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return s.ctx.Err()
			case <-t.C:
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		code, err := deliver(ctx, ss.entry.id, r)
		cancel()
		s.met.reports.WithLabelValues(r.State, strconv.Itoa(code)).Inc()
		switch {
		case err != nil:
			s.log.Warn("ors: state report failed", "callback", ss.entry.id, "state", r.State, "err", err)
		case code == http.StatusOK || code == http.StatusNoContent || code == http.StatusAccepted:
			return nil
		case code == http.StatusConflict || code == http.StatusNotFound:
			return errSessionOver
		case code == http.StatusUnauthorized, code >= 500:
		default:
			s.log.Warn("ors: GES refused state report", "callback", ss.entry.id, "state", r.State, "status", code)
			return nil
		}
	}
	return nil
}

func (s *Server) postReport(ctx context.Context, u string, body []byte, fresh bool) (int, error) {
	tok, err := s.orsToken(ctx, fresh)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	_ = res.Body.Close()
	return res.StatusCode, nil
}

// customerLeg is the customer side of a callback, simulated or a registered number.
type customerLeg struct {
	sim  *simCustomer
	out  *outLeg
	park *parking
	sdp  []byte        // what the agent INVITE offers
	gone chan struct{} // closed when the customer hangs up
	c    *call
}

// runSession drives one callback from QUEUED to COMPLETED, starting with the
// agent reserved for its parked waiter. It returns the result label, or ""
// when the server is stopping (the entry stays pending).
func (s *Server) runSession(ss *session, reserved *agentKey) string {
	e := ss.entry
	qk := queueKey{tenant: e.ccid, vq: e.vq}
	log := s.log.With("callback", e.id, "ors_session", ss.orsID.String())
	var cust *customerLeg
	var c *call
	finish := func(reason string) string {
		if c != nil {
			s.endCall(c, nil, reason)
		}
		out := s.outcome(ss, reason)
		if out == "cancelled" {
			log.Info("callback cancelled")
		}
		return out
	}
	front := false
	for {
		var ak agentKey
		if reserved != nil {
			ak, reserved = *reserved, nil
		} else {
			ss.set(stQueued)
			w := s.enqueue(qk, e.priority, front)
			s.met.queueWaiting.Inc()
			if err := s.reportQueued(ss.ctx, ss, w); err != nil {
				s.met.queueWaiting.Dec()
				s.dequeue(w)
				return finish(stateOver(err))
			}
			var gone <-chan struct{}
			if cust != nil {
				gone = cust.gone
			}
			select {
			case ak = <-w.got:
				s.met.queueWaiting.Dec()
			case <-ss.ctx.Done():
				s.met.queueWaiting.Dec()
				s.dequeue(w)
				return finish("cancelled")
			case <-gone:
				s.met.queueWaiting.Dec()
				s.dequeue(w)
				_ = s.report(ss, StateReport{State: stCompleted, Reason: reasonFailAgentConnect})
				return finish(reasonFailAgentConnect)
			}
		}
		attempt := 0
		if cust == nil {
			// Each dial is fenced (fence.go), before GES hears ROUTING: a
			// session another consumer took over must not touch the record.
			n, err := s.fence(ss.ctx, ss)
			switch {
			case errors.Is(err, errSuperseded), errors.Is(err, errEntryGone):
				s.releaseAgent(ak, Ready)
				log.Info("callback no longer this consumer's; not dialled here", "why", err)
				if c != nil {
					s.endCall(c, nil, "no longer this consumer's")
				}
				return resultSuperseded
			case err != nil:
				s.releaseAgent(ak, Ready)
				if ss.ctx.Err() != nil {
					return finish("cancelled")
				}
				log.Warn("ors: customer not dialled, as Redis cannot confirm the callback is still this consumer's", "err", err)
				if !s.sleep(ss.ctx, time.Second) {
					return finish("cancelled")
				}
				front = true
				continue
			case n > e.maxAttempts: // taken over after its last dial
				s.releaseAgent(ak, Ready)
				ss.mu.Lock()
				ss.attempts = e.maxAttempts
				ss.mu.Unlock()
				_ = s.report(ss, StateReport{State: stCompleted, Reason: reasonFailCallToCustomer})
				return finish(reasonFailCallToCustomer)
			}
			attempt = n
		}
		ss.mu.Lock()
		ss.agentDN = ak.dn
		ss.mu.Unlock()
		ss.set(stRouting)
		if err := s.report(ss, StateReport{State: stRouting, AgentDN: string(ak.dn)}); err != nil {
			s.releaseAgent(ak, Ready)
			return finish(stateOver(err))
		}
		if cust == nil {
			if c == nil {
				c = s.newCall(kindCallback, e.ccid, e.phone, string(ak.dn))
				c.vq, c.callback, c.orsSession = e.vq, e.id, ss.orsID.String()
				c.userData = flattenUserData(e.userDataMap())
			}
			c.setAgent(ak)
			s.assignCall(ak, c.id)
			var code int
			cust, code = s.dialCustomer(ss.ctx, c, e.phone)
			if cust == nil {
				s.releaseAgent(ak, Ready)
				if ss.ctx.Err() != nil {
					return finish("cancelled")
				}
				log.Info("customer not reached", "attempt", attempt, "status", code)
				if attempt >= e.maxAttempts {
					_ = s.report(ss, StateReport{State: stCompleted, Reason: reasonFailCallToCustomer})
					return finish(reasonFailCallToCustomer)
				}
				ss.mu.Lock()
				ss.agentDN = ""
				ss.mu.Unlock()
				// The call waits too, for no agent (it showed dialing, for
				// the agent it had reserved, until the next attempt).
				c.setAgent(agentKey{})
				c.setState("queued")
				if e.retryDelay > 0 {
					// No agent is reserved while the retry waits: QUEUED, as
					// the callback waits to be routed again, not ROUTING.
					ss.set(stQueued)
					if err := s.report(ss, StateReport{State: stQueued, EstimatedWaitTime: int(math.Ceil(e.retryDelay.Seconds()))}); err != nil {
						return finish(stateOver(err))
					}
				}
				if !s.sleep(ss.ctx, e.retryDelay) {
					return finish("cancelled")
				}
				front = false
				continue
			}
		}
		b, ok := s.lookupBinding(bindKey{tenant: ak.tenant, user: string(ak.dn)})
		if !ok {
			s.releaseAgent(ak, NotReady)
			front = true
			continue
		}
		s.assignCall(ak, c.id)
		c.offerTo(ak)
		headers := userDataHeaders(append([][2]string{
			{"X-Genesys-CallType", "callback"}, {"X-Genesys-CallbackId", string(e.id)},
			{"X-Genesys-ORSSessionId", ss.orsID.String()}, {"X-Genesys-Service", e.service},
			{"X-Genesys-VirtualQueue", e.vq}, {"X-Genesys-CallUUID", string(c.id)},
			{"X-Genesys-CustomerNumber", e.phone},
		}, [2]string{"X-Genesys-UserData", encodeUserData(c.userData)}))
		actx, acancel := context.WithCancel(ss.ctx)
		watchDone := make(chan struct{})
		go func() {
			select {
			case <-cust.gone:
				acancel()
			case <-watchDone:
			}
		}()
		out, err := s.dial(actx, c, 1, dialRequest{target: b, fromUser: e.phone, fromName: "Callback " + e.service,
			sdp: cust.sdp, headers: headers, ringTimeout: s.cfg.AgentAnswerTimeout})
		close(watchDone)
		acancel()
		if err != nil {
			c.setLeg(1, nil)
			select {
			case <-cust.gone:
				s.releaseAgent(ak, Ready)
				_ = s.report(ss, StateReport{State: stCompleted, Reason: reasonFailAgentConnect})
				return finish(reasonFailAgentConnect)
			default:
			}
			if ss.ctx.Err() != nil {
				s.releaseAgent(ak, Ready)
				return finish("cancelled")
			}
			// The agent did not answer: NotReady, and the callback goes back
			// to the head of the queue with the customer kept on the line
			// (hearing the parking prompt or silence).
			log.Info("agent did not answer callback", "dn", ak.dn, "err", err)
			c.requeue()
			s.releaseAgent(ak, NotReady)
			ss.mu.Lock()
			ss.agentDN = ""
			ss.mu.Unlock()
			front = true
			continue
		}
		if err := cust.connect(ss.ctx, out.answer()); err != nil {
			log.Warn("connecting customer media to agent failed", "err", err)
		}
		c.setState("connected")
		answeredAt := time.Now()
		c.addEndHook(func() {
			s.recordHandle(qk, time.Since(answeredAt))
			s.releaseAgent(ak, AfterCallWork)
		})
		ss.set(stProcessing)
		if err := s.report(ss, StateReport{State: stProcessing, AgentDN: string(ak.dn)}); errors.Is(err, errSessionOver) {
			return finish(stateOver(err))
		}
		select {
		case <-c.endedCh:
		case <-s.ctx.Done():
			return ""
		}
		_ = s.report(ss, StateReport{State: stCompleted, Reason: reasonAgentConnected, AgentDN: string(ak.dn)})
		return finish(reasonAgentConnected)
	}
}

func stateOver(err error) string {
	if errors.Is(err, errSessionOver) {
		return "ges_finished"
	}
	return "stopped"
}

func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dialCustomer places the customer leg of a callback: a simulated number
// answers in process; a registered number is called over SIP and parked on
// a prompt until an agent is connected.
func (s *Server) dialCustomer(ctx context.Context, c *call, number string) (*customerLeg, int) {
	gone := make(chan struct{})
	var goneOnce sync.Once
	markGone := func() { goneOnce.Do(func() { close(gone) }) }
	c.setState("dialing")
	if _, ok := s.simBehavior(number); ok {
		sim, code, _ := s.dialSim(ctx, number, nil)
		if sim == nil {
			return nil, code
		}
		c.mu.Lock()
		c.sim = sim
		c.mu.Unlock()
		l := simLeg{sim}
		c.setLeg(0, l)
		sim.hangupLater(func() {
			markGone()
			s.endCall(c, l, "customer hung up")
		})
		c.addEndHook(markGone)
		return &customerLeg{sim: sim, sdp: sim.offer(), gone: gone, c: c}, 200
	}
	b, ok := s.lookupBinding(bindKey{user: number})
	if !ok {
		return nil, 404
	}
	park, err := s.newParking()
	if err != nil {
		return nil, 503
	}
	out, err := s.dial(ctx, c, 0, dialRequest{target: b, fromUser: "callback", fromName: "Callback",
		sdp: park.offer(), ringTimeout: s.cfg.NoAnswerTimeout})
	if err != nil {
		park.close()
		c.setLeg(0, nil)
		var se *statusError
		if errors.As(err, &se) {
			return nil, se.code
		}
		return nil, 480
	}
	park.connect(out.answer())
	c.addEndHook(func() {
		markGone()
		park.close()
	})
	return &customerLeg{out: out, park: park, sdp: out.answer(), gone: gone, c: c}, 200
}

// connect points the customer's media at the agent.
func (l *customerLeg) connect(ctx context.Context, agentSDP []byte) error {
	if l.sim != nil {
		return l.sim.connect(agentSDP)
	}
	if _, err := l.out.reinvite(ctx, agentSDP); err != nil {
		return err
	}
	l.park.close()
	return nil
}

// flattenUserData turns the stream's JSON user data into strings.
func flattenUserData(ud map[string]any) map[string]string {
	out := make(map[string]string, len(ud))
	for k, v := range ud {
		switch t := v.(type) {
		case string:
			out[k] = t
		default:
			b, _ := json.Marshal(t)
			out[k] = string(b)
		}
	}
	return out
}

// encodeUserData renders user data as a form-urlencoded string, the shape
// Genesys' INFO-MAP uses for attached data.
func encodeUserData(ud map[string]string) string {
	keys := make([]string, 0, len(ud))
	for k := range ud {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	v := url.Values{}
	for _, k := range keys {
		v.Set(k, ud[k])
	}
	return v.Encode()
}

// blockingReader is a one-connection Redis client whose in-flight command can
// be cut short by closing its socket.
type blockingReader struct {
	*redis.Client
	mu    sync.Mutex
	conns []net.Conn
}

func interruptibleClient(c *redis.Client) *blockingReader {
	opt := *c.Options()
	r := &blockingReader{}
	dial := opt.Dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	opt.PoolSize, opt.MinIdleConns, opt.MaxIdleConns = 1, 0, 1
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err == nil {
			r.mu.Lock()
			r.conns = append(r.conns, conn)
			r.mu.Unlock()
		}
		return conn, err
	}
	r.Client = redis.NewClient(&opt)
	return r
}

// interrupt closes the sockets so a blocked XREADGROUP returns at once.
func (r *blockingReader) interrupt() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
}
