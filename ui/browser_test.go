package ui

import (
	"encoding/json"
	"fmt"
	"github.com/cxlab/cxlab/appliance/apptest/browsertest"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"go.uber.org/goleak"
)

// fakeGateway speaks the gateway's long-poll protocol with a pion peer on the
// far side: what a test puts on toBrowser is the body of the next /wait, and
// what the page posts to /message arrives on fromBrowser.
type fakeGateway struct {
	gauth       *fakeGAuth
	toBrowser   chan string
	fromBrowser chan string
	done        chan struct{}
	signIns     atomic.Int32
	signouts    atomic.Int32
}

const fakeSSID = "ssid-7001"

func (g *fakeGateway) mount(e *echo.Echo) {
	e.POST("/webrtc/sign_in", func(c echo.Context) error {
		if g.gauth.user(strings.TrimPrefix(c.Request().Header.Get("Authorization"), "Bearer ")) == "" {
			return c.String(http.StatusUnauthorized, "invalid token")
		}
		g.signIns.Add(1)
		return c.String(http.StatusOK, "agent1="+fakeSSID+"\n")
	})
	e.GET("/webrtc/ice-servers", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"iceServers": []any{}})
	})
	e.GET("/webrtc/wait", func(c echo.Context) error {
		if c.QueryParam("id") != fakeSSID {
			return c.String(http.StatusNotFound, "unknown session")
		}
		select {
		case m := <-g.toBrowser:
			c.Response().Header().Set("Pragma", "gw-peer-1")
			return c.String(http.StatusOK, m)
		case <-time.After(20 * time.Second):
			return c.NoContent(http.StatusNoContent)
		case <-c.Request().Context().Done():
			return nil
		case <-g.done:
			return c.NoContent(http.StatusNoContent)
		}
	})
	e.POST("/webrtc/message", func(c echo.Context) error {
		if c.QueryParam("from") != fakeSSID {
			return c.String(http.StatusNotFound, "unknown session")
		}
		b, _ := io.ReadAll(c.Request().Body)
		select {
		case g.fromBrowser <- string(b):
		case <-g.done:
		}
		return c.NoContent(http.StatusOK)
	})
	e.GET("/webrtc/sign_out", func(c echo.Context) error { g.signouts.Add(1); return c.NoContent(http.StatusOK) })
}

// fakeVoice keeps each user's agent state (the Voice agent state API).
type fakeVoice struct {
	gauth *fakeGAuth
	mu    sync.Mutex
	state map[string]string
}

func (v *fakeVoice) mount(e *echo.Echo) {
	reply := func(c echo.Context, user string) error {
		v.mu.Lock()
		st := v.state[user]
		v.mu.Unlock()
		if st == "" {
			st = "NotReady"
		}
		return c.JSON(http.StatusOK, map[string]any{"status": map[string]any{"code": 0},
			"data": map[string]any{"agents": []any{map[string]any{"dn": "7001", "state": st}}}})
	}
	e.GET("/voice/v1/agents/me", func(c echo.Context) error {
		user := v.gauth.user(strings.TrimPrefix(c.Request().Header.Get("Authorization"), "Bearer "))
		if user == "" {
			return c.NoContent(http.StatusUnauthorized)
		}
		return reply(c, user)
	})
	e.PUT("/voice/v1/agents/me/state", func(c echo.Context) error {
		user := v.gauth.user(strings.TrimPrefix(c.Request().Header.Get("Authorization"), "Bearer "))
		if user == "" {
			return c.NoContent(http.StatusUnauthorized)
		}
		var body struct{ State string }
		if err := json.NewDecoder(c.Request().Body).Decode(&body); err != nil || (body.State != "Ready" && body.State != "NotReady") {
			return c.JSON(http.StatusBadRequest, map[string]any{"status": map[string]any{"code": 1, "message": "bad state"}})
		}
		v.mu.Lock()
		v.state[user] = body.State
		v.mu.Unlock()
		return reply(c, user)
	})
}

// linearToULaw encodes one 16-bit sample as G.711 μ-law.
func linearToULaw(s int16) byte {
	const bias, clip = 0x84, 32635
	sign := byte(0)
	v := int(s)
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > clip {
		v = clip
	}
	v += bias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^(sign | byte(exp<<4) | byte(mant))
}

