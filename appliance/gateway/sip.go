package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipStack is the gateway's SIP user agent toward Voice. REGISTER goes over
// TCP, as the real gateway's voiceSipProxy (";transport=tcp"): a REGISTER
// carrying a Bearer JWT is larger than RFC 3261 allows over UDP (1300 bytes).
// Voice sends calls back over that same connection; other requests use UDP.
type sipStack struct {
	s      *Server
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	cli    *sipgo.Client
	cliTCP *sipgo.Client
	conn   net.PacketConn
	ln     net.Listener
	addr   *net.UDPAddr
	voice  string
	route  sip.Uri // Voice as a loose route (outbound proxy) for outgoing calls
	// servers holds the dialogs of calls Voice sent over UDP, serversTCP
	// those it sent over TCP (the registered contact's transport): in-dialog
	// requests of a TCP dialog must go through the client that does not pin
	// its local address to the UDP port, or each one dials a new connection
	// from the listening port and the second such dial fails (EADDRINUSE).
	servers    *sipgo.DialogServerCache
	serversTCP *sipgo.DialogServerCache
	clients    *sipgo.DialogClientCache
	contact    sip.ContactHeader
	wg         sync.WaitGroup
}

func newSIPStack(s *Server) (*sipStack, error) {
	conn, ln, err := listenUDPTCP(s.cfg.SIPHost, s.cfg.SIPPort)
	if err != nil {
		return nil, listenErr(s.cfg.SIPPortSetting, s.cfg.SIPPort, err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr)
	// sipgo logs every transaction at debug; keep it at warn to honour the
	// per-call log budget.
	quiet := slog.New(levelFilter{h: s.log.Handler(), min: slog.LevelWarn}).With("sub", "sip")
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("cxlab-webrtc-gateway"), sipgo.WithUserAgentHostname(s.cfg.SIPHost))
	if err != nil {
		_ = conn.Close()
		_ = ln.Close()
		return nil, fmt.Errorf("sip ua: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		_ = ua.Close()
		_ = conn.Close()
		_ = ln.Close()
		return nil, fmt.Errorf("sip server: %w", err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname(s.cfg.SIPHost), sipgo.WithClientConnectionAddr(addr.String()),
		sipgo.WithClientLogger(quiet))
	var cliTCP *sipgo.Client
	if err == nil {
		cliTCP, err = sipgo.NewClient(ua, sipgo.WithClientHostname(s.cfg.SIPHost), sipgo.WithClientLogger(quiet))
	}
	if err != nil {
		_ = ua.Close()
		_ = conn.Close()
		_ = ln.Close()
		return nil, fmt.Errorf("sip client: %w", err)
	}
	st := &sipStack{s: s, ua: ua, srv: srv, cli: cli, cliTCP: cliTCP, conn: conn, ln: ln, addr: addr, voice: s.cfg.VoiceSIPAddr}
	if host, port, err := net.SplitHostPort(st.voice); err == nil {
		p, _ := strconv.Atoi(port)
		st.route = sip.Uri{Scheme: "sip", Host: host, Port: p, UriParams: sip.HeaderParams{{K: "lr"}}}
	}
	st.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: addr.IP.String(), Port: addr.Port}}
	st.servers = sipgo.NewDialogServerCache(cli, st.contact)
	tcpContact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: addr.IP.String(), Port: addr.Port,
		UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}}
	st.serversTCP = sipgo.NewDialogServerCache(cliTCP, tcpContact)
	st.clients = sipgo.NewDialogClientCache(cli, st.contact)
	srv.OnInvite(st.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		if st.servers.ReadAck(req, tx) != nil {
			_ = st.serversTCP.ReadAck(req, tx)
		}
	})
	srv.OnBye(st.onBye)
	srv.OnNotify(st.onNotify)
	srv.OnInfo(st.onInfo)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	st.wg.Add(2)
	go func() {
		defer st.wg.Done()
		_ = srv.ServeUDP(conn) // returns when conn is closed
	}()
	go func() {
		defer st.wg.Done()
		_ = srv.ServeTCP(ln) // returns when ln is closed
	}()
	return st, nil
}

// listenUDPTCP opens UDP and TCP on one port number. With port 0 the number
// the kernel picks for UDP may be taken for TCP: then it tries another.
func listenUDPTCP(host string, port int) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		conn, err := net.ListenPacket("udp4", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp4", conn.LocalAddr().String())
		if err == nil {
			return conn, ln, nil
		}
		_ = conn.Close()
		if port != 0 {
			return nil, nil, err
		}
		lastErr = err
	}
	return nil, nil, lastErr
}

func (st *sipStack) close() {
	_ = st.conn.Close()
	_ = st.ln.Close()
	st.wg.Wait()
	_ = st.srv.Close()
	_ = st.ua.Close()
}

// levelFilter drops records below min (sipgo is chatty at debug/info).
type levelFilter struct {
	h   slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(a), min: f.min}
}
func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(n), min: f.min}
}

