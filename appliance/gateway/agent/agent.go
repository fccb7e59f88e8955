// Package agent is a headless softphone: a Go client that speaks the
// gateway's Grtc signalling (sign_in / wait / message / sign_out) with a pion
// PeerConnection, answers calls, plays a tone, analyses what it hears, holds,
// sends DTMF and hangs up. Tests and load runs use it; `cxlab agent` wraps Run.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/cxlab/cxlab/appliance/gateway/internal/rtc"
	"github.com/cxlab/cxlab/appliance/media"
	"github.com/cxlab/cxlab/appliance/turn"
)

// TokenSource returns a GAuth access token for sign-in.
type TokenSource func(ctx context.Context) (string, error)

// Config describes one headless agent.
type Config struct {
	// URL is the appliance base URL, e.g. http://127.0.0.1:8080. Required.
	URL string
	// BasePath is the gateway path. Default "/webrtc".
	BasePath string
	// Token signs in with a Bearer token (modern flow); nil uses DN/Password.
	Token TokenSource
	// DN and Password are the legacy DN sign-in (POST "<dn>:<password>").
	DN string
	// Password is the DN's SIP password.
	Password string
	// AutoAnswer answers incoming offers at once. Default false.
	AutoAnswer bool
	// PlayHz is the tone the agent sends while talking; 0 sends silence. Default 0.
	PlayHz float64
	// PlayLevelDBFS is the tone level. Default -20.
	PlayLevelDBFS float64
	// PCMU makes the agent answer with G.711 mu-law instead of Opus. Default false.
	PCMU bool
	// RelayOnly sets iceTransportPolicy "relay"; ICE servers come from ICEServers
	// or the gateway's /ice-servers. Default false.
	RelayOnly bool
	// ICEServers overrides the ICE servers. Default none (or the gateway's when RelayOnly).
	ICEServers []webrtc.ICEServer
	// BindIP restricts host candidates to one local IP (tests use 127.0.0.1). Default "" (all).
	BindIP string
	// PollTimeout is the client-side /wait timeout (the JS polling_timeout);
	// on it the agent polls again at once. Default 60s, longer than the
	// gateway's hold, which then answers first.
	PollTimeout time.Duration
	// HTTPClient is used for signalling; a cookie jar is added. Default a new client.
	HTTPClient *http.Client
	// Logger receives the agent's logs. Default discard.
	Logger *slog.Logger
}

// Event is something the agent saw on /wait (or did).
type Event struct {
	// Type is OFFER, ANSWER, OK, BYE, EVENT-TALK, EVENT-HOLD, INFO-PEER, PUT-STATS,
	// ERROR, CONNECTED (media up) or SIGNED-OUT.
	Type string
	// Peer is the Pragma peer name.
	Peer string
	// Body is the raw message.
	Body string
}

// Agent is one signed-in headless softphone.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	hc     *http.Client
	events chan Event

	mu      sync.Mutex
	ssid    string
	dn      string
	call    *agentCall
	offer   *pendingOffer
	heard   *media.Analyzer
	digits  strings.Builder
	answers chan rtc.Message
	wg      sync.WaitGroup
}

type pendingOffer struct {
	peer string
	msg  rtc.Message
}

