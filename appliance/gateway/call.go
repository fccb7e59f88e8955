package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/pion/webrtc/v4"

	"github.com/cxlab/cxlab/appliance/gateway/internal/rtc"
	"github.com/cxlab/cxlab/appliance/media"
)

type kv = rtc.KV

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// call is one bridged call of a session.
type call struct {
	s         *Server
	sess      *session
	id        string
	direction string
	peer      string
	started   time.Time
	attached  []kv

	answerCh chan rtc.Message
	ended    chan struct{}
	endOnce  sync.Once
	// sipMu serializes the calls into the SIP dialog sessions, which sipgo
	// does not make safe for concurrent use: runIncoming answers or fails an
	// incoming INVITE while end may decline it.
	sipMu sync.Mutex

	mu          sync.Mutex
	state       string // ringing, connected, held, ended
	sipCallID   string
	dss         *sipgo.DialogServerSession
	dcs         *sipgo.DialogClientSession
	pc          *webrtc.PeerConnection
	track       *rtc.Track
	browserMime string
	sipMedia    sipMedia
	rtpConn     *net.UDPConn
	br          *bridge
	answered    time.Time
	endedAt     time.Time
	endReason   string
	sdpVersion  int
	sessID      uint64
	offerID     int
	offerSeq    int
	reoffering  sync.Mutex
	pending     *webrtc.TrackRemote
}

func newCall(s *Server, ss *session, direction, peer string) *call {
	return &call{s: s, sess: ss, id: uuid.NewString(), direction: direction, peer: peer, started: s.clk.Now(),
		answerCh: make(chan rtc.Message, 1), ended: make(chan struct{}), state: "ringing", sessID: rand.Uint64() >> 1}
}

// deliverAnswer hands the browser's ANSWER to the waiting offer.
func (c *call) deliverAnswer(m rtc.Message) bool {
	select {
	case c.answerCh <- m:
		return true
	default:
		return false
	}
}

// pickBrowserCodec chooses the browser-leg codec from an SDP's encodings.
func (s *Server) pickBrowserCodec(names []string) (string, error) {
	opusSeen := false
	for _, n := range names {
		switch n {
		case "OPUS":
			opusSeen = true
			if *s.cfg.EnableTranscoding {
				return webrtc.MimeTypeOpus, nil
			}
		case "PCMU":
			return webrtc.MimeTypePCMU, nil
		case "PCMA":
			return webrtc.MimeTypePCMA, nil
		}
	}
	if opusSeen {
		return "", errors.New("transcoding is disabled: G.711 (PCMU/PCMA) is required")
	}
	return "", rtc.ErrNoCodec
}

// newPC builds the browser leg's PeerConnection.
func (c *call) newPC(codecs rtc.Codecs) (*webrtc.PeerConnection, error) {
	api, err := rtc.NewAPI(c.s.se, codecs)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.mu.Lock()
		br := c.br
		if br == nil {
			c.pending = tr // the bridge takes it once the SIP side answers
		}
		c.mu.Unlock()
		if br != nil {
			br.readBrowserOnce(tr)
		}
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			go c.end(context.Background(), "ice failed", sideGateway)
		}
	})
	return pc, nil
}

// openRTP opens the SIP-side RTP socket within the configured range.
func (c *call) openRTP() (*net.UDPConn, error) {
	ip := net.ParseIP(c.s.cfg.MediaHost)
	lo, hi := c.s.cfg.RTPPortMin, c.s.cfg.RTPPortMax
	if lo == 0 && hi == 0 {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, fmt.Errorf("rtp listen: %w", err)
		}
		return conn, nil
	}
	n := hi - lo + 1
	start := rand.IntN(n)
	for i := range n {
		p := lo + (start+i)%n
		if conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: p}); err == nil {
			return conn, nil
		}
	}
	return nil, fmt.Errorf("rtp listen: no free port in %d-%d", lo, hi)
}

// localSDP renders the gateway's SIP SDP for this call.
func (c *call) localSDP(laws []media.Law, eventPT uint8, direction string) []byte {
	c.mu.Lock()
	c.sdpVersion++
	v := c.sdpVersion
	port := c.rtpConn.LocalAddr().(*net.UDPAddr).Port
	c.mu.Unlock()
	return sipSDP(c.s.cfg.MediaHost, port, c.sessID, v, laws, eventPT, direction)
}

