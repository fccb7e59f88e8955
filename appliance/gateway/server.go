// Package gateway is CX Lab's WebRTC gateway: it speaks the Genesys WebRTC JS
// API ("Grtc") signalling over HTTP long-polling toward browsers, registers
// each signed-in agent's DN with the Voice service over SIP, and bridges every
// call between the browser (Opus or PCMU over DTLS-SRTP, one shared ICE UDP
// port) and plain RTP G.711 toward SIP, transcoding when needed.
//
// Additions to the real protocol, for the lab: GET {base}/ice-servers?id=
// (RTCIceServer JSON with fresh TURN REST credentials) and GET {base}/config
// (what a softphone page needs). A second sign-in for a DN that is already
// signed in replaces the first one: the old session is signed out (its call
// dropped) and the DN re-registered for the new client, as a browser reload
// would expect.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/turn"
)

// TURN hands out ICE servers with fresh credentials; *turn.Server implements it.
type TURN interface {
	ICEServers(user string) []turn.ICEServer
}

var _ TURN = (*turn.Server)(nil)

// Server is the gateway component.
type Server struct {
	cfg  Config
	log  *slog.Logger
	clk  clock.Clock
	met  *metrics
	turn TURN
	hc   *http.Client

	mediaConn net.PacketConn
	udpMux    ice.UDPMux
	se        webrtc.SettingEngine
	sip       *sipStack
	pacer     *pacer // plays out every call's media

	depMu   sync.Mutex
	depDown map[string]bool // dependencies (auth, cfg) last seen down

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	state    int // 0 new, 1 started, 2 stopped
	sessions map[SSID]*session
	byKey    map[string]*session // "dn@domain"
	anon     int                 // anonymous sessions among sessions: no DN, not a sign-in of the metrics
	calls    map[string]*call    // SIP Call-ID
	recent   []CallInfo
}

// New builds a gateway. turnSrv may be nil (no TURN offered to clients).
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, clk clock.Clock, turnSrv TURN) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.System{}
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	met.maxClients.Set(float64(cfg.MaxClients))
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Server{
		cfg: cfg, log: logger.With("component", "gateway"), clk: clk, met: met, turn: turnSrv,
		hc: cfg.HTTPClient, pacer: newPacer(),
		sessions: map[SSID]*session{}, byKey: map[string]*session{}, calls: map[string]*call{},
	}, nil
}

// Name implements the component contract.
func (s *Server) Name() string { return "gateway" }

// Start opens the ICE UDP socket and the SIP listener.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 0 {
		return errors.New("gateway: already started")
	}
	conn := s.cfg.MediaConn
	if conn == nil {
		c, err := net.ListenPacket("udp4", net.JoinHostPort(s.cfg.MediaHost, fmt.Sprint(s.cfg.MediaPort)))
		if err != nil {
			return listenErr(s.cfg.MediaPortSetting, s.cfg.MediaPort, err)
		}
		conn = c
	}
	s.mediaConn = conn
	mux := conn
	if uc, ok := conn.(*net.UDPConn); ok {
		mc := newMediaConn(uc)
		s.pacer.media.Store(mc)
		mux = mc
	}
	s.udpMux = webrtc.NewICEUDPMux(nil, mux)
	se, err := s.settingEngine()
	if err != nil {
		_ = s.udpMux.Close()
		_ = conn.Close()
		return fmt.Errorf("gateway: ICE settings: %w", err)
	}
	s.se = se
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	sp, err := newSIPStack(s)
	if err != nil {
		_ = s.udpMux.Close()
		_ = conn.Close()
		return err
	}
	s.sip = sp
	s.state = 1
	s.wg.Add(1)
	go s.janitor()
	if s.cfg.AuthURL != "" {
		s.wg.Add(1)
		go s.probeDependencies()
	}
	s.log.Info("gateway started", "media", conn.LocalAddr().String(), "sip", sp.addr.String(), "voice", s.cfg.VoiceSIPAddr)
	return nil
}

// listenErr names the setting of a busy port.
func listenErr(setting string, port int, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("can't listen on %s %d: address already in use", setting, port)
	}
	return fmt.Errorf("can't listen on %s %d: %w", setting, port, err)
}

// settingEngine shares the one ICE socket among all PeerConnections and
// advertises only the bind address.
func (s *Server) settingEngine() (webrtc.SettingEngine, error) {
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(s.udpMux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.LoggerFactory = turn.NewPionLoggerFactory(s.log)
	// The gateway offers, so it nominates the pair; pion waits 2 s before
	// nominating a pair with a relayed candidate (and 1 s for a peer
	// reflexive one) in case a better pair succeeds: a browser made to relay
	// lost its first 2 s of audio both ways. Its own candidates are host
	// ones on one socket; a better pair, if any, succeeds within these waits.
	se.SetRelayAcceptanceMinWait(250 * time.Millisecond)
	se.SetPrflxAcceptanceMinWait(250 * time.Millisecond)
	ip := net.ParseIP(s.cfg.MediaHost)
	if !ip.IsUnspecified() {
		se.SetIPFilter(func(cand net.IP) bool { return cand.Equal(ip) })
		// The rule SetNAT1To1IPs(ips, host) used to build: host candidates
		// are published with MediaHost (the default mode for host rules is
		// replace).
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        []string{s.cfg.MediaHost},
			AsCandidateType: webrtc.ICECandidateTypeHost,
		}); err != nil {
			return se, err
		}
	}
	return se, nil
}

// Ready reports nil once the sockets are open.
func (s *Server) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 1 {
		return errors.New("gateway not running")
	}
	return nil
}