// New returns an agent that has not signed in yet.
func New(cfg Config) *Agent {
	if cfg.BasePath == "" {
		cfg.BasePath = "/webrtc"
	}
	if cfg.PlayLevelDBFS == 0 {
		cfg.PlayLevelDBFS = -20
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 60 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	cp := *hc
	if cp.Jar == nil {
		jar, _ := cookiejar.New(nil) // never fails without options
		cp.Jar = jar
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, log: log, hc: &cp, events: make(chan Event, 64), heard: media.NewAnalyzer(media.AnalyzerConfig{}),
		answers: make(chan rtc.Message, 1)}
}

// Events delivers what the agent sees; events are dropped when nobody reads.
func (a *Agent) Events() <-chan Event { return a.events }

func (a *Agent) emit(e Event) {
	select {
	case a.events <- e:
	default:
	}
}

// DN returns the DN the gateway registered.
func (a *Agent) DN() string { a.mu.Lock(); defer a.mu.Unlock(); return a.dn }

// SSID returns the gateway session id.
func (a *Agent) SSID() string { a.mu.Lock(); defer a.mu.Unlock(); return a.ssid }

// Heard reports what the agent heard on its calls.
func (a *Agent) Heard() media.Snapshot { return a.heard.Snapshot() }

// Digits returns the RFC 4733 keys received.
func (a *Agent) Digits() string { a.mu.Lock(); defer a.mu.Unlock(); return a.digits.String() }

// ResetHeard forgets what was heard, audio and digits (e.g. before checking a
// resume, or between calls).
func (a *Agent) ResetHeard() {
	a.heard.Reset()
	a.mu.Lock()
	a.digits.Reset()
	a.mu.Unlock()
}

func (a *Agent) url(p string, q url.Values) string {
	u := strings.TrimRight(a.cfg.URL, "/") + a.cfg.BasePath + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// StatusError is a non-200 answer: from the gateway's signalling, or from
// the service From names.
type StatusError struct {
	// Status is the HTTP status.
	Status int
	// Body is the answer's text.
	Body string
	// From is the service that answered; empty means the gateway.
	From string
}

func (e *StatusError) Error() string {
	from := e.From
	if from == "" {
		from = "gateway"
	}
	return fmt.Sprintf("%s answered %d: %s", from, e.Status, strings.TrimSpace(e.Body))
}

// reply is the status line and headers of a signalling answer whose body
// do has already read and closed.
type reply struct {
	StatusCode int
	Header     http.Header
}

// do sends one signalling request and returns the answer's status, headers
// and body (at most 1 MiB); the response body is always closed here.
func (a *Agent) do(ctx context.Context, method, u, body string, hdr http.Header) (reply, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return reply{}, "", err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "text/plain")
	res, err := a.hc.Do(req)
	if err != nil {
		return reply{}, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return reply{StatusCode: res.StatusCode, Header: res.Header}, string(b), err
}

// SignIn signs in with the token source or the DN password.
func (a *Agent) SignIn(ctx context.Context) error {
	hdr := http.Header{}
	var res reply
	var body string
	var err error
	switch {
	case a.cfg.Token != nil:
		tok, terr := a.cfg.Token(ctx)
		if terr != nil {
			return fmt.Errorf("sign in: %w", terr)
		}
		hdr.Set("Authorization", "Bearer "+tok)
		res, body, err = a.do(ctx, http.MethodPost, a.url("/sign_in", nil), "", hdr)
	case a.cfg.Password != "":
		res, body, err = a.do(ctx, http.MethodPost, a.url("/sign_in", nil), a.cfg.DN+":"+a.cfg.Password, hdr)
	default:
		res, body, err = a.do(ctx, http.MethodGet, strings.TrimRight(a.cfg.URL, "/")+a.cfg.BasePath+"/sign_in?"+a.cfg.DN, "", hdr)
	}
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("sign in: %w", &StatusError{Status: res.StatusCode, Body: body})
	}
	first, _, _ := strings.Cut(body, "\n")
	dn, ssid, ok := strings.Cut(strings.TrimSpace(first), "=")
	if !ok || ssid == "" {
		return fmt.Errorf("sign in: unexpected answer %q", first)
	}
	a.mu.Lock()
	a.dn, a.ssid = dn, ssid
	a.mu.Unlock()
	return nil
}

// Run polls /wait until ctx ends or the gateway signs the agent out, then
// hangs up any call. It returns nil on ctx cancellation.
func (a *Agent) Run(ctx context.Context) error {
	defer a.wg.Wait()
	defer a.dropCall()
	for {
		if ctx.Err() != nil {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, a.cfg.PollTimeout)
		res, body, err := a.do(pctx, http.MethodGet, a.url("/wait", url.Values{"id": {a.SSID()}}), "", nil)
		timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && timedOut:
			continue // the JS library re-polls at once on its own timeout
		case err != nil:
			select { // the JS library retries after 3 s on network errors
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		case res.StatusCode == http.StatusNoContent,
			res.StatusCode == http.StatusOK && body == "": // the hold ended with nothing to say
			continue
		case res.StatusCode != http.StatusOK:
			a.emit(Event{Type: "SIGNED-OUT", Body: body})
			return &StatusError{Status: res.StatusCode, Body: body}
		}
		a.handle(ctx, res.Header.Get("Pragma"), body)
	}
}

// handle processes one message from the gateway.
func (a *Agent) handle(ctx context.Context, peer, body string) {
	verb := body
	if i := strings.IndexAny(body, " \r\n{"); i >= 0 {
		verb = body[:i]
	}
	switch {
	case verb == "SDP" || verb == "RSMP":
		m, err := rtc.ParseMessage(body)
		if err != nil {
			a.emit(Event{Type: "ERROR", Peer: peer, Body: body})
			return
		}
		a.emit(Event{Type: m.Type, Peer: peer, Body: body})
		switch m.Type {
		case "OFFER":
			a.mu.Lock()
			a.offer = &pendingOffer{peer: peer, msg: m}
			a.mu.Unlock()
			if a.cfg.AutoAnswer {
				a.wg.Add(1)
				go func() {
					defer a.wg.Done()
					if err := a.Answer(ctx); err != nil {
						a.log.Warn("answer failed", "err", err)
					}
				}()
			}
		case "ANSWER":
			select {
			case a.answers <- m:
			default:
			}
		}
	case verb == "BYE":
		a.emit(Event{Type: "BYE", Peer: peer, Body: body})
		a.dropCall()
	case verb == "EVENT-TALK" || verb == "EVENT-HOLD":
		// Remote control (3pcc: an agent desktop answering, holding or
		// retrieving through Voice), which the JS library obeys: EVENT-TALK
		// answers a ringing call or resumes a held one, EVENT-HOLD holds
		// (a re-offer with a=inactive).
		a.emit(Event{Type: verb, Peer: peer, Body: body})
		a.mu.Lock()
		pending, c := a.offer != nil, a.call
		a.mu.Unlock()
		held := false
		if c != nil {
			c.mu.Lock()
			held = c.held
			c.mu.Unlock()
		}
		var act func(context.Context) error
		switch {
		case verb == "EVENT-TALK" && pending:
			act = a.Answer
		case verb == "EVENT-TALK" && c != nil && held:
			act = a.Resume
		case verb == "EVENT-HOLD" && !pending && c != nil && !held:
			act = a.Hold
		}
		if act != nil {
			a.wg.Add(1)
			go func() { defer a.wg.Done(); _ = act(ctx) }()
		}
	case strings.Contains(body, "ERROR"):
		a.emit(Event{Type: "ERROR", Peer: peer, Body: body})
	default:
		a.emit(Event{Type: verb, Peer: peer, Body: body})
	}
}

// send posts one message to the gateway.
func (a *Agent) send(ctx context.Context, peer, body string) error {
	res, rb, err := a.do(ctx, http.MethodPost, a.url("/message", url.Values{"from": {a.SSID()}, "to": {peer}}), body, nil)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return &StatusError{Status: res.StatusCode, Body: rb}
	}
	return nil
}