// runIncoming offers a SIP call to the browser and bridges it on answer.
func (c *call) runIncoming(dss *sipgo.DialogServerSession, offer sipMedia) {
	s := c.s
	callID := dss.InviteRequest.CallID().Value()
	// If the agent signed out while the INVITE was being read, end found no
	// dialog to decline: the INVITE is answered here.
	decline := func() {
		c.withDialog(func() {
			_ = dss.Respond(480, "Temporarily Unavailable", nil)
			_ = dss.Close()
		})
	}
	if !c.adopt(func() { c.dss, c.sipCallID, c.sipMedia = dss, callID, offer }, decline) {
		return
	}
	s.trackCall(c, callID)
	c.withDialog(func() { _ = dss.Respond(180, "Ringing", nil, sip.NewHeader("Allow-Events", "talk, hold")) })

	fail := func(code int, reason string, err error) {
		s.log.Info("incoming call failed", "dn", c.sess.dn, "err", err)
		c.withDialog(func() { _ = dss.Respond(code, reason, nil) })
		c.end(context.Background(), "failed: "+err.Error(), sideSIP)
	}
	conn, err := c.openRTP()
	if err != nil {
		fail(503, "Service Unavailable", err)
		return
	}
	if !c.adopt(func() { c.rtpConn = conn }, func() { _ = conn.Close() }) {
		return
	}
	xc := *s.cfg.EnableTranscoding
	pc, err := c.newPC(rtc.Codecs{Opus: xc, PCMU: true, PCMA: true})
	if err != nil {
		fail(500, "Server Internal Error", err)
		return
	}
	mime := webrtc.MimeTypePCMU
	if offer.law == media.PCMA {
		mime = webrtc.MimeTypePCMA
	}
	if xc {
		mime = webrtc.MimeTypeOpus
	}
	track := rtc.NewTrack(mime, "audio", "cxlab")
	tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
	if !c.adopt(func() { c.pc, c.track = pc, track }, func() { _ = pc.Close() }) {
		return
	}
	if err != nil {
		fail(500, "Server Internal Error", fmt.Errorf("add transceiver: %w", err))
		return
	}
	sdpOffer, err := pc.CreateOffer(nil)
	if err != nil {
		fail(500, "Server Internal Error", fmt.Errorf("create offer: %w", err))
		return
	}
	full, err := rtc.Gather(pc, sdpOffer, c.ended)
	if err != nil {
		fail(500, "Server Internal Error", err)
		return
	}
	c.offerID = c.sess.nextOfferID()
	c.offerSeq = 1
	c.sess.push(c.peer, rtc.Message{Type: "OFFER", SDP: full, OffererSessionID: c.offerID, Seq: c.offerSeq,
		Tiebreaker: rand.IntN(1 << 30), AttachedData: c.attached}.Encode("SDP "))

	timer := time.NewTimer(s.cfg.AnswerTimeout)
	defer timer.Stop()
	var ans rtc.Message
	select {
	case ans = <-c.answerCh:
	case <-dss.Context().Done(): // CANCEL or transaction timeout
		c.end(context.Background(), "cancelled", sideSIP)
		return
	case <-c.ended:
		return
	case <-timer.C:
		c.withDialog(func() { _ = dss.Respond(480, "Temporarily Unavailable", nil) })
		c.end(context.Background(), "no answer", sideSIP)
		return
	}
	names, _, hasAudio := rtc.CodecsInSDP(ans.FullSDP())
	chosen, err := s.pickBrowserCodec(names)
	if !hasAudio || err != nil {
		if err == nil {
			err = errors.New("answer has no audio")
		}
		c.sess.push(c.peer, pushedError("CODEC", err.Error()))
		fail(488, "Not Acceptable Here", err)
		return
	}
	if !strings.EqualFold(chosen, mime) {
		track = rtc.NewTrack(chosen, "audio", "cxlab")
		if err := tr.Sender().ReplaceTrack(track); err != nil {
			fail(500, "Server Internal Error", fmt.Errorf("replace track: %w", err))
			return
		}
	}
	if !c.adopt(func() {
		c.track, c.browserMime = track, chosen
		c.br = newBridge(c, chosen, offer) // after the track: the bridge plays into c.track
	}, nil) {
		return
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.FullSDP()}); err != nil {
		c.sess.push(c.peer, pushedError("BAD_SDP", "answer rejected"))
		fail(488, "Not Acceptable Here", fmt.Errorf("set remote answer: %w", err))
		return
	}
	c.sess.push(c.peer, rtc.Message{Type: "OK", OffererSessionID: c.offerID, AnswererSessionID: ans.AnswererSessionID,
		Seq: c.offerSeq}.Encode("SDP "))
	answer := c.localSDP([]media.Law{offer.law}, offer.eventPT, "sendrecv")
	var err200 error
	c.withDialog(func() { err200 = dss.RespondSDP(answer) })
	if err200 != nil {
		c.end(context.Background(), "sip answer failed", sideSIP)
		return
	}
	if !c.established() {
		// end saw a ringing call and declined it, too late: the 200 OK went
		// out, so the dialog needs a BYE.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 3*time.Second)
		c.withDialog(func() { _ = dss.Bye(ctx) })
		cancel()
	}
}

