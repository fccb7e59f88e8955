package voice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/cxlab/cxlab/mocks/voice/internal/rtpsim"
)

// kindCallIn is a customer calling a Click-to-Call-In access number.
const kindCallIn = "callin"

// callInMaxDigits ends access-code collection without '#'.
const callInMaxDigits = 8

// callInTries is how many times the IVR asks before giving up (the first
// try and one retry).
const callInTries = 2

// callInFailHz is the tone a caller hears before an unmatched call is released.
const callInFailHz = 480

// pathCallInMatch is GES's internal match endpoint.
const pathCallInMatch = "/engagement/internal/v1/call-in/match"

// callInMatch is the request body of GES's match endpoint.
type callInMatch struct {
	AccessNumber string `json:"accessNumber"`
	AccessCode   string `json:"accessCode"`
	ANI          string `json:"ani"`
}

// callInMatched is the call-in request GES matched.
type callInMatched struct {
	ID                string         `json:"id"`
	GroupName         string         `json:"groupName"`
	ContactCenterID   TenantID       `json:"contactCenterId"`
	FromPhoneNumber   string         `json:"fromPhoneNumber"`
	CallbackServiceID string         `json:"callbackServiceId"`
	VirtualQueue      string         `json:"virtualQueue"`
	UserData          map[string]any `json:"userData"`
}

// errNoMatch means GES knows no live request for what the caller gave.
var errNoMatch = errors.New("no matching call-in request")

// ivr is the media server (GVP) leg of a call-in: it plays the prompt and
// hears the caller's RFC 4733 digits.
type ivr struct {
	ep       *rtpsim.Endpoint
	promptFr int
	consumed int // digits of the analysis already used by an earlier try
}

func (s *Server) newIVR() (*ivr, error) {
	conn, err := rtpsim.Listen(s.cfg.RTPHost, s.cfg.RTPPortMin, s.cfg.RTPPortMax)
	if err != nil {
		return nil, err
	}
	v := &ivr{promptFr: int(s.cfg.CallInPromptLength / (20 * time.Millisecond))}
	v.ep = rtpsim.New(conn, v.prompt())
	return v, nil
}

// prompt is a short announcement followed by silence while the IVR listens.
func (v *ivr) prompt() rtpsim.Source {
	return &rtpsim.Switch{First: &rtpsim.Prompt{}, Frames: v.promptFr, Then: rtpsim.Silence{}}
}

// collect waits for an access code: digits up to '#', or callInMaxDigits
// digits, or what was keyed when timeout passes. Keys typed ahead of a retry
// count toward it. ok is false when the call ended meanwhile.
func (v *ivr) collect(ctx context.Context, timeout time.Duration) (code string, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	// The endpoint records digits as they arrive; a 20 ms poll (one frame)
	// adds no delay a caller could notice.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		all := v.ep.Analysis().Digits
		keyed := all[min(v.consumed, len(all)):]
		if i := strings.IndexByte(keyed, '#'); i >= 0 {
			v.consumed += i + 1
			return keyed[:i], true
		}
		if len(keyed) >= callInMaxDigits {
			v.consumed += callInMaxDigits
			return keyed[:callInMaxDigits], true
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-deadline.C:
			v.consumed += len(keyed)
			return keyed, true
		case <-tick.C:
		}
	}
}

