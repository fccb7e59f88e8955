package gateway

import (
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlab/cxlab/appliance/gateway/internal/rtc"
	"github.com/cxlab/cxlab/appliance/media"
)

// bridge moves one call's audio between the browser track and the SIP RTP
// socket. Each side has a jitter buffer; one 20 ms ticker plays both out, so
// the transcoder's two directions each stay on one goroutine.
type bridge struct {
	c            *call
	xcode        *media.Transcoder // nil: G.711 pass-through (law-to-law at most)
	browserLaw   media.Law
	browserClock uint32
	sipLaw       media.Law
	sipEventPT   uint8
	conn         *net.UDPConn
	fd           int32 // conn's descriptor for the pacer's batches; -1 when unknown
	track        *rtc.Track
	jbB, jbS     *media.JitterBuffer
	anaB, anaS   *media.Analyzer // what the browser said / what SIP said
	sipSwept     bool            // the sweep reads the RTP socket; false: readSIP's goroutine does

	// The RTP socket's one reader (the sweep or readSIP) owns these.
	sipPkt  rtp.Packet
	sipDTMF media.DTMFReceiver

	stopCh   chan struct{}
	stopOnce sync.Once
	readMu   sync.Mutex
	reading  *webrtc.TrackRemote
	wg       sync.WaitGroup

	mu        sync.Mutex     // SIP-side sender state, shared by the ticker and the event relay
	remote    netip.AddrPort // invalid until known
	sipSeq    uint16
	sipTS     uint32
	sipSSRC   uint32
	evBrowser uint32 // browser event start timestamp being relayed
	evSIPTS   uint32

	bmu       sync.Mutex // browser-side sender state
	brSeq     uint16
	brTS      uint32
	evSIP     uint32
	evBrTS    uint32
	evSIPSeen bool

	// counters read by snapshots
	pktFromBrowser, pktToBrowser, pktFromSIP, pktToSIP atomic.Uint64
	digitsToSIP, digitsToBrowser                       atomic.Value // string
	jitB, jitS                                         jitterEstimate
	lossB, lossS                                       streamLoss
	errors                                             atomic.Uint64
}

// newBridge prepares the media of c; the caller holds c.mu.
func newBridge(c *call, browserMime string, sm sipMedia) *bridge {
	b := &bridge{c: c, sipLaw: sm.law, sipEventPT: sm.eventPT, conn: c.rtpConn, track: c.track, remote: addrPort(sm.addr),
		stopCh: make(chan struct{}), sipSSRC: rand.Uint32(), sipSeq: uint16(rand.Uint32()), sipTS: rand.Uint32(),
		brSeq: uint16(rand.Uint32()), brTS: rand.Uint32()}
	b.fd = -1
	if rc, err := b.conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { b.fd = int32(fd) }) //nolint:gosec // a descriptor fits
	}
	b.sipSwept = sweepReadsSIP(b.fd)
	b.digitsToSIP.Store("")
	b.digitsToBrowser.Store("")
	b.browserClock = media.G711ClockRate
	switch {
	case strings.EqualFold(browserMime, webrtc.MimeTypeOpus):
		b.browserClock = media.OpusClockRate
		t, err := media.NewTranscoder(sm.law, c.s.cfg.Opus)
		if err == nil {
			b.xcode = t
		} else {
			c.s.log.Error("transcoder unavailable", "err", err)
		}
	case strings.EqualFold(browserMime, webrtc.MimeTypePCMA):
		b.browserLaw = media.PCMA
	default:
		b.browserLaw = media.PCMU
	}
	jc := media.JitterConfig{Depth: c.s.cfg.JitterDepth}
	b.jbB, _ = media.NewJitterBuffer(jc) // the config is valid by construction
	b.jbS, _ = media.NewJitterBuffer(jc)
	if *c.s.cfg.AnalyzeAudio {
		b.anaB = media.NewAnalyzer(media.AnalyzerConfig{})
		b.anaS = media.NewAnalyzer(media.AnalyzerConfig{})
	}
	return b
}

