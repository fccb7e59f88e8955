package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/labstack/echo/v4"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
	"github.com/cxlab/cxlab/appliance/media"
)

const (
	goodToken    = "token-agent1"
	domain       = "demo.cxlab.local"
	signInMetric = "wrtc_current_signins" //nolint:misspell // the product's metric name
)

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GATEWAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// platform is a fake GAuth (userinfo, contract 2) + GWS (persons, contract 5).
func platform(t testing.TB) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/v3/userinfo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+goodToken {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"authorities": []string{"ROLE_AGENT"}, "cmeUserName": "agent1",
			"contactCenterId": "ccid-demo", "dbid": 101, "loginName": "agent1", "username": "agent1"})
	})
	mux.HandleFunc("GET /configuration/v3/objects/persons", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+goodToken {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		objs := []map[string]any{}
		if r.URL.Query().Get("user_name") == "agent1" {
			objs = append(objs, map[string]any{"dbid": 101, "userName": "agent1", "contactCenterId": "ccid-demo",
				"dn": "7001", "sipDomain": domain})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"code": 0}, "data": map[string]any{"objects": objs}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// regEvent is one REGISTER the fake Voice accepted.
type regEvent struct {
	dn      string
	expires int
	bearer  string
}

// voice is a fake Voice SIP side: registrar accepting Bearer REGISTERs (and
// digest-free DN ones) and a UAC placing calls with a real RTP endpoint.
type voice struct {
	t        testing.TB
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	cli      *sipgo.Client
	conn     net.PacketConn
	addr     *net.UDPAddr
	clients  *sipgo.DialogClientCache
	contact  sip.ContactHeader
	regs     chan regEvent
	byes     chan string
	reinvite chan string
	wg       sync.WaitGroup

	mu       sync.Mutex
	bindings map[string]sip.Uri
	ep       *rtpPeer
	ln       net.Listener

	refuse atomic.Bool  // answer every REGISTER 401, as Voice does for a token GAuth no longer accepts
	inv    atomic.Int64 // INVITEs received (new calls and re-INVITEs)

	// ring makes new INVITEs ring (180) unanswered, as a callee who does
	// not pick up; ringing and cancels get their Call-IDs.
	ring     atomic.Bool
	ringing  chan string
	cancels  chan string
	stopRing chan struct{}
}

// invites is how many INVITEs the fake Voice has received.
func (v *voice) invites() int64 { return v.inv.Load() }

func newVoice(t testing.TB) *voice {
	ua, _ := sipgo.NewUA(sipgo.WithUserAgent("fake-voice"), sipgo.WithUserAgentHostname("127.0.0.1"))
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.DiscardHandler)))
	// Like the real Voice: UDP and TCP on one port (the gateway registers over TCP).
	conn, ln := listenUDPTCP(t)
	addr := conn.LocalAddr().(*net.UDPAddr)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(addr.String()),
		sipgo.WithClientLogger(slog.New(slog.DiscardHandler)))
	v := &voice{t: t, ua: ua, srv: srv, cli: cli, conn: conn, ln: ln, addr: addr, regs: make(chan regEvent, 64),
		byes: make(chan string, 64), reinvite: make(chan string, 64), bindings: map[string]sip.Uri{},
		ringing: make(chan string, 64), cancels: make(chan string, 64), stopRing: make(chan struct{})}
	v.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "voice", Host: "127.0.0.1", Port: addr.Port}}
	v.clients = sipgo.NewDialogClientCache(cli, v.contact)
	srv.OnRegister(v.onRegister)
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := v.clients.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Dialog", nil))
			return
		}
		select {
		case v.byes <- req.CallID().Value():
		default:
		}
	})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		v.inv.Add(1)
		if to := req.To(); to != nil && !to.Params.Has("tag") && v.ring.Load() {
			v.ringUnanswered(req, tx)
			return
		}
		// re-INVITE from the gateway: answer with our media, report the direction.
		dir := "sendrecv"
		for _, d := range []string{"sendonly", "recvonly", "inactive"} {
			if strings.Contains(string(req.Body()), "a="+d) {
				dir = d
			}
		}
		v.mu.Lock()
		ep := v.ep
		v.mu.Unlock()
		body := []byte{}
		if ep != nil {
			rev := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "sendrecv": "sendrecv"}[dir]
			body = ep.sdp(rev)
		}
		res := sip.NewSDPResponseFromRequest(req, body)
		res.AppendHeader(&v.contact)
		_ = tx.Respond(res)
		select {
		case v.reinvite <- dir:
		default:
		}
	})
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	v.wg.Add(2)
	go func() { defer v.wg.Done(); _ = srv.ServeUDP(conn) }()
	go func() { defer v.wg.Done(); _ = srv.ServeTCP(ln) }()
	t.Cleanup(v.close)
	return v
}

