package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance/gateway"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
	"github.com/cxlab/cxlab/appliance/turn"
)

func asStatus(err error, se **agent.StatusError) bool { return errors.As(err, se) }

func startTURN(t *testing.T) *turn.Server {
	cfg := turn.Default()
	cfg.Port = 0
	cfg.MinPort, cfg.MaxPort = 0, 0
	cfg.DisableTCP = true
	ts, err := turn.New(cfg, testLogger(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.Stop(ctx)
	})
	return ts
}

func post(t *testing.T, u, body string) (int, string) {
	t.Helper()
	res, err := http.Post(u, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	return res.StatusCode, readAll(res.Body)
}

// TestMalformedInput: bad messages get clear errors and the session survives.
func TestMalformedInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := startLab(t, func(c *gateway.Config) { c.EnableTranscoding = new(bool) }, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken)})
	if err := a.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	l.voice.waitReg(t)
	msg := l.base + "/webrtc/message?" + url.Values{"from": {a.SSID()}, "to": {"5551234"}}.Encode()
	cases := []struct {
		name, body string
		status     int
		errType    string
	}{
		{"bad json", "RSMP {not json", 400, "BAD_MESSAGE"},
		{"unknown type", `RSMP {"messageType":"PRANSWER","sdp":"v=0"}`, 400, "BAD_MESSAGE"},
		{"no audio", `RSMP {"messageType":"OFFER","sdp":"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"}`, 400, "NO_AUDIO"},
		{"opus only without transcoding", `RSMP {"messageType":"OFFER","sdp":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"}`, 406, "CODEC"},
		{"answer without offer", `RSMP {"messageType":"ANSWER","sdp":"v=0\r\nm=audio 9 RTP/AVP 0\r\n"}`, 409, "NO_OFFER"},
		{"unknown verb", "HELLO there", 400, "UNKNOWN_MESSAGE"},
		{"oversized", "RSMP " + strings.Repeat("x", 70<<10), 413, "TOO_LARGE"},
		{"info without call", "INFO-MAP a=b", 409, "NO_CALL"},
	}
	for _, tc := range cases {
		status, body := post(t, msg, tc.body)
		if status != tc.status || !strings.Contains(body, "ERROR") || !strings.Contains(body, tc.errType) {
			t.Errorf("%s: got %d %q, want %d %s", tc.name, status, body, tc.status, tc.errType)
		}
	}
	if status, _ := post(t, l.base+"/webrtc/message?from=nope&to=x", "BYE"); status != 404 {
		t.Errorf("unknown session: %d", status)
	}
	// A DN password with a NUL or bytes that are not UTF-8 is refused, not
	// cut short or passed on.
	for _, body := range []string{"7003:dnpass\x00", "7003:dn\xffpass"} {
		if status, resp := post(t, l.base+"/webrtc/sign_in", body); status != 400 || !strings.Contains(resp, "BAD_REQUEST") {
			t.Errorf("sign_in %q: %d %q, want 400 BAD_REQUEST", body, status, resp)
		}
	}
	// A message sent with GET gets a Grtc ERROR, not the router's JSON.
	if res, err := http.Get(msg); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed || !strings.HasPrefix(string(b), "ERROR ") {
			t.Errorf("GET message: %d %q, want 405 with a Grtc ERROR", res.StatusCode, b)
		}
	}
	// So does any other wrong method or path under the base.
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPut, "/webrtc/sign_in", "OPTIONS, GET, POST"},
		{http.MethodPost, "/webrtc/wait", "OPTIONS, GET"},
		{http.MethodGet, "/webrtc/no_such_thing", ""},
	} {
		req, _ := http.NewRequest(tc.method, l.base+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		want := map[bool]int{true: http.StatusMethodNotAllowed, false: http.StatusNotFound}[tc.allow != ""]
		if res.StatusCode != want || !strings.HasPrefix(string(b), "ERROR {") || res.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q %q, want %d with a Grtc ERROR", tc.method, tc.path, res.StatusCode, res.Header.Get("Allow"), b, want)
		}
	}
	// A DN that cannot be a SIP URI user part as it is ('[' left the REGISTER
	// unreadable and the sign-in waiting 5 s) is refused at once.
	for _, body := range []string{"bad dn:x", "70\x0001:x", "7001\xff:x", ":x", "E[ENT-TALk:x", "70{01}:x", "70|01:x", "7001#:x", "70%01:x"} {
		if status, _ := post(t, l.base+"/webrtc/sign_in", body); status != 400 {
			t.Errorf("bad legacy sign-in %q: %d, want 400", body, status)
		}
	}
	// A DN Voice does not know is the client's mistake, not an outage.
	if status, body := post(t, l.base+"/webrtc/sign_in", unknownDN+":x"); status != 404 || !strings.Contains(body, unknownDN) {
		t.Errorf("unknown DN sign-in: %d %q, want 404 naming the DN", status, body)
	}
	// The session survived all of it: a GET-STATS without call is refused but
	// the client can still sign out cleanly.
	if err := a.SignOut(ctx); err != nil {
		t.Fatalf("session did not survive malformed input: %v", err)
	}
	// With transcoding off an incoming call is offered with G.711 only.
}

