package voice

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/cxlab/cxlab/appliance/clock"
)

// Deps are the Server's collaborators.
type Deps struct {
	// Logger receives the component's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil uses a private registry.
	Registerer prometheus.Registerer
	// Clock tells time (report timestamps, wrap-up, queue waits); nil is the wall clock.
	// Registrations expire on the wall clock, as their refreshes come: moving
	// the lab clock must not sign every agent out.
	Clock clock.Clock
	// Directory is the tenant model. Required.
	Directory Directory
	// Redis carries the NewCallbackStream; nil disables ORS callback sessions.
	Redis redis.UniversalClient
	// HTTPClient talks to GAuth and GES; nil uses a client with a 10 s timeout.
	HTTPClient *http.Client
	// Reporter delivers ORS state reports; nil posts them to Config.GESURL
	// with an ors_client token (contract 8).
	Reporter Reporter
}

// Server is the Voice + ORS emulator: SIP registrar and B2BUA, agent states,
// virtual queues, ORS callback sessions and simulated customers.
type Server struct {
	cfg      Config
	log      *slog.Logger
	clk      clock.Clock
	dir      Directory
	rdb      redis.UniversalClient
	hc       *http.Client
	reporter Reporter
	met      *metrics
	nonce    []byte

	mu        sync.Mutex
	snap      *dirSnapshot
	snapAt    time.Time
	bindings  map[bindKey]*binding
	agents    map[agentKey]*agent
	queues    map[queueKey]*queue
	calls     map[CallID]*call
	legs      map[string]*legRef // SIP Call-ID -> leg
	history   []*call
	sessions  map[CallbackID]*session
	done      map[CallbackID]struct{}
	doneList  []CallbackID
	tokens    map[string]tokenEntry
	orsTok    tokenEntry
	stopping  bool
	bindGen   uint64
	waiterSeq uint64
	feed      feed // agent and call changes for subscribers (feed.go)
	// lastRenewal is when the consumer last renewed its lease, in Unix
	// nanoseconds.
	lastRenewal atomic.Int64
	checkMu     sync.Mutex // one checkSessions at a time

	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	udpDialog *sipgo.DialogUA
	tcpDialog *sipgo.DialogUA
	udpConn   net.PacketConn
	tcpLn     net.Listener
	sipAddr   *net.UDPAddr

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ready   chan struct{}
	started bool
	stopped bool
	lifeMu  sync.Mutex
}