// gatewayPeer is the pion side of the call: it offers PCMU plus
// telephone-event and plays a 1 kHz tone at about -9 dBFS.
type gatewayPeer struct {
	pc        *webrtc.PeerConnection
	packets   atomic.Int32
	dtmf      atomic.Int32
	stopTone  chan struct{}
	toneDone  chan struct{}
	closeOnce sync.Once
}

func newGatewayPeer(t *testing.T) *gatewayPeer {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, PayloadType: 0}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"}, PayloadType: 101}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	// The gateway offered first, so it is the DTLS server; when it answers the
	// browser's hold/resume re-offers it must stay the server (a=setup:passive),
	// or Chrome refuses the answer ("Failed to set SSL role").
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	gp := &gatewayPeer{pc: pc, stopTone: make(chan struct{}), toneDone: make(chan struct{})}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, "audio", "gateway")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			gp.packets.Add(1)
			if p.PayloadType == 101 {
				gp.dtmf.Add(1)
			}
		}
	})
	go func() {
		defer close(gp.toneDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-gp.stopTone:
				return
			case <-tick.C:
			}
			buf := make([]byte, 160)
			for i := range buf {
				buf[i] = linearToULaw(int16(11000 * math.Sin(2*math.Pi*1000*float64(n)/8000)))
				n++
			}
			_ = track.WriteSample(media.Sample{Data: buf, Duration: 20 * time.Millisecond})
		}
	}()
	return gp
}

func (gp *gatewayPeer) close() {
	gp.closeOnce.Do(func() {
		close(gp.stopTone)
		<-gp.toneDone
		_ = gp.pc.Close()
	})
}

// describe waits for ICE gathering and returns the local description as an
// RSMP message of type typ.
func (gp *gatewayPeer) describe(t *testing.T, typ string, extra map[string]any) string {
	t.Helper()
	<-webrtc.GatheringCompletePromise(gp.pc)
	m := map[string]any{"messageType": typ, "sdp": gp.pc.LocalDescription().SDP, "offererSessionId": 7, "seq": 1, "Candidates": []any{}}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return "RSMP " + string(b)
}

type rsmp struct {
	MessageType string `json:"messageType"`
	SDP         string `json:"sdp"`
	Candidates  []struct {
		Candidate string `json:"candidate"`
	} `json:"Candidates"`
	OffererSessionID  any `json:"offererSessionId"`
	AnswererSessionID any `json:"answererSessionId"`
}

func nextMessage(t *testing.T, g *fakeGateway, want string) (string, rsmp) {
	t.Helper()
	select {
	case m := <-g.fromBrowser:
		var r rsmp
		if i := strings.Index(m, "{"); i >= 0 {
			if err := json.Unmarshal([]byte(m[i:]), &r); err != nil {
				t.Fatalf("bad RSMP %q: %v", m, err)
			}
		}
		if !strings.HasPrefix(m, want) {
			t.Fatalf("browser sent %.80q, want %s", m, want)
		}
		return m, r
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s from the browser", want)
	}
	return "", rsmp{}
}