// withDialog runs f, which uses the call's SIP dialog session, holding sipMu.
func (c *call) withDialog(f func()) {
	c.sipMu.Lock()
	defer c.sipMu.Unlock()
	f()
}

// established starts the media bridge and the call counters; false means
// the call ended first.
// hasEnded reports whether end has begun for the call.
func (c *call) hasEnded() bool {
	select {
	case <-c.ended:
		return true
	default:
		return false
	}
}

func (c *call) established() bool {
	c.mu.Lock()
	if c.state != "ringing" {
		c.mu.Unlock()
		return false
	}
	c.state = "connected"
	c.answered = c.s.clk.Now()
	br := c.br
	c.mu.Unlock()
	c.s.met.callStarted(br.xcode != nil)
	br.start()
	c.s.log.Info("call connected", "dn", c.sess.dn, "peer", c.peer, "direction", c.direction,
		"browser_codec", c.browserMime, "sip_codec", c.sipMedia.law.String(), "transcoding", br.xcode != nil)
	return true
}

// runOutgoing places a 1pcc call from the browser's OFFER (peer is a number).
func (c *call) runOutgoing(m rtc.Message) {
	s := c.s
	fail := func(errType string, err error) {
		if c.hasEnded() {
			// The caller hung up before the answer (BYE) or signed out:
			// the INVITE was cancelled as asked, which is no error to report.
			s.log.Info("outgoing call cancelled", "dn", c.sess.dn, "to", c.peer)
			return
		}
		s.log.Info("outgoing call failed", "dn", c.sess.dn, "to", c.peer, "err", err)
		c.sess.push(c.peer, pushedError(errType, err.Error()))
		c.end(context.Background(), "failed: "+err.Error(), sideSIP)
	}
	names, _, _ := rtc.CodecsInSDP(m.FullSDP())
	chosen, err := s.pickBrowserCodec(names)
	if err != nil {
		fail("CODEC", err)
		return
	}
	conn, err := c.openRTP()
	if err != nil {
		fail("MEDIA", err)
		return
	}
	if !c.adopt(func() { c.rtpConn = conn }, func() { _ = conn.Close() }) {
		return
	}
	pc, err := c.newPC(rtc.Codecs{Opus: chosen == webrtc.MimeTypeOpus, PCMU: chosen == webrtc.MimeTypePCMU, PCMA: chosen == webrtc.MimeTypePCMA})
	if err != nil {
		fail("MEDIA", err)
		return
	}
	track := rtc.NewTrack(chosen, "audio", "cxlab")
	if !c.adopt(func() { c.pc, c.track, c.browserMime = pc, track, chosen }, func() { _ = pc.Close() }) {
		return
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.FullSDP()}); err != nil {
		fail("BAD_SDP", fmt.Errorf("set remote offer: %w", err))
		return
	}
	if _, err := pc.AddTrack(track); err != nil {
		fail("MEDIA", fmt.Errorf("add track: %w", err))
		return
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		fail("BAD_SDP", fmt.Errorf("create answer: %w", err))
		return
	}
	full, err := rtc.Gather(pc, ans, c.ended)
	if err != nil {
		fail("MEDIA", err)
		return
	}
	if rtc.AudioRefused(full) {
		// pion answered the audio section with port 0: it could not take
		// it (an offer without a=group:BUNDLE, say). Nobody is dialled.
		fail("BAD_SDP", errors.New("the offer's audio could not be accepted (answered with port 0); browsers offer it bundled (a=group:BUNDLE)"))
		return
	}
	ss := c.sess
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: c.peer, Host: ss.domain})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: string(ss.dn), Host: ss.domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: c.peer, Host: ss.domain}})
	req.AppendHeader(sip.NewHeader("Allow-Events", "talk, hold"))
	// Voice is the outbound proxy: a loose route to it, which sipgo copies to
	// the CANCEL it sends for an unanswered call (it does not copy the
	// INVITE's destination, so a CANCEL without the route was sent where
	// DNS put the tenant's SIP domain). The INVITE carries no Bearer token:
	// Voice knows the caller by the DN this session registered, and a
	// GAuth JWT would push the request past what SIP allows over UDP.
	req.AppendHeader(&sip.RouteHeader{Address: s.sip.route})
	for _, a := range m.AttachedData {
		req.AppendHeader(sip.NewHeader("X-Genesys-"+headerToken(a.Key), a.Value))
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(c.localSDP([]media.Law{media.PCMU, media.PCMA}, 101, "sendrecv"))
	req.SetDestination(s.sip.voice)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AnswerTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	dcs, err := s.sip.clients.WriteInvite(ctx, req)
	if err != nil {
		fail("SIP", fmt.Errorf("invite: %w", err))
		return
	}
	// The call takes the dialog only once it is answered: WaitAnswer writes
	// the session, so end must not touch it meanwhile. If the call ends while
	// the INVITE is out, ctx is cancelled and WaitAnswer sends CANCEL; an
	// answer that crossed it is hung up here.
	callID := req.CallID().Value()
	adopted := c.adopt(func() { c.sipCallID = callID }, nil)
	if adopted {
		s.trackCall(c, callID)
	}
	err = dcs.WaitAnswer(ctx, sipgo.AnswerOptions{})
	if adopted && err == nil {
		adopted = c.adopt(func() { c.dcs = dcs }, nil)
	}
	if !adopted {
		if err == nil {
			c.hangUpLate(dcs)
		}
		_ = dcs.Close()
		return
	}
	if err != nil {
		_ = dcs.Close() // the call never took it
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			fail("SIP", fmt.Errorf("%d %s", de.Res.StatusCode, de.Res.Reason))
		} else {
			fail("SIP", err)
		}
		return
	}
	// Acknowledge even if the call ended as the answer came (ctx is then
	// cancelled): the dialog is hung up below, and a BYE needs the ACK first.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	err = dcs.Ack(actx)
	acancel()
	if err != nil {
		fail("SIP", fmt.Errorf("ack: %w", err))
		return
	}
	answer, err := parseSIPSDP(dcs.InviteResponse.Body())
	if err != nil {
		fail("SIP", err)
		return
	}
	var pending *webrtc.TrackRemote
	if !c.adopt(func() {
		c.sipMedia = answer
		c.br = newBridge(c, chosen, answer)
		pending = c.pending
	}, nil) {
		c.hangUpLate(dcs)
		return
	}
	if pending != nil {
		c.br.readBrowserOnce(pending)
	}
	c.offerID = m.OffererSessionID
	ss.push(c.peer, rtc.Message{Type: "ANSWER", SDP: full, OffererSessionID: m.OffererSessionID,
		AnswererSessionID: ss.nextOfferID(), Seq: m.Seq}.Encode("SDP "))
	if !c.established() {
		c.hangUpLate(dcs) // end saw a ringing call and sent no BYE
	}
}