// New builds a Server; nothing listens before Start.
func New(cfg Config, d Deps) (*Server, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Directory == nil {
		return nil, errors.New("voice: a Directory is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.HTTPClient == nil {
		// Every ORS session reports to GES on its own goroutine: keep enough
		// idle connections that a burst of reports does not dial anew for
		// each (the default transport keeps 2 per host).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		d.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: tr}
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.NewRegistry()
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("voice: nonce key: %w", err)
	}
	s := &Server{
		cfg: cfg, log: d.Logger.With("component", "voice"), clk: d.Clock, dir: d.Directory, rdb: d.Redis,
		hc: d.HTTPClient, reporter: d.Reporter, nonce: key,
		bindings: map[bindKey]*binding{}, agents: map[agentKey]*agent{}, queues: map[queueKey]*queue{},
		calls: map[CallID]*call{}, legs: map[string]*legRef{}, sessions: map[CallbackID]*session{},
		done: map[CallbackID]struct{}{}, tokens: map[string]tokenEntry{}, ready: make(chan struct{}),
	}
	m, err := newMetrics(d.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.met = m
	return s, nil
}

// Name is "voice".
func (s *Server) Name() string { return "voice" }

// SIPAddr is the bound SIP address (UDP and TCP share the port); nil before Start.
func (s *Server) SIPAddr() *net.UDPAddr { return s.sipAddr }

// Start opens the SIP listeners (UDP and TCP on one port) and the Redis
// stream consumer.
func (s *Server) Start(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.started {
		return errors.New("voice: already started")
	}
	if _, err := s.snapshot(ctx); err != nil {
		return fmt.Errorf("voice start: read directory: %w", err)
	}
	if err := s.listen(); err != nil {
		return err
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("cxlab-voice"), sipgo.WithUserAgentHostname(s.cfg.SIPHost),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.log)))
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("voice start: sip user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		_ = ua.Close()
		s.closeListeners()
		return fmt.Errorf("voice start: sip server: %w", err)
	}
	host, port := s.cfg.SIPHost, s.sipAddr.Port
	udpClient, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(host),
		sipgo.WithClientConnectionAddr(net.JoinHostPort(host, strconv.Itoa(port))))
	if err != nil {
		_ = ua.Close()
		s.closeListeners()
		return fmt.Errorf("voice start: sip udp client: %w", err)
	}
	tcpClient, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(host))
	if err != nil {
		_ = ua.Close()
		s.closeListeners()
		return fmt.Errorf("voice start: sip tcp client: %w", err)
	}
	s.ua, s.srv = ua, srv
	s.udpDialog = &sipgo.DialogUA{Client: udpClient, RewriteContact: true, ContactHDR: sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: "voice", Host: host, Port: port}}}
	s.tcpDialog = &sipgo.DialogUA{Client: tcpClient, RewriteContact: true, ContactHDR: sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: "voice", Host: host, Port: port,
			UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}}}
	s.routes()

	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.started = true
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.ServeUDP(s.udpConn); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("sip udp serve stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		if err := srv.ServeTCP(s.tcpLn); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("sip tcp serve stopped", "err", err)
		}
	}()
	if err := waitUDPListener(ctx, ua, s.sipAddr.String()); err != nil {
		s.cancel()
		s.closeListeners()
		s.wg.Wait()
		_ = ua.Close()
		return fmt.Errorf("voice start: %w", err)
	}
	if s.rdb != nil {
		if err := s.ensureGroup(ctx); err != nil {
			s.cancel()
			s.closeListeners()
			s.wg.Wait()
			_ = ua.Close()
			return err
		}
		sub := s.rdb.Subscribe(s.ctx, s.cancelChannel())
		if _, err := sub.Receive(ctx); err != nil {
			// The subscription reconnects by itself; until then cancels
			// relayed by other processes are missed, and those sessions end
			// when GES refuses their next report.
			s.log.Warn("ors: subscribe to relayed cancels failed", "err", err)
		}
		s.wg.Add(3)
		go func() {
			defer s.wg.Done()
			s.consume(s.ctx)
		}()
		go func() {
			defer s.wg.Done()
			s.watchCancels(s.ctx, sub)
		}()
		go s.refreshPositions()
	}
	close(s.ready)
	s.log.Info("voice started", "sip", s.sipAddr.String())
	return nil
}

// waitUDPListener waits until the transport layer serves the UDP socket:
// requests sent from that address reuse it, and sending earlier would make
// sipgo bind a second socket to the same port.
func waitUDPListener(ctx context.Context, ua *sipgo.UserAgent, addr string) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil {
			_, _ = c.TryClose()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("udp listener %s not serving: %w", addr, ctx.Err())
		case <-t.C:
		}
	}
}

func (s *Server) listen() error {
	addr := net.JoinHostPort(s.cfg.SIPHost, strconv.Itoa(s.cfg.SIPPort))
	// UDP and TCP must share the port; with port 0, retry until the kernel's
	// UDP pick is also free on TCP.
	for try := 0; ; try++ {
		uc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return busyErr("udp", s.cfg.SIPPort, err)
		}
		port := uc.LocalAddr().(*net.UDPAddr).Port
		tl, err := net.Listen("tcp4", net.JoinHostPort(s.cfg.SIPHost, strconv.Itoa(port)))
		if err != nil {
			_ = uc.Close()
			if s.cfg.SIPPort == 0 && try < 20 {
				continue
			}
			return busyErr("tcp", port, err)
		}
		s.udpConn, s.tcpLn = uc, tl
		s.sipAddr = uc.LocalAddr().(*net.UDPAddr)
		return nil
	}
}

