package gateway_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// pollResult is what one /wait answered.
type pollResult struct {
	status int
	peer   string
	body   string
	err    error
}

// poll opens a /wait of session ssid; its answer comes on the channel.
func poll(ctx context.Context, base, ssid string) <-chan pollResult {
	out := make(chan pollResult, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/webrtc/wait?id="+url.QueryEscape(ssid), nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		defer res.Body.Close()
		out <- pollResult{status: res.StatusCode, peer: res.Header.Get("Pragma"), body: readAll(res.Body)}
	}()
	return out
}

// TestNewerWaitReplacesTheOlder: a client that polls again while its
// previous /wait still hangs (it gave up on that connection after a network
// error, as the JS library does) gets the next message on the new poll; the
// old one is answered at once with the empty 200 of a poll with nothing to
// say, instead of taking the message to a connection nobody reads.
func TestNewerWaitReplacesTheOlder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := startLab(t, nil, nil) // the hold (55 s) outlasts the test: only replacement ends the first poll
	ssid := legacySignIn(t, l.base, "7003")
	l.voice.waitReg(t)

	stale := poll(ctx, l.base, ssid)
	eventually(t, 10*time.Second, "the first /wait is held", func() bool {
		snap := l.gw.Snapshot()
		return len(snap.Sessions) == 1 && snap.Sessions[0].Polling
	})
	fresh := poll(ctx, l.base, ssid)
	select {
	case r := <-stale:
		if r.err != nil || r.status != http.StatusOK || r.body != "" {
			t.Fatalf("replaced /wait answered %d %q (%v), want 200 with an empty body", r.status, r.body, r.err)
		}
	case <-time.After(5 * time.Second): // far short of the 55 s hold
		t.Fatal("the older /wait still hangs after a newer one arrived")
	}

	// An incoming call: its OFFER goes to the newer poll.
	target, _ := l.voice.binding("7003")
	d, err := l.voice.clients.WriteInvite(ctx, invite(target, "7003", newRTPPeer(t, 440).sdp("sendrecv")))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	select {
	case r := <-fresh:
		if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"messageType":"OFFER"`) {
			t.Fatalf("newer /wait answered %d %q (%v), want the OFFER", r.status, r.body, r.err)
		}
	case <-ctx.Done():
		t.Fatal("the OFFER did not reach the newer /wait")
	}
	signOut(t, l.base, ssid)
}