func (b *bridge) start() {
	if !b.sipSwept {
		b.wg.Add(1)
		go b.readSIP()
	}
	b.c.s.pacer.add(b)
}

// stop ends playout; once it returns, no frame of this bridge is being played.
func (b *bridge) stop() {
	b.stopOnce.Do(func() { close(b.stopCh) })
	b.c.s.pacer.remove(b)
}

// wait returns when every media goroutine has exited (after the PC and the
// socket were closed).
func (b *bridge) wait() { b.wg.Wait() }

// finish adds the call's losses to the gateway counters.
func (b *bridge) finish() {
	b.c.s.met.rtpLost.Add(float64(b.lossB.lost() + b.lossS.lost()))
	b.c.s.met.rtpErrors.Add(float64(b.errors.Load()))
}

func (b *bridge) setRemote(a *net.UDPAddr) {
	b.mu.Lock()
	b.remote = addrPort(a)
	b.mu.Unlock()
}

// addrPort converts an SDP address for the udp4 socket (IPv4 in its 4-byte
// form, so it compares equal to what ReadFromUDPAddrPort reports).
func addrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// readBrowserOnce starts reading a browser track unless it is already read;
// renegotiation (hold/resume) may hand a new track for the same transceiver.
func (b *bridge) readBrowserOnce(tr *webrtc.TrackRemote) {
	b.readMu.Lock()
	defer b.readMu.Unlock()
	if b.reading == tr {
		return
	}
	b.reading = tr
	b.wg.Add(1)
	go b.readBrowser(tr)
}

func (b *bridge) readBrowser(tr *webrtc.TrackRemote) {
	defer b.wg.Done()
	buf := make([]byte, 1500)
	var p rtp.Packet
	var recv media.DTMFReceiver
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			b.errors.Add(1)
			continue
		}
		b.pktFromBrowser.Add(1)
		b.lossB.update(p.SSRC, p.SequenceNumber)
		if strings.EqualFold(tr.Codec().MimeType, rtc.MimeEvent) {
			if d, ok, _ := recv.PushRTP(&p); ok {
				b.digitsToSIP.Store(b.digitsToSIP.Load().(string) + string(d))
			}
			b.relayEventToSIP(&p, tr.Codec().ClockRate)
			continue
		}
		b.jitB.update(p.SSRC, p.Timestamp, b.browserClock, time.Now(), b.c.s.met.clientJitter)
		if b.jbB.PushRTP(&p) != nil {
			b.errors.Add(1)
		}
	}
}

// relayEventToSIP re-times a browser telephone-event onto the SIP stream.
func (b *bridge) relayEventToSIP(p *rtp.Packet, clock uint32) {
	if b.sipEventPT == 0 {
		return
	}
	var ev media.TelephoneEvent
	if ev.Unmarshal(p.Payload) != nil {
		b.errors.Add(1)
		return
	}
	ev = ev.Rescale(clock, media.G711ClockRate)
	b.mu.Lock()
	if p.Timestamp != b.evBrowser || b.evSIPTS == 0 {
		// A new event starts at the current audio time, or later when the
		// audio stalled (browsers mute audio during events).
		start := b.sipTS
		if b.evSIPTS != 0 {
			if alt := b.evSIPTS + uint32(uint64(p.Timestamp-b.evBrowser)*media.G711ClockRate/uint64(clock)); int32(alt-start) > 0 {
				start = alt
			}
		}
		b.evBrowser, b.evSIPTS = p.Timestamp, start
	}
	if end := b.evSIPTS + uint32(ev.Duration); int32(end-b.sipTS) > 0 {
		b.sipTS = end // audio resumes after the event
	}
	b.sipSeq++
	h := rtp.Header{Version: 2, Marker: p.Marker, PayloadType: b.sipEventPT, SequenceNumber: b.sipSeq,
		Timestamp: b.evSIPTS, SSRC: b.sipSSRC}
	remote := b.remote
	b.mu.Unlock()
	var raw [rtpHeaderSize + 4]byte // events are rare; the pacer owns the audio buffer
	b.sendSIP(nil, remote, &h, ev.Marshal(), raw[:])
}