// Send posts a raw message (BYE, INFO-MAP ..., GET-STATS) to the current peer.
func (a *Agent) Send(ctx context.Context, body string) error {
	a.mu.Lock()
	peer := "self"
	if a.call != nil {
		peer = a.call.peer
	}
	a.mu.Unlock()
	return a.send(ctx, peer, body)
}

// iceConfig builds the RTCConfiguration.
func (a *Agent) iceConfig(ctx context.Context) (webrtc.Configuration, error) {
	cfg := webrtc.Configuration{ICEServers: a.cfg.ICEServers}
	if a.cfg.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
		if len(cfg.ICEServers) == 0 {
			res, body, err := a.do(ctx, http.MethodGet, a.url("/ice-servers", url.Values{"id": {a.SSID()}}), "", nil)
			if err != nil {
				return cfg, fmt.Errorf("ice servers: %w", err)
			}
			if res.StatusCode != http.StatusOK {
				return cfg, &StatusError{Status: res.StatusCode, Body: body}
			}
			var list []turn.ICEServer
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				return cfg, fmt.Errorf("ice servers: %w", err)
			}
			for _, s := range list {
				cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
			}
		}
	}
	return cfg, nil
}

// newPC builds a PeerConnection for one call.
func (a *Agent) newPC(ctx context.Context) (*webrtc.PeerConnection, error) {
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if ip := net.ParseIP(a.cfg.BindIP); ip != nil {
		se.SetIPFilter(func(c net.IP) bool { return c.Equal(ip) })
	}
	api, err := rtc.NewAPI(se, rtc.Codecs{Opus: !a.cfg.PCMU, PCMU: true})
	if err != nil {
		return nil, err
	}
	cfg, err := a.iceConfig(ctx)
	if err != nil {
		return nil, err
	}
	return api.NewPeerConnection(cfg)
}