// adopt runs set under c.mu unless the call has ended; then it runs release
// instead (end took the call's resources before this one was made, so
// nothing else would free it) and reports false.
func (c *call) adopt(set, release func()) bool {
	c.mu.Lock()
	ended := c.state == "ended"
	if !ended {
		set()
	}
	c.mu.Unlock()
	if ended && release != nil {
		release()
	}
	return !ended
}

// hangUpLate acknowledges and hangs up an outgoing dialog that Voice answered
// after the call had ended.
func (c *call) hangUpLate(dcs *sipgo.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.s.ctx), 3*time.Second)
	defer cancel()
	if dcs.LoadState() == sip.DialogStateEstablished {
		if err := dcs.Ack(ctx); err != nil {
			return
		}
	}
	_ = dcs.Bye(ctx)
}

// headerToken keeps a user-data key usable as a SIP header name.
func headerToken(k string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, k)
}

// reoffer answers a browser re-OFFER during a call (hold/resume) and mirrors
// the direction toward SIP with a re-INVITE.
func (c *call) reoffer(m rtc.Message) {
	c.reoffering.Lock()
	defer c.reoffering.Unlock()
	c.mu.Lock()
	pc, state := c.pc, c.state
	c.mu.Unlock()
	if pc == nil || (state != "connected" && state != "held") {
		c.sess.push(c.peer, pushedError("STATE", "re-offer while the call is "+state))
		return
	}
	// Hold/resume re-offers only change the direction (Grtc rewrites a=
	// lines); the transport is unchanged, so the answer is the current local
	// description with the mirrored direction. Running pion's renegotiation
	// here would stop and restart the RTP streams for nothing. An ICE restart
	// inside a re-offer is not supported.
	_, dir, hasAudio := rtc.CodecsInSDP(m.FullSDP())
	ld := pc.CurrentLocalDescription()
	if !hasAudio || ld == nil {
		c.sess.push(c.peer, pushedError("BAD_SDP", "re-offer rejected"))
		return
	}
	mirror := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}[dir]
	if mirror == "" {
		mirror = "sendrecv"
	}
	answer := rtc.SetDirection(ld.SDP, mirror)
	if rd := pc.CurrentRemoteDescription(); rd != nil {
		answer = rtc.SettledSetup(answer, rd.SDP)
	}
	c.sess.push(c.peer, rtc.Message{Type: "ANSWER", SDP: answer, OffererSessionID: m.OffererSessionID,
		AnswererSessionID: c.offerID, Seq: m.Seq}.Encode("SDP "))
	sipDir, newState := "sendrecv", "connected"
	if dir == "inactive" || dir == "sendonly" {
		sipDir, newState = "sendonly", "held"
	}
	if dir == "recvonly" {
		sipDir = "recvonly"
	}
	if err := c.sipReinvite(sipDir); err != nil {
		c.s.log.Info("re-INVITE failed", "dn", c.sess.dn, "err", err)
		c.sess.push(c.peer, pushedError("SIP", err.Error()))
		return
	}
	c.mu.Lock()
	c.state = newState
	c.mu.Unlock()
	c.s.log.Info("call "+newState, "dn", c.sess.dn)
}

