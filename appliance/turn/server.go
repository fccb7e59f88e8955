// Package turn is the appliance's TURN server: pion/turn behind coturn-style
// TURN REST credentials (use-auth-secret), a per-user allocation quota, a peer
// address policy that keeps it from being an open relay, Prometheus metrics and
// a live view of allocations for the console.
package turn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/internal/udpbatch"
)

// ICEServer is one entry of a WebRTC RTCConfiguration.iceServers list; the JSON
// names match the browser's RTCIceServer.
type ICEServer struct {
	// URLs are turn: URIs, one per transport.
	URLs []string `json:"urls"`
	// Username is the TURN REST username "<unix-expiry>:<user>".
	Username string `json:"username,omitempty"`
	// Credential is the TURN REST password.
	Credential string `json:"credential,omitempty"`
	// Expires is when Username stops being accepted.
	Expires time.Time `json:"-"`
}

// Server is the TURN component. Create it with New; it listens from Start to Stop.
type Server struct {
	cfg    Config
	log    *slog.Logger
	clk    clock.Clock
	policy peerPolicy
	// challenges turns pion's 400 for refused credentials into 401 (authfix.go).
	challenges *authChallenges
	m          *metrics
	relays     *relayTable
	allocs     *allocTable

	mu      sync.Mutex
	state   serverState
	pion    *pionturn.Server
	udp     *trackedPacketConn
	poller  *relayPoller // nil: pion reads every relayed socket itself
	tcp     *trackedListener
	udpAddr net.Addr
	tcpAddr net.Addr
}

type serverState int

const (
	stateNew serverState = iota
	stateRunning
	stateStopped
)

// New checks cfg and registers the server's metrics on reg (nil: none). It
// opens no sockets; Start does.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, clk clock.Clock) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new turn server: %w", err)
	}
	policy, err := parsePeerPolicy(cfg.AllowedPeers)
	if err != nil {
		return nil, fmt.Errorf("new turn server: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.System{}
	}
	s := &Server{
		cfg:    cfg,
		log:    logger.With("component", "turn"),
		clk:    clk,
		policy: policy,
		allocs: newAllocTable(),
	}
	s.m = newMetrics(func() float64 { return float64(s.allocs.count()) })
	if err := s.m.register(reg); err != nil {
		return nil, fmt.Errorf("new turn server: %w", err)
	}
	s.relays = newRelayTable(s.m.traffic())
	s.challenges = newAuthChallenges(cfg.withDefaults().Realm)
	s.relays.refused = s.m.peersRefused
	s.relays.guard = &portGuard{ports: s.protectedPorts, local: s.isLocal}
	return s, nil
}

// Name implements the appliance component contract.
func (s *Server) Name() string { return "turn" }

// readBufferSize is the size of each batched read of the UDP listener: pion
// reads into 1,600 bytes and drops what fills them, so a longer datagram,
// truncated here to 1,600, is dropped as before.
const readBufferSize = 1600

// writeQueueDepth is how many datagrams toward clients may wait for the
// listener's writer: at 35,000 packets/s, about 15 ms.
const writeQueueDepth = 512

// writeQueueDatagram is the largest datagram the queue holds: a relayed
// packet of up to 1,600 bytes in ChannelData (4 bytes more) or in a Data
// indication (about 60 more). Longer ones bypass the queue.
const writeQueueDatagram = 1700

// ListenerReceiveBuffer is the receive buffer asked for the UDP listener. At
// the kernel's default (208 kB, a few hundred small datagrams once each one's
// overhead counts) a pause of the single reader of a few milliseconds at
// 35,000 packets/s overflows it; 4 MB rides out about 100 ms.
const ListenerReceiveBuffer = 4 << 20

