package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/gateway"
)

// fuzzVerbs are the signalling requests the fuzzer writes: the body of a
// message from a signed-in client, or the raw query or body of the others.
var fuzzVerbs = []string{"message", "message-to-self", "sign_in-get", "sign_in-post", "wait", "sign_out"}

// FuzzSignalling sends arbitrary signalling requests to a running gateway
// (with the fake Voice behind it): no request gets a 500 (a handler panic
// answers 500 through the recover middleware), every refusal is a Grtc error
// body, and the gateway still signs a client in and out afterwards.
func FuzzSignalling(f *testing.F) {
	seeds := []struct {
		verb uint8
		body string
	}{
		{0, `RSMP {"messageType":"OFFER","sdp":"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n","offererSessionId":102,"seq":1,"tiebreaker":7}`},
		{0, `RSMP {"messageType":"ANSWER","sdp":"v=0","offererSessionId":1,"answererSessionId":2,"seq":2}`},
		{0, `RSMP {"messageType":"OK","offererSessionId":-1,"seq":1e99}`},
		{0, `RSMP {"messageType":"OFFER","sdp":"v=0\r\nm=audio 9 RTP/AVP 0\r\n","Candidates":[{"sdpMLineIndex":0,"sdpMid":"0","candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}]}`},
		{0, `RSMP {"messageType":"OFFER","sdp":"\u0000","attacheddata":[{"key":"\u0000","value":{"a":[1]}}]}`},
		{0, "BYE"},
		{0, "INFO-MAP a=b&c=%zz"},
		{0, "INFO-PEER \x00\xff"},
		{0, "GET-STATS"},
		{0, "EVENT-TALK"},
		{1, "RSMP null"},
		{2, "7001"},
		{2, "anon-0f1e2d3c"},
		{3, "7001:secret"},
		{3, "7002\x00:x"},
		{4, ""},
		{5, ""},
	}
	for _, s := range seeds {
		f.Add(s.verb, []byte(s.body))
	}
	// An input that names a live session in wait is held like any long-poll:
	// with the default 25 s, one such input stalled the whole run.
	l := startLab(f, func(c *gateway.Config) { c.WaitTimeout = 200 * time.Millisecond }, nil)
	hc := &http.Client{}
	var n atomic.Int64
	do := func(t *testing.T, method, u string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
		if err != nil {
			return 0, "" // a URL the client refuses never reaches the gateway
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	f.Fuzz(func(t *testing.T, verb uint8, body []byte) {
		ssid := legacySignIn(t, l.base, fmt.Sprintf("8%04d", n.Add(1)%10000))
		defer func() {
			// A sign-out with a call holds up to a second for the client's
			// /wait to take the BYE (as a browser's would); one is waiting.
			polled := make(chan struct{})
			go func() {
				defer close(polled)
				if res, err := hc.Get(l.base + "/webrtc/wait?id=" + url.QueryEscape(ssid)); err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
			}()
			signOut(t, l.base, ssid)
			<-polled
		}()
		var code int
		var resp string
		switch fuzzVerbs[int(verb)%len(fuzzVerbs)] {
		case "message":
			code, resp = do(t, http.MethodPost, l.base+"/webrtc/message?"+url.Values{"from": {ssid}, "to": {"5551234"}}.Encode(), body)
		case "message-to-self":
			code, resp = do(t, http.MethodPost, l.base+"/webrtc/message?"+url.Values{"from": {ssid}, "to": {"self"}}.Encode(), body)
		case "sign_in-get":
			code, resp = do(t, http.MethodGet, l.base+"/webrtc/sign_in?"+url.PathEscape(string(body)), nil)
			if code == http.StatusOK {
				if _, id, ok := strings.Cut(strings.TrimSpace(resp), "="); ok {
					defer do(t, http.MethodGet, l.base+"/webrtc/sign_out?id="+url.QueryEscape(id), nil)
				}
			}
		case "sign_in-post":
			code, resp = do(t, http.MethodPost, l.base+"/webrtc/sign_in", body)
			if code == http.StatusOK {
				if _, id, ok := strings.Cut(strings.TrimSpace(resp), "="); ok {
					defer do(t, http.MethodGet, l.base+"/webrtc/sign_out?id="+url.QueryEscape(id), nil)
				}
			}
		case "wait":
			code, resp = do(t, http.MethodGet, l.base+"/webrtc/wait?id="+url.QueryEscape(string(body)), nil)
		case "sign_out":
			code, resp = do(t, http.MethodGet, l.base+"/webrtc/sign_out?id="+url.QueryEscape(string(body)), nil)
		}
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("%d %q", code, resp)
		}
		if code >= 400 && !strings.Contains(resp, "ERROR") {
			t.Fatalf("%d refusal without a Grtc error body: %q", code, resp)
		}
	})
}
