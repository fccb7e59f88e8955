package gws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// A minimal Bayeux 1.0 server, long-polling transport only, for the Workspace
// notifications (/workspace/v3/notifications, channels /workspace/v3/
// initialization and /workspace/v3/voice). It follows the Bayeux protocol as
// the CometD reference documents it: /meta/handshake, /meta/connect (held
// until there is something to deliver or LongPoll passes), /meta/subscribe,
// /meta/unsubscribe, /meta/disconnect, batches (a JSON array per POST, the
// message type optionally appended to the URL as the CometD JavaScript client
// does), "402::Unknown client" with advice reconnect=handshake. Clients
// authenticate with the WORKSPACE_SESSIONID cookie and may only publish
// nothing: the channels are the server's.

const (
	channelInit  = "/workspace/v3/initialization"
	channelVoice = "/workspace/v3/voice"
)

// maxBatch bounds the messages of one POST; maxClientsPerSession the CometD
// clients of one session (tabs), the oldest dropped first.
const (
	maxBatch             = 64
	maxClientsPerSession = 4
)

type cometIn struct {
	Channel                  string          `json:"channel"`
	ID                       json.RawMessage `json:"id,omitempty"`
	ClientID                 string          `json:"clientId,omitempty"`
	SupportedConnectionTypes []string        `json:"supportedConnectionTypes,omitempty"`
	Subscription             json.RawMessage `json:"subscription,omitempty"`
	Advice                   *struct {
		Timeout *int64 `json:"timeout"`
	} `json:"advice,omitempty"`
}

type cometAdvice struct {
	Reconnect string `json:"reconnect"`
	Interval  int64  `json:"interval"`
	Timeout   int64  `json:"timeout,omitempty"`
}

type cometOut struct {
	Channel                  string          `json:"channel"`
	ID                       json.RawMessage `json:"id,omitempty"`
	ClientID                 string          `json:"clientId,omitempty"`
	Successful               *bool           `json:"successful,omitempty"`
	Error                    string          `json:"error,omitempty"`
	Version                  string          `json:"version,omitempty"`
	SupportedConnectionTypes []string        `json:"supportedConnectionTypes,omitempty"`
	Subscription             json.RawMessage `json:"subscription,omitempty"`
	Advice                   *cometAdvice    `json:"advice,omitempty"`
	Data                     any             `json:"data,omitempty"`
}

// cometClient is one handshaken CometD client of a session.
type cometClient struct {
	id       string
	sess     *wsSession
	subs     map[string]bool
	queue    []cometOut
	wake     chan struct{} // signalled when something is queued
	seen     time.Time
	holding  chan struct{} // closed to end the held /meta/connect; nil when none is held
	connects int
	gone     bool
	// disconnected: gone at its own /meta/disconnect, so that a connect it
	// still holds ends as a real CometD server ends it (successful, advice
	// reconnect none), not as an unknown client, which makes the CometD
	// client abort its disconnect request in flight.
	disconnected bool

	voice     <-chan VoiceEvent // changes at the session's DN, once subscribed and activated
	stopVoice func()
	dnState   string               // the agentState/workMode last sent
	calls     map[string]knownCall // calls shown to this client, by id
}

type knownCall struct {
	vc    VoiceCall
	state string
}

func reply(m *cometIn, ok bool) cometOut {
	return cometOut{Channel: m.Channel, ID: m.ID, ClientID: m.ClientID, Successful: &ok}
}

func replyError(m *cometIn, msg string, advice *cometAdvice) cometOut {
	r := reply(m, false)
	r.Error, r.Advice = msg, advice
	return r
}

// goneReply answers a connect of a client that is gone: one that
// disconnected itself is told not to reconnect; one the server dropped must
// handshake again.
func goneReply(cl *cometClient, m *cometIn) cometOut {
	if cl.disconnected {
		r := reply(m, true)
		r.Advice = &cometAdvice{Reconnect: "none"}
		return r
	}
	return unknownClient(m)
}

func unknownClient(m *cometIn) cometOut {
	return replyError(m, "402::Unknown client", &cometAdvice{Reconnect: "handshake"})
}