// growReceiveBuffer asks for ListenerReceiveBuffer on the UDP listener and
// says so in the log when the kernel grants less (net.core.rmem_max caps it).
func (s *Server) growReceiveBuffer(uc *net.UDPConn) {
	if err := uc.SetReadBuffer(ListenerReceiveBuffer); err != nil {
		s.log.Warn("turn UDP receive buffer not sized", "err", err)
		return
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return
	}
	got := 0
	_ = rc.Control(func(fd uintptr) { got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	// Linux reports twice the size it was asked for (its bookkeeping share).
	if got > 0 && got < ListenerReceiveBuffer {
		s.log.Info("turn UDP receive buffer smaller than asked; raise the net.core.rmem_max sysctl to absorb bursts",
			"bytes", got, "asked", ListenerReceiveBuffer)
	}
}

// Start opens the UDP and TCP listeners and starts serving.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return errors.New("start turn server: already started")
	}
	// This host's addresses: the "local" policy allows them, and the port
	// guard protects the appliance's services on them.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("start turn server: read interface addresses: %w", err)
	}
	s.policy = s.policy.withHostAddrs(addrs)
	pc, ln, err := s.listen(ctx)
	if err != nil {
		return fmt.Errorf("start turn server: %w", err)
	}
	var bc *udpbatch.Conn // the UDP listener, when it reads in batches
	if uc, ok := pc.(*net.UDPConn); ok {
		s.growReceiveBuffer(uc)
		// Every client's packets toward its peers arrive here, read by one
		// goroutine: under load it takes what queued in one system call.
		// Every allocation's goroutine writes its peer's packets here: one
		// writer sends what they queued with one system call.
		bc = udpbatch.New(uc, 32, readBufferSize)
		bc.BatchWrites(writeQueueDepth, writeQueueDatagram)
		pc = bc
		// One goroutine reads every relayed socket and forwards channel
		// traffic to the clients (see relayPoller).
		if p, err := newRelayPoller(bc, s.relays); err == nil {
			s.poller = p
			if p.peersErr != nil {
				s.log.Debug("turn: io_uring refused: channel data toward peers is sent one datagram at a time", "err", p.peersErr)
			}
		} else {
			s.log.Debug("turn relay poller off: pion reads each relayed socket", "err", err)
		}
	}
	s.udp = &trackedPacketConn{PacketConn: pc, done: make(chan struct{}), challenges: s.challenges}
	if s.poller != nil {
		// Channel traffic toward peers of the poller's sockets skips pion,
		// sent in batches when the read loop has handled what it read.
		s.udp.forward = s.relays.forwardChannelData
		s.udp.flush, s.udp.buffered = s.poller.flushPeers, bc.Buffered
	}
	s.udpAddr = pc.LocalAddr()
	sc := pionturn.ServerConfig{
		PacketConnConfigs: []pionturn.PacketConnConfig{{
			PacketConn:            s.udp,
			RelayAddressGenerator: s.generator(s.poller),
			PermissionHandler:     s.permit,
		}},
		LoggerFactory:      NewPionLoggerFactory(s.log),
		Realm:              s.cfg.Realm,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.quota,
		EventHandler:       s.events(),
		AllocationLifetime: s.cfg.AllocationLifetime,
	}
	if ln != nil {
		s.tcp = newTrackedListener(ln)
		s.tcp.challenges = s.challenges
		s.tcpAddr = ln.Addr()
		sc.ListenerConfigs = []pionturn.ListenerConfig{{
			Listener:              s.tcp,
			RelayAddressGenerator: s.generator(nil),
			PermissionHandler:     s.permit,
		}}
	}
	srv, err := pionturn.NewServer(sc)
	if err != nil {
		s.stopPoller()
		_ = pc.Close()
		if ln != nil {
			_ = ln.Close()
		}
		return fmt.Errorf("start turn server: %w", err)
	}
	s.pion = srv
	s.state = stateRunning
	s.log.Info("turn server listening", "udp", s.udpAddr, "tcp", s.tcpAddr, "realm", s.cfg.Realm,
		"relay_ip", s.cfg.relayIP(), "relay_ports", fmt.Sprintf("%d-%d", s.cfg.MinPort, s.cfg.MaxPort),
		"allowed_peers", s.cfg.AllowedPeers)
	return nil
}

// Stop closes the listeners and every allocation, and waits (bounded by ctx)
// until pion's goroutines have let go of them. Calling it again does nothing.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateRunning {
		s.state = stateStopped
		return nil
	}
	s.state = stateStopped
	closeErr := s.pion.Close()
	if s.tcp != nil {
		s.tcp.closeConns()
	}
	waitErr := s.waitIdle(ctx)
	s.stopPoller()
	s.allocs.reset()
	if waitErr != nil {
		return fmt.Errorf("stop turn server: %w", waitErr)
	}
	if closeErr != nil {
		return fmt.Errorf("stop turn server: %w", closeErr)
	}
	return nil
}

// waitIdle polls until the listeners' loops have ended, every client TCP
// connection has been read to its end and every relayed socket is closed.
func (s *Server) waitIdle(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.idle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for allocations to close: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *Server) idle() bool {
	select {
	case <-s.udp.done:
	default:
		return false
	}
	if s.tcp != nil && !s.tcp.idle() {
		return false
	}
	return s.relays.open.Load() == 0
}