// Stop signs every client out (BYE on both legs of live calls, DNs
// unregistered) within ctx, then closes the sockets. It is idempotent.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.state != 1 {
		s.state = 2
		s.mu.Unlock()
		return nil
	}
	s.state = 2
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, ss := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.signOut(ctx, ss, "shutdown")
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.cancel()
	<-done // every step above is bounded by ctx or a short SIP timeout
	s.sip.close()
	s.wg.Wait()
	s.pacer.wait() // every call has ended, so its shards exit within a frame
	_ = s.udpMux.Close()
	_ = s.mediaConn.Close()
	s.log.Info("gateway stopped")
	return nil
}

// janitor signs out clients that stopped polling and refreshes registrations.
func (s *Server) janitor() {
	defer s.wg.Done()
	period := s.cfg.ClientTimeout / 4
	if period > 5*time.Second {
		period = 5 * time.Second
	}
	if period < 20*time.Millisecond {
		period = 20 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		var idle, refresh []*session
		for _, ss := range s.sessions {
			if ss.idleFor(s.cfg.ClientTimeout, now) {
				idle = append(idle, ss)
				continue
			}
			ss.mu.Lock()
			if now.Sub(ss.registered) > s.cfg.RegisterExpiry/2 {
				ss.registered = now // one refresh attempt per half-period
				refresh = append(refresh, ss)
			}
			ss.mu.Unlock()
		}
		s.mu.Unlock()
		for _, ss := range idle {
			s.met.clientErrors.WithLabelValues("timeout").Inc()
			s.log.Info("client stopped polling; signing out", "dn", ss.dn, "user", ss.user)
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			s.signOut(ctx, ss, "timeout")
			cancel()
		}
		for _, ss := range refresh {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			switch err := s.sip.register(ctx, ss, s.cfg.RegisterExpiry); {
			case errors.Is(err, ErrUnauthorized):
				// The token was revoked or expired: the DN is no longer
				// registered, so the session ends and the client's next
				// /wait says so, rather than seeming signed in and taking
				// no calls.
				s.log.Info("registration refresh refused; signing out", "dn", ss.dn, "user", ss.user, "err", err)
				s.signOut(ctx, ss, "registration refused")
			case err != nil:
				s.log.Warn("register refresh failed", "dn", ss.dn, "err", err)
			}
			cancel()
		}
	}
}

// newID returns a random hex id.
func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// addSession registers ss, replacing a session holding the same DN.
func (s *Server) addSession(ctx context.Context, ss *session) (*session, error) {
	s.mu.Lock()
	if s.state != 1 {
		s.mu.Unlock()
		return nil, errors.New("gateway not running")
	}
	old := s.byKey[ss.key()]
	if old == nil && len(s.sessions) >= s.cfg.MaxClients {
		s.mu.Unlock()
		return nil, errFull
	}
	if ss.anonymous && s.sessions[ss.id] == nil {
		s.anon++
	}
	s.sessions[ss.id] = ss
	s.byKey[ss.key()] = ss
	// The sign-in gauge is "Registered DNs" (reference A.8): anonymous
	// web visitors register none.
	s.met.signIns.Set(float64(len(s.sessions) - s.anon))
	if old == nil && !ss.anonymous {
		s.met.byDomain.WithLabelValues(ss.domain).Inc()
	}
	s.mu.Unlock()
	if old != nil {
		s.dropSession(ctx, old, "replaced", false)
	}
	return old, nil
}

var errFull = errors.New("gateway at capacity")

// session looks up a client by SSID.
func (s *Server) session(id SSID) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// sessionFor finds the client registered for dn (at domain when known).
func (s *Server) sessionFor(dn, domain string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.byKey[dn+"@"+domain]; ss != nil {
		return ss
	}
	for _, ss := range s.sessions {
		if string(ss.dn) == dn {
			return ss
		}
	}
	return nil
}

// signOut ends a client: drops its call and unregisters its DN.
func (s *Server) signOut(ctx context.Context, ss *session, reason string) {
	s.dropSession(ctx, ss, reason, true)
}

// dropSession removes ss; unregister is false when a new session took the DN over.
func (s *Server) dropSession(ctx context.Context, ss *session, reason string, unregister bool) {
	// End a live call while the session is still open, so its BYE goes to the
	// browser on /wait (and to SIP) before the session closes.
	dropped := false
	if c := ss.currentCall(); c != nil && reason != "timeout" {
		dropped = true
		s.met.clientErrors.WithLabelValues("dropped_on_signout").Inc()
		c.end(ctx, "signout", sideGateway)
		ss.drain(ctx, time.Second)
	}
	c, ok := ss.close()
	if !ok {
		return
	}
	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
		if ss.anonymous {
			s.anon--
		}
	}
	if s.byKey[ss.key()] == ss {
		delete(s.byKey, ss.key())
		if !ss.anonymous {
			s.met.byDomain.WithLabelValues(ss.domain).Dec()
		}
	}
	s.met.signIns.Set(float64(len(s.sessions) - s.anon))
	s.mu.Unlock()
	if c != nil && !dropped {
		s.met.clientErrors.WithLabelValues("dropped_on_signout").Inc()
		c.end(ctx, "signout", sideGateway)
	}
	if unregister {
		if err := s.sip.register(ctx, ss, 0); err != nil {
			s.log.Debug("unregister failed", "dn", ss.dn, "err", err)
		}
	}
	s.log.Info("signed out", "dn", ss.dn, "user", ss.user, "reason", reason)
}
