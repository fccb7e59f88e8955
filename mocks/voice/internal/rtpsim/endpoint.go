package rtpsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/cxlab/cxlab/appliance/media"
)

// Listen opens a UDP socket on host within [minPort, maxPort]; 0/0 lets the
// kernel choose. Even ports are preferred, as RTP convention asks.
func Listen(host string, minPort, maxPort int) (*net.UDPConn, error) {
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("rtp listen: bad host %q", host)
	}
	if minPort == 0 && maxPort == 0 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
		if err != nil {
			return nil, fmt.Errorf("rtp listen: %w", err)
		}
		return c, nil
	}
	n := maxPort - minPort + 1
	start := rand.IntN(n)
	var lastErr error
	for i := range n {
		p := minPort + (start+i)%n
		if p%2 == 1 && n > 1 {
			continue
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: p})
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("rtp listen: no free port in %d-%d: %w", minPort, maxPort, lastErr)
}

// Endpoint is one RTP stream: a sender paced at 20 ms and a receiver feeding
// an Analyzer. Methods are safe for concurrent use.
type Endpoint struct {
	conn *net.UDPConn
	an   Analyzer

	mu      sync.Mutex
	remote  *net.UDPAddr
	law     media.Law
	audioPT uint8
	dtmfPT  uint8
	hasDTMF bool
	send    bool
	src     Source
	digits  []byte

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New starts an endpoint on conn playing src; it sends nothing until SetRemote.
func New(conn *net.UDPConn, src Source) *Endpoint {
	if src == nil {
		src = Silence{}
	}
	e := &Endpoint{conn: conn, src: src, done: make(chan struct{})}
	e.wg.Add(2)
	go e.readLoop()
	go e.sendLoop()
	return e
}

// LocalAddr is the RTP address to put in SDP.
func (e *Endpoint) LocalAddr() *net.UDPAddr { return e.conn.LocalAddr().(*net.UDPAddr) }

// SDP builds this endpoint's SDP with the given codecs and direction.
func (e *Endpoint) SDP(codecs []Codec, dir Direction, version uint64) []byte {
	a := e.LocalAddr()
	return Build(a.IP, a.Port, codecs, dir, uint64(a.Port), version)
}

// SetRemote points the sender at the peer described by m (its address,
// first G.711 codec, telephone-event type and direction).
func (e *Endpoint) SetRemote(m Media) error {
	c, ok := m.Audio()
	if !ok {
		return fmt.Errorf("set remote: %w", ErrNoAudio)
	}
	law, err := media.LawFromPayloadType(c.PT)
	if err != nil {
		law = media.PCMU
		if c.Name == "PCMA" {
			law = media.PCMA
		}
	}
	dpt, hasDTMF := m.DTMF()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remote = m.Addr()
	e.law, e.audioPT, e.dtmfPT, e.hasDTMF = law, c.PT, dpt, hasDTMF
	e.send = m.Port != 0 && (m.Direction == SendRecv || m.Direction == RecvOnly || m.Direction == "")
	return nil
}

// SetSending pauses (hold) or resumes the sender without forgetting the peer.
func (e *Endpoint) SetSending(on bool) {
	e.mu.Lock()
	e.send = on && e.remote != nil
	e.mu.Unlock()
}

// SetSource changes what the endpoint plays.
func (e *Endpoint) SetSource(src Source) {
	e.mu.Lock()
	e.src = src
	e.mu.Unlock()
}

// SendDigits queues RFC 4733 keys (0-9 * # A-D); unknown characters are dropped.
func (e *Endpoint) SendDigits(s string) {
	e.mu.Lock()
	for i := 0; i < len(s); i++ {
		if _, err := media.DigitEvent(s[i]); err == nil {
			e.digits = append(e.digits, s[i])
		}
	}
	e.mu.Unlock()
}

// Analysis returns what the endpoint has heard and sent so far.
func (e *Endpoint) Analysis() Analysis { return e.an.Snapshot() }

// Close stops both loops and the socket; it is idempotent.
func (e *Endpoint) Close() {
	e.once.Do(func() {
		close(e.done)
		_ = e.conn.Close()
	})
	e.wg.Wait()
}

func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	buf := make([]byte, 1500)
	pcm := make([]int16, 0, 320)
	var p rtp.Packet
	var dtmf media.DTMFReceiver
	for {
		n, err := e.conn.Read(buf) // the source address is not needed; ReadFromUDP allocates it
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		e.an.Packet(p.SequenceNumber)
		switch p.PayloadType {
		case 0, 8:
			law := media.PCMU
			if p.PayloadType == 8 {
				law = media.PCMA
			}
			pcm = media.DecodeG711(law, p.Payload, pcm)
			e.an.Audio(law.String(), pcm)
		default:
			if len(p.Payload) == 4 {
				if d, ok, err := dtmf.PushRTP(&p); err == nil && ok {
					e.an.Digit(d)
				}
			}
		}
	}
}

func (e *Endpoint) sendLoop() {
	defer e.wg.Done()
	// Every endpoint paces on the same 20 ms grid (wall clock modulo 20 ms):
	// with many simulated calls the runtime then wakes once per frame for all
	// of them rather than once per call at scattered times.
	const period = 20 * time.Millisecond
	if wait := (period - time.Duration(time.Now().UnixNano())%period) % period; wait > 0 {
		w := time.NewTimer(wait)
		select {
		case <-e.done:
			w.Stop()
			return
		case <-w.C:
		}
	}
	t := time.NewTicker(period)
	defer t.Stop()
	ssrc := rand.Uint32()
	seq := uint16(rand.Uint32())
	ts := rand.Uint32()
	frame := make([]int16, FrameSamples)
	payload := make([]byte, FrameSamples)
	out := make([]byte, 0, 1500)
	sender, _ := media.NewDTMFSender(media.DTMFSenderConfig{})
	var ev []media.DTMFPacket
	evTick, gap := 0, 0
	first := true
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		e.mu.Lock()
		remote, send, src := e.remote, e.send, e.src
		law, apt, dpt, hasDTMF := e.law, e.audioPT, e.dtmfPT, e.hasDTMF
		if ev == nil && gap == 0 && len(e.digits) > 0 && send && hasDTMF {
			d := e.digits[0]
			e.digits = e.digits[1:]
			ev, _ = sender.Packets(nil, d, ts)
			evTick = 0
		}
		e.mu.Unlock()
		if !send || remote == nil {
			continue
		}
		write := func(p *rtp.Packet) {
			b, err := p.MarshalTo(out[:cap(out)])
			if err == nil {
				if _, err := e.conn.WriteToUDP(out[:b], remote); err == nil {
					e.an.Sent()
				}
			}
		}
		if ev != nil {
			due := time.Duration(evTick) * 20 * time.Millisecond
			for len(ev) > 0 && ev[0].SendAt <= due {
				write(ev[0].RTP(dpt, ssrc, seq))
				seq++
				ev = ev[1:]
			}
			evTick++
			if len(ev) == 0 {
				ev, gap = nil, 3
				ts += sender.Span()
			}
			continue
		}
		if gap > 0 {
			gap--
		}
		src.Fill(frame)
		payload = media.EncodeG711(law, frame, payload)
		write(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: first, PayloadType: apt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: payload})
		first = false
		seq++
		ts += FrameSamples
	}
}