// TestIdleWaitKeepsTheSession: a /wait with nothing to deliver ends after
// the hold with 200 and an empty body, never another status: the JS library
// signs out on anything but 200. The session stays signed in.
func TestIdleWaitKeepsTheSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := startLab(t, func(c *gateway.Config) { c.WaitTimeout = 200 * time.Millisecond }, nil)
	a := agent.New(agent.Config{URL: l.base, DN: "7002", Password: "dnpass"})
	if err := a.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/webrtc/wait?id="+a.SSID(), nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Pragma") != "" {
			t.Fatalf("idle wait %d: %d %q (Pragma %q), want 200 with an empty body", i, res.StatusCode, body, res.Header.Get("Pragma"))
		}
	}
	if err := a.SignOut(ctx); err != nil {
		t.Fatalf("session ended by idle waits: %v", err)
	}
}

// TestLegacySignInAndReplace: DN:password sign-in, then a second sign-in for
// the same DN replaces the first.
func TestLegacySignInAndReplace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a1 := agent.New(agent.Config{URL: l.base, DN: "7002", Password: "dnpass"})
	if err := a1.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	if r := l.voice.waitReg(t); r.dn != "7002" {
		t.Fatalf("registered %q", r.dn)
	}
	a2 := agent.New(agent.Config{URL: l.base, DN: "7002", Password: "dnpass"})
	if err := a2.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	l.voice.waitReg(t)
	if got := l.metric(t, signInMetric); got != 1 {
		t.Fatalf("sign-ins after replace = %v", got)
	}
	if err := a1.SignOut(ctx); err == nil {
		t.Fatal("replaced session still valid")
	}
	if err := a2.SignOut(ctx); err != nil {
		t.Fatal(err)
	}
}

// unbundledOffer is a hand-written RSMP OFFER of PCMU audio without
// a=group:BUNDLE (which browsers always send), with a made-up fingerprint.
func unbundledOffer() string {
	return `RSMP {"messageType":"OFFER","sdp":"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n` +
		`m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:0 PCMU/8000\r\na=ice-ufrag:abcd\r\n` +
		`a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 ` + strings.TrimSuffix(strings.Repeat("AB:", 32), ":") +
		`\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\n","offererSessionId":102,"seq":1,"tiebreaker":7}`
}

// TestSignOutDuringCallSetup: a client that signs out right after offering
// an outgoing call (while the gateway is still building its media) leaves
// nothing behind: no PeerConnection, socket or goroutine outlives the call.
func TestSignOutDuringCallSetup(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Run("calls", func(t *testing.T) {
		l := startLab(t, nil, nil)
		offer := unbundledOffer()
		// Each sign-out waits up to a second for a /wait to take the BYE
		// (none comes here); without the fix about half the rounds leaked.
		for i := range 10 {
			ssid := legacySignIn(t, l.base, fmt.Sprint(8100+i))
			if code, body := post(t, l.base+"/webrtc/message?"+url.Values{"from": {ssid}, "to": {"5551234"}}.Encode(), offer); code != http.StatusOK {
				t.Fatalf("offer: %d %q", code, body)
			}
			signOut(t, l.base, ssid)
		}
		eventually(t, 10*time.Second, "no call left", func() bool { return l.metric(t, "wrtc_current_audio_calls") == 0 })
	})
	goleak.VerifyNone(t, append(leakIgnores, before)...)
}

// TestSignOutWhileRinging: a client that signs out while an incoming call is
// being offered to it declines the call on the SIP side and leaves nothing
// behind.
func TestSignOutWhileRinging(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Run("calls", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		l := startLab(t, nil, nil)
		for i := range 10 {
			dn := fmt.Sprint(8200 + i)
			ssid := legacySignIn(t, l.base, dn)
			l.voice.waitReg(t)
			target, _ := l.voice.binding(dn)
			d, err := l.voice.clients.WriteInvite(ctx, invite(target, dn, newRTPPeer(t, 440).sdp("sendrecv")))
			if err != nil {
				t.Fatal(err)
			}
			signOut(t, l.base, ssid)
			if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{}); err == nil {
				t.Fatalf("call %d answered by a client that signed out", i)
			}
			_ = d.Close()
		}
		eventually(t, 10*time.Second, "no call left", func() bool { return l.metric(t, "wrtc_current_audio_calls") == 0 })
	})
	goleak.VerifyNone(t, append(leakIgnores, before)...)
}