// Answer answers the pending offer.
func (a *Agent) Answer(ctx context.Context) error {
	a.mu.Lock()
	off := a.offer
	a.offer = nil
	a.mu.Unlock()
	if off == nil {
		return errors.New("no offer to answer")
	}
	pc, err := a.newPC(ctx)
	if err != nil {
		return err
	}
	c := newAgentCall(a, pc, off.peer)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: off.msg.FullSDP()}); err != nil {
		_ = pc.Close()
		return fmt.Errorf("answer: %w", err)
	}
	names, _, _ := rtc.CodecsInSDP(off.msg.FullSDP())
	mime := webrtc.MimeTypePCMU
	for _, n := range names {
		if n == "OPUS" && !a.cfg.PCMU {
			mime = webrtc.MimeTypeOpus
			break
		}
		if n == "PCMU" {
			break
		}
	}
	if err := c.setTrack(mime); err != nil {
		_ = pc.Close()
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("answer: %w", err)
	}
	full, err := rtc.Gather(pc, ans, ctx.Done())
	if err != nil {
		_ = pc.Close()
		return err
	}
	a.mu.Lock()
	a.call = c
	a.mu.Unlock()
	c.offerID = off.msg.OffererSessionID
	c.answerID = 102 + rand.IntN(1000)
	if err := a.send(ctx, off.peer, rtc.Message{Type: "ANSWER", SDP: full, OffererSessionID: off.msg.OffererSessionID,
		AnswererSessionID: c.answerID, Seq: off.msg.Seq}.Encode("RSMP ")); err != nil {
		a.dropCall()
		return fmt.Errorf("send answer: %w", err)
	}
	c.start()
	return nil
}

// Call dials number from the browser (1pcc) and waits for the answer.
func (a *Agent) Call(ctx context.Context, number string) error {
	pc, err := a.newPC(ctx)
	if err != nil {
		return err
	}
	c := newAgentCall(a, pc, number)
	mime := webrtc.MimeTypeOpus
	if a.cfg.PCMU {
		mime = webrtc.MimeTypePCMU
	}
	if err := c.setTrack(mime); err != nil {
		_ = pc.Close()
		return err
	}
	a.mu.Lock()
	a.call = c
	a.mu.Unlock()
	if _, err := c.offer(ctx, "sendrecv"); err != nil {
		a.dropCall()
		return err
	}
	c.start()
	return nil
}

// Hold re-offers with a=inactive, as the JS library's holdCall does.
func (a *Agent) Hold(ctx context.Context) error { return a.reoffer(ctx, "inactive") }

// Resume re-offers with a=sendrecv.
func (a *Agent) Resume(ctx context.Context) error { return a.reoffer(ctx, "sendrecv") }

func (a *Agent) reoffer(ctx context.Context, dir string) error {
	a.mu.Lock()
	c := a.call
	a.mu.Unlock()
	if c == nil {
		return errors.New("no call")
	}
	c.setHold(dir != "sendrecv")
	return c.redirect(ctx, dir)
}

// SendDTMF sends keys as RFC 4733 events on the audio track.
func (a *Agent) SendDTMF(digits string) error {
	a.mu.Lock()
	c := a.call
	a.mu.Unlock()
	if c == nil {
		return errors.New("no call")
	}
	for i := 0; i < len(digits); i++ {
		if _, err := media.DigitEvent(digits[i]); err != nil {
			return err
		}
	}
	c.queueDTMF(digits)
	return nil
}

// Hangup sends BYE and closes the call.
func (a *Agent) Hangup(ctx context.Context) error {
	a.mu.Lock()
	c := a.call
	a.mu.Unlock()
	if c == nil {
		return errors.New("no call")
	}
	err := a.send(ctx, c.peer, "BYE")
	a.dropCall()
	return err
}

// InCall reports whether a call is up.
func (a *Agent) InCall() bool { a.mu.Lock(); defer a.mu.Unlock(); return a.call != nil }

func (a *Agent) dropCall() {
	a.mu.Lock()
	c := a.call
	a.call = nil
	a.offer = nil
	a.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// SignOut ends the gateway session.
func (a *Agent) SignOut(ctx context.Context) error {
	a.dropCall()
	res, body, err := a.do(ctx, http.MethodGet, a.url("/sign_out", url.Values{"id": {a.SSID()}}), "", nil)
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return &StatusError{Status: res.StatusCode, Body: body}
	}
	return nil
}