// listenUDPTCP opens UDP and TCP on one free port number (the number picked for
// UDP may be taken for TCP: then another is tried).
func listenUDPTCP(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp4", conn.LocalAddr().String())
		if err == nil {
			return conn, ln
		}
		_ = conn.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

// ringUnanswered rings for a new call until the caller cancels it; the
// Call-ID goes to cancels once the caller has acknowledged the 487, so it
// has seen the INVITE end.
func (v *voice) ringUnanswered(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID().Value()
	cancelled := make(chan struct{})
	tx.OnCancel(func(*sip.Request) { close(cancelled) }) // the transaction answers 487 itself
	_ = tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
	v.ringing <- id
	select {
	case <-cancelled:
		select {
		case <-tx.Acks():
			v.cancels <- id
		case <-tx.Done():
		case <-v.stopRing:
		}
	case <-tx.Done():
	case <-v.stopRing:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
	}
}

func (v *voice) close() {
	close(v.stopRing)
	_ = v.conn.Close()
	_ = v.ln.Close()
	v.wg.Wait()
	_ = v.srv.Close()
	_ = v.ua.Close()
}

// unknownDN is the one DN the fake Voice has no configuration for.
const unknownDN = "99999"

func (v *voice) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	to := req.To()
	dn := to.Address.User
	authz := ""
	if h := req.GetHeader("Authorization"); h != nil {
		authz = h.Value()
	}
	bearer := strings.TrimPrefix(authz, "Bearer ")
	if (strings.HasPrefix(authz, "Bearer ") && bearer != goodToken) || v.refuse.Load() {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 401, "Unauthorized", nil))
		return
	}
	if dn == unknownDN { // as mocks/voice answers a DN it has no configuration for
		_ = tx.Respond(sip.NewResponseFromRequest(req, 404, "Unknown DN", nil))
		return
	}
	exp := 3600
	if h := req.GetHeader("Expires"); h != nil {
		exp, _ = strconv.Atoi(h.Value())
	}
	v.mu.Lock()
	if exp == 0 {
		delete(v.bindings, dn)
	} else {
		v.bindings[dn] = req.Contact().Address
	}
	v.mu.Unlock()
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	select { // benchmarks do not read every event
	case v.regs <- regEvent{dn: dn, expires: exp, bearer: bearer}:
	default:
	}
}

func (v *voice) binding(dn string) (sip.Uri, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	u, ok := v.bindings[dn]
	return u, ok
}

// waitReg returns the next REGISTER or fails.
func (v *voice) waitReg(t testing.TB) regEvent {
	t.Helper()
	select {
	case r := <-v.regs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no REGISTER reached Voice")
		return regEvent{}
	}
}

// call places an INVITE to dn with an RTP endpoint playing hz; it returns
// once the gateway answered (or fails the test).
func (v *voice) call(ctx context.Context, t testing.TB, dn string, hz float64) (*sipgo.DialogClientSession, *rtpPeer) {
	t.Helper()
	return v.callPaced(ctx, t, dn, hz, nil)
}

