package voice

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/cxlab/cxlab/mocks/voice/internal/rtpsim"
)

// Call kinds.
const (
	kindInternal = "internal" // to a DN or a registered number
	kindInbound  = "inbound"  // a customer dialled a virtual queue
	kindCallback = "callback" // an ORS callback session
	kindOutbound = "outbound" // a DN dialled a simulated customer
)

// call is one interaction: leg a is the caller or customer, leg b the agent or callee.
type call struct {
	id         CallID
	kind       string
	tenant     TenantID
	vq         string
	from, to   string
	agent      agentKey
	callback   CallbackID
	orsSession string

	mu       sync.Mutex
	state    string // dialing, queued, ringing, connected, held, ended
	created  time.Time
	answered time.Time
	ended    time.Time
	reason   string
	a, b     leg
	sim      *simCustomer
	analysis *rtpsim.Analysis
	userData map[string]string
	onEnd    []func()
	endedCh  chan struct{}
	endOnce  sync.Once
	feed     *feed
}

// leg is one side of a call as the B2BUA drives it.
type leg interface {
	// reinvite sends a new offer and returns the answer.
	reinvite(ctx context.Context, sdp []byte) ([]byte, error)
	// info passes an INFO body across.
	info(ctx context.Context, contentType string, body []byte) error
	// notify sends NOTIFY Event: talk/hold (3pcc answer, hold, resume).
	notify(ctx context.Context, event string) error
	// hangup ends the leg: BYE once answered, CANCEL or a final error before.
	hangup(ctx context.Context)
}

type legRef struct {
	c *call
	l leg
}

func (s *Server) newCall(kind string, tenant TenantID, from, to string) *call {
	// A call's times are the wall clock's, as its answer and end are: they
	// measure media, which runs in real time whatever the lab clock says.
	c := &call{id: CallID(uuid.NewString()), kind: kind, tenant: tenant, from: from, to: to,
		state: "dialing", created: time.Now(), endedCh: make(chan struct{}), feed: &s.feed}
	s.mu.Lock()
	s.calls[c.id] = c
	s.mu.Unlock()
	s.met.callsTotal.WithLabelValues(kind).Inc()
	return c
}

func (c *call) setState(st string) {
	c.mu.Lock()
	if c.state != "ended" {
		c.state = st
		if st == "connected" && c.answered.IsZero() {
			c.answered = time.Now()
		}
		c.publishLocked()
	}
	c.mu.Unlock()
}

// setAgent records the agent the call is for (not yet offered to it).
func (c *call) setAgent(k agentKey) {
	c.mu.Lock()
	c.agent = k
	c.mu.Unlock()
}

// offerTo marks the call ringing at agent k.
func (c *call) offerTo(k agentKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != "ended" {
		c.agent, c.state = k, "ringing"
		if c.kind == kindCallback { // a callback's far end is its agent
			c.to = string(k.dn)
		}
		c.publishLocked()
	}
}

// requeue takes the call back from the agent it rang, who did not take it
// (no answer, or a reject): it waits in its queue again, and the agent's
// desktop sees it released.
func (c *call) requeue() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != "ended" {
		left := c.agent.dn
		c.agent, c.state = agentKey{}, "queued"
		if c.kind == kindCallback {
			c.to = ""
		}
		c.publishLeftLocked(left)
	}
}

// setUserData sets the user data a new call starts with (nil: none).
func (c *call) setUserData(ud map[string]string) {
	c.mu.Lock()
	c.userData = ud
	c.mu.Unlock()
}

// attachData merges pairs into the call's user data and reports the call
// with it, as SIP Server's EventAttachedDataChanged does. The map is
// replaced, not changed in place: views and events hold the old one.
func (c *call) attachData(pairs map[string]string) {
	if len(pairs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ud := make(map[string]string, len(c.userData)+len(pairs))
	maps.Copy(ud, c.userData)
	maps.Copy(ud, pairs)
	c.userData = ud
	if c.state != "ended" {
		c.publishLocked()
	}
}

func (c *call) getState() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *call) legs() (leg, leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.a, c.b
}