// Ready returns nil while the server is serving.
func (s *Server) Ready(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateRunning {
		return errors.New("turn server not running")
	}
	return nil
}

// UDPAddr is the bound UDP address; nil before Start.
func (s *Server) UDPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpAddr
}

// TCPAddr is the bound TCP address; nil before Start or when TCP is disabled.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpAddr
}

// URLs are the turn: URIs clients should use, UDP first; nil before Start.
func (s *Server) URLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var urls []string
	host := s.cfg.publicHost()
	if a, ok := s.udpAddr.(*net.UDPAddr); ok {
		urls = append(urls, "turn:"+net.JoinHostPort(host, strconv.Itoa(a.Port))+"?transport=udp")
	}
	if a, ok := s.tcpAddr.(*net.TCPAddr); ok {
		urls = append(urls, "turn:"+net.JoinHostPort(host, strconv.Itoa(a.Port))+"?transport=tcp")
	}
	return urls
}

// ICEServers returns the server's URLs with fresh TURN REST credentials for
// user, valid for Config.CredentialTTL. Without an AuthSecret the credentials
// are left empty (static users know their own).
func (s *Server) ICEServers(user string) []ICEServer {
	srv := ICEServer{URLs: s.URLs()}
	if s.cfg.AuthSecret != "" {
		srv.Username, srv.Credential, srv.Expires = NewCredentials(s.cfg.AuthSecret, user, s.cfg.CredentialTTL, time.Now())
	}
	return []ICEServer{srv}
}

// Allocations returns the live allocations, oldest first.
func (s *Server) Allocations() []AllocationInfo { return s.allocs.snapshot() }

// listen opens the client-facing sockets, or adopts the caller's.
func (s *Server) listen(ctx context.Context) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	wantTCP := !s.cfg.DisableTCP || s.cfg.Listener != nil
	pc, ln := s.cfg.PacketConn, s.cfg.Listener
	if pc != nil {
		if wantTCP && ln == nil {
			ua, ok := pc.LocalAddr().(*net.UDPAddr)
			if !ok {
				return nil, nil, fmt.Errorf("caller's packet conn on %s: not UDP, so no TCP port to match", pc.LocalAddr())
			}
			port := ua.Port
			l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(port)))
			if err != nil {
				return nil, nil, s.listenErr(port, err)
			}
			ln = l
		}
		return pc, ln, nil
	}
	// With port 0 the TCP listener must find the UDP socket's number free
	// too; another process may hold it, so try a few free UDP ports.
	attempts := 1
	if s.cfg.Port == 0 {
		attempts = 20
	}
	var lastErr error
	for range attempts {
		p, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)))
		if err != nil {
			if ln != nil {
				_ = ln.Close()
			}
			return nil, nil, s.listenErr(s.cfg.Port, err)
		}
		if !wantTCP || ln != nil {
			return p, ln, nil
		}
		port := p.LocalAddr().(*net.UDPAddr).Port
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(port)))
		if err == nil {
			return p, l, nil
		}
		_ = p.Close()
		lastErr = s.listenErr(port, err)
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, lastErr
}

// listenErr names the setting the user can change, as in
// "can't listen on --turn-port 3478: address already in use".
func (s *Server) listenErr(port int, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("can't listen on %s %d: %w", s.cfg.PortSetting, port, errno)
	}
	return fmt.Errorf("can't listen on %s %d: %w", s.cfg.PortSetting, port, err)
}

// stopPoller stops the relay poller, if any; its sockets are closed by then.
func (s *Server) stopPoller() {
	if s.poller != nil {
		s.poller.close()
		s.poller = nil
	}
}

// generator builds the relay address generator for one listener; poller, when
// set, reads the relayed sockets it opens.
func (s *Server) generator(poller *relayPoller) pionturn.RelayAddressGenerator {
	ip := s.cfg.relayIP()
	var inner pionturn.RelayAddressGenerator
	if s.cfg.MinPort == 0 && s.cfg.MaxPort == 0 {
		inner = &pionturn.RelayAddressGeneratorStatic{RelayAddress: ip, Address: ip.String()}
	} else {
		size := s.cfg.MaxPort - s.cfg.MinPort + 1
		inner = &pionturn.RelayAddressGeneratorPortRange{
			RelayAddress: ip,
			Address:      ip.String(),
			MinPort:      uint16(s.cfg.MinPort),
			MaxPort:      uint16(s.cfg.MaxPort),
			// Random probing; enough tries to find the last free ports of a
			// small range without spinning long on a full one.
			MaxRetries: min(max(3*size, 10), 300),
		}
	}
	return &countingGenerator{inner: inner, relays: s.relays, poller: poller, failed: func(err error) {
		s.m.relayFailures.Inc()
		s.log.Warn("turn relay address unavailable; the Allocate is refused with 508 (a full relay port range caps allocations: turn.min_relay_port/max_relay_port)",
			"range", fmt.Sprintf("%d-%d", s.cfg.MinPort, s.cfg.MaxPort), "err", err)
	}}
}