// dialog is what both sipgo dialog kinds offer for in-dialog requests.
type dialog interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
}

// dialogOf returns the call's SIP dialog and the remote target.
func (c *call) dialogOf() (dialog, sip.Uri, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.dss != nil:
		if ct := c.dss.InviteRequest.Contact(); ct != nil {
			return c.dss, ct.Address, true
		}
	case c.dcs != nil && c.dcs.InviteResponse != nil:
		if ct := c.dcs.InviteResponse.Contact(); ct != nil {
			return c.dcs, ct.Address, true
		}
	}
	return nil, sip.Uri{}, false
}

// sipReinvite sends a re-INVITE with direction and ACKs its answer.
func (c *call) sipReinvite(direction string) error {
	d, target, ok := c.dialogOf()
	if !ok {
		return errors.New("no sip dialog")
	}
	c.mu.Lock()
	sm := c.sipMedia
	c.mu.Unlock()
	req := sip.NewRequest(sip.INVITE, target)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(c.localSDP([]media.Law{sm.law}, sm.eventPT, direction))
	ctx, cancel := context.WithTimeout(c.s.ctx, 10*time.Second)
	defer cancel()
	res, err := d.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("re-invite: %w", err)
	}
	ack := sip.NewRequest(sip.ACK, target)
	ack.AppendHeader(sip.HeaderClone(req.CSeq()))
	ack.CSeq().MethodName = sip.ACK
	if res.IsSuccess() {
		if err := d.WriteRequest(ack); err != nil {
			return fmt.Errorf("re-invite ack: %w", err)
		}
		if a, err := parseSIPSDP(res.Body()); err == nil && a.addr != nil {
			c.br.setRemote(a.addr)
		}
		return nil
	}
	return fmt.Errorf("re-invite: %d %s", res.StatusCode, res.Reason)
}