func (c *call) setLeg(side int, l leg) {
	c.mu.Lock()
	if side == 0 {
		c.a = l
	} else {
		c.b = l
	}
	c.mu.Unlock()
}

// other returns the leg facing l.
func (c *call) other(l leg) leg {
	a, b := c.legs()
	if l == a {
		return b
	}
	return a
}

// addEndHook runs f once the call ends (or at once if it has).
func (c *call) addEndHook(f func()) {
	c.mu.Lock()
	if c.state == "ended" {
		c.mu.Unlock()
		f()
		return
	}
	c.onEnd = append(c.onEnd, f)
	c.mu.Unlock()
}

func (s *Server) trackLeg(sipCallID string, c *call, l leg) {
	s.mu.Lock()
	s.legs[sipCallID] = &legRef{c: c, l: l}
	s.mu.Unlock()
}

func (s *Server) leg(sipCallID string) *legRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.legs[sipCallID]
}

// endCall finishes a call once: hangs up every leg but from (the one that
// already ended), freezes the customer analysis and files the record.
func (s *Server) endCall(c *call, from leg, reason string) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		a, b := c.a, c.b
		c.state = "ended"
		c.ended = time.Now()
		c.reason = reason
		c.publishLocked()
		hooks := c.onEnd
		c.onEnd = nil
		sim := c.sim
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
		defer cancel()
		for _, l := range []leg{a, b} {
			if l != nil && l != from {
				l.hangup(ctx)
			}
		}
		if sim != nil {
			an := sim.ep.Analysis()
			c.mu.Lock()
			c.analysis = &an
			c.mu.Unlock()
			sim.close()
		}
		s.mu.Lock()
		delete(s.calls, c.id)
		for k, r := range s.legs {
			if r.c == c {
				delete(s.legs, k)
			}
		}
		s.history = append(s.history, c)
		if len(s.history) > s.cfg.CallHistory {
			s.history = s.history[len(s.history)-s.cfg.CallHistory:]
		}
		s.mu.Unlock()
		close(c.endedCh)
		for _, f := range hooks {
			f()
		}
		s.log.Debug("call ended", "call", c.id, "kind", c.kind, "reason", reason)
	})
}

// hangupCall ends a call from the outside (3pcc hangup, shutdown).
func (s *Server) hangupCall(_ context.Context, c *call, reason string) {
	s.endCall(c, nil, reason)
}

// inLeg is a call leg the B2BUA answers (UAS side).
type inLeg struct {
	s     *Server
	dss   *sipgo.DialogServerSession
	req   *sip.Request
	allow map[string]bool

	mu   sync.Mutex
	code int // final status for an unanswered hang-up
}

func (l *inLeg) setCode(code int) {
	l.mu.Lock()
	l.code = code
	l.mu.Unlock()
}

func (l *inLeg) established() bool { return l.dss.LoadState() >= sip.DialogStateEstablished }

func (l *inLeg) newRequest(m sip.RequestMethod) *sip.Request {
	r := sip.NewRequest(m, l.req.Contact().Address)
	r.SetTransport(l.req.Transport())
	return r
}

func (l *inLeg) reinvite(ctx context.Context, sdp []byte) ([]byte, error) {
	if !l.established() {
		return nil, errCallState
	}
	req := l.newRequest(sip.INVITE)
	req.SetBody(sdp)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res, err := l.dss.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("re-invite: %w", err)
	}
	if !res.IsSuccess() {
		return nil, &statusError{code: res.StatusCode, reason: res.Reason}
	}
	ack := l.newRequest(sip.ACK)
	if err := l.dss.WriteRequest(ack); err != nil {
		return nil, fmt.Errorf("re-invite ack: %w", err)
	}
	return res.Body(), nil
}