// callPaced is call with the customer's packets sent after the gaps given,
// in turn (nil: every 20 ms).
func (v *voice) callPaced(ctx context.Context, t testing.TB, dn string, hz float64, gaps []time.Duration) (*sipgo.DialogClientSession, *rtpPeer) {
	t.Helper()
	target, ok := v.binding(dn)
	if !ok {
		t.Fatalf("dn %s not registered", dn)
	}
	ep := newRTPPeer(t, hz)
	ep.gaps = gaps
	v.mu.Lock()
	v.ep = ep
	v.mu.Unlock()
	req := invite(target, dn, ep.sdp("sendrecv"))
	req.AppendHeader(sip.NewHeader("X-Genesys-CallType", "callback"))
	req.AppendHeader(sip.NewHeader("X-Genesys-UserData", "order=42&name=Ann+Lee"))
	d, err := v.clients.WriteInvite(ctx, req)
	if err != nil {
		t.Fatalf("invite: %v", err)
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("wait answer: %v", err)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if err := ep.setRemoteFromSDP(d.InviteResponse.Body()); err != nil {
		t.Fatal(err)
	}
	ep.start()
	return d, ep
}

// runAgent signs a in, waits for its REGISTER and runs it until the test
// ends, or until stop (which returns once a has stopped).
// talkingCall signs in an auto-answering agent playing 1000 Hz (cfg adds
// codec or relay choices), has the fake Voice call DN 7001 with a 440 Hz
// customer, and waits until each side hears the other.
func talkingCall(ctx context.Context, t testing.TB, l *lab, cfg agent.Config) (*agent.Agent, *sipgo.DialogClientSession, *rtpPeer) {
	t.Helper()
	cfg.URL, cfg.Token, cfg.AutoAnswer, cfg.PlayHz, cfg.BindIP = l.base, tokenSource(goodToken), true, 1000, "127.0.0.1"
	a := agent.New(cfg)
	runAgent(ctx, t, l, a)
	dlg, ep := l.voice.call(ctx, t, "7001", 440)
	eventually(t, 15*time.Second, "agent hears 440 Hz", func() bool { s := a.Heard(); return s.AudioMS > 300 && near(s.DominantHz, 440) })
	eventually(t, 15*time.Second, "SIP side hears 1000 Hz", func() bool { s := ep.heard.Snapshot(); return s.AudioMS > 300 && near(s.DominantHz, 1000) })
	return a, dlg, ep
}

func runAgent(ctx context.Context, t testing.TB, l *lab, a *agent.Agent) (stop func()) {
	t.Helper()
	if err := a.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	l.voice.waitReg(t)
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { _ = a.Run(runCtx); close(runDone) }()
	stop = func() { stopRun(); <-runDone }
	t.Cleanup(stop)
	return stop
}

// invite is a customer's INVITE with an SDP offer to dn, registered at target.
func invite(target sip.Uri, dn string, sdp []byte) *sip.Request {
	req := sip.NewRequest(sip.INVITE, target)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "+15550001111", Host: domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: dn, Host: domain}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(sdp)
	req.SetDestination(net.JoinHostPort(target.Host, strconv.Itoa(target.Port)))
	return req
}

// legacySignIn signs dn in with GET sign_in?<dn> and returns the session id.
func legacySignIn(t testing.TB, base, dn string) string {
	t.Helper()
	res, err := http.Get(base + "/webrtc/sign_in?" + dn)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(res.Body)
	res.Body.Close()
	_, ssid, ok := strings.Cut(strings.TrimSpace(body), "=")
	if res.StatusCode != http.StatusOK || !ok || ssid == "" {
		t.Fatalf("sign-in %s: %d %q", dn, res.StatusCode, body)
	}
	return ssid
}

// signOut ends session ssid with GET sign_out?id=.
func signOut(t testing.TB, base, ssid string) {
	t.Helper()
	res, err := http.Get(base + "/webrtc/sign_out?id=" + url.QueryEscape(ssid))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
}

// leakIgnores are the goroutines goleak may find after a test: httptest's
// keep-alive connections close asynchronously.
var leakIgnores = []goleak.Option{
	goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
}

// rtpPeer is a plain-RTP G.711 endpoint: sends a PCMU tone, analyses what it
// receives and collects RFC 4733 digits.
type rtpPeer struct {
	t      testing.TB
	conn   *net.UDPConn
	tone   float64
	heard  *media.Analyzer
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	remote *net.UDPAddr
	digits strings.Builder
	dtmf   []byte
	pkts   int
	gaps   []time.Duration // between packets, in turn; nil: 20 ms
	held   atomic.Bool     // sends nothing meanwhile, and resumes where it stopped
}

func newRTPPeer(t testing.TB, hz float64) *rtpPeer {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &rtpPeer{t: t, conn: conn, tone: hz, heard: media.NewAnalyzer(media.AnalyzerConfig{}), stop: make(chan struct{})}
	t.Cleanup(p.close)
	return p
}

func (p *rtpPeer) sdp(dir string) []byte {
	port := p.conn.LocalAddr().(*net.UDPAddr).Port
	return []byte(fmt.Sprintf("v=0\r\no=voice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=%s\r\n", port, dir))
}

func (p *rtpPeer) setRemoteFromSDP(b []byte) error {
	var ip string
	var port int
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "c=IN IP4 ") {
			ip = strings.TrimPrefix(l, "c=IN IP4 ")
		}
		if strings.HasPrefix(l, "m=audio ") {
			port, _ = strconv.Atoi(strings.Fields(l)[1])
		}
	}
	if ip == "" || port == 0 {
		return fmt.Errorf("answer sdp without address: %q", b)
	}
	p.mu.Lock()
	p.remote = &net.UDPAddr{IP: net.ParseIP(ip), Port: port}
	p.mu.Unlock()
	return nil
}

func (p *rtpPeer) start() {
	p.wg.Add(2)
	go p.send()
	go p.recv()
}