// SetState sets Ready/NotReady through the Voice API with the agent's token.
func (a *Agent) SetState(ctx context.Context, state string) error {
	if a.cfg.Token == nil {
		return errors.New("set state needs a token sign-in")
	}
	tok, err := a.cfg.Token(ctx)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(map[string]string{"state": state}) // strings always marshal
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(a.cfg.URL, "/")+"/voice/v1/agents/me/state",
		strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	res, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("set state: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		rb, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return &StatusError{Status: res.StatusCode, Body: string(rb), From: "Voice"}
	}
	return nil
}

// agentCall is the agent's side of one call.
type agentCall struct {
	a        *Agent
	pc       *webrtc.PeerConnection
	peer     string
	track    *rtc.Track
	tr       *webrtc.RTPSender
	offerID  int
	answerID int
	seq      int

	mu     sync.Mutex
	held   bool
	dtmf   []byte
	stopCh chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newAgentCall(a *Agent, pc *webrtc.PeerConnection, peer string) *agentCall {
	c := &agentCall{a: a, pc: pc, peer: peer, stopCh: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.wg.Add(1)
		go c.receive(tr)
	})
	return c
}

func (c *agentCall) setTrack(mime string) error {
	c.track = rtc.NewTrack(mime, "agent-audio", "agent")
	s, err := c.pc.AddTrack(c.track)
	if err != nil {
		return fmt.Errorf("add track: %w", err)
	}
	c.tr = s
	return nil
}

// offer sends an OFFER (with the direction rewritten, as Grtc does) and applies the ANSWER.
func (c *agentCall) offer(ctx context.Context, dir string) (rtc.Message, error) {
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		return rtc.Message{}, fmt.Errorf("create offer: %w", err)
	}
	full, err := rtc.Gather(c.pc, o, ctx.Done())
	if err != nil {
		return rtc.Message{}, err
	}
	if dir != "sendrecv" {
		full = strings.ReplaceAll(full, "a=sendrecv", "a="+dir)
	}
	c.seq++
	if c.offerID == 0 {
		c.offerID = 102
	}
	select { // drop a stale answer
	case <-c.a.answers:
	default:
	}
	if err := c.a.send(ctx, c.peer, rtc.Message{Type: "OFFER", SDP: full, OffererSessionID: c.offerID, Seq: c.seq,
		Tiebreaker: rand.IntN(1 << 30)}.Encode("RSMP ")); err != nil {
		return rtc.Message{}, fmt.Errorf("send offer: %w", err)
	}
	select {
	case m := <-c.a.answers:
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.FullSDP()}); err != nil {
			return m, fmt.Errorf("set answer: %w", err)
		}
		return m, nil
	case <-ctx.Done():
		return rtc.Message{}, ctx.Err()
	case <-c.stopCh:
		return rtc.Message{}, errors.New("call ended")
	}
}

