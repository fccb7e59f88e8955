package gateway_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
	"github.com/cxlab/cxlab/appliance/internal/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakIgnores...)
}

func tokenSource(tok string) agent.TokenSource {
	return func(context.Context) (string, error) { return tok, nil }
}

// TestCallPath is the main path: token sign-in, incoming call with user data,
// auto-answer, tones both ways through Opus<->PCMU, hold/resume, DTMF both
// ways, agent hang-up, sign-out unregistering the DN.
func TestCallPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken), AutoAnswer: true, PlayHz: 1000, BindIP: "127.0.0.1"})
	if err := a.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	if a.DN() != "7001" {
		t.Fatalf("signed in as %q, want 7001", a.DN())
	}
	reg := l.voice.waitReg(t)
	if reg.dn != "7001" || reg.bearer != goodToken || reg.expires == 0 {
		t.Fatalf("unexpected REGISTER %+v", reg)
	}
	if got := l.metric(t, signInMetric); got != 1 {
		t.Fatalf(signInMetric+" = %v", got)
	}
	if got := l.metric(t, "wrtc_registrations_by_domain", "domain", domain); got != 1 {
		t.Fatalf("wrtc_registrations_by_domain = %v", got)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(runCtx) }()
	defer func() { stopRun(); <-runDone }()

	dlg, ep := l.voice.call(ctx, t, "7001", 440)
	offer := waitEvent(t, a, "OFFER")
	if offer.Peer != "+15550001111" || !strings.Contains(offer.Body, `"key":"order","value":"42"`) ||
		!strings.Contains(offer.Body, `"value":"Ann Lee"`) || !strings.Contains(offer.Body, `"key":"CallType"`) {
		t.Fatalf("offer lacks peer or attached data: peer=%q body=%.300s", offer.Peer, offer.Body)
	}
	eventually(t, 15*time.Second, "agent hears 440 Hz", func() bool { s := a.Heard(); return s.AudioMS > 400 && near(s.DominantHz, 440) })
	eventually(t, 15*time.Second, "SIP side hears 1000 Hz", func() bool {
		s := ep.heard.Snapshot()
		return s.AudioMS > 400 && near(s.DominantHz, 1000)
	})
	if got := l.metric(t, "wrtc_current_xcoding_calls"); got != 1 {
		t.Fatalf("wrtc_current_xcoding_calls = %v", got)
	}
	snap := l.gw.Snapshot()
	if len(snap.Sessions) != 1 || snap.Sessions[0].Call == nil || !snap.Sessions[0].Call.Transcoding ||
		snap.Sessions[0].Call.SIPCodec != "PCMU" {
		t.Fatalf("snapshot: %+v", snap)
	}

	// Hold and resume: browser re-offers -> SIP re-INVITE sendonly, then sendrecv.
	if err := a.Hold(ctx); err != nil {
		t.Fatal(err)
	}
	if dir := <-l.voice.reinvite; dir != "sendonly" {
		t.Fatalf("hold re-INVITE direction %q", dir)
	}
	if err := a.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if dir := <-l.voice.reinvite; dir != "sendrecv" {
		t.Fatalf("resume re-INVITE direction %q", dir)
	}
	ep.heard.Reset()
	eventually(t, 10*time.Second, "audio after resume", func() bool { s := ep.heard.Snapshot(); return s.AudioMS > 200 && near(s.DominantHz, 1000) })

	// DTMF both ways.
	if err := a.SendDTMF("12#"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "SIP side gets 12#", func() bool { return ep.Digits() == "12#" })
	ep.sendDTMF("9*")
	eventually(t, 10*time.Second, "agent gets 9*", func() bool { return a.Digits() == "9*" })

	// INFO-MAP and GET-STATS.
	if err := a.Send(ctx, "INFO-MAP a=1&b=2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(ctx, "GET-STATS"); err != nil {
		t.Fatal(err)
	}
	if st := waitEvent(t, a, "PUT-STATS"); !strings.Contains(st.Body, `"transcoding":true`) {
		t.Fatalf("PUT-STATS: %.200s", st.Body)
	}

	// Agent hangs up -> SIP BYE.
	if err := a.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-l.voice.byes:
		if id != dlg.InviteRequest.CallID().Value() {
			t.Fatalf("BYE for %s", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no SIP BYE after agent hang-up")
	}
	eventually(t, 5*time.Second, "call counters settle", func() bool { return l.metric(t, "wrtc_current_audio_calls") == 0 })
	if l.metric(t, "wrtc_total_audio_calls") != 1 || l.metric(t, "wrtc_total_xcoding_calls") != 1 {
		t.Fatal("total call counters wrong")
	}
	if r := l.gw.Snapshot().Recent; len(r) != 1 || r[0].Browser.Digits != "12#" || r[0].SIP.Digits != "9*" {
		t.Fatalf("recent calls: %+v", r)
	}

	if err := a.SignOut(ctx); err != nil {
		t.Fatal(err)
	}
	if reg := l.voice.waitReg(t); reg.expires != 0 {
		t.Fatalf("sign-out sent REGISTER expires=%d", reg.expires)
	}
	if got := l.metric(t, signInMetric); got != 0 {
		t.Fatalf(signInMetric+" after sign-out = %v", got)
	}
}

