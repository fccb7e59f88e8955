package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"github.com/cxlab/cxlab/appliance/clock"
)

// gesCookie names the /ges/ UI session cookie.
const gesCookie = "GES_UI_SESSION"

// session is a signed-in /ges/ user. It ends after the configured idle time
// (20 minutes by default, seed 004); every request renews it.
type session struct {
	id         string
	userName   string
	tenant     string // contact center id
	supervisor bool   // may create, cancel, recreate and export
	token      string
	gauthBase  string // where token's GAuth session is signed out when this one ends
	lastSeen   time.Time
	csrf       string
}

// sessions is the in-memory session table. Losing it on restart only asks
// users to sign in again.
type sessions struct {
	clk  clock.Clock
	idle time.Duration
	// ended is told of each session that ended by itself (idle), in a
	// goroutine of its own; nil: nobody is.
	ended func(session)
	mu    sync.Mutex
	m     map[string]*session
}

func newSessions(clk clock.Clock, idle time.Duration) *sessions {
	return &sessions{clk: clk, idle: idle, m: map[string]*session{}}
}

// create stores a new session and returns it.
func (s *sessions) create(userName, tenant, token, gauthBase string, supervisor bool) *session {
	ss := &session{id: randomString(32), userName: userName, tenant: tenant, token: token, gauthBase: gauthBase,
		supervisor: supervisor, lastSeen: s.clk.Now(), csrf: randomString(24)}
	s.mu.Lock()
	s.sweepLocked()
	s.m[ss.id] = ss
	s.mu.Unlock()
	return ss
}

// touch returns the live session of id and, if renew, renews it; false
// when unknown or idle too long. The list's background refresh does not
// renew: a tab left open is idle. A session found idle too long is returned
// as expired (ok false), for its caller to end.
func (s *sessions) touch(id string, renew bool) (ss session, ok bool, expired *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, found := s.m[id]
	if !found {
		return session{}, false, nil
	}
	now := s.clk.Now()
	if now.Sub(cur.lastSeen) >= s.idle {
		delete(s.m, id)
		return session{}, false, cur
	}
	if renew {
		cur.lastSeen = now
	}
	return *cur, true, nil
}

// drop removes the session of id and returns it (nil if unknown).
func (s *sessions) drop(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[id]
	delete(s.m, id)
	return ss
}

func (s *sessions) sweepLocked() {
	now := s.clk.Now()
	for id, ss := range s.m {
		if now.Sub(ss.lastSeen) >= s.idle {
			delete(s.m, id)
			if s.ended != nil {
				go s.ended(*ss)
			}
		}
	}
}

// pendingLogin is an authorization request on its way through GAuth.
type pendingLogin struct {
	verifier string
	returnTo string
	created  time.Time
}

// pendingLogins keys authorization requests by their state parameter.
type pendingLogins struct {
	clk clock.Clock
	mu  sync.Mutex
	m   map[string]pendingLogin
}

// pendingTTL bounds how long a user may take on the GAuth login page.
const pendingTTL = 10 * time.Minute

// maxPending bounds the table against a flood of unfinished logins.
const maxPending = 10000

func newPendingLogins(clk clock.Clock) *pendingLogins {
	return &pendingLogins{clk: clk, m: map[string]pendingLogin{}}
}

// begin records a login and returns its state and PKCE S256 challenge.
func (p *pendingLogins) begin(returnTo string) (state, challenge string) {
	state, verifier := randomString(24), randomString(48)
	sum := sha256.Sum256([]byte(verifier))
	now := p.clk.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range p.m {
		if now.Sub(v.created) > pendingTTL {
			delete(p.m, k)
		}
	}
	if len(p.m) >= maxPending {
		for k := range p.m {
			delete(p.m, k)
			break
		}
	}
	p.m[state] = pendingLogin{verifier: verifier, returnTo: returnTo, created: now}
	return state, base64.RawURLEncoding.EncodeToString(sum[:])
}

// finish consumes the login of state (once).
func (p *pendingLogins) finish(state string) (pendingLogin, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.m[state]
	delete(p.m, state)
	if !ok || p.clk.Now().Sub(pl.created) > pendingTTL {
		return pendingLogin{}, false
	}
	return pl, true
}

// randomString returns n random bytes, base64url encoded.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