func (b *bridge) readSIP() {
	defer b.wg.Done()
	buf := make([]byte, 1500)
	for {
		// ReadFromUDPAddrPort: ReadFromUDP would allocate an address per packet.
		n, from, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		b.fromSIP(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), time.Now())
	}
}

// fromSIP takes one datagram from the SIP side, which arrived at at. Only
// the socket's one reader calls it.
func (b *bridge) fromSIP(data []byte, from netip.AddrPort, at time.Time) {
	p := &b.sipPkt
	if p.Unmarshal(data) != nil {
		b.errors.Add(1)
		return
	}
	b.pktFromSIP.Add(1)
	b.lossS.update(p.SSRC, p.SequenceNumber)
	b.mu.Lock()
	if b.remote != from {
		b.remote = from // symmetric RTP: answer where the peer really sends from
	}
	b.mu.Unlock()
	switch {
	case b.sipEventPT != 0 && p.PayloadType == b.sipEventPT:
		if d, ok, _ := b.sipDTMF.PushRTP(p); ok {
			b.digitsToBrowser.Store(b.digitsToBrowser.Load().(string) + string(d))
		}
		b.relayEventToBrowser(p)
	case p.PayloadType == 0 || p.PayloadType == 8:
		if law, _ := media.LawFromPayloadType(p.PayloadType); law != b.sipLaw {
			p.Payload = media.TranscodeG711(law, b.sipLaw, p.Payload, nil)
		}
		b.jitS.update(p.SSRC, p.Timestamp, media.G711ClockRate, at, b.c.s.met.gatewayJitter)
		if b.jbS.PushRTP(p) != nil {
			b.errors.Add(1)
		}
	default:
		b.errors.Add(1)
	}
}

// relayEventToBrowser re-times a SIP telephone-event onto the browser track.
func (b *bridge) relayEventToBrowser(p *rtp.Packet) {
	_, clock, ok := b.track.Events()
	if !ok {
		return
	}
	var ev media.TelephoneEvent
	if ev.Unmarshal(p.Payload) != nil {
		b.errors.Add(1)
		return
	}
	ev = ev.Rescale(media.G711ClockRate, clock)
	b.bmu.Lock()
	if !b.evSIPSeen || p.Timestamp != b.evSIP {
		start := b.brTS
		if b.evSIPSeen {
			if alt := b.evBrTS + uint32(uint64(p.Timestamp-b.evSIP)*uint64(clock)/media.G711ClockRate); int32(alt-start) > 0 {
				start = alt
			}
		}
		b.evSIP, b.evBrTS, b.evSIPSeen = p.Timestamp, start, true
	}
	if end := b.evBrTS + uint32(ev.Duration); int32(end-b.brTS) > 0 {
		b.brTS = end
	}
	b.brSeq++
	h := rtp.Header{Version: 2, Marker: p.Marker, SequenceNumber: b.brSeq, Timestamp: b.evBrTS}
	b.bmu.Unlock()
	if b.track.WriteEvent(&h, ev.Marshal()) != nil {
		b.errors.Add(1)
	}
}

// rtpHeaderSize is the size of the RTP headers the gateway writes (no CSRC,
// no extension).
const rtpHeaderSize = 12

