package voice

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// onInvite routes a new call: to a DN, a virtual queue's dial-in number, a
// Click-to-Call-In access number, a simulated customer, or a registered
// customer number.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		s.onReinvite(req, tx)
		return
	}
	if req.From() == nil || req.To() == nil || req.Contact() == nil || req.CSeq() == nil || req.CallID() == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
		return
	}
	dua := s.dialogUA(req.Transport())
	dss, err := dua.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad Request", nil))
		return
	}
	_ = dss.Respond(sip.StatusTrying, "Trying", nil)
	in := &inLeg{s: s, dss: dss, req: req, allow: parseAllowEvents(req)}

	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	snap, err := s.snapshot(ctx)
	cancel()
	if err != nil {
		in.reject(sip.StatusServiceUnavailable, "Directory Unavailable")
		return
	}
	target := req.Recipient.User
	callerTenant, callerDN := s.caller(snap, req)

	switch {
	case isE164(target):
		if ref, ok := snap.dialIn[target]; ok {
			s.inboundQueueCall(in, ref)
			return
		}
		if ref, ok := snap.callIn[target]; ok {
			s.callInCall(in, ref)
			return
		}
		if _, ok := s.simBehavior(target); ok {
			s.outboundSimCall(in, callerTenant, callerDN, target)
			return
		}
		if b, ok := s.lookupBinding(bindKey{user: target}); ok {
			c := s.newCall(kindInternal, callerTenant, req.From().Address.User, target)
			c.setUserData(userDataFromHeaders(req))
			s.bridge(in, c, b, callerDN, "")
			return
		}
		in.reject(sip.StatusNotFound, "Not Found")
	default:
		t := snap.byDomain[strings.ToLower(req.Recipient.Host)]
		if t == nil {
			t = snap.byID[callerTenant]
		}
		if t == nil {
			in.reject(sip.StatusNotFound, "Not Found")
			return
		}
		if _, ok := t.dn(DN(target)); !ok {
			in.reject(sip.StatusNotFound, "Unknown DN")
			return
		}
		b, ok := s.lookupBinding(bindKey{tenant: t.ID, user: target})
		if !ok {
			in.reject(sip.StatusTemporarilyUnavailable, "DN Not Registered")
			return
		}
		c := s.newCall(kindInternal, t.ID, req.From().Address.User, target)
		c.setUserData(userDataFromHeaders(req))
		s.bridge(in, c, b, callerDN, DN(target))
	}
}

// caller identifies a calling DN from the From header.
func (s *Server) caller(snap *dirSnapshot, req *sip.Request) (TenantID, DN) {
	from := req.From().Address
	if t := snap.byDomain[strings.ToLower(from.Host)]; t != nil {
		if _, ok := t.dn(DN(from.User)); ok {
			return t.ID, DN(from.User)
		}
		return t.ID, ""
	}
	return "", ""
}

// userDataHeaders carries routing context to the agent as X-Genesys-* headers.
func userDataHeaders(kv [][2]string) []sip.Header {
	var hs []sip.Header
	for _, p := range kv {
		if p[1] != "" {
			hs = append(hs, sip.NewHeader(p[0], p[1]))
		}
	}
	return hs
}

// formContentType is the INFO body type of attached data (the gateway's
// INFO-MAP) and the encoding of X-Genesys-UserData.
const formContentType = "application/x-www-form-urlencoded"

// parseUserData reads form-urlencoded pairs; a pair whose escapes are broken
// is taken as it is, and a later key wins.
func parseUserData(s string) map[string]string {
	out := map[string]string{}
	for pair := range strings.SplitSeq(strings.TrimSpace(s), "&") {
		k, v, _ := strings.Cut(pair, "=")
		if k = unescapeForm(k); k != "" {
			out[k] = unescapeForm(v)
		}
	}
	return out
}

