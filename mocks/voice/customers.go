package voice

import (
	"context"
	"sync"
	"time"

	"github.com/cxlab/cxlab/mocks/voice/internal/rtpsim"
)

// Simulated customer numbers (GVP's role); see the package doc.
const (
	simTone       = "+12025550100"
	simPrompt     = "+12025550101"
	simBusy       = "+12025550102"
	simNoAnswer   = "+12025550103"
	simSlowAnswer = "+12025550104"
	simDTMF       = "+12025550105"
	simHangup     = "+12025550106"
	simFail       = "+12025550107"
)

// simBehavior is how one simulated number reacts to a call.
type simBehavior struct {
	failCode    int           // answer with this final status instead (486, 503)
	ringFor     time.Duration // ring this long before answering
	noAnswer    bool          // ring ringFor, then 480
	prompt      bool          // play the speech-like prompt instead of 440 Hz
	digits      string        // RFC 4733 keys sent once media flows
	hangupAfter time.Duration // hang up this long after answering
}

func (s *Server) simBehavior(number string) (simBehavior, bool) {
	switch number {
	case simTone:
		return simBehavior{}, true
	case simPrompt:
		return simBehavior{prompt: true}, true
	case simBusy:
		return simBehavior{failCode: 486}, true
	case simNoAnswer:
		return simBehavior{noAnswer: true, ringFor: s.cfg.NoAnswerTimeout}, true
	case simSlowAnswer:
		return simBehavior{ringFor: s.cfg.SlowAnswerDelay}, true
	case simDTMF:
		return simBehavior{digits: "1234#"}, true
	case simHangup:
		return simBehavior{hangupAfter: s.cfg.HangupAfter}, true
	case simFail:
		return simBehavior{failCode: 503}, true
	}
	return simBehavior{}, false
}

// simCustomer is an answered simulated customer: an RTP endpoint that plays
// its signal and analyses what it hears.
type simCustomer struct {
	s       *Server
	number  string
	ep      *rtpsim.Endpoint
	version uint64

	mu     sync.Mutex
	timer  *time.Timer
	closed bool
}

// dialSim rings a simulated number: onRinging is called when it rings; the
// result is an answered customer, or the SIP status it failed with.
func (s *Server) dialSim(ctx context.Context, number string, onRinging func()) (*simCustomer, int, error) {
	b, ok := s.simBehavior(number)
	if !ok {
		return nil, 404, nil
	}
	if b.failCode != 0 {
		return nil, b.failCode, nil
	}
	if onRinging != nil {
		onRinging()
	}
	if b.ringFor > 0 {
		t := time.NewTimer(b.ringFor)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, 487, ctx.Err()
		}
		if b.noAnswer {
			return nil, 480, nil
		}
	}
	conn, err := rtpsim.Listen(s.cfg.RTPHost, s.cfg.RTPPortMin, s.cfg.RTPPortMax)
	if err != nil {
		return nil, 503, err
	}
	var src rtpsim.Source = rtpsim.NewTone(440)
	if b.prompt {
		src = &rtpsim.Prompt{}
	}
	sc := &simCustomer{s: s, number: number, ep: rtpsim.New(conn, src)}
	if b.digits != "" {
		sc.ep.SendDigits(b.digits)
	}
	return sc, 200, nil
}

// offer is the customer's SDP offer toward an agent.
func (c *simCustomer) offer() []byte {
	c.mu.Lock()
	c.version++
	v := c.version
	c.mu.Unlock()
	return c.ep.SDP(rtpsim.DefaultCodecs(), rtpsim.SendRecv, v)
}

// connect points the customer's media at the agent's SDP answer.
func (c *simCustomer) connect(answer []byte) error {
	m, err := rtpsim.Parse(answer)
	if err != nil {
		return err
	}
	return c.ep.SetRemote(m)
}

// hangupLater arms the "hangs up after N s" behaviour with f as the hang-up.
func (c *simCustomer) hangupLater(f func()) {
	b, _ := c.s.simBehavior(c.number)
	if b.hangupAfter <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.timer = time.AfterFunc(b.hangupAfter, f)
	}
}

func (c *simCustomer) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.ep.Close()
}

// simLeg is the leg of a call whose far end is a simulated customer.
type simLeg struct{ c *simCustomer }

func (l simLeg) reinvite(_ context.Context, sdp []byte) ([]byte, error) {
	m, err := rtpsim.Parse(sdp)
	if err != nil {
		return nil, &statusError{code: 488, reason: "Not Acceptable Here"}
	}
	codecs, err := rtpsim.Answer(m)
	if err != nil {
		return nil, &statusError{code: 488, reason: "Not Acceptable Here"}
	}
	if err := l.c.ep.SetRemote(m); err != nil {
		return nil, &statusError{code: 488, reason: "Not Acceptable Here"}
	}
	l.c.mu.Lock()
	l.c.version++
	v := l.c.version
	l.c.mu.Unlock()
	return l.c.ep.SDP(codecs, m.Direction.Reverse(), v), nil
}

func (l simLeg) info(context.Context, string, []byte) error { return nil }

func (l simLeg) notify(context.Context, string) error { return errNoRemoteCtl }

func (l simLeg) hangup(context.Context) { l.c.close() }