func busyErr(network string, port int, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("can't listen on sip.port (--sip-port) %d/%s: address already in use: %w", port, network, err)
	}
	return fmt.Errorf("can't listen on sip.port (--sip-port) %d/%s: %w", port, network, err)
}

func (s *Server) closeListeners() {
	if s.udpConn != nil {
		_ = s.udpConn.Close()
	}
	if s.tcpLn != nil {
		_ = s.tcpLn.Close()
	}
}

// Ready is nil once the SIP listeners and the stream consumer group are up.
func (s *Server) Ready(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	default:
		return errors.New("voice: not started")
	}
}

// awaitSessions waits, at most d, until the sessions have ended.
func (s *Server) awaitSessions(ctx context.Context, ended []<-chan struct{}, d time.Duration) {
	if len(ended) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for _, e := range ended {
		select {
		case <-e:
		case <-ctx.Done():
			return
		}
	}
}

// Stop hangs up every call, stops the consumer (its pending stream entries
// stay pending so that a restart resumes them) and closes the listeners. It
// is idempotent.
func (s *Server) Stop(ctx context.Context) error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if !s.started || s.stopped {
		return nil
	}
	s.stopped = true
	s.mu.Lock()
	s.stopping = true
	var talking []<-chan struct{} // connected callbacks: their COMPLETED must reach GES
	for _, ss := range s.sessions {
		ss.mu.Lock()
		if ss.state == stProcessing && ss.ended != nil {
			talking = append(talking, ss.ended)
		}
		ss.mu.Unlock()
	}
	calls := make([]*call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	for _, a := range s.agents {
		if a.timer != nil {
			a.timer.Stop()
		}
	}
	for _, b := range s.bindings {
		if b.timer != nil {
			b.timer.Stop()
		}
	}
	s.mu.Unlock()
	// Calls are hung up before the session context ends: their final state
	// reports (COMPLETED) must still reach GES, which stops after Voice.
	var hw sync.WaitGroup
	for _, c := range calls {
		hw.Add(1)
		go func() {
			defer hw.Done()
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			s.hangupCall(hctx, c, "shutdown")
		}()
	}
	hw.Wait()
	s.awaitSessions(ctx, talking, 2*time.Second)
	s.cancel()
	s.unparkAll()
	s.closeListeners()
	waited := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(waited)
	}()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		err = fmt.Errorf("voice stop: %w", ctx.Err())
	}
	if cerr := s.ua.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("voice stop: close sip: %w", cerr)
	}
	s.log.Info("voice stopped")
	return err
}

// snapshot returns the directory index, re-reading it after DirectoryTTL.
func (s *Server) snapshot(ctx context.Context) (*dirSnapshot, error) {
	s.mu.Lock()
	snap, at := s.snap, s.snapAt
	s.mu.Unlock()
	now := time.Now()
	if snap != nil && now.Sub(at) < s.cfg.DirectoryTTL {
		return snap, nil
	}
	ts, err := s.dir.Tenants(ctx)
	if err != nil {
		if snap != nil {
			s.log.Warn("directory read failed, using the previous snapshot", "err", err)
			return snap, nil
		}
		return nil, err
	}
	snap = newSnapshot(ts)
	s.mu.Lock()
	s.snap, s.snapAt = snap, now
	s.mu.Unlock()
	return snap, nil
}

// dialogUA picks the dialog user agent matching a transport.
func (s *Server) dialogUA(transport string) *sipgo.DialogUA {
	if sip.NetworkToLower(transport) == "tcp" {
		return s.tcpDialog
	}
	return s.udpDialog
}

func (s *Server) routes() {
	s.srv.OnRegister(s.onRegister)
	s.srv.OnInvite(s.onInvite)
	s.srv.OnAck(s.onAck)
	s.srv.OnBye(s.onBye)
	s.srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL matching a live INVITE is answered by the transaction layer.
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
	})
	s.srv.OnInfo(s.onInfo)
	s.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	s.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowHeader))
		_ = tx.Respond(res)
	})
}

const allowHeader = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, REGISTER"