// notifications serves one Bayeux batch.
func (w *workspace) notifications(c echo.Context) error {
	raw, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return v3Error(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
		}
		return v3Error(c, http.StatusBadRequest, "unreadable body")
	}
	var msgs []cometIn
	if trimmed := strings.TrimSpace(string(raw)); strings.HasPrefix(trimmed, "{") {
		var one cometIn
		err = json.Unmarshal(raw, &one)
		msgs = []cometIn{one}
	} else {
		err = json.Unmarshal(raw, &msgs)
	}
	if err != nil || len(msgs) == 0 {
		return v3Error(c, http.StatusBadRequest, "body must be a Bayeux message or a JSON array of them")
	}
	if len(msgs) > maxBatch {
		return v3Error(c, http.StatusBadRequest, fmt.Sprintf("at most %d messages per batch", maxBatch))
	}
	ss, ctx := wsSessionOf(c), c.Request().Context()
	var replies []cometOut
	var connect *cometIn
	var connectClient *cometClient
	now := time.Now()
	w.mu.Lock()
	for i := range msgs {
		m := &msgs[i]
		if m.Channel == "/meta/handshake" {
			replies = append(replies, w.handshakeLocked(ss, m, now))
			continue
		}
		if m.Channel == "" {
			replies = append(replies, replyError(m, "400::Bad message: no channel", nil))
			continue
		}
		cl := w.clients[m.ClientID]
		if cl == nil || cl.sess != ss {
			replies = append(replies, unknownClient(m))
			continue
		}
		cl.seen = now
		switch m.Channel {
		case "/meta/connect":
			if connect != nil {
				replies = append(replies, replyError(m, "400::One /meta/connect per batch", nil))
				continue
			}
			connect, connectClient = m, cl
		case "/meta/subscribe", "/meta/unsubscribe":
			replies = append(replies, w.subscribeLocked(ctx, cl, m, m.Channel == "/meta/subscribe"))
		case "/meta/disconnect":
			cl.disconnected = true
			w.dropClientLocked(cl)
			replies = append(replies, reply(m, true))
		default:
			if strings.HasPrefix(m.Channel, "/meta/") {
				replies = append(replies, replyError(m, "400::Unknown meta channel", nil))
			} else {
				replies = append(replies, replyError(m, "403::Publish denied: the Workspace channels are the server's", nil))
			}
		}
	}
	w.mu.Unlock()
	if connect != nil {
		replies = append(replies, w.connect(ctx, connectClient, connect)...)
	}
	return c.JSON(http.StatusOK, replies)
}

func (w *workspace) handshakeLocked(ss *wsSession, m *cometIn, now time.Time) cometOut {
	if !slices.Contains(m.SupportedConnectionTypes, "long-polling") {
		r := replyError(m, "301::Connection types not supported", &cometAdvice{Reconnect: "none"})
		r.SupportedConnectionTypes = []string{"long-polling"}
		return r
	}
	w.sweepLocked(now)
	for len(ss.clients) >= maxClientsPerSession {
		var oldest *cometClient
		for _, cl := range ss.clients {
			if oldest == nil || cl.seen.Before(oldest.seen) {
				oldest = cl
			}
		}
		w.dropClientLocked(oldest)
	}
	cl := &cometClient{id: newID(), sess: ss, subs: map[string]bool{}, wake: make(chan struct{}, 1), seen: now,
		calls: map[string]knownCall{}}
	w.clients[cl.id] = cl
	ss.clients[cl.id] = cl
	r := reply(m, true)
	r.ClientID, r.Version, r.SupportedConnectionTypes = cl.id, "1.0", []string{"long-polling"}
	r.Advice = &cometAdvice{Reconnect: "retry", Timeout: w.cfg.LongPoll.Milliseconds()}
	w.s.log.Debug("cometd handshake", "user", ss.user.UserName)
	return r
}