// onSIPReinvite answers a re-INVITE from Voice with our media, mirroring the direction.
func (c *call) onSIPReinvite(req *sip.Request, tx sip.ServerTransaction) {
	m, err := parseSIPSDP(req.Body())
	if err != nil && len(req.Body()) > 0 {
		respond(req, tx, 488, "Not Acceptable Here")
		return
	}
	c.mu.Lock()
	sm, br := c.sipMedia, c.br
	c.mu.Unlock()
	if br == nil {
		respond(req, tx, 491, "Request Pending")
		return
	}
	dir := "sendrecv"
	if err == nil {
		if m.addr != nil {
			br.setRemote(m.addr)
		}
		switch m.direction {
		case "sendonly":
			dir = "recvonly"
		case "recvonly":
			dir = "sendonly"
		case "inactive":
			dir = "inactive"
		}
	}
	res := sip.NewSDPResponseFromRequest(req, c.localSDP([]media.Law{sm.law}, sm.eventPT, dir))
	c.mu.Lock()
	if c.dss != nil {
		res.AppendHeader(sip.HeaderClone(&c.s.sip.contact))
	}
	c.mu.Unlock()
	_ = tx.Respond(res)
}

// sendInfo relays INFO-MAP / INFO-PEER to the SIP side.
func (c *call) sendInfo(contentType, body string) {
	d, target, ok := c.dialogOf()
	if !ok {
		return
	}
	req := sip.NewRequest(sip.INFO, target)
	req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	req.SetBody([]byte(body))
	ctx, cancel := context.WithTimeout(c.s.ctx, 5*time.Second)
	defer cancel()
	if res, err := d.Do(ctx, req); err != nil || !res.IsSuccess() {
		c.sess.push(c.peer, pushedError("SIP", "INFO was not accepted"))
	}
}

// end finishes the call once: BYE (or a final response) toward the legs that
// did not end it, media closed, counters updated.
func (c *call) end(ctx context.Context, reason string, by side) {
	c.endOnce.Do(func() {
		c.mu.Lock()
		prev := c.state
		c.state, c.endReason, c.endedAt = "ended", reason, c.s.clk.Now()
		dss, dcs, pc, conn, br := c.dss, c.dcs, c.pc, c.rtpConn, c.br
		c.mu.Unlock()
		close(c.ended)
		if by != sideBrowser {
			c.sess.push(c.peer, "BYE")
		}
		if by != sideSIP {
			bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			switch {
			case prev == "ringing" && dss != nil:
				code, why := 603, "Decline"
				if by == sideGateway {
					code, why = 480, "Temporarily Unavailable"
				}
				c.withDialog(func() { _ = dss.Respond(code, why, nil) })
			case dss != nil:
				c.withDialog(func() { _ = dss.Bye(bctx) })
			case dcs != nil && prev != "ringing":
				c.withDialog(func() { _ = dcs.Bye(bctx) })
			}
			cancel()
		}
		if br != nil {
			br.stop()
		}
		if pc != nil {
			_ = pc.Close()
		}
		if conn != nil {
			_ = conn.Close()
		}
		if br != nil {
			br.wait()
			br.finish()
		}
		if dss != nil {
			c.withDialog(func() { _ = dss.Close() })
		}
		if dcs != nil {
			c.withDialog(func() { _ = dcs.Close() })
		}
		c.sess.releaseCall(c)
		c.s.untrackCall(c)
		// Last: once the current-calls gauge drops, the call is among the
		// recent ones and its session is free for the next.
		if br != nil && prev != "ringing" {
			c.s.met.callEnded(br.xcode != nil)
		}
		c.s.log.Info("call ended", "dn", c.sess.dn, "peer", c.peer, "reason", reason)
	})
}

// trackCall indexes the call by its SIP Call-ID, unless it has ended: end
// closes c.ended before it untracks the call, so an index entry made before
// then is removed, and none is made after.
func (s *Server) trackCall(c *call, callID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-c.ended:
		return
	default:
	}
	if callID != "" {
		s.calls[callID] = c
	}
}

// untrackCall removes the call and keeps its record among the recent calls.
func (s *Server) untrackCall(c *call) {
	info := c.info()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls[info.SIPCallID] == c {
		delete(s.calls, info.SIPCallID)
	}
	s.recent = append(s.recent, info)
	if len(s.recent) > s.cfg.RecentCalls {
		s.recent = append(s.recent[:0:0], s.recent[len(s.recent)-s.cfg.RecentCalls:]...)
	}
}

// callBySIP finds a call by SIP Call-ID.
func (s *Server) callBySIP(id string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}