// redirect re-offers the current session with only the direction changed,
// as Grtc's holdCall/resumeCall do; the transport stays as it is.
func (c *agentCall) redirect(ctx context.Context, dir string) error {
	ld := c.pc.CurrentLocalDescription()
	if ld == nil {
		return errors.New("call not established")
	}
	c.seq++
	select { // drop a stale answer
	case <-c.a.answers:
	default:
	}
	if err := c.a.send(ctx, c.peer, rtc.Message{Type: "OFFER", SDP: rtc.SetDirection(ld.SDP, dir), OffererSessionID: c.answerID,
		Seq: c.seq, Tiebreaker: rand.IntN(1 << 30)}.Encode("RSMP ")); err != nil {
		return fmt.Errorf("send re-offer: %w", err)
	}
	select {
	case m := <-c.a.answers:
		if _, got, _ := rtc.CodecsInSDP(m.SDP); dir == "sendrecv" && got != "sendrecv" || dir == "inactive" && got != "inactive" {
			return fmt.Errorf("re-offer %s answered with %q", dir, got)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopCh:
		return errors.New("call ended")
	}
}

func (c *agentCall) setHold(h bool) { c.mu.Lock(); c.held = h; c.mu.Unlock() }

func (c *agentCall) queueDTMF(d string) { c.mu.Lock(); c.dtmf = append(c.dtmf, d...); c.mu.Unlock() }

func (c *agentCall) start() {
	c.wg.Add(1)
	go c.send()
	c.a.emit(Event{Type: "CONNECTED", Peer: c.peer})
}

func (c *agentCall) close() {
	c.once.Do(func() {
		close(c.stopCh)
		_ = c.pc.Close()
		c.wg.Wait()
	})
}

// send plays the tone every 20 ms, interleaving RFC 4733 events.
func (c *agentCall) send() {
	defer c.wg.Done()
	var src media.Source = media.NewSilence(0)
	if c.a.cfg.PlayHz > 0 {
		src = media.NewSine(c.a.cfg.PlayHz, c.a.cfg.PlayLevelDBFS, 0)
	}
	opus := strings.EqualFold(c.track.Mime(), webrtc.MimeTypeOpus)
	var enc *media.OpusEncoder
	step := uint32(media.G711TimestampStep)
	clock := uint32(media.G711ClockRate)
	if opus {
		var err error
		if enc, err = media.NewOpusEncoder(media.OpusConfig{}); err != nil {
			return
		}
		step, clock = media.OpusTimestampStep, media.OpusClockRate
	}
	ds, _ := media.NewDTMFSender(media.DTMFSenderConfig{ClockRate: clock}) // valid config
	pcm := make([]int16, media.FrameSamples)
	out := make([]byte, media.MaxOpusPacket)
	seq, ts := uint16(rand.Uint32()), rand.Uint32()
	var events []media.DTMFPacket
	var evStart time.Time
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	for {
		select {
		case <-c.stopCh:
			return
		case <-t.C:
		}
		c.mu.Lock()
		held := c.held
		if len(events) == 0 && len(c.dtmf) > 0 && !held {
			d := c.dtmf[0]
			c.dtmf = c.dtmf[1:]
			events, _ = ds.Packets(nil, d, ts)
			evStart = time.Now()
		}
		c.mu.Unlock()
		if held {
			continue
		}
		if len(events) > 0 {
			el := time.Since(evStart)
			for len(events) > 0 && events[0].SendAt <= el {
				seq++
				p := events[0].RTP(0, 0, seq)
				_ = c.track.WriteEvent(&p.Header, p.Payload)
				events = events[1:]
			}
			if len(events) == 0 {
				ts += ds.Span()
			}
			continue
		}
		media.ReadFrame(src, pcm)
		var payload []byte
		if opus {
			var err error
			if payload, err = enc.Encode(pcm, out); err != nil {
				continue
			}
		} else {
			payload = media.EncodeG711(media.PCMU, pcm, out)
		}
		seq++
		ts += step
		h := rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}
		_ = c.track.WriteAudio(&h, payload)
	}
}

// receive decodes what the gateway sends and feeds the analyzer.
func (c *agentCall) receive(tr *webrtc.TrackRemote) {
	defer c.wg.Done()
	var dec *media.OpusDecoder
	pcm := make([]int16, media.MaxOpusFrameSamples)
	var recv media.DTMFReceiver
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		mime := tr.Codec().MimeType
		switch {
		case strings.EqualFold(mime, rtc.MimeEvent):
			if d, ok, _ := recv.PushRTP(&p); ok {
				c.a.mu.Lock()
				c.a.digits.WriteByte(d)
				c.a.mu.Unlock()
			}
		case strings.EqualFold(mime, webrtc.MimeTypeOpus):
			if dec == nil {
				if dec, err = media.NewOpusDecoder(); err != nil {
					return
				}
			}
			if s, err := dec.Decode(p.Payload, pcm); err == nil {
				c.a.heard.Write(s)
			}
		case strings.EqualFold(mime, webrtc.MimeTypePCMU):
			c.a.heard.Write(media.DecodeG711(media.PCMU, p.Payload, pcm))
		case strings.EqualFold(mime, webrtc.MimeTypePCMA):
			c.a.heard.Write(media.DecodeG711(media.PCMA, p.Payload, pcm))
		}
	}
}