func (p *rtpPeer) close() {
	p.once.Do(func() { close(p.stop); _ = p.conn.Close(); p.wg.Wait() })
}

func (p *rtpPeer) sendDTMF(d string) { p.mu.Lock(); p.dtmf = append(p.dtmf, d...); p.mu.Unlock() }

func (p *rtpPeer) Digits() string { p.mu.Lock(); defer p.mu.Unlock(); return p.digits.String() }

func (p *rtpPeer) send() {
	defer p.wg.Done()
	src := media.NewSine(p.tone, -20, 0)
	ds, _ := media.NewDTMFSender(media.DTMFSenderConfig{})
	pcm := make([]int16, media.FrameSamples)
	buf := make([]byte, media.FrameSamples)
	seq, ts, ssrc := uint16(rand.Uint32()), rand.Uint32(), rand.Uint32()
	var events []media.DTMFPacket
	var evStart time.Time
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	next := time.Now() // paced by gaps: when the next packet is due
	for k := 0; ; k++ {
		tick := t.C
		if len(p.gaps) > 0 {
			next = next.Add(p.gaps[k%len(p.gaps)]) // on a fixed schedule: a late send does not move the next
			tick = time.After(time.Until(next))
		}
		select {
		case <-p.stop:
			return
		case <-tick:
		}
		if p.held.Load() {
			continue
		}
		p.mu.Lock()
		remote := p.remote
		if len(events) == 0 && len(p.dtmf) > 0 {
			events, _ = ds.Packets(nil, p.dtmf[0], ts)
			p.dtmf = p.dtmf[1:]
			evStart = time.Now()
		}
		p.mu.Unlock()
		var pkts []*rtp.Packet
		if len(events) > 0 {
			for len(events) > 0 && events[0].SendAt <= time.Since(evStart) {
				seq++
				pkts = append(pkts, events[0].RTP(101, ssrc, seq))
				events = events[1:]
			}
			if len(events) == 0 {
				ts += ds.Span()
			}
		} else {
			media.ReadFrame(src, pcm)
			seq++
			ts += media.G711TimestampStep
			pkts = append(pkts, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
				Payload: media.EncodeG711(media.PCMU, pcm, buf)})
		}
		for _, pk := range pkts {
			raw, _ := pk.Marshal()
			_, _ = p.conn.WriteToUDP(raw, remote)
		}
	}
}

func (p *rtpPeer) recv() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	pcm := make([]int16, 1500)
	var pk rtp.Packet
	var r media.DTMFReceiver
	for {
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if pk.Unmarshal(buf[:n]) != nil {
			continue
		}
		p.mu.Lock()
		p.pkts++
		p.mu.Unlock()
		switch pk.PayloadType {
		case 101:
			if d, ok, _ := r.PushRTP(&pk); ok {
				p.mu.Lock()
				p.digits.WriteByte(d)
				p.mu.Unlock()
			}
		case 0:
			p.heard.Write(media.DecodeG711(media.PCMU, pk.Payload, pcm))
		}
	}
}

// lab is a running gateway with its fakes.
type lab struct {
	gw    *gateway.Server
	reg   *prometheus.Registry
	voice *voice
	base  string
	http  *httptest.Server
}

func startLab(t testing.TB, mutate func(*gateway.Config), turnSrv gateway.TURN) *lab {
	t.Helper()
	return startLabLogged(t, mutate, turnSrv, testLogger(t))
}

// startLabLogged is startLab with the gateway logging to logger.
func startLabLogged(t testing.TB, mutate func(*gateway.Config), turnSrv gateway.TURN, logger *slog.Logger) *lab {
	t.Helper()
	plat := platform(t)
	v := newVoice(t)
	cfg := gateway.Default()
	cfg.VoiceSIPAddr = v.addr.String()
	cfg.AuthURL = plat.URL
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(cfg, logger, reg, nil, turnSrv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HideBanner = true
	gw.Mount(e)
	hs := httptest.NewServer(e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = gw.Stop(ctx)
		hs.CloseClientConnections()
		hs.Close()
	})
	return &lab{gw: gw, reg: reg, voice: v, base: hs.URL, http: hs}
}

func (l *lab) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := l.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	return 0
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvent reads agent events until one of type typ arrives.
func waitEvent(t testing.TB, a *agent.Agent, typ string) agent.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-a.Events():
			if e.Type == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
			return agent.Event{}
		}
	}
}

func near(f, want float64) bool { return f > want-40 && f < want+40 }

func readAll(r io.Reader) string { b, _ := io.ReadAll(r); return string(b) }