// sendSIP marshals one packet into buf (which must hold the header and the
// payload) and queues it on the sweep's batch sc, or sends it at once when sc
// is nil or cannot take it.
func (b *bridge) sendSIP(sc *frameScratch, remote netip.AddrPort, h *rtp.Header, payload []byte, buf []byte) {
	if !remote.IsValid() {
		return
	}
	pkt := rtp.Packet{Header: *h, Payload: payload}
	n, err := pkt.MarshalTo(buf)
	if err != nil {
		b.errors.Add(1)
		return
	}
	if sc != nil && b.fd >= 0 {
		if sc.sip.Full() {
			sc.flushSIP()
		}
		if i := sc.sip.Queue(b.fd, buf[:n], remote); i >= 0 {
			sc.sipFrom[i] = b
			return
		}
	}
	if _, err := b.conn.WriteToUDPAddrPort(buf[:n], remote); err != nil {
		b.errors.Add(1)
		return
	}
	b.pktToSIP.Add(1)
}

// frame plays both jitter buffers out; the pacer runs it every 20 ms. Each
// direction's audio is linear PCM exactly once: the analyzers read the
// samples the codecs work on instead of decoding the G.711 frame again.
func (b *bridge) frame(sc *frameScratch) {
	in, out, g711, pcm, sipBuf := sc.in, sc.out, sc.g711, sc.pcm, sc.sipBuf
	h := &sc.h
	step := uint32(media.G711TimestampStep)
	if b.xcode != nil {
		step = media.OpusTimestampStep
	}
	// SIP -> browser.
	if f, err := b.jbS.Pop(in); err == nil && f.Status != media.FrameBuffering {
		var frame []byte
		if f.Status == media.FrameOK && len(f.Payload) == media.FrameSamples {
			frame = f.Payload
		} else {
			frame = media.SilenceG711(b.sipLaw, media.FrameSamples, g711[:0])
		}
		var payload []byte
		switch {
		case b.xcode != nil:
			lin := media.DecodeG711(b.sipLaw, frame, pcm)
			if b.anaS != nil {
				b.anaS.Write(lin)
			}
			payload, err = b.xcode.PCMToOpus(lin, out)
		default:
			if b.anaS != nil {
				b.anaS.Write(media.DecodeG711(b.sipLaw, frame, pcm))
			}
			payload = media.TranscodeG711(b.sipLaw, b.browserLaw, frame, out)
		}
		if err == nil {
			b.bmu.Lock()
			b.brSeq++
			b.brTS += step
			*h = rtp.Header{Version: 2, SequenceNumber: b.brSeq, Timestamp: b.brTS}
			b.bmu.Unlock()
			if b.track.WriteAudio(h, payload) == nil {
				b.pktToBrowser.Add(1)
			}
		} else {
			b.errors.Add(1)
		}
	}
	// Browser -> SIP.
	if f, err := b.jbB.Pop(in); err == nil && f.Status != media.FrameBuffering {
		var frame []byte
		switch {
		case b.xcode != nil:
			var opus []byte // nil: the packet is missing, conceal it
			if f.Status == media.FrameOK {
				opus = f.Payload
			}
			var lin []int16
			if lin, err = b.xcode.OpusToPCM(opus); err == nil {
				if b.anaB != nil {
					b.anaB.Write(lin)
				}
				frame = media.EncodeG711(b.sipLaw, lin, g711)
			}
		case f.Status == media.FrameOK:
			frame = media.TranscodeG711(b.browserLaw, b.sipLaw, f.Payload, g711)
		default:
			frame = media.SilenceG711(b.sipLaw, media.FrameSamples, g711[:0])
		}
		if err != nil {
			b.errors.Add(1)
			return
		}
		if b.anaB != nil && b.xcode == nil {
			b.anaB.Write(media.DecodeG711(b.sipLaw, frame, pcm))
		}
		b.mu.Lock()
		b.sipSeq++
		b.sipTS += uint32(len(frame))
		*h = rtp.Header{Version: 2, PayloadType: b.sipLaw.PayloadType(), SequenceNumber: b.sipSeq,
			Timestamp: b.sipTS, SSRC: b.sipSSRC}
		remote := b.remote
		b.mu.Unlock()
		b.sendSIP(sc, remote, h, frame, sipBuf)
	}
}