// authenticate is pion's AuthHandler: static users first, then TURN REST.
func (s *Server) authenticate(ra *pionturn.RequestAttributes) (string, []byte, bool) {
	fail := func(reason string, err error) (string, []byte, bool) {
		s.m.authFailures.WithLabelValues(reason).Inc()
		s.challenges.refuse(ra.SrcAddr.String())
		s.log.Info("turn credentials refused", "username", ra.Username, "client", ra.SrcAddr,
			"method", ra.Method.String(), "reason", reason, "err", err)
		return "", nil, false
	}
	if ra.Realm != s.cfg.Realm {
		return fail(reasonRealm, fmt.Errorf("realm %q is not %q", ra.Realm, s.cfg.Realm))
	}
	if pw, ok := s.cfg.StaticUsers[ra.Username]; ok {
		return ra.Username, pionturn.GenerateAuthKey(ra.Username, ra.Realm, pw), true
	}
	if s.cfg.AuthSecret == "" {
		return fail(reasonUnknownUser, nil)
	}
	// TURN REST usernames carry a Unix time, made by servers that read the
	// wall clock (as coturn checks it): the lab clock does not apply.
	user, pw, err := checkREST(s.cfg.AuthSecret, ra.Username, time.Now())
	switch {
	case errors.Is(err, errRESTExpired) && ra.Method != stun.MethodAllocate:
		// As coturn: the expiry bounds new allocations; an allocation made
		// in time goes on being refreshed, permitted and deleted with the
		// credential it was made with (still checked by its integrity key),
		// or a call would lose its relay, and its quota slot, mid-way.
		_, user, _ = parseRESTUsername(ra.Username)
		return user, pionturn.GenerateAuthKey(ra.Username, ra.Realm, restPassword(s.cfg.AuthSecret, ra.Username)), true
	case errors.Is(err, errRESTExpired):
		return fail(reasonExpired, err)
	case err != nil:
		return fail(reasonMalformed, err)
	}
	return user, pionturn.GenerateAuthKey(ra.Username, ra.Realm, pw), true
}

// protectedPorts are Config.ProtectedPorts and the server's own port.
func (s *Server) protectedPorts() []int {
	var ports []int
	if s.cfg.ProtectedPorts != nil {
		ports = s.cfg.ProtectedPorts()
	}
	if ua, ok := s.UDPAddr().(*net.UDPAddr); ok {
		ports = append(ports, ua.Port)
	}
	return ports
}

// isLocal reports whether addr is this host's (loopback or an interface address).
func (s *Server) isLocal(addr netip.Addr) bool {
	if addr.IsLoopback() || addr.IsUnspecified() {
		return true
	}
	_, ok := s.policy.hostAddrs[addr]
	return ok
}

// quota is pion's QuotaHandler; user is what authenticate returned.
func (s *Server) quota(user, _ string, src net.Addr) bool {
	if s.allocs.reserve(user, src, s.cfg.UserQuota, time.Now()) {
		return true
	}
	s.m.quotaRefusals.Inc()
	s.log.Info("turn allocation quota reached", "user", user, "client", src, "quota", s.cfg.UserQuota)
	return false
}

// permit is pion's PermissionHandler, applying Config.AllowedPeers.
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	s.relays.guard.refresh()
	if s.policy.allows(peer) {
		return true
	}
	s.m.peersRefused.Inc()
	s.log.Info("turn peer refused by policy", "client", client, "peer", peer, "allowed_peers", s.cfg.AllowedPeers)
	return false
}