func (l *inLeg) info(ctx context.Context, ct string, body []byte) error {
	if !l.established() {
		return errCallState
	}
	req := l.newRequest(sip.INFO)
	req.SetBody(body)
	if ct != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ct))
	}
	res, err := l.dss.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	if !res.IsSuccess() {
		return &statusError{code: res.StatusCode, reason: res.Reason}
	}
	return nil
}

func (l *inLeg) notify(ctx context.Context, event string) error {
	if !l.allow[event] {
		return errNoRemoteCtl
	}
	if !l.established() {
		return errCallState
	}
	req := l.newRequest(sip.NOTIFY)
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Subscription-State", "active"))
	res, err := l.dss.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if !res.IsSuccess() {
		return &statusError{code: res.StatusCode, reason: res.Reason}
	}
	return nil
}

func (l *inLeg) reject(code int, reason string) {
	if l.dss.LoadState() >= sip.DialogStateEstablished || l.dss.Context().Err() != nil {
		return
	}
	_ = l.dss.Respond(code, reason, nil)
}

func (l *inLeg) hangup(ctx context.Context) {
	if l.dss.LoadState() == sip.DialogStateEnded {
		return
	}
	if !l.established() {
		l.mu.Lock()
		code := l.code
		l.mu.Unlock()
		if code == 0 {
			code = sip.StatusTemporarilyUnavailable
		}
		l.reject(code, reasonText(code))
		return
	}
	if err := l.dss.Bye(ctx); err != nil {
		l.s.log.Debug("bye to caller failed", "err", err)
	}
}

// outLeg is a call leg the B2BUA places (UAC side).
type outLeg struct {
	s      *Server
	dua    *sipgo.DialogUA
	dcs    *sipgo.DialogClientSession
	target binding

	mu          sync.Mutex
	prov        *sip.Response
	allow       map[string]bool
	established bool
	ringCancel  context.CancelFunc
}

// statusError is a SIP final response that ended a request.
type statusError struct {
	code   int
	reason string
}

func (e *statusError) Error() string { return fmt.Sprintf("sip %d %s", e.code, e.reason) }

func reasonText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Error"
}

// dialRequest describes an outbound INVITE.
type dialRequest struct {
	target      binding
	fromUser    string
	fromName    string
	sdp         []byte
	headers     []sip.Header
	ringTimeout time.Duration
	onProgress  func(*sip.Response)
}

// errRingTimeout means the callee rang without answering.
var errRingTimeout = errors.New("no answer")

// dial places an INVITE and waits for the answer, ACKing it. ctx cancelling
// sends CANCEL. On failure the error is a *statusError, errRingTimeout or the
// context's error.
func (s *Server) dial(ctx context.Context, c *call, side int, d dialRequest) (*outLeg, error) {
	t := d.target
	req := sip.NewRequest(sip.INVITE, t.contact)
	req.SetTransport(t.transport)
	domain := t.domain
	if domain == "" {
		domain = s.cfg.SIPDomainFallback
	}
	from := &sip.FromHeader{DisplayName: d.fromName, Address: sip.Uri{Scheme: "sip", User: d.fromUser, Host: domain},
		Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: t.key.user, Host: domain}})
	cid := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(&cid)
	for _, h := range d.headers {
		req.AppendHeader(h)
	}
	req.AppendHeader(sip.NewHeader("Allow", allowHeader))
	if d.sdp != nil {
		req.SetBody(d.sdp)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	req.SetDestination(t.dest)

	dua := s.dialogUA(t.transport)
	l := &outLeg{s: s, dua: dua, target: t, allow: map[string]bool{}}
	for k := range t.allowEvents {
		l.allow[k] = true
	}
	s.trackLeg(string(cid), c, l)
	c.setLeg(side, l)

	dcs, err := dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("invite %s: %w", t.key.user, err)
	}
	l.dcs = dcs
	ringCtx, cancel := context.WithTimeoutCause(ctx, d.ringTimeout, errRingTimeout)
	l.mu.Lock()
	l.ringCancel = cancel
	l.mu.Unlock()
	defer cancel()
	err = dcs.WaitAnswer(ringCtx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
		l.mu.Lock()
		if r.IsProvisional() && r.StatusCode > 100 {
			l.prov = r
		}
		for k := range parseAllowEvents(r) {
			l.allow[k] = true
		}
		l.mu.Unlock()
		if r.IsProvisional() && r.StatusCode > 100 && d.onProgress != nil {
			d.onProgress(r)
		}
		return nil
	}})
	if err != nil {
		var dr *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &dr):
			return nil, &statusError{code: dr.Res.StatusCode, reason: dr.Res.Reason}
		case errors.Is(context.Cause(ringCtx), errRingTimeout) && ctx.Err() == nil:
			return nil, errRingTimeout
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("invite %s: %w", t.key.user, err)
	}
	if err := dcs.Ack(ctx); err != nil {
		return nil, fmt.Errorf("ack %s: %w", t.key.user, err)
	}
	l.mu.Lock()
	l.established = true
	l.mu.Unlock()
	return l, nil
}