func unescapeForm(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// userDataFromHeaders is the user data a caller attached to its INVITE: each
// X-Genesys-<key> header (the gateway's OFFER attacheddata) and the pairs of
// X-Genesys-UserData.
func userDataFromHeaders(req *sip.Request) map[string]string {
	var out map[string]string
	for _, h := range req.Headers() {
		name := h.Name()
		if len(name) <= len("x-genesys-") || !strings.EqualFold(name[:len("x-genesys-")], "x-genesys-") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		if key := name[len("x-genesys-"):]; strings.EqualFold(key, "UserData") {
			maps.Copy(out, parseUserData(h.Value()))
		} else {
			out[key] = h.Value()
		}
	}
	return out
}

// bridge connects an inbound leg to a registered endpoint, passing
// provisional responses and the answer across. It returns once the caller
// has the final response.
func (s *Server) bridge(in *inLeg, c *call, target binding, callerDN, calleeDN DN) {
	s.trackLeg(in.req.CallID().Value(), c, in)
	c.setLeg(0, in)
	if callerDN != "" {
		s.holdAgentFor(c, agentKey{tenant: c.tenant, dn: callerDN})
	}
	c.setState("ringing")
	from := in.req.From().Address.User
	out, err := s.dial(in.dss.Context(), c, 1, dialRequest{
		target: target, fromUser: from, fromName: in.req.From().DisplayName, sdp: in.req.Body(),
		headers: passHeaders(in.req), ringTimeout: s.cfg.RingTimeout,
		onProgress: func(r *sip.Response) { s.passProgress(in, r) },
	})
	if err != nil {
		s.failInbound(in, c, err)
		return
	}
	if calleeDN != "" {
		c.agent = agentKey{tenant: c.tenant, dn: calleeDN}
		s.holdAgentFor(c, c.agent)
	}
	c.setState("connected")
	if err := in.dss.RespondSDP(out.answer()); err != nil {
		s.endCall(c, in, "caller lost")
	}
}

// holdAgentFor marks an agent busy for a direct call and restores it after.
func (s *Server) holdAgentFor(c *call, k agentKey) {
	if next := s.markBusy(k, c.id); next != "" {
		c.addEndHook(func() { s.releaseAgent(k, next) })
	}
}

func (s *Server) passProgress(in *inLeg, r *sip.Response) {
	var hs []sip.Header
	if len(r.Body()) > 0 {
		hs = append(hs, sip.NewHeader("Content-Type", "application/sdp"))
	}
	_ = in.dss.Respond(r.StatusCode, r.Reason, r.Body(), hs...)
}

// failInbound answers the caller with the callee's failure and files the call.
func (s *Server) failInbound(in *inLeg, c *call, err error) {
	code := sip.StatusServiceUnavailable
	var se *statusError
	switch {
	case errors.As(err, &se):
		code = se.code
	case errors.Is(err, errRingTimeout):
		code = sip.StatusTemporarilyUnavailable
	case in.dss.Context().Err() != nil:
		code = sip.StatusRequestTerminated
	}
	in.setCode(code)
	s.endCall(c, nil, "failed: "+strconv.Itoa(code))
}

// passHeaders copies the caller's user-data headers to the next leg.
func passHeaders(req *sip.Request) []sip.Header {
	var out []sip.Header
	for _, h := range req.Headers() {
		n := strings.ToLower(h.Name())
		if strings.HasPrefix(n, "x-genesys-") || n == "user-to-user" {
			out = append(out, sip.NewHeader(h.Name(), h.Value()))
		}
	}
	return out
}

// inboundQueueCall parks a customer's call in a virtual queue and routes it
// to the longest-idle Ready agent with the queue's skill. The caller stays
// in early dialog (180 Ringing, no media) while queued: the 200 OK carries
// the agent's SDP, so media flows customer <-> agent with no re-INVITE.
func (s *Server) inboundQueueCall(in *inLeg, ref queueRef) {
	req := in.req
	c := s.newCall(kindInbound, ref.tenant.ID, req.From().Address.User, req.Recipient.User)
	c.setUserData(userDataFromHeaders(req))
	c.vq = ref.queue.Name
	s.trackLeg(req.CallID().Value(), c, in)
	c.setLeg(0, in)
	_ = in.dss.Respond(sip.StatusRinging, "Ringing", nil)
	prio := 0
	if h := req.GetHeader("X-Genesys-Priority"); h != nil {
		prio, _ = strconv.Atoi(strings.TrimSpace(h.Value()))
	}
	s.routeQueued(queuedCall{in: in, c: c, qk: queueKey{tenant: ref.tenant.ID, vq: ref.queue.Name}, prio: prio,
		headers: append(passHeaders(req), userDataHeaders([][2]string{
			{"X-Genesys-CallType", "inbound"}, {"X-Genesys-VirtualQueue", ref.queue.Name},
			{"X-Genesys-CallUUID", string(c.id)}})...),
		connect: in.dss.RespondSDP,
	})
}

// queuedCall is a caller waiting in a virtual queue for an agent.
type queuedCall struct {
	in   *inLeg
	c    *call
	qk   queueKey
	prio int
	// headers carry the routing context to the agent's INVITE.
	headers []sip.Header
	// connect hands the caller the agent's SDP: the 200 OK of an early dialog
	// (inbound) or a re-INVITE of an answered one (call-in).
	connect func(agentSDP []byte) error
}

// routeQueued waits in the queue for a Ready agent with the skill and offers
// it the caller's SDP; an agent that does not answer goes NotReady and the
// caller keeps the head of the queue. It returns once the caller is
// connected, has left, or waited MaxQueueWait.
func (s *Server) routeQueued(q queuedCall) {
	in, c, req := q.in, q.c, q.in.req
	deadline := time.NewTimer(s.cfg.MaxQueueWait)
	defer deadline.Stop()
	front := false
	for {
		c.setState("queued")
		w := s.enqueue(q.qk, q.prio, front)
		s.met.queueWaiting.Inc()
		var ak agentKey
		select {
		case ak = <-w.got:
			s.met.queueWaiting.Dec()
		case <-in.dss.Context().Done():
			s.met.queueWaiting.Dec()
			s.dequeue(w)
			s.endCall(c, in, "caller abandoned")
			return
		case <-deadline.C:
			s.met.queueWaiting.Dec()
			s.dequeue(w)
			in.setCode(sip.StatusTemporarilyUnavailable)
			s.endCall(c, nil, "queue timeout")
			return
		case <-s.ctx.Done():
			s.met.queueWaiting.Dec()
			s.dequeue(w)
			return
		}
		b, ok := s.lookupBinding(bindKey{tenant: ak.tenant, user: string(ak.dn)})
		if !ok {
			s.releaseAgent(ak, NotReady)
			front = true
			continue
		}
		s.assignCall(ak, c.id)
		c.offerTo(ak)
		out, err := s.dial(in.dss.Context(), c, 1, dialRequest{
			target: b, fromUser: req.From().Address.User, fromName: req.From().DisplayName, sdp: req.Body(),
			headers: q.headers, ringTimeout: s.cfg.AgentAnswerTimeout,
		})
		if err != nil {
			if in.dss.Context().Err() != nil {
				s.releaseAgent(ak, Ready)
				s.endCall(c, in, "caller abandoned")
				return
			}
			// The agent did not answer: it goes NotReady and the caller keeps
			// its place at the head of the queue.
			s.log.Info("agent did not answer a queued call", "dn", ak.dn, "err", err)
			c.setLeg(1, nil)
			c.requeue()
			s.releaseAgent(ak, NotReady)
			front = true
			continue
		}
		c.setState("connected")
		answeredAt := time.Now()
		c.addEndHook(func() {
			s.recordHandle(q.qk, time.Since(answeredAt))
			s.releaseAgent(ak, AfterCallWork)
		})
		if err := q.connect(out.answer()); err != nil {
			s.endCall(c, nil, "caller lost")
		}
		return
	}
}

// outboundSimCall is a DN (or any UA) dialling a simulated customer.
func (s *Server) outboundSimCall(in *inLeg, tenant TenantID, callerDN DN, number string) {
	req := in.req
	c := s.newCall(kindOutbound, tenant, req.From().Address.User, number)
	c.setUserData(userDataFromHeaders(req))
	s.trackLeg(req.CallID().Value(), c, in)
	c.setLeg(0, in)
	if callerDN != "" {
		c.agent = agentKey{tenant: tenant, dn: callerDN}
		s.holdAgentFor(c, c.agent)
	}
	sim, code, err := s.dialSim(in.dss.Context(), number, func() {
		_ = in.dss.Respond(sip.StatusRinging, "Ringing", nil)
	})
	if sim == nil {
		if err != nil && in.dss.Context().Err() != nil {
			s.endCall(c, in, "caller abandoned")
			return
		}
		in.setCode(code)
		s.endCall(c, nil, "failed: "+strconv.Itoa(code))
		return
	}
	c.mu.Lock()
	c.sim = sim
	c.mu.Unlock()
	c.setLeg(1, simLeg{sim})
	ans, err := simLeg{sim}.reinvite(context.Background(), req.Body())
	if err != nil {
		in.setCode(488)
		s.endCall(c, nil, "no common codec")
		return
	}
	sim.hangupLater(func() { s.endCall(c, simLeg{sim}, "customer hung up") })
	c.setState("connected")
	if err := in.dss.RespondSDP(ans); err != nil {
		s.endCall(c, in, "caller lost")
	}
}
