package gateway

import (
	"context"
	"sync"
	"time"
)

// DN is a directory number, the agent's SIP identity on the Voice side.
type DN string

// SSID is the server-side id of a signed-in client, returned by sign_in and
// presented on every /wait, /message and /sign_out.
type SSID string

// maxQueued bounds a client's undelivered messages: a client that stops
// polling must not grow the gateway's memory.
const maxQueued = 32

// outMsg is one message waiting for the client's next /wait.
type outMsg struct {
	peer string
	body string
}

// session is one signed-in client: one registered DN, or an anonymous
// caller (registered nowhere, it can only place calls).
type session struct {
	id        SSID
	anonymous bool
	user      string
	ccid      string
	dn        DN
	domain    string
	token     string // Bearer for REGISTER refresh and unregister (token sign-in)
	password  string // SIP digest password (legacy DN sign-in)
	signedIn  time.Time

	notify chan struct{} // capacity 1: "queue changed or session closed"
	done   chan struct{}

	mu         sync.Mutex
	queue      []outMsg
	lastPoll   time.Time // wall time of the last /wait start or end
	polling    int
	poll       chan struct{} // the newest /wait's; closed when a newer one takes over
	closed     bool
	call       *call
	registered time.Time
	offerSeq   int
}

func newSession(id SSID, now time.Time) *session {
	return &session{id: id, signedIn: now, lastPoll: time.Now(), notify: make(chan struct{}, 1), done: make(chan struct{})}
}

// key is the registration key "dn@domain".
func (s *session) key() string { return string(s.dn) + "@" + s.domain }

// push queues a message for the client; the oldest is dropped when full.
func (s *session) push(peer, body string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= maxQueued {
		s.queue = s.queue[1:]
	}
	s.queue = append(s.queue, outMsg{peer: peer, body: body})
	s.mu.Unlock()
	s.wake()
}

// wake tells the /wait that the queue changed.
func (s *session) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// unshift puts back a message a /wait took but could not deliver, ahead of
// the others.
func (s *session) unshift(m outMsg) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= maxQueued {
		s.queue = s.queue[:len(s.queue)-1]
	}
	s.queue = append([]outMsg{m}, s.queue...)
	s.mu.Unlock()
	s.wake()
}

// wait returns the next message, or false when timeout passes first, the
// request goes away, the session closes or a newer /wait of the session
// replaces this one. Only the newest /wait takes messages: an older one
// may hang on a connection the client gave up (it re-polls after a network
// error), and a message written there would be lost.
func (s *session) wait(ctx context.Context, timeout time.Duration) (outMsg, bool) {
	s.touch(1)
	defer s.touch(-1)
	mine := make(chan struct{})
	s.mu.Lock()
	if s.poll != nil {
		close(s.poll)
	}
	s.poll = mine
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.poll == mine {
			s.poll = nil
		}
		s.mu.Unlock()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		if s.poll != mine {
			s.mu.Unlock()
			s.wake() // the notice this one took may be the newer /wait's
			return outMsg{}, false
		}
		if len(s.queue) > 0 {
			m := s.queue[0]
			s.queue[0] = outMsg{}
			s.queue = s.queue[1:]
			more := len(s.queue) > 0
			s.mu.Unlock()
			if more {
				s.wake()
			}
			return m, true
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-mine:
			s.wake()
			return outMsg{}, false
		case <-s.done:
			return outMsg{}, false
		case <-t.C:
			return outMsg{}, false
		case <-ctx.Done():
			return outMsg{}, false
		}
	}
}

// touch records polling activity: a client with a /wait open is alive.
func (s *session) touch(delta int) {
	s.mu.Lock()
	s.polling += delta
	s.lastPoll = time.Now()
	s.mu.Unlock()
}

// idleSince reports whether the client has neither an open /wait nor polled
// since d ago.
func (s *session) idleFor(d time.Duration, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polling == 0 && now.Sub(s.lastPoll) > d
}

// currentCall returns the session's call, if any. A call that is ending
// (its teardown runs for a while after the far end was told) is no longer
// the session's: an OFFER sent right after a hang-up starts a new call
// instead of being taken for a re-offer of the ending one and lost.
func (s *session) currentCall() *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.call != nil && s.call.hasEnded() {
		return nil
	}
	return s.call
}

// claimCall makes c the session's call unless it already has one (an
// ending call does not count).
func (s *session) claimCall(c *call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.call != nil && !s.call.hasEnded()) {
		return false
	}
	s.call = c
	return true
}

// releaseCall forgets c if it is still the current call.
func (s *session) releaseCall(c *call) {
	s.mu.Lock()
	if s.call == c {
		s.call = nil
	}
	s.mu.Unlock()
}

// close marks the session closed and returns its call; false if already closed.
// drain waits, at most d, until every queued message has been handed to a
// /wait, so a BYE pushed just before sign-out reaches the browser.
func (s *session) drain(ctx context.Context, d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		empty := len(s.queue) == 0 || s.closed
		s.mu.Unlock()
		if empty {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

func (s *session) close() (*call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	s.closed = true
	close(s.done)
	return s.call, true
}

// nextOfferID returns the next gateway-side ROAP session id (102, 103, ...),
// the numbering the JS library uses.
func (s *session) nextOfferID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offerSeq++
	return 101 + s.offerSeq
}