// answer is the SDP of the callee's 200 OK.
func (l *outLeg) answer() []byte { return l.dcs.InviteResponse.Body() }

func (l *outLeg) isEstablished() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.established
}

func (l *outLeg) newRequest(m sip.RequestMethod) *sip.Request {
	uri := l.target.contact
	if ct := l.dcs.InviteResponse.Contact(); ct != nil {
		uri = ct.Address
	}
	r := sip.NewRequest(m, uri)
	r.SetTransport(l.target.transport)
	return r
}

func (l *outLeg) reinvite(ctx context.Context, sdp []byte) ([]byte, error) {
	if !l.isEstablished() {
		return nil, errCallState
	}
	req := l.newRequest(sip.INVITE)
	req.SetBody(sdp)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res, err := l.dcs.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("re-invite: %w", err)
	}
	if !res.IsSuccess() {
		return nil, &statusError{code: res.StatusCode, reason: res.Reason}
	}
	if err := l.dcs.WriteRequest(l.newRequest(sip.ACK)); err != nil {
		return nil, fmt.Errorf("re-invite ack: %w", err)
	}
	return res.Body(), nil
}

func (l *outLeg) info(ctx context.Context, ct string, body []byte) error {
	if !l.isEstablished() {
		return errCallState
	}
	req := l.newRequest(sip.INFO)
	req.SetBody(body)
	if ct != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ct))
	}
	res, err := l.dcs.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	if !res.IsSuccess() {
		return &statusError{code: res.StatusCode, reason: res.Reason}
	}
	return nil
}

func (l *outLeg) notify(ctx context.Context, event string) error {
	l.mu.Lock()
	allowed, est, prov := l.allow[event], l.established, l.prov
	l.mu.Unlock()
	if !allowed {
		return errNoRemoteCtl
	}
	var res *sip.Response
	var err error
	if est {
		req := l.newRequest(sip.NOTIFY)
		req.AppendHeader(sip.NewHeader("Event", event))
		req.AppendHeader(sip.NewHeader("Subscription-State", "active"))
		res, err = l.dcs.Do(ctx, req)
	} else {
		if prov == nil || prov.To() == nil {
			return errCallState
		}
		// In the early dialog the dialog session is still owned by the
		// goroutine waiting for the answer, so the NOTIFY is built by hand.
		uri := l.target.contact
		if ct := prov.Contact(); ct != nil {
			uri = ct.Address
		}
		inv := l.dcs.InviteRequest
		req := sip.NewRequest(sip.NOTIFY, uri)
		req.SetTransport(l.target.transport)
		req.AppendHeader(sip.HeaderClone(inv.From()))
		req.AppendHeader(sip.HeaderClone(prov.To()))
		req.AppendHeader(sip.HeaderClone(inv.CallID()))
		req.AppendHeader(&sip.CSeqHeader{SeqNo: l.dcs.CSEQ() + 1, MethodName: sip.NOTIFY})
		req.AppendHeader(sip.HeaderClone(&l.dua.ContactHDR))
		req.AppendHeader(sip.NewHeader("Event", event))
		req.AppendHeader(sip.NewHeader("Subscription-State", "active"))
		req.SetDestination(l.target.dest)
		res, err = l.dua.Client.Do(ctx, req)
	}
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	if !res.IsSuccess() {
		return &statusError{code: res.StatusCode, reason: res.Reason}
	}
	return nil
}