// The whole agent path of the softphone against a real WebRTC peer: GAuth
// login with PKCE, gateway sign-in and long-poll, Ready, a ringing call with
// callback data, answer with bulk candidates, audio both ways with live level
// meters, DTMF as RFC 4733 events, hold/resume re-offers, hang-up.
func TestBrowserSoftphoneCall(t *testing.T) {
	before := goleak.IgnoreCurrent() // taken now: taken at cleanup it would ignore every leak
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	var gw *fakeGateway
	var voice *fakeVoice
	ts := newTestServer(t, Config{}, Deps{}, func(e *echo.Echo) {
		gw = &fakeGateway{toBrowser: make(chan string, 4), fromBrowser: make(chan string, 16), done: make(chan struct{})}
		voice = &fakeVoice{state: map[string]string{}}

		gw.mount(e)
		voice.mount(e)
	})
	gw.gauth, voice.gauth = ts.gauth, ts.gauth
	t.Cleanup(func() { close(gw.done) })
	ctx := browsertest.New(t)

	browsertest.Run(t, ctx, 20*time.Second,
		chromedp.Navigate(ts.URL+"/softphone/"),
		chromedp.WaitVisible(chromedp.ID("login-user")),
		chromedp.SetValue(chromedp.ID("login-user"), "agent1"),
		chromedp.SetValue(chromedp.ID("login-pass"), "agent123"),
		chromedp.Click(chromedp.ID("btn-login")),
		chromedp.WaitVisible(chromedp.ID("phone-panel")),
	)
	browsertest.WaitJS(t, ctx, 20*time.Second, "gateway sign-in", `document.getElementById('gw-state').dataset.state === 'signed-in'`)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById('user-name').textContent`); got != "agent1" {
		t.Errorf("user shown as %q", got)
	}
	if !strings.HasSuffix(browsertest.Eval[string](t, ctx, `location.href`), "/softphone/") {
		t.Error("the code and state stayed in the address bar")
	}
	browsertest.Run(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("btn-ready")))
	browsertest.WaitJS(t, ctx, 20*time.Second, "Ready", `document.getElementById('agent-state').dataset.state === 'Ready'`)

	// A callback call arrives.
	gp := newGatewayPeer(t)
	t.Cleanup(gp.close)
	offer, err := gp.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := gp.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	gw.toBrowser <- gp.describe(t, "OFFER", map[string]any{"tiebreaker": 12345,
		"attacheddata": []map[string]string{{"key": "phoneNumber", "value": "+12025550100"}, {"key": "callbackId", "value": "8c78d4e1"}}})
	browsertest.WaitJS(t, ctx, 20*time.Second, "ringing", `document.getElementById('call-state').dataset.state === 'ringing'`)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById('caller').textContent`); !strings.Contains(got, "+12025550100") {
		t.Errorf("caller shown as %q", got)
	}
	if got := browsertest.Eval[string](t, ctx, `document.querySelector('#call-data td[data-key=callbackId]').textContent`); got != "8c78d4e1" {
		t.Errorf("callback id shown as %q", got)
	}
	// A ringing call shows in the tab's title and is announced (role=status).
	if title, said := browsertest.Eval[string](t, ctx, `document.title`), browsertest.Eval[string](t, ctx, `document.getElementById('notice').textContent`); !strings.HasPrefix(title, "Ringing: ") || !strings.Contains(said, "Incoming call from") {
		t.Errorf("ringing: title %q, status %q", title, said)
	}
	browsertest.Screenshot(t, ctx, "ringing")

	browsertest.Run(t, ctx, 10*time.Second, chromedp.Click(chromedp.ID("btn-answer")))
	_, ans := nextMessage(t, gw, "RSMP ")
	if ans.MessageType != "ANSWER" || !strings.Contains(ans.SDP, "PCMU") || len(ans.Candidates) == 0 {
		t.Fatalf("answer %+v", ans)
	}
	if err := gp.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 20*time.Second, "connected", `document.getElementById('call-state').dataset.state === 'connected'`)
	if title := browsertest.Eval[string](t, ctx, `document.title`); strings.HasPrefix(title, "Ringing") {
		t.Errorf("title still %q once answered", title)
	}
	// The speaker meter hears the gateway's tone; the gateway hears the fake microphone.
	browsertest.WaitJS(t, ctx, 20*time.Second, "speaker level", `parseFloat(document.getElementById('speaker-level').dataset.dbfs) > -30`)
	browsertest.WaitJS(t, ctx, 20*time.Second, "microphone meter running", `parseFloat(document.getElementById('mic-level').dataset.dbfs) > -100`)
	// Chromium's fake microphone beeps 20 ms in every 500: the meter holds
	// each beep's level, falling back slowly, so it reads a level throughout
	// rather than "–" most of the time.
	browsertest.Run(t, ctx, 5*time.Second, chromedp.Evaluate[chromedp.Void](`window.cxMic = [];
		window.cxMicTimer = setInterval(() => window.cxMic.push(parseFloat(document.getElementById('mic-level').dataset.dbfs)), 100);`))
	browsertest.WaitJS(t, ctx, 10*time.Second, "2 s of microphone meter readings", `window.cxMic.length >= 20`)
	if silent := browsertest.Eval[int](t, ctx, `(clearInterval(window.cxMicTimer), window.cxMic.filter((v) => v <= -100).length)`); silent > 0 {
		t.Errorf("the microphone meter read nothing in %d of 20 looks during the call", silent)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gp.packets.Load() < 25 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling a counter fed by the media path, bounded
	}
	if gp.packets.Load() < 25 {
		t.Fatalf("the gateway got %d RTP packets from the browser", gp.packets.Load())
	}
	browsertest.WaitJS(t, ctx, 20*time.Second, "call timer", `parseInt(document.getElementById('call-timer').dataset.seconds, 10) >= 1`)
	browsertest.Screenshot(t, ctx, "connected")

	browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("dtmf-5")), chromedp.Click(chromedp.ID("dtmf-hash")))
	deadline = time.Now().Add(10 * time.Second)
	for gp.dtmf.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if gp.dtmf.Load() == 0 {
		t.Error("no RFC 4733 telephone-event packet reached the gateway")
	}
	if got := browsertest.Eval[string](t, ctx, `document.getElementById('dtmf-sent').textContent`); got != "5#" {
		t.Errorf("sent tones shown as %q", got)
	}

	// Hold is a re-offer with a=inactive; resume goes back to sendrecv.
	for _, step := range []struct{ dir, state string }{{"a=inactive", "held"}, {"a=sendrecv", "connected"}} {
		browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("btn-hold")))
		_, re := nextMessage(t, gw, "RSMP ")
		if re.MessageType != "OFFER" || !strings.Contains(re.SDP, step.dir) {
			t.Fatalf("re-offer for %s: %s %.300s", step.state, re.MessageType, re.SDP)
		}
		if err := gp.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: re.SDP}); err != nil {
			t.Fatal(err)
		}
		a, err := gp.pc.CreateAnswer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := gp.pc.SetLocalDescription(a); err != nil {
			t.Fatal(err)
		}
		gw.toBrowser <- gp.describe(t, "ANSWER", map[string]any{"answererSessionId": 7})
		_, ok := nextMessage(t, gw, "RSMP ")
		if ok.MessageType != "OK" {
			t.Fatalf("after the answer the browser sent %s, want OK", ok.MessageType)
		}
		browsertest.WaitJS(t, ctx, 20*time.Second, step.state, fmt.Sprintf(`document.getElementById('call-state').dataset.state === %q`, step.state))
	}

	browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("btn-mute")))
	browsertest.WaitJS(t, ctx, 20*time.Second, "muted", `document.getElementById('btn-mute').getAttribute('aria-pressed') === 'true'`)

	browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("btn-hangup")))
	if m, _ := nextMessage(t, gw, "BYE"); m != "BYE" {
		t.Errorf("hang-up sent %q", m)
	}
	browsertest.WaitJS(t, ctx, 20*time.Second, "ended", `document.getElementById('call-state').dataset.state === 'ended'`)
	browsertest.WaitJS(t, ctx, 20*time.Second, "meters reset", `document.getElementById('speaker-level').dataset.dbfs === '-100.0'`)

	// A second call that the far end ends.
	gw.toBrowser <- `RSMP {"messageType":"OFFER","sdp":"v=0\r\n","offererSessionId":9,"seq":1,"attacheddata":[{"key":"ani","value":"+12025550199"}]}`
	browsertest.WaitJS(t, ctx, 20*time.Second, "second ringing", `document.getElementById('call-state').dataset.state === 'ringing'`)
	gw.toBrowser <- "BYE"
	browsertest.WaitJS(t, ctx, 20*time.Second, "ended by the far end", `document.getElementById('call-state').textContent === 'Ended by the far end'`)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById('caller').textContent`); !strings.HasPrefix(got, "Last call: ") {
		t.Errorf("after the call the page says %q", got)
	}

	browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("btn-signout")), chromedp.WaitVisible(chromedp.ID("login-panel")))
	if gw.signouts.Load() != 1 {
		t.Errorf("sign_out calls = %d", gw.signouts.Load())
	}
	gp.close()
}

// A gateway that is down gives a clear message, and the softphone recovers
// when it comes back.
func TestBrowserSoftphoneGatewayUnreachable(t *testing.T) {
	before := goleak.IgnoreCurrent() // taken now: taken at cleanup it would ignore every leak
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	var gw *fakeGateway
	var voice *fakeVoice
	var down atomic.Bool
	down.Store(true)
	ts := newTestServer(t, Config{}, Deps{}, func(e *echo.Echo) {
		gw = &fakeGateway{toBrowser: make(chan string, 1), fromBrowser: make(chan string, 4), done: make(chan struct{})}
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if down.Load() && strings.HasPrefix(c.Request().URL.Path, "/webrtc/") {
					return c.String(http.StatusBadGateway, "gateway down")
				}
				return next(c)
			}
		})
		gw.mount(e)
		voice = &fakeVoice{state: map[string]string{}}
		voice.mount(e)
	})
	gw.gauth, voice.gauth = ts.gauth, ts.gauth
	t.Cleanup(func() { close(gw.done) })
	ctx := browsertest.New(t)
	browsertest.Run(t, ctx, 20*time.Second,
		chromedp.Navigate(ts.URL+"/softphone/"),
		chromedp.SetValue(chromedp.ID("login-user"), "agent1"),
		chromedp.SetValue(chromedp.ID("login-pass"), "agent123"),
		chromedp.Click(chromedp.ID("btn-login")),
		chromedp.WaitVisible(chromedp.ID("phone-panel")),
	)
	browsertest.WaitJS(t, ctx, 20*time.Second, "unreachable message", `document.getElementById('error').textContent.includes('WebRTC gateway') && !document.getElementById('error').hidden`)
	if st := browsertest.Eval[string](t, ctx, `document.getElementById('gw-state').dataset.state`); st != "unreachable" {
		t.Errorf("gateway state %q", st)
	}
	browsertest.Screenshot(t, ctx, "unreachable")
	down.Store(false)
	browsertest.WaitJS(t, ctx, 20*time.Second, "recovered", `document.getElementById('gw-state').dataset.state === 'signed-in' && document.getElementById('error').hidden`)
}

// Wrong credentials are reported on the page.
func TestBrowserSoftphoneBadPassword(t *testing.T) {
	before := goleak.IgnoreCurrent() // taken now: taken at cleanup it would ignore every leak
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	ts := newTestServer(t, Config{}, Deps{})
	ctx := browsertest.New(t)
	browsertest.Run(t, ctx, 20*time.Second,
		chromedp.Navigate(ts.URL+"/softphone/"),
		chromedp.SetValue(chromedp.ID("login-pass"), "wrong"),
		chromedp.Click(chromedp.ID("btn-login")),
	)
	browsertest.WaitJS(t, ctx, 20*time.Second, "error", `document.getElementById('error').textContent === 'Wrong username or password.'`)
}

// TestBrowserConsoleSaysWhenTheApplianceStopsAnswering: the console's live
// sections refresh every 5 s; when the appliance stops answering, a notice
// says so and since when the figures date; when it answers again, the notice
// goes.
func TestBrowserConsoleSaysWhenTheApplianceStopsAnswering(t *testing.T) {
	var down atomic.Bool
	ts := newTestServer(t, Config{}, Deps{Console: fakeConsole()}, func(e *echo.Echo) {
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if down.Load() && strings.HasPrefix(c.Request().URL.Path, "/console/section/") {
					// As a stopped appliance: the connection closes unanswered.
					conn, _, err := c.Response().Hijack()
					if err == nil {
						_ = conn.Close()
					}
					return nil
				}
				return next(c)
			}
		})
	})
	ctx := browsertest.New(t)
	browsertest.Run(t, ctx, 20*time.Second, chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.ID("components")))
	if browsertest.Eval[bool](t, ctx, `!document.getElementById('offline').hidden`) {
		t.Fatal("the notice shows while the appliance answers")
	}
	down.Store(true)
	browsertest.WaitJS(t, ctx, 15*time.Second, "the notice that the appliance does not answer",
		`!document.getElementById('offline').hidden && document.getElementById('offline').textContent.includes('does not answer')`)
	browsertest.Screenshot(t, ctx, "offline")
	down.Store(false)
	browsertest.WaitJS(t, ctx, 15*time.Second, "the notice to go once the appliance answers", `document.getElementById('offline').hidden`)
}
