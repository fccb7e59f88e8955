package voice

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/cxlab/cxlab/mocks/voice/internal/rtpsim"
)

const (
	testCCID   = "9350e2fc-a1dd-4c65-8d40-1f75a2e080dd"
	testDomain = "demo.cxlab.local"
)

func demoDirectory() StaticDirectory {
	return StaticDirectory{{
		ID: testCCID, SIPDomain: testDomain,
		DNs: []DNEntry{{"7001", "agent1", "dnpass"}, {"7002", "agent2", "dnpass"}, {"7003", "agent3", "dnpass"}, {"7004", "agent4", "dnpass"}},
		Users: []User{{"agent1", []string{"VQ_Sales", "VQ_Support"}}, {"agent2", []string{"VQ_Sales", "VQ_Support"}},
			{"agent3", []string{"VQ_Support"}}, {"agent4", []string{"VQ_Support"}}, {"supervisor", nil}},
		Queues: []VirtualQueue{{"VQ_Sales", "+18005550100"}, {"VQ_Support", "+18005550101"}},
		CallInGroups: []CallInGroup{{Name: "technical_help", AccessNumber: "+18005550199", AccessCodeEnabled: true, VirtualQueue: "VQ_Support"},
			{Name: "billing_help", AccessNumber: "+18005550198", VirtualQueue: "VQ_Sales"}},
	}}
}

// fakeGAuth answers userinfo for "tok-<user>" tokens and issues ors tokens.
func fakeGAuth(t testing.TB) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/v3/userinfo", func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		user, ok := strings.CutPrefix(tok, "tok-")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		auth := []string{"ROLE_AGENT"}
		if user == "supervisor" {
			auth = []string{"ROLE_SUPERVISOR"}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"authorities": auth, "cmeUserName": user, "loginName": user,
			"username": user, "contactCenterId": testCCID, "dbid": 101})
	})
	mux.HandleFunc("POST /auth/v3/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		id, sec, ok := r.BasicAuth()
		if !ok || id != "ors_client" || sec != "ors-secret" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "ors-token", "token_type": "bearer", "expires_in": 3600})
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// fakeGES records state reports (finished callbacks answer 409) and matches
// call-in requests the way GES does: a live request matches once.
type fakeGES struct {
	*httptest.Server
	mu      sync.Mutex
	reports map[string][]StateReport
	gone    map[string]bool
	changed chan struct{}
	callIns []*fakeCallIn
	matches []callInMatch
}

// fakeCallIn is a call-in request GES holds.
type fakeCallIn struct {
	id, accessNumber, code, from, group string
	used                                bool
}

// addCallIn stores a request the next caller may match.
func (g *fakeGES) addCallIn(r fakeCallIn) {
	g.mu.Lock()
	g.callIns = append(g.callIns, &r)
	g.mu.Unlock()
}

// matchRequests returns the match requests Voice made so far.
func (g *fakeGES) matchRequests() []callInMatch {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]callInMatch(nil), g.matches...)
}