// RunCLI is `cxlab agent`: sign in, go Ready, poll, optionally auto-answer
// with a tone, print events, until ctx ends; then sign out. Flags:
//
//	--url <base> --user U --password P [--auto-answer] [--play 1000] [--pcmu] [--relay] [--ready=false]
//
// With --user/--password the token comes from GAuth's password grant of the
// cxlab-console client, and the agent goes Ready (so that Voice routes
// callbacks to it) unless --ready=false. --dn signs in with the DN password
// instead; such an agent has no token to set its state with, and takes calls
// dialled to its DN.
func RunCLI(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cxlab agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("url", "http://127.0.0.1:8470", "appliance base URL")
	user := fs.String("user", "", "agent login (GAuth password grant)")
	password := fs.String("password", "", "agent password, or the DN password with --dn")
	dn := fs.String("dn", "", "sign in as this DN with SIP digest instead of a token")
	client := fs.String("client", "cxlab-console:console-secret", "OAuth client id:secret for the password grant")
	auto := fs.Bool("auto-answer", false, "answer incoming calls")
	play := fs.Float64("play", 1000, "tone to send in Hz (0 = silence)")
	pcmu := fs.Bool("pcmu", false, "answer with PCMU instead of Opus")
	relay := fs.Bool("relay", false, "iceTransportPolicy relay (TURN only)")
	ready := fs.Bool("ready", true, "set the agent Ready in Voice after sign-in (token sign-in only)")
	hangupAfter := fs.Duration("hangup-after", 0, "hang up each answered call after this long (0 = wait for the other side)")
	cacert := fs.String("cacert", "", "PEM file of a certificate to trust besides the system's, such as the appliance's own self-signed <data-dir>/tls/cert.pem")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = fmt.Fprint(stdout, agentUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%w: %w (cxlab agent -h lists the flags)", ErrUsage, err)
	}
	// The endpoints file's webrtc_url is a tempting --url: take the appliance's base from it.
	if trimmed := strings.TrimRight(*base, "/"); strings.HasSuffix(trimmed, "/webrtc") {
		*base = strings.TrimSuffix(trimmed, "/webrtc")
	}
	if u, err := url.Parse(*base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: --url %q: want the appliance's base URL, such as http://127.0.0.1:8470", ErrUsage, *base)
	}
	if *hangupAfter < 0 {
		return fmt.Errorf("%w: --hangup-after %s: must not be negative", ErrUsage, *hangupAfter)
	}
	if *dn != "" {
		readySet := false
		fs.Visit(func(f *flag.Flag) { readySet = readySet || f.Name == "ready" })
		if readySet && *ready {
			return fmt.Errorf("%w: --ready needs a token sign-in (--user), not --dn", ErrUsage)
		}
		*ready = false
	}
	hc, err := trustingClient(*cacert)
	if err != nil {
		return err
	}
	cfg := Config{URL: *base, AutoAnswer: *auto, PlayHz: *play, PCMU: *pcmu, RelayOnly: *relay, HTTPClient: hc}
	switch {
	case *dn != "":
		cfg.DN, cfg.Password = *dn, *password
	case *user != "": // signIn below gets the token
	default:
		return fmt.Errorf("%w: --user or --dn is required", ErrUsage)
	}
	signIn := func() (*Agent, error) {
		if *user != "" { // a fresh token: the gateway may have refused the last one
			id, secret, _ := strings.Cut(*client, ":")
			cfg.Token = PasswordGrant(&http.Client{Timeout: 10 * time.Second, Transport: hc.Transport}, *base, id, secret, *user, *password)
		}
		a := New(cfg)
		if err := a.SignIn(ctx); err != nil {
			var unknown x509.UnknownAuthorityError
			if errors.As(err, &unknown) && *cacert == "" {
				return nil, fmt.Errorf("%w (the appliance serves HTTPS with a self-signed certificate: --cacert <data-dir>/tls/cert.pem trusts it)", err)
			}
			return nil, err
		}
		_, _ = fmt.Fprintf(stdout, "signed in as DN %s (session %s)\n", a.DN(), a.SSID())
		if *ready {
			if err := a.SetState(ctx, "Ready"); err != nil {
				_, _ = fmt.Fprintf(stdout, "set Ready: %v\n", err)
			} else {
				_, _ = fmt.Fprintln(stdout, "Ready: Voice routes callbacks to this agent")
			}
		}
		return a, nil
	}
	a, err := signIn()
	if err != nil {
		return err
	}
	for {
		err := serveCLI(ctx, a, stdout, *auto, *hangupAfter)
		var se *StatusError
		if ctx.Err() != nil || *user == "" || !errors.As(err, &se) || se.Status != http.StatusNotFound {
			return err
		}
		// The gateway signed this session out: its registration refresh was
		// refused (the token expired, as a lab-clock move of more than 12 h
		// makes it, or was revoked). A token sign-in signs in again.
		_, _ = fmt.Fprintln(stdout, "signed out by the gateway (its registration refresh was refused); signing in again with a new token")
		if a, err = signIn(); err != nil {
			return err
		}
	}
}