// TestRemoteByeAndPCMU: the browser answers with PCMU (pass-through, no
// transcoding) and the SIP side hangs up.
func TestRemoteByeAndPCMU(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a, dlg, _ := talkingCall(ctx, t, l, agent.Config{PCMU: true})
	if got := l.metric(t, "wrtc_current_xcoding_calls"); got != 0 {
		t.Fatalf("PCMU call counted as transcoded: %v", got)
	}
	if err := dlg.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, a, "BYE")
	eventually(t, 5*time.Second, "call ended", func() bool { return !a.InCall() && l.metric(t, "wrtc_current_audio_calls") == 0 })
}

// TestTURNRelay runs the call with the agent restricted to relay candidates
// through a real appliance/turn server.
func TestTURNRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ts := startTURN(t)
	l := startLab(t, nil, ts)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken), AutoAnswer: true, PlayHz: 1000, RelayOnly: true, BindIP: "127.0.0.1"})
	runAgent(ctx, t, l, a)
	_, ep := l.voice.call(ctx, t, "7001", 440)
	waitEvent(t, a, "CONNECTED")
	// Audio starts at once, not after pion's default 2 s wait before it
	// nominates a relayed pair (the first 2 s of every relayed call were lost).
	answered := time.Now()
	for a.Heard().AudioMS == 0 && time.Since(answered) < 10*time.Second {
		time.Sleep(10 * time.Millisecond) // polling the agent's analysis; bounded
	}
	took := time.Since(answered)
	t.Logf("first audio through TURN %s after the answer", took.Round(time.Millisecond))
	if took > 1800*time.Millisecond {
		t.Errorf("first audio through TURN %s after the answer; pion's relay wait is 2 s", took.Round(time.Millisecond))
	}
	eventually(t, 15*time.Second, "agent hears 440 Hz via TURN", func() bool { s := a.Heard(); return s.AudioMS > 300 && near(s.DominantHz, 440) })
	eventually(t, 15*time.Second, "SIP hears 1000 Hz via TURN", func() bool { s := ep.heard.Snapshot(); return s.AudioMS > 300 && near(s.DominantHz, 1000) })
	if len(ts.Allocations()) == 0 {
		t.Fatal("no TURN allocation: media did not go through the relay")
	}
}

// TestBadToken: GAuth refuses the token -> 401, nothing registered.
func TestBadToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource("expired")})
	err := a.SignIn(ctx)
	var se *agent.StatusError
	if !asStatus(err, &se) || se.Status != http.StatusUnauthorized || !strings.Contains(se.Body, "ERROR") {
		t.Fatalf("sign-in with bad token: %v", err)
	}
	if l.metric(t, signInMetric) != 0 || len(l.voice.regs) != 0 {
		t.Fatal("bad token registered something")
	}
}