// jitterGap is the pause in a stream after which its jitter estimate starts
// afresh: RFC 3550's estimator assumes continuous transmission, and a
// sender that stopped (hold, a muted browser) resumes with timestamps that
// do not account for the pause, which is no jitter.
const jitterGap = 300 * time.Millisecond

// jitterEstimate is the RFC 3550 interarrival jitter of one receive side.
type jitterEstimate struct {
	mu      sync.Mutex
	started bool
	ssrc    uint32
	lastTS  uint32
	lastAt  time.Time
	j       float64 // seconds
	max     float64
	crossed int // thresholds already counted for this call
}

func (e *jitterEstimate) update(ssrc, ts, clock uint32, now time.Time, over *prometheus.CounterVec) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started && (ssrc != e.ssrc || now.Sub(e.lastAt) > jitterGap) {
		// A pause or a new stream: restart the estimate from this packet.
		e.started, e.j = false, 0
	}
	e.ssrc = ssrc
	if e.started {
		d := now.Sub(e.lastAt).Seconds() - float64(int32(ts-e.lastTS))/float64(clock)
		e.j += (math.Abs(d) - e.j) / 16
		if e.j > e.max {
			e.max = e.j
		}
		for e.crossed < len(jitterThresholds) && e.j*1000 > jitterThresholds[e.crossed].ms {
			over.WithLabelValues(jitterThresholds[e.crossed].label).Inc()
			e.crossed++
		}
	}
	e.started, e.lastTS, e.lastAt = true, ts, now
}

// ms returns the current and the largest jitter in milliseconds.
func (e *jitterEstimate) ms() (cur, max float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return math.Round(e.j*1e4) / 10, math.Round(e.max*1e4) / 10
}

// Sequence jumps beyond these start the count afresh (RFC 3550 A.1): the
// sender restarted its stream rather than losing packets.
const (
	lossMaxDropout  = 3000
	lossMaxMisorder = 100
)

// streamLoss counts the packets one receive side lost, as RFC 3550 A.3
// does: expected (from the first to the highest sequence number) less
// received. Every packet of the stream counts, telephone-events included:
// they take their sequence numbers from the audio's, so counting only the
// audio (as the jitter buffer plays it) took each DTMF packet for a loss.
type streamLoss struct {
	mu       sync.Mutex
	started  bool
	ssrc     uint32
	base     int64 // extended sequence number of the first packet
	high     int64 // highest extended sequence number
	received int64
	past     uint64 // lost in earlier streams of the call
	badSeq   uint16 // after a jump, the sequence number that confirms it
	haveBad  bool
}

func (l *streamLoss) update(ssrc uint32, seq uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started || ssrc != l.ssrc {
		l.restartLocked(ssrc, int64(seq), 1)
		return
	}
	d := int64(int16(seq - uint16(l.high)))
	if d > lossMaxDropout || d < -lossMaxMisorder {
		if !l.haveBad || seq != l.badSeq {
			l.badSeq, l.haveBad = seq+1, true // a stray packet, unless the next one follows it
			return
		}
		l.restartLocked(ssrc, int64(seq)-1, 2)
		l.high = int64(seq)
		return
	}
	l.haveBad = false
	l.received++
	if ext := l.high + d; ext > l.high {
		l.high = ext
	}
}

// restartLocked starts counting a new stream at base, received packets in.
func (l *streamLoss) restartLocked(ssrc uint32, base, received int64) {
	l.past += l.currentLocked()
	l.started, l.ssrc, l.haveBad = true, ssrc, false
	l.base, l.high, l.received = base, base, received
}

// currentLocked is the loss of the current stream; duplicates make up for
// losses, never below 0.
func (l *streamLoss) currentLocked() uint64 {
	if !l.started {
		return 0
	}
	return uint64(max(l.high-l.base+1-l.received, 0))
}

// lost returns the packets lost in the call so far.
func (l *streamLoss) lost() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.past + l.currentLocked()
}