// TestPushedErrorIsAGatewayErrorForTheJSLibrary: an error the gateway pushes
// through /wait during a call (here: the browser answers an incoming call
// without audio) passes the JS library's test for a gateway error
// (handlePeerMessage: msg.search("ERROR") > 0, "errorType" and "{" in it),
// so that onGatewayError fires; the SIP side gets 488.
func TestPushedErrorIsAGatewayErrorForTheJSLibrary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := startLab(t, nil, nil)
	a := agent.New(agent.Config{URL: l.base, Token: tokenSource(goodToken)})
	if err := a.SignIn(ctx); err != nil {
		t.Fatal(err)
	}
	l.voice.waitReg(t)
	target, _ := l.voice.binding("7001")
	ep := newRTPPeer(t, 440)
	d, err := l.voice.clients.WriteInvite(ctx, invite(target, "7001", ep.sdp("sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- d.WaitAnswer(ctx, sipgo.AnswerOptions{}) }()

	wait := func() (string, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/webrtc/wait?id="+url.QueryEscape(a.SSID()), nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		return res.Header.Get("Pragma"), readAll(res.Body)
	}
	peer, offer := wait()
	if !strings.Contains(offer, `"messageType":"OFFER"`) {
		t.Fatalf("first message %q, want the OFFER", offer)
	}
	msg := l.base + "/webrtc/message?" + url.Values{"from": {a.SSID()}, "to": {peer}}.Encode()
	post(t, msg, `RSMP {"messageType":"ANSWER","sdp":"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n","offererSessionId":102,"answererSessionId":102,"seq":1}`)
	_, body := wait()
	// The library's test, as it is written there.
	gatewayError := strings.Index(body, "ERROR") > 0 && strings.Contains(body, "errorType") && strings.Contains(body, "{")
	if !gatewayError {
		t.Fatalf("pushed error %q: the JS library would not take it for a gateway error", body)
	}
	if !strings.Contains(body, `"errorType":"CODEC"`) {
		t.Fatalf("pushed error %q, want errorType CODEC", body)
	}
	var se *sipgo.ErrDialogResponse
	if err := <-answered; !errors.As(err, &se) || se.Res.StatusCode != 488 {
		t.Fatalf("SIP side: %v, want 488", err)
	}
}

// TestUnencodedPlusInTo: the JS library sends "&to=" + peer without
// URL-encoding it, so a number to dial arrives as "to=+1202...". The '+'
// is the number's, not an encoded space: the call is placed.
func TestUnencodedPlusInTo(t *testing.T) {
	l := startLab(t, nil, nil)
	offer := unbundledOffer()
	ssid := legacySignIn(t, l.base, "8300")
	if code, body := post(t, l.base+"/webrtc/message?from="+url.QueryEscape(ssid)+"&to=+12025550100", offer); code != http.StatusOK {
		t.Fatalf("offer to an unencoded +number: %d %q", code, body)
	}
	signOut(t, l.base, ssid)
}

// TestConfigPollTimeoutIsShorterThanTheHold: a page configuring the JS
// library from /webrtc/config times its polls out before the gateway's hold
// ends, so the library never receives the hold's empty 200 as a message.
func TestConfigPollTimeoutIsShorterThanTheHold(t *testing.T) {
	l := startLab(t, nil, nil)
	res, err := http.Get(l.base + "/webrtc/config")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var cfg struct {
		PollingTimeout int64 `json:"polling_timeout"`
	}
	if err := json.NewDecoder(res.Body).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if hold := gateway.Default().WaitTimeout.Milliseconds(); cfg.PollingTimeout <= 0 || cfg.PollingTimeout >= hold {
		t.Fatalf("polling_timeout %d ms, want shorter than the %d ms hold", cfg.PollingTimeout, hold)
	}
}

// TestOfferWithoutBundleIsRefused: an offer whose audio pion cannot take
// (no a=group:BUNDLE: it answers the section with port 0) is refused with
// a pushed BAD_SDP, and nobody is dialled for it.
func TestOfferWithoutBundleIsRefused(t *testing.T) {
	l := startLab(t, nil, nil)
	offer := unbundledOffer()
	ssid := legacySignIn(t, l.base, "8310")
	if code, body := post(t, l.base+"/webrtc/message?"+url.Values{"from": {ssid}, "to": {"+12025550100"}}.Encode(), offer); code != http.StatusOK {
		t.Fatalf("offer: %d %q", code, body)
	}
	res, err := http.Get(l.base + "/webrtc/wait?id=" + url.QueryEscape(ssid))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(res.Body)
	res.Body.Close()
	if !strings.Contains(body, `"errorType":"BAD_SDP"`) || strings.Index(body, "ERROR") <= 0 {
		t.Fatalf("after an offer without BUNDLE the client got %q, want a pushed BAD_SDP", body)
	}
	if n := l.voice.invites(); n != 0 {
		t.Fatalf("Voice got %d INVITEs for a refused offer", n)
	}
	signOut(t, l.base, ssid)
}