func (s *Server) events() pionturn.EventHandler {
	return pionturn.EventHandler{
		OnAuth: func(src, _ net.Addr, _, username, _, method string, verdict bool) {
			if !verdict {
				s.m.authFailures.WithLabelValues(reasonBadPassword).Inc()
				s.challenges.refuse(src.String())
				s.log.Info("turn credentials refused", "username", username, "client", src,
					"method", method, "reason", reasonBadPassword)
			}
		},
		OnAllocationCreated: func(src, dst net.Addr, _, user, _ string, relayAddr net.Addr, _ int) {
			r := s.relays.get(relayAddr)
			if ua, ok := src.(*net.UDPAddr); ok && r != nil {
				s.relays.setClient(r, ua)
			}
			s.allocs.created(src, dst, user, relayAddr, r, s.clk.Now())
			s.m.allocationsTotal.WithLabelValues(transportOf(src)).Inc()
			s.log.Debug("turn allocation created", "client", src, "user", user, "relay", relayAddr)
		},
		OnAllocationDeleted: func(src, dst net.Addr, _, user, _ string) {
			s.allocs.deleted(src, dst)
			s.log.Debug("turn allocation deleted", "client", src, "user", user)
		},
		OnAllocationError: func(src, _ net.Addr, _, _ string) {
			s.allocs.release(src)
		},
		OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
			if r := s.relays.get(relayAddr); r != nil {
				r.setPeer(peer, true)
			}
		},
		OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
			if r := s.relays.get(relayAddr); r != nil {
				r.setPeer(peer, false)
			}
		},
		OnChannelCreated: func(_, _ net.Addr, _, _, _ string, relayAddr, peer net.Addr, number uint16) {
			// A protected peer's channel is left to pion, whose writes the
			// guard drops; the fast path would not ask it.
			if r := s.relays.get(relayAddr); r != nil && !s.relays.guard.refusesAddr(peer) {
				r.setChannel(peer, number, true)
			}
		},
		OnChannelDeleted: func(_, _ net.Addr, _, _, _ string, relayAddr, peer net.Addr, number uint16) {
			if r := s.relays.get(relayAddr); r != nil {
				r.setChannel(peer, number, false)
			}
		},
	}
}

// trackedPacketConn tells when pion's UDP read loop has ended.
type trackedPacketConn struct {
	net.PacketConn
	done     chan struct{}
	doneOnce sync.Once
	// forward, when set, takes datagrams it can relay itself before pion
	// sees them (true: taken).
	forward func(p []byte, from net.Addr) bool
	// flush, when set, sends what forward queued; it runs before a read that
	// may wait (buffered says none of the last batch is left).
	flush    func()
	buffered func() int
	// challenges rewrites pion's answers to refused credentials (authfix.go).
	challenges *authChallenges
}

func (c *trackedPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.challenges != nil && errorResponse(p) {
		if out := c.challenges.rewrite(p, addr.String()); len(out) != len(p) || &out[0] != &p[0] {
			if _, err := c.PacketConn.WriteTo(out, addr); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *trackedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if c.flush != nil && c.buffered() == 0 {
			c.flush()
		}
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			c.doneOnce.Do(func() { close(c.done) })
			return n, addr, err
		}
		if c.forward == nil || !c.forward(p[:n], addr) {
			return n, addr, nil
		}
	}
}

// trackedListener keeps the accepted client connections so that Stop can close
// them (pion only closes the listener) and know when their readers ended.
type trackedListener struct {
	net.Listener
	acceptDone chan struct{}
	doneOnce   sync.Once

	mu    sync.Mutex
	conns map[*trackedConn]struct{}

	challenges *authChallenges // see authfix.go; nil rewrites nothing
}

func newTrackedListener(ln net.Listener) *trackedListener {
	return &trackedListener{Listener: ln, acceptDone: make(chan struct{}), conns: make(map[*trackedConn]struct{})}
}

func (l *trackedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		l.doneOnce.Do(func() { close(l.acceptDone) })
		return nil, err
	}
	tc := &trackedConn{Conn: conn, owner: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (l *trackedListener) closeConns() {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (l *trackedListener) idle() bool {
	select {
	case <-l.acceptDone:
	default:
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns) == 0
}

// trackedConn leaves its listener's set once a read fails, which is when
// pion's per-connection loop gives up on it.
type trackedConn struct {
	net.Conn
	owner    *trackedListener
	doneOnce sync.Once
}

// Write passes pion's error responses through the listener's challenges
// (pion writes one STUN message per Write).
func (c *trackedConn) Write(p []byte) (int, error) {
	if ch := c.owner.challenges; ch != nil && errorResponse(p) {
		if out := ch.rewrite(p, c.RemoteAddr().String()); len(out) != len(p) || &out[0] != &p[0] {
			if _, err := c.Conn.Write(out); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.doneOnce.Do(func() {
			c.owner.mu.Lock()
			delete(c.owner.conns, c)
			c.owner.mu.Unlock()
		})
	}
	return n, err
}