func (l *outLeg) hangup(ctx context.Context) {
	l.mu.Lock()
	est, cancel := l.established, l.ringCancel
	l.mu.Unlock()
	if !est {
		if cancel != nil {
			cancel()
		}
		return
	}
	if l.dcs.LoadState() == sip.DialogStateEnded {
		return
	}
	if err := l.dcs.Bye(ctx); err != nil {
		l.s.log.Debug("bye to callee failed", "err", err)
	}
}

// onAck confirms an answered inbound leg.
func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	r := s.leg(req.CallID().Value())
	if r == nil {
		return
	}
	if in, ok := r.l.(*inLeg); ok && req.CSeq().SeqNo == in.req.CSeq().SeqNo {
		_ = in.dss.ReadAck(req, tx)
	}
}

// onBye ends the call of whichever leg hung up.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	r := s.leg(req.CallID().Value())
	if r == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	var err error
	switch l := r.l.(type) {
	case *inLeg:
		err = l.dss.ReadBye(req, tx)
	case *outLeg:
		err = l.dcs.ReadBye(req, tx)
	}
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
	}
	s.endCall(r.c, r.l, "hangup")
}

// onReinvite passes a re-INVITE (hold, resume, media change) to the other leg.
func (s *Server) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	r := s.leg(req.CallID().Value())
	if r == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	other := r.c.other(r.l)
	if other == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusRequestPending, "Request Pending", nil))
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	ans, err := other.reinvite(ctx, req.Body())
	if err != nil {
		code := sip.StatusServiceUnavailable
		var se *statusError
		if errors.As(err, &se) {
			code = se.code
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reasonText(code), nil))
		return
	}
	if m, err := rtpsim.Parse(req.Body()); err == nil {
		if m.Direction == rtpsim.SendOnly || m.Direction == rtpsim.Inactive {
			r.c.setState("held")
		} else {
			r.c.setState("connected")
		}
	}
	res := sip.NewSDPResponseFromRequest(req, ans)
	var dua *sipgo.DialogUA
	switch l := r.l.(type) {
	case *inLeg:
		dua = s.dialogUA(l.req.Transport())
	case *outLeg:
		dua = l.dua
	}
	if dua != nil {
		res.AppendHeader(sip.HeaderClone(&dua.ContactHDR))
	}
	_ = tx.Respond(res)
}

// onInfo takes an INFO of form-urlencoded pairs (the gateway's INFO-MAP)
// as the call's user data, as SIP Server maps it into T-Library events,
// and passes any other INFO (INFO-PEER, DTMF relay) to the other leg.
func (s *Server) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	r := s.leg(req.CallID().Value())
	if r == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	if mt, _, _ := strings.Cut(ct, ";"); strings.EqualFold(strings.TrimSpace(mt), formContentType) {
		r.c.attachData(parseUserData(string(req.Body())))
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		return
	}
	code := sip.StatusOK
	if other := r.c.other(r.l); other != nil {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		if err := other.info(ctx, ct, req.Body()); err != nil {
			var se *statusError
			code = sip.StatusServiceUnavailable
			if errors.As(err, &se) {
				code = se.code
			}
		}
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reasonText(code), nil))
}