// TestPollTimeout: a client that stops polling is signed out, its DN
// unregistered and its call dropped.
func TestPollTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	l := startLab(t, func(c *gateway.Config) { c.ClientTimeout = 2 * time.Second; c.WaitTimeout = 300 * time.Millisecond }, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken), AutoAnswer: true, BindIP: "127.0.0.1"})
	stop := runAgent(ctx, t, l, a)
	_, _ = l.voice.call(ctx, t, "7001", 440)
	waitEvent(t, a, "CONNECTED")
	stop() // the "browser" goes away without BYE or sign_out
	if reg := l.voice.waitReg(t); reg.expires != 0 || reg.dn != "7001" {
		t.Fatalf("expected unregister, got %+v", reg)
	}
	select {
	case <-l.voice.byes:
	case <-time.After(5 * time.Second):
		t.Fatal("dropped call sent no BYE")
	}
	if l.metric(t, "wrtc_client_errors", "type", "timeout") != 1 || l.metric(t, "wrtc_client_errors", "type", "dropped_on_signout") != 1 {
		t.Fatal("client error counters not incremented")
	}
	if l.metric(t, signInMetric) != 0 {
		t.Fatal("session still counted")
	}
}

// TestSystemErrorFollowsDependencies: wrtc_system_error is 1 for auth, env
// and cfg while GAuth (and its Environment Service) and GWS cannot be reached, and 0 again once they answer, with
// nobody signing in meanwhile (the alert is `wrtc_system_error > 0`).
func TestSystemErrorFollowsDependencies(t *testing.T) {
	var down atomic.Bool
	plat := platform(t)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, plat.URL+r.URL.RequestURI(), nil)
		req.Header = r.Header.Clone()
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, res.Body)
	}))
	t.Cleanup(flaky.Close)
	logs := &syncbuf.Buffer{}
	l := startLabLogged(t, func(c *gateway.Config) { c.AuthURL, c.ProbeInterval = flaky.URL, 20*time.Millisecond }, nil,
		slog.New(slog.NewTextHandler(logs, nil)))
	state := func(want float64) func() bool {
		return func() bool {
			return l.metric(t, "wrtc_system_error", "type", "auth") == want && l.metric(t, "wrtc_system_error", "type", "env") == want &&
				l.metric(t, "wrtc_system_error", "type", "cfg") == want
		}
	}
	eventually(t, 5*time.Second, "auth, env and cfg up (0)", state(0))
	down.Store(true)
	eventually(t, 5*time.Second, "auth, env and cfg down (1) with no sign-in", state(1))
	// A sign-in meanwhile is told which service is missing.
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken), BindIP: "127.0.0.1"})
	if err := a.SignIn(t.Context()); err == nil || !strings.Contains(err.Error(), "Authentication Service (GAuth) is unavailable") {
		t.Errorf("sign-in with GAuth down: %v, want the gateway's 503 naming the Authentication Service", err)
	}
	down.Store(false)
	eventually(t, 5*time.Second, "auth, env and cfg up again (0)", state(0))
	// The log says so once each way, not on every probe.
	out := logs.String()
	for _, want := range []string{"lost the Authentication Service (GAuth)", "the Authentication Service (GAuth) is back",
		"lost the Configuration Service (GWS)", "the Configuration Service (GWS) is back"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", want, n, out)
		}
	}
}

// TestRefusedRefreshSignsOut: when Voice refuses a registration refresh (the
// agent's token was revoked, or expired), the session ends: the client's
// next /wait answers 404 and it signs out, instead of seeming signed in with
// its DN no longer registered.
func TestRefusedRefreshSignsOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := startLab(t, func(c *gateway.Config) { c.RegisterExpiry, c.ClientTimeout = 400*time.Millisecond, 2*time.Second }, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken), BindIP: "127.0.0.1"})
	if err := a.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	l.voice.waitReg(t)
	l.voice.refuse.Store(true)
	select {
	case err := <-done:
		var se *agent.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusNotFound {
			t.Fatalf("agent ended with %v, want the gateway's 404", err)
		}
	case <-ctx.Done():
		t.Fatal("session still signed in after Voice refused its refresh")
	}
	if got := l.metric(t, signInMetric); got != 0 {
		t.Fatalf("sign-ins = %v", got)
	}
}