// callInCall answers a caller of a Click-to-Call-In access number with the
// IVR, collects the access code (or takes the caller's number when the group
// has none), asks GES to match it, and on a match queues the caller like an
// inbound queue call; the agent's answer reaches the caller by re-INVITE. A
// caller not matched after one retry hears a tone and is released (BYE).
func (s *Server) callInCall(in *inLeg, ref callInRef) {
	req := in.req
	g := ref.group
	ani := req.From().Address.User
	c := s.newCall(kindCallIn, ref.tenant.ID, ani, req.Recipient.User)
	c.vq = g.VirtualQueue
	s.trackLeg(req.CallID().Value(), c, in)
	c.setLeg(0, in)
	log := s.log.With("call", c.id, "group", g.Name)

	offer, err := rtpsim.Parse(req.Body())
	if err != nil {
		in.setCode(sip.StatusNotAcceptableHere)
		s.endCall(c, nil, "no usable offer")
		return
	}
	codecs, err := rtpsim.Answer(offer)
	if err != nil {
		in.setCode(sip.StatusNotAcceptableHere)
		s.endCall(c, nil, "no common codec")
		return
	}
	v, err := s.newIVR()
	if err != nil {
		log.Warn("call-in: no media port for the IVR", "err", err)
		in.setCode(sip.StatusServiceUnavailable)
		s.endCall(c, nil, "no media port")
		return
	}
	c.addEndHook(func() {
		// What the IVR heard (the digits keyed) stays on the call record.
		an := v.ep.Analysis()
		c.mu.Lock()
		c.analysis = &an
		c.mu.Unlock()
		v.ep.Close()
	})
	if err := v.ep.SetRemote(offer); err != nil {
		in.setCode(sip.StatusNotAcceptableHere)
		s.endCall(c, nil, "no common codec")
		return
	}
	c.setState("ivr")
	if err := in.dss.RespondSDP(v.ep.SDP(codecs, offer.Direction.Reverse(), 1)); err != nil {
		s.endCall(c, in, "caller lost")
		return
	}
	ctx := in.dss.Context()
	if !waitConfirmed(ctx, in.dss, callInAckWait) {
		s.endCall(c, nil, "caller sent no ACK")
		return
	}

	var m *callInMatched
	for try := 1; m == nil; try++ {
		if try > 1 {
			v.ep.SetSource(v.prompt())
		}
		q := callInMatch{AccessNumber: g.AccessNumber, ANI: ani}
		if g.AccessCodeEnabled {
			code, ok := v.collect(ctx, s.cfg.CallInDigitTimeout)
			if !ok {
				s.endCall(c, in, "caller abandoned")
				return
			}
			q.AccessCode = code
		}
		if q.AccessCode != "" || !g.AccessCodeEnabled {
			m, err = s.matchCallIn(ctx, q)
			switch {
			case err == nil:
			case errors.Is(err, errNoMatch):
				log.Info("call-in not matched", "try", try, "coded", q.AccessCode != "")
			default:
				log.Warn("call-in: GES match failed", "try", try, "err", err)
			}
		}
		if m != nil {
			break
		}
		if ctx.Err() != nil {
			s.endCall(c, in, "caller abandoned")
			return
		}
		if try >= callInTries {
			v.ep.SetSource(rtpsim.NewTone(callInFailHz))
			if !s.sleep(ctx, s.cfg.CallInPromptLength) {
				s.endCall(c, in, "caller abandoned")
				return
			}
			s.endCall(c, nil, "call-in not matched")
			return
		}
		if !g.AccessCodeEnabled && !s.sleep(ctx, s.cfg.CallInPromptLength) {
			// Without digits to wait for, the retry comes after the prompt replays.
			s.endCall(c, in, "caller abandoned")
			return
		}
	}

	vq := g.VirtualQueue
	if vq == "" {
		vq = m.VirtualQueue
	}
	ud := flattenUserData(m.UserData)
	ud["callInRequestId"], ud["callInGroup"] = m.ID, m.GroupName
	c.mu.Lock()
	c.vq, c.userData = vq, ud
	c.mu.Unlock()
	log.Info("call-in matched", "request", m.ID, "vq", vq)
	if vq == "" {
		log.Warn("call-in group names no virtual queue; releasing the caller")
		s.endCall(c, nil, "call-in group has no virtual queue")
		return
	}
	// The caller hears the announcement on a loop while waiting for an agent.
	v.ep.SetSource(&rtpsim.Prompt{})
	s.routeQueued(queuedCall{in: in, c: c, qk: queueKey{tenant: ref.tenant.ID, vq: vq},
		headers: append(passHeaders(req), userDataHeaders([][2]string{
			{"X-Genesys-CallType", "inbound"}, {"X-Genesys-VirtualQueue", vq},
			{"X-Genesys-CallUUID", string(c.id)}, {"X-Genesys-CallInRequestId", m.ID},
			{"X-Genesys-CallInGroup", m.GroupName}, {"X-Genesys-CustomerNumber", ani},
			{"X-Genesys-Service", m.CallbackServiceID}, {"X-Genesys-UserData", encodeUserData(ud)},
		})...),
		connect: func(agentSDP []byte) error {
			rctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			defer cancel()
			if _, err := in.reinvite(rctx, agentSDP); err != nil {
				return err
			}
			v.ep.Close()
			return nil
		},
	})
}

// callInAckWait bounds the wait for the caller's ACK (Timer H, 64*T1).
const callInAckWait = 32 * time.Second

// waitConfirmed waits for the caller's ACK of the 200 OK: the IVR may send
// neither a re-INVITE nor a BYE while the initial INVITE is still open (RFC
// 3261 §14.1, §15).
func waitConfirmed(ctx context.Context, dss *sipgo.DialogServerSession, timeout time.Duration) bool {
	confirmed := make(chan struct{})
	var once sync.Once
	dss.OnStateReplay(func(st sip.DialogState) {
		if st == sip.DialogStateConfirmed {
			once.Do(func() { close(confirmed) })
		}
	})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-confirmed:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

// matchCallIn asks GES which call-in request a caller belongs to (with an
// ors_client token, as state reports use). errNoMatch when GES has none.
func (s *Server) matchCallIn(ctx context.Context, q callInMatch) (*callInMatched, error) {
	if s.cfg.GESURL == "" {
		return nil, errors.New("call-in match: no GES URL configured")
	}
	body, _ := json.Marshal(q)
	u := strings.TrimRight(s.cfg.GESURL, "/") + pathCallInMatch
	fresh := false
	for range 2 {
		code, raw, err := s.postMatch(ctx, u, body, fresh)
		if err != nil {
			return nil, err
		}
		switch code {
		case http.StatusOK:
			return decodeMatch(raw)
		case http.StatusNotFound:
			return nil, errNoMatch
		case http.StatusUnauthorized:
			fresh = true // the cached token may have been revoked: fetch one and try again
		default:
			return nil, fmt.Errorf("call-in match: GES answered %d", code)
		}
	}
	return nil, errors.New("call-in match: GES refused the ors token")
}

func (s *Server) postMatch(ctx context.Context, u string, body []byte, fresh bool) (int, []byte, error) {
	tok, err := s.orsToken(ctx, fresh)
	if err != nil {
		return 0, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("call-in match: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("call-in match: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("call-in match: read answer: %w", err)
	}
	return res.StatusCode, raw, nil
}

// decodeMatch reads GES's answer: the request in the envelope's data, or at
// the top level.
func decodeMatch(raw []byte) (*callInMatched, error) {
	var env struct {
		Data *callInMatched `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("call-in match: bad answer: %w", err)
	}
	m := env.Data
	if m == nil {
		m = &callInMatched{}
		if err := json.Unmarshal(raw, m); err != nil {
			return nil, fmt.Errorf("call-in match: bad answer: %w", err)
		}
	}
	if m.ID == "" {
		return nil, errors.New("call-in match: answer names no request")
	}
	return m, nil
}