// register sends REGISTER for the session's DN (expiry 0 unregisters): with
// the Bearer token (contract 9) or SIP digest for DN:password sign-ins.
func (st *sipStack) register(ctx context.Context, ss *session, expiry time.Duration) error {
	if ss.anonymous {
		return nil // an anonymous caller has no DN to register
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: ss.domain})
	aor := sip.Uri{Scheme: "sip", User: string(ss.dn), Host: ss.domain}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: string(ss.dn), Host: st.addr.IP.String(), Port: st.addr.Port,
		UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}}
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expiry/time.Second))))
	req.AppendHeader(sip.NewHeader("Allow-Events", "talk, hold"))
	if ss.token != "" {
		req.AppendHeader(sip.NewHeader("Authorization", "Bearer "+ss.token))
	}
	req.SetDestination(st.voice)
	req.SetTransport("TCP")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := st.cliTCP.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("register %s: %w", ss.dn, err)
	}
	if res.StatusCode == 401 && ss.token == "" && ss.password != "" {
		res, err = st.cliTCP.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: string(ss.dn), Password: ss.password})
		if err != nil {
			return fmt.Errorf("register %s digest: %w", ss.dn, err)
		}
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return nil
	case res.StatusCode == 401 || res.StatusCode == 403:
		return fmt.Errorf("register %s: %d %s: %w", ss.dn, res.StatusCode, res.Reason, ErrUnauthorized)
	case res.StatusCode == 404:
		return fmt.Errorf("register %s: %d %s: %w", ss.dn, res.StatusCode, res.Reason, ErrUnknownDN)
	default:
		return fmt.Errorf("register %s: %d %s", ss.dn, res.StatusCode, res.Reason)
	}
}

// respond sends a stateless response on tx.
func respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

func (st *sipStack) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	s := st.s
	if to := req.To(); to != nil && to.Params.Has("tag") {
		c := s.callBySIP(req.CallID().Value())
		if c == nil {
			respond(req, tx, 481, "Call/Transaction Does Not Exist")
			return
		}
		c.onSIPReinvite(req, tx)
		return
	}
	dn := req.Recipient.User
	domain := ""
	if to := req.To(); to != nil {
		domain = to.Address.Host
		if dn == "" {
			dn = to.Address.User
		}
	}
	ss := s.sessionFor(dn, domain)
	if ss == nil {
		respond(req, tx, 480, "Temporarily Unavailable")
		return
	}
	offer, err := parseSIPSDP(req.Body())
	if err != nil {
		s.log.Info("incoming call refused", "dn", dn, "err", err)
		respond(req, tx, 488, "Not Acceptable Here")
		return
	}
	peer := "anonymous"
	if f := req.From(); f != nil && f.Address.User != "" {
		peer = f.Address.User
	}
	c := newCall(s, ss, "inbound", peer)
	c.attached = attachedData(req) // before the session publishes the call
	if !ss.claimCall(c) {
		respond(req, tx, 486, "Busy Here")
		return
	}
	servers := st.servers
	if sip.IsReliable(req.Transport()) {
		servers = st.serversTCP
	}
	dss, err := servers.ReadInvite(req, tx)
	if err != nil {
		ss.releaseCall(c)
		respond(req, tx, 400, "Bad Request")
		return
	}
	// sipgo terminates the transaction when the handler returns, so the
	// handler stays until the final response.
	c.runIncoming(dss, offer)
}

func (st *sipStack) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if st.servers.ReadBye(req, tx) != nil && st.serversTCP.ReadBye(req, tx) != nil {
		if err := st.clients.ReadBye(req, tx); err != nil {
			respond(req, tx, 481, "Call/Transaction Does Not Exist")
			return
		}
	}
	if c := st.s.callBySIP(req.CallID().Value()); c != nil {
		go c.end(context.Background(), "sip bye", sideSIP)
	}
}

func (st *sipStack) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	c := st.s.callBySIP(req.CallID().Value())
	if c == nil {
		respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	ev := ""
	if h := req.GetHeader("Event"); h != nil {
		ev = strings.ToLower(strings.TrimSpace(strings.SplitN(h.Value(), ";", 2)[0]))
	}
	switch ev {
	case "talk":
		c.sess.push(c.peer, "EVENT-TALK")
	case "hold":
		c.sess.push(c.peer, "EVENT-HOLD")
	default:
		respond(req, tx, 489, "Bad Event")
		return
	}
	respond(req, tx, 200, "OK")
}

func (st *sipStack) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := st.s.callBySIP(req.CallID().Value())
	if c == nil {
		respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	respond(req, tx, 200, "OK")
	if len(req.Body()) > 0 {
		c.sess.push(c.peer, "INFO-PEER "+string(req.Body()))
	}
}

// attachedData turns the INVITE's X-Genesys-* headers (and the urlencoded
// X-Genesys-UserData) into the OFFER's attacheddata.
func attachedData(req *sip.Request) []kv {
	var out []kv
	for _, h := range req.Headers() {
		name := h.Name()
		if !strings.HasPrefix(strings.ToLower(name), "x-genesys-") {
			continue
		}
		key := name[len("x-genesys-"):]
		if strings.EqualFold(key, "UserData") {
			for _, pair := range strings.Split(h.Value(), "&") {
				k, v, _ := strings.Cut(pair, "=")
				k, v = unescape(k), unescape(v)
				if k != "" {
					out = append(out, kv{Key: k, Value: v})
				}
			}
			continue
		}
		out = append(out, kv{Key: key, Value: h.Value()})
	}
	return out
}

// sideOf names who ended a call.
type side int

const (
	sideGateway side = iota
	sideBrowser
	sideSIP
)