func newFakeGES(t testing.TB) *fakeGES {
	g := &fakeGES{reports: map[string][]StateReport{}, gone: map[string]bool{}, changed: make(chan struct{}, 1000)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /engagement/internal/v1/callbacks/{id}/state", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ors-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var rep StateReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		id := r.PathValue("id")
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.gone[id] {
			w.WriteHeader(http.StatusConflict)
			return
		}
		g.reports[id] = append(g.reports[id], rep)
		if rep.State == stCompleted {
			g.gone[id] = true
		}
		select {
		case g.changed <- struct{}{}:
		default:
		}
		_, _ = io.WriteString(w, `{"status":{"code":0}}`)
	})
	mux.HandleFunc("POST /engagement/internal/v1/call-in/match", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ors-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var q callInMatch
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.AccessNumber == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		g.matches = append(g.matches, q)
		for _, c := range g.callIns {
			if c.used || c.accessNumber != q.AccessNumber {
				continue
			}
			if (c.code != "" && c.code == q.AccessCode) || (c.code == "" && q.AccessCode == "" && c.from == q.ANI) {
				c.used = true
				_ = json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"code": 0}, "data": map[string]any{
					"id": c.id, "groupName": c.group, "contactCenterId": testCCID, "fromPhoneNumber": c.from,
					"userData": map[string]any{"topic": "wifi"}}})
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"status":{"code":404,"message":"no live call-in request matches"}}`)
	})
	g.Server = httptest.NewServer(mux)
	t.Cleanup(g.Close)
	return g
}

func (g *fakeGES) states(id string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, r := range g.reports[id] {
		s := r.State
		if r.Reason != "" {
			s += ":" + r.Reason
		}
		if r.Released {
			s += ":released"
		}
		out = append(out, s)
	}
	return out
}

func (g *fakeGES) last(id string) StateReport {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := g.reports[id]
	if len(rs) == 0 {
		return StateReport{}
	}
	return rs[len(rs)-1]
}

type lab struct {
	t     testing.TB
	v     *Server
	gauth *httptest.Server
	ges   *fakeGES
	mr    *miniredis.Miniredis
	rdb   *redis.Client
	api   *httptest.Server
	cfg   Config
}

func testConfig() Config {
	return Config{SIPPortSet: true, RingTimeout: 5 * time.Second, NoAnswerTimeout: 1500 * time.Millisecond,
		SlowAnswerDelay: 300 * time.Millisecond, HangupAfter: 2 * time.Second, AgentAnswerTimeout: 1500 * time.Millisecond,
		WrapUpTime: 200 * time.Millisecond, ReadBlock: 200 * time.Millisecond, ClaimMinIdle: 2 * time.Second,
		Consumer: "test-consumer"}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("VOICE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newLab(t testing.TB, mutate func(*Config)) *lab {
	t.Helper()
	l := &lab{t: t, gauth: fakeGAuth(t), ges: newFakeGES(t)}
	l.mr = miniredis.RunT(t)
	l.rdb = redis.NewClient(&redis.Options{Addr: l.mr.Addr()})
	t.Cleanup(func() { _ = l.rdb.Close() })
	l.cfg = testConfig()
	l.cfg.GAuthURL, l.cfg.GESURL = l.gauth.URL, l.ges.URL
	if mutate != nil {
		mutate(&l.cfg)
	}
	l.start()
	return l
}

func (l *lab) start() {
	t := l.t
	v, err := New(l.cfg, Deps{Logger: testLogger(t), Directory: demoDirectory(), Redis: l.rdb})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l.v = v
	e := echo.New()
	v.Mount(e)
	l.api = httptest.NewServer(e)
	t.Cleanup(l.stop)
}

func (l *lab) stop() {
	if l.api != nil {
		l.api.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.v.Stop(ctx); err != nil {
		l.t.Errorf("stop: %v", err)
	}
}

func (l *lab) sipAddr() string { return l.v.SIPAddr().String() }

func (l *lab) xadd(fields map[string]any) {
	l.t.Helper()
	if err := l.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: "NewCallbackStream", Values: fields}).Err(); err != nil {
		l.t.Fatal(err)
	}
}

func startEntry(id, phone string, attempts, retry int) map[string]any {
	cb, _ := json.Marshal(map[string]any{"action": "start", "id": id, "ccid": testCCID, "service": "CB_Sales",
		"virtualQueue": "VQ_Sales", "phoneNumber": phone, "userData": map[string]any{"order": "42", "vip": true},
		"desiredTime": time.Now().UTC().Format(time.RFC3339), "maxDialAttempts": attempts, "retryDelaySec": retry})
	return map[string]any{"callback": string(cb)}
}

// cancelEntry is the entry GES adds when a waiting callback is cancelled.
func cancelEntry(id string) map[string]any {
	cb, _ := json.Marshal(map[string]any{"action": "cancel", "id": id, "ccid": testCCID})
	return map[string]any{"callback": string(cb)}
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

func (l *lab) agentState(dn string) AgentState {
	for _, a := range l.v.Agents(testCCID) {
		if string(a.DN) == dn {
			return a.State
		}
	}
	return LoggedOut
}

func (l *lab) api2(method, path, token, body string) (int, map[string]any) {
	l.t.Helper()
	req, _ := http.NewRequest(method, l.api.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// testUA is a SIP phone: it registers, answers (auto or on NOTIFY talk),
// handles re-INVITE/BYE, and has an RTP endpoint playing a tone.
type testUA struct {
	t       testing.TB
	user    string
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	conn    net.PacketConn
	addr    *net.UDPAddr
	voice   string
	ep      *rtpsim.Endpoint
	servers *sipgo.DialogServerCache
	clients *sipgo.DialogClientCache
	contact sip.ContactHeader

	// autoAnswer answers INVITEs at once; otherwise the UA rings until a
	// NOTIFY Event: talk, a call to answer(), or the caller gives up.
	autoAnswer bool
	reject     int // respond with this status instead of ringing

	mu       sync.Mutex
	ringing  map[string]chan struct{}
	invites  chan *sip.Request
	byes     chan string
	events   chan string
	reinvite chan rtpsim.Direction
	infos    chan *sip.Request
	wg       sync.WaitGroup
}

func newTestUA(t testing.TB, l *lab, user string, tone float64) *testUA {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(slog.New(slog.DiscardHandler))),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(slog.New(slog.DiscardHandler))))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.DiscardHandler)))
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr)
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(addr.String()),
		sipgo.WithClientLogger(slog.New(slog.DiscardHandler)))
	rc, err := rtpsim.Listen("127.0.0.1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	u := &testUA{t: t, user: user, ua: ua, srv: srv, cli: cli, conn: conn, addr: addr, voice: l.sipAddr(),
		ep: rtpsim.New(rc, rtpsim.NewTone(tone)), autoAnswer: true, ringing: map[string]chan struct{}{},
		invites: make(chan *sip.Request, 10), byes: make(chan string, 10), events: make(chan string, 10),
		reinvite: make(chan rtpsim.Direction, 10), infos: make(chan *sip.Request, 10)}
	u.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: addr.Port}}
	u.servers = sipgo.NewDialogServerCache(cli, u.contact)
	u.clients = sipgo.NewDialogClientCache(cli, u.contact)
	srv.OnInvite(u.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = u.servers.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := u.servers.ReadBye(req, tx); err != nil {
			if err := u.clients.ReadBye(req, tx); err != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Dialog", nil))
				return
			}
		}
		u.byes <- req.CallID().Value()
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		ev := ""
		if h := req.GetHeader("Event"); h != nil {
			ev = h.Value()
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		u.events <- ev
		if ev == "talk" {
			u.mu.Lock()
			ch := u.ringing[req.CallID().Value()]
			u.mu.Unlock()
			if ch != nil {
				close(ch)
			}
		}
	})
	srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		select {
		case u.infos <- req:
		default:
		}
	})
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		_ = srv.ServeUDP(conn)
	}()
	t.Cleanup(u.close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := waitUDPListener(ctx, ua, addr.String()); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u *testUA) close() {
	u.ep.Close()
	_ = u.conn.Close()
	u.wg.Wait()
	_ = u.ua.Close()
}

func (u *testUA) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		// re-INVITE: answer with our media, mirroring the direction.
		m, err := rtpsim.Parse(req.Body())
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable", nil))
			return
		}
		_ = u.ep.SetRemote(m)
		codecs, _ := rtpsim.Answer(m)
		res := sip.NewSDPResponseFromRequest(req, u.ep.SDP(codecs, m.Direction.Reverse(), 2))
		res.AppendHeader(&u.contact)
		_ = tx.Respond(res)
		u.reinvite <- m.Direction
		return
	}
	u.invites <- req
	dss, err := u.servers.ReadInvite(req, tx)
	if err != nil {
		return
	}
	if u.reject != 0 {
		_ = dss.Respond(u.reject, "Rejected", nil)
		return
	}
	ring := make(chan struct{})
	u.mu.Lock()
	u.ringing[req.CallID().Value()] = ring
	u.mu.Unlock()
	_ = dss.Respond(180, "Ringing", nil, sip.NewHeader("Allow-Events", "talk, hold"))
	if !u.autoAnswer {
		select {
		case <-ring:
		case <-dss.Context().Done():
			return
		case <-time.After(10 * time.Second):
			_ = dss.Respond(480, "No Answer", nil)
			return
		}
	}
	m, err := rtpsim.Parse(req.Body())
	if err != nil {
		_ = dss.Respond(488, "Not Acceptable", nil)
		return
	}
	_ = u.ep.SetRemote(m)
	codecs, _ := rtpsim.Answer(m)
	_ = dss.RespondSDP(u.ep.SDP(codecs, rtpsim.SendRecv, 1))
}

func (u *testUA) registerReq(expires int) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: testDomain})
	aor := sip.Uri{Scheme: "sip", User: u.user, Host: testDomain}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	req.AppendHeader(&u.contact)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.AppendHeader(sip.NewHeader("Allow-Events", "talk, hold"))
	req.SetDestination(u.voice)
	return req
}

// registerBearer registers with a GAuth token; it returns the final status.
func (u *testUA) registerBearer(token string, expires int) int {
	req := u.registerReq(expires)
	req.AppendHeader(sip.NewHeader("Authorization", "Bearer "+token))
	return u.do(req).StatusCode
}

// registerDigest registers with SIP digest.
func (u *testUA) registerDigest(password string, expires int) int {
	req := u.registerReq(expires)
	res := u.do(req)
	if res.StatusCode != 401 {
		return res.StatusCode
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.user, Password: password})
	if err != nil {
		u.t.Fatal(err)
	}
	return res.StatusCode
}

func (u *testUA) do(req *sip.Request) *sip.Response {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := u.cli.Do(ctx, req)
	if err != nil {
		u.t.Fatal(err)
	}
	return res
}

// call places a call to target through Voice and waits for the answer.
// hangUp sends BYE on d and waits until u, the far end, receives one.
func (u *testUA) hangUp(ctx context.Context, d *sipgo.DialogClientSession) {
	u.t.Helper()
	if err := d.Bye(ctx); err != nil {
		u.t.Fatalf("bye: %v", err)
	}
	select {
	case <-u.byes:
	case <-ctx.Done():
		u.t.Fatalf("%s got no BYE", u.user)
	}
}

func (u *testUA) call(ctx context.Context, target string, headers ...sip.Header) (*sipgo.DialogClientSession, error) {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: target, Host: testDomain})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: u.user, Host: testDomain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target, Host: testDomain}})
	for _, h := range headers {
		req.AppendHeader(h)
	}
	req.SetBody(u.ep.SDP(rtpsim.DefaultCodecs(), rtpsim.SendRecv, 1))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetDestination(u.voice)
	d, err := u.clients.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return nil, err
	}
	// Media is pointed at the answer before the ACK: once ACKed, a re-INVITE
	// (a call-in reaching its agent) may retarget it at any moment.
	m, err := rtpsim.Parse(d.InviteResponse.Body())
	if err != nil {
		return nil, fmt.Errorf("answer sdp: %w", err)
	}
	if err := u.ep.SetRemote(m); err != nil {
		return nil, err
	}
	if err := d.Ack(ctx); err != nil {
		return nil, err
	}
	return d, nil
}