// subscribeLocked (un)subscribes to one channel or a list of them.
func (w *workspace) subscribeLocked(ctx context.Context, cl *cometClient, m *cometIn, on bool) cometOut {
	var chans []string
	var one string
	if err := json.Unmarshal(m.Subscription, &one); err == nil {
		chans = []string{one}
	} else if err := json.Unmarshal(m.Subscription, &chans); err != nil || len(chans) == 0 {
		return replyError(m, "400::subscription must name a channel", nil)
	}
	for _, ch := range chans {
		if ch != channelInit && ch != channelVoice {
			r := replyError(m, "403::Channel "+ch+" is not emulated (/workspace/v3/initialization and /workspace/v3/voice are)", nil)
			r.Subscription = m.Subscription
			return r
		}
	}
	for _, ch := range chans {
		was := cl.subs[ch]
		cl.subs[ch] = on
		switch {
		case on && !was && ch == channelInit:
			// The session is initialized before any client can handshake, so
			// the completion is delivered on subscription.
			w.enqueueLocked(cl, cometOut{Channel: channelInit, Data: map[string]any{
				"messageType": "WorkspaceInitializationComplete", "state": "Complete",
				"submittedAt": cl.sess.created.UTC().Format(time.RFC3339Nano), "executionTime": 1, "actualWaitTime": 1,
				"data": map[string]any{"user": cl.sess.userObject(), "configuration": cl.sess.configurationObject("")},
			}})
		case on && !was && ch == channelVoice && cl.sess.dn != "":
			w.watchVoiceLocked(ctx, cl)
		case !on && ch == channelVoice:
			w.unwatchVoiceLocked(cl)
		}
	}
	r := reply(m, true)
	r.Subscription = m.Subscription
	return r
}