// trustingClient is the CLI's HTTP client: the system's roots plus the
// certificates in the PEM file cacert, when given.
func trustingClient(cacert string) (*http.Client, error) {
	hc := &http.Client{} // no timeout: the signalling's long poll sets its own
	if cacert == "" {
		return hc, nil
	}
	pem, err := os.ReadFile(cacert) //nolint:gosec // the user names the file to trust
	if err != nil {
		return nil, fmt.Errorf("%w: --cacert: %w", ErrUsage, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: --cacert %s: no PEM certificate in it", ErrUsage, cacert)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	hc.Transport = tr
	return hc, nil
}

// serveCLI runs a signed-in agent for RunCLI, printing its events and a
// report per call, until ctx ends or the gateway signs it out; it signs out
// when it returns.
func serveCLI(ctx context.Context, a *Agent, stdout io.Writer, auto bool, hangupAfter time.Duration) error {
	// report prints what the call that just ended carried, then forgets it so
	// that each call's report is its own.
	report := func() {
		h := a.Heard()
		_, _ = fmt.Fprintf(stdout, "heard %d ms of audio, dominant %.0f Hz, level %.1f dBFS, digits %q\n",
			h.AudioMS, h.DominantHz, h.LevelDBFS, a.Digits())
		a.ResetHeard()
	}
	inCall := false
	var hangup <-chan time.Time // armed by --hangup-after when a call connects
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for {
		select {
		case e := <-a.Events():
			_, _ = fmt.Fprintf(stdout, "%s %s\n", e.Type, e.Peer)
			switch e.Type {
			case "OFFER":
				if !auto {
					_, _ = fmt.Fprintln(stdout, "not answering (--auto-answer answers); Voice takes the call back after its answer timeout")
				}
			case "CONNECTED":
				inCall = true
				if hangupAfter > 0 {
					hangup = time.After(hangupAfter)
				}
			case "BYE":
				inCall, hangup = false, nil
				report()
			}
		case <-hangup:
			hangup = nil
			if inCall {
				_, _ = fmt.Fprintf(stdout, "hanging up after %s\n", hangupAfter)
				inCall = false
				report()
				if err := a.Hangup(ctx); err != nil {
					_, _ = fmt.Fprintf(stdout, "hang up: %v\n", err)
				}
			}
		case err := <-done:
			if inCall { // stopped mid-call: the sign-out below ends it
				report()
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = a.SignOut(sctx)
			cancel()
			if ctx.Err() == nil || err != nil {
				return err
			}
			_, _ = fmt.Fprintln(stdout, "signed out")
			return err
		}
	}
}

const agentUsage = `Usage: cxlab agent [flags]

A headless agent (pion): signs in to the gateway, goes Ready, answers, plays a tone and
reports what it heard, until interrupted (it then signs out, ending a call in progress).
Signed out by the gateway (its token refused), a --user sign-in signs in again.

It prints one line per gateway message (OFFER, OK, CONNECTED once it has answered, BYE,
EVENT-TALK/EVENT-HOLD from an agent desktop, ...) with the peer's number, and after each
call: heard <ms> of audio, dominant <Hz>, level <dBFS>, digits "<DTMF>".
Exit codes: 0 stopped by a signal, 1 a failure (sign-in refused, appliance unreachable),
2 bad arguments.

`

// ErrUsage marks a RunCLI error in its arguments (exit code 2).
var ErrUsage = errors.New("invalid arguments")

// PasswordGrant returns a TokenSource using GAuth's password grant
// (POST {base}/auth/v3/oauth/token), caching the token until shortly before it expires.
func PasswordGrant(hc *http.Client, base, clientID, secret, user, password string) TokenSource {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	var mu sync.Mutex
	var tok string
	var exp time.Time
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if tok != "" && time.Now().Before(exp) {
			return tok, nil
		}
		form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {password}, "scope": {"*"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/auth/v3/oauth/token",
			strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.SetBasicAuth(clientID, secret)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := hc.Do(req)
		if err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
		defer res.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			return "", fmt.Errorf("token: %w", &StatusError{Status: res.StatusCode, Body: string(b), From: "GAuth"})
		}
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
		tok, exp = body.AccessToken, time.Now().Add(time.Duration(body.ExpiresIn)*time.Second*9/10)
		return tok, nil
	}
}