// connect answers a /meta/connect, holding it until a notification is queued,
// LongPoll passes, a newer connect of the same client arrives, or the caller
// goes away. The first connect of a client, and one asking advice.timeout 0,
// are answered at once.
func (w *workspace) connect(ctx context.Context, cl *cometClient, m *cometIn) []cometOut {
	w.mu.Lock()
	if cl.gone {
		w.mu.Unlock()
		return []cometOut{goneReply(cl, m)}
	}
	if cl.holding != nil {
		close(cl.holding)
	}
	held := make(chan struct{})
	cl.holding = held
	cl.connects++
	w.drainVoiceLocked(cl)
	wait := cl.connects > 1 && len(cl.queue) == 0 && !cl.gone
	if m.Advice != nil && m.Advice.Timeout != nil && *m.Advice.Timeout == 0 {
		wait = false
	}
	voiceCh, wake := cl.voice, cl.wake
	w.mu.Unlock()

	var ev VoiceEvent
	var got, closed bool
	if wait {
		t := time.NewTimer(w.cfg.LongPoll)
		defer t.Stop()
		select {
		case <-wake:
		case ev, got = <-voiceCh:
			closed = !got
		case <-held:
		case <-t.C:
		case <-ctx.Done():
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	superseded := cl.holding != held
	if !superseded {
		cl.holding = nil
	}
	cl.seen = time.Now()
	if voiceCh != nil && voiceCh == cl.voice {
		switch {
		case got:
			w.voiceEventLocked(ctx, cl, ev)
		case closed:
			w.s.log.Warn("cometd client fell behind Voice's events; it must handshake again", "user", cl.sess.user.UserName)
			w.dropClientLocked(cl)
		}
	}
	if cl.gone {
		return []cometOut{goneReply(cl, m)}
	}
	r := reply(m, true)
	r.Advice = &cometAdvice{Reconnect: "retry", Timeout: w.cfg.LongPoll.Milliseconds()}
	if superseded || ctx.Err() != nil {
		return []cometOut{r}
	}
	w.drainVoiceLocked(cl)
	if cl.gone {
		return []cometOut{unknownClient(m)}
	}
	out := append(cl.queue, r)
	cl.queue = nil
	return out
}

// enqueueLocked queues a notification; a client QueueLimit behind is dropped
// (its next request gets 402 and it handshakes again).
func (w *workspace) enqueueLocked(cl *cometClient, msg cometOut) {
	if cl.gone {
		return
	}
	if len(cl.queue) >= w.cfg.QueueLimit {
		w.s.log.Warn("cometd client queue full; it must handshake again", "user", cl.sess.user.UserName, "limit", w.cfg.QueueLimit)
		w.dropClientLocked(cl)
		return
	}
	cl.queue = append(cl.queue, msg)
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

func (w *workspace) dropClientLocked(cl *cometClient) {
	if cl.gone {
		return
	}
	cl.gone = true
	w.unwatchVoiceLocked(cl)
	cl.queue = nil
	if cl.holding != nil {
		close(cl.holding)
		cl.holding = nil
	}
	delete(w.clients, cl.id)
	delete(cl.sess.clients, cl.id)
}

// watchVoiceLocked (re)starts the client's watch of the session's DN and
// queues the DN's state and its calls: a fresh picture after activation or a
// new handshake.
func (w *workspace) watchVoiceLocked(ctx context.Context, cl *cometClient) {
	w.unwatchVoiceLocked(cl)
	ss := cl.sess
	// Watch first, then read: a change in between arrives twice, never not at all.
	cl.voice, cl.stopVoice = w.voice.Watch(ss.cc.ID, ss.dn, w.cfg.QueueLimit)
	cl.dnState, cl.calls = "", map[string]knownCall{}
	if d, err := w.voice.AgentDN(ctx, ss.cc.ID, ss.dn); err == nil {
		w.voiceEventLocked(ctx, cl, VoiceEvent{DN: &d})
	} else {
		w.s.log.Warn("voice agent state unavailable", "dn", ss.dn, "err", err)
	}
	calls, err := w.voice.CallsAt(ctx, ss.cc.ID, ss.dn)
	if err != nil {
		w.s.log.Warn("voice calls unavailable", "dn", ss.dn, "err", err)
	}
	for i := range calls {
		w.callEventLocked(cl, calls[i])
	}
}

func (w *workspace) unwatchVoiceLocked(cl *cometClient) {
	if cl.stopVoice != nil {
		cl.stopVoice()
	}
	cl.voice, cl.stopVoice = nil, nil
}

// drainVoiceLocked takes the changes already waiting on the client's watch.
func (w *workspace) drainVoiceLocked(cl *cometClient) {
	for !cl.gone && cl.voice != nil {
		select {
		case ev, ok := <-cl.voice:
			if !ok {
				w.s.log.Warn("cometd client fell behind Voice's events; it must handshake again", "user", cl.sess.user.UserName)
				w.dropClientLocked(cl)
				return
			}
			w.voiceEventLocked(context.Background(), cl, ev)
		default:
			return
		}
	}
}

// voiceEventLocked turns one Voice change into DnStateChanged or
// CallStateChanged notifications, sending each state once.
func (w *workspace) voiceEventLocked(ctx context.Context, cl *cometClient, ev VoiceEvent) {
	if ev.Call != nil {
		w.callEventLocked(cl, *ev.Call)
		return
	}
	if ev.DN == nil {
		return
	}
	dn := dnObject(*ev.DN)
	key := fmt.Sprint(dn["agentState"], "/", dn["agentWorkMode"])
	if key != cl.dnState {
		cl.dnState = key
		w.enqueueLocked(cl, cometOut{Channel: channelVoice, Data: map[string]any{"messageType": "DnStateChanged", "dn": dn}})
	}
	// A call Voice took back from this DN (not answered in time) goes on
	// ringing elsewhere: the agent state changes, and the call is released
	// here.
	if len(cl.calls) == 0 {
		return
	}
	live, err := w.voice.CallsAt(ctx, cl.sess.cc.ID, cl.sess.dn)
	if err != nil {
		return
	}
	for id, k := range cl.calls {
		if !slices.ContainsFunc(live, func(vc VoiceCall) bool { return vc.ID == id }) {
			vc := k.vc
			vc.State = "ended"
			w.callEventLocked(cl, vc)
		}
	}
}

func (w *workspace) callEventLocked(cl *cometClient, vc VoiceCall) {
	dn := cl.sess.dn
	st := wsCallState(vc, dn)
	prev, known := cl.calls[vc.ID]
	if st == "" || (st == "Released" && !known) {
		return
	}
	if known && prev.state == st {
		// Same state: only new user data (an INFO-MAP, ORS) is news.
		if maps.Equal(prev.vc.UserData, vc.UserData) {
			return
		}
		cl.calls[vc.ID] = knownCall{vc: vc, state: st}
		w.enqueueLocked(cl, cometOut{Channel: channelVoice, Data: map[string]any{
			"messageType": "CallStateChanged", "notificationType": "AttachedDataChanged", "call": callObject(vc, dn, st)}})
		return
	}
	if st == "Released" {
		delete(cl.calls, vc.ID)
	} else {
		cl.calls[vc.ID] = knownCall{vc: vc, state: st}
	}
	w.enqueueLocked(cl, cometOut{Channel: channelVoice, Data: map[string]any{
		"messageType": "CallStateChanged", "notificationType": "StateChange", "call": callObject(vc, dn, st)}})
}
