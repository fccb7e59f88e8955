package gateway

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/cxlab/cxlab/appliance/internal/uring"
	"github.com/cxlab/cxlab/appliance/media"
)

// pacer plays out every call's audio on a few shared 20 ms tickers (one per
// CPU) instead of one ticker goroutine per call: a timer wake-up and a
// goroutine switch per call per frame cost as much as the rest of the
// per-frame work outside the codec. Shards start with their first bridge and
// exit once they have none.
//
// A sweep's packets leave in batches: toward browsers through the ICE
// socket's queue (see mediaConn), toward SIP through one io_uring
// submission across the calls' RTP sockets (see uring.Batch); each is sent
// when the sweep ends or its batch is full. The sweep also reads what SIP
// sent each call since the last one (frameScratch.readSIP). A bridge's RTP
// socket is closed only after remove, so it is open whenever a sweep uses it.
type pacer struct {
	shards []*pacerShard
	media  atomic.Pointer[mediaConn] // nil: the ICE socket is not batched
	wg     sync.WaitGroup
}

// pacerShard is one ticker goroutine and the bridges it plays out. mu is
// held for a whole sweep, so remove returns only once the bridge is no longer
// being played.
type pacerShard struct {
	p       *pacer
	mu      sync.Mutex
	bridges []*bridge
	running bool
}

// frameScratch is the per-sweep working memory; bridges of one shard are
// played one after the other, so they share it.
type frameScratch struct {
	in     []byte
	out    []byte
	g711   []byte
	pcm    []int16
	sipBuf []byte
	h      rtp.Header // reused: a header per packet would escape to the heap through the track writer

	sip     *uring.Batch // the sweep's packets toward SIP
	sipFrom []*bridge    // the bridge of each queued packet
	sipSent func(i int, res int32)

	sipIn     *uring.RecvBatch // reads the calls' RTP sockets
	sipInFDs  []int32
	sipInFrom []*bridge // the bridge of each socket read
	sipInAt   time.Time // when the sweep read: the arrival of an unstamped datagram
	sipGot    func(i int, data []byte, from netip.AddrPort, control []byte)
}

// sipReadSockets is the most RTP sockets read with one submission, and
// sipReadsPerSocket how many datagrams are read from each per round (a peer
// sends one per 20 ms, plus telephone-events; more queued are read in
// further rounds).
const (
	sipReadSockets    = 64
	sipReadsPerSocket = 2
)

// readSIP reads what SIP sent since the last sweep to each of bridges whose
// socket the sweep reads (see sipread_linux.go), and hands it to the bridge.
func (sc *frameScratch) readSIP(bridges []*bridge) {
	sc.sipInFDs, sc.sipInFrom = sc.sipInFDs[:0], sc.sipInFrom[:0]
	for _, b := range bridges {
		if b.sipSwept {
			sc.sipInFDs = append(sc.sipInFDs, b.fd)
			sc.sipInFrom = append(sc.sipInFrom, b)
		}
	}
	if len(sc.sipInFDs) == 0 {
		return
	}
	sc.sipInAt = time.Now()
	sc.sipIn.Read(sc.sipInFDs, sc.sipGot)
	clear(sc.sipInFrom)
}

// sipBatchSize is the most packets toward SIP sent in one submission.
const sipBatchSize = 32

// flushSIP sends the packets toward SIP queued so far.
func (sc *frameScratch) flushSIP() {
	sc.sip.Flush(nil, sc.sipSent)
	clear(sc.sipFrom)
}

func newPacer() *pacer {
	p := &pacer{shards: make([]*pacerShard, max(1, runtime.GOMAXPROCS(0)))}
	for i := range p.shards {
		p.shards[i] = &pacerShard{p: p}
	}
	return p
}

// add starts playing b out on the least loaded shard, unless b was stopped.
func (p *pacer) add(b *bridge) {
	var best *pacerShard
	n := -1
	for _, s := range p.shards {
		s.mu.Lock()
		l := len(s.bridges)
		s.mu.Unlock()
		if n < 0 || l < n {
			best, n = s, l
		}
	}
	best.mu.Lock()
	defer best.mu.Unlock()
	select {
	case <-b.stopCh:
		return // ended before it started
	default:
	}
	best.bridges = append(best.bridges, b)
	if !best.running {
		best.running = true
		p.wg.Add(1)
		go best.run()
	}
}

// remove stops playing b out; when it returns, no sweep is using b.
func (p *pacer) remove(b *bridge) {
	for _, s := range p.shards {
		s.mu.Lock()
		for i, x := range s.bridges {
			if x == b {
				last := len(s.bridges) - 1
				s.bridges[i], s.bridges[last] = s.bridges[last], nil
				s.bridges = s.bridges[:last]
				break
			}
		}
		s.mu.Unlock()
	}
}

// wait returns when every shard goroutine has exited (they exit within a
// frame of their last bridge's removal).
func (p *pacer) wait() { p.wg.Wait() }

func (s *pacerShard) run() {
	defer s.p.wg.Done()
	sc := &frameScratch{
		in:     make([]byte, 1500),
		out:    make([]byte, media.MaxOpusPacket),
		g711:   make([]byte, media.MaxOpusFrameSamples),
		pcm:    make([]int16, media.MaxOpusFrameSamples),
		sipBuf: make([]byte, rtpHeaderSize+media.MaxOpusFrameSamples),
		sip:    uring.NewBatch(sipBatchSize),
		sipIn:  uring.NewRecvBatch(sipReadSockets, sipReadsPerSocket, 1500, sipControlSize),
	}
	defer sc.sip.Close()
	defer sc.sipIn.Close()
	sc.sipGot = func(i int, data []byte, from netip.AddrPort, control []byte) {
		at, ok := arrival(control)
		if !ok {
			at = sc.sipInAt
		}
		sc.sipInFrom[i].fromSIP(data, from, at)
	}
	sc.sipFrom = make([]*bridge, sipBatchSize)
	sc.sipSent = func(i int, res int32) {
		if b := sc.sipFrom[i]; res >= 0 {
			b.pktToSIP.Add(1)
		} else {
			b.errors.Add(1)
		}
	}
	sleepToGrid()
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	for range t.C {
		s.mu.Lock()
		if len(s.bridges) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		m := s.p.media.Load()
		if m != nil {
			m.hold()
		}
		sc.readSIP(s.bridges)
		for _, b := range s.bridges {
			b.frame(sc)
		}
		sc.flushSIP()
		if m != nil {
			m.release()
		}
		s.mu.Unlock()
	}
}

// tickPhase is where on the shared 20 ms grid the bridges tick: half a frame
// off the grid's start, so that peers pacing on the grid's start (the Voice
// emulator's endpoints do) are not read at the very instant they send.
const tickPhase = media.FrameDuration / 2

// sleepToGrid waits until the next point of the 20 ms grid (wall clock
// modulo FrameDuration, plus tickPhase); the ticker started after it keeps
// the phase, so every shard wakes at the same instants.
func sleepToGrid() {
	now := time.Now()
	wait := (tickPhase - time.Duration(now.UnixNano())%media.FrameDuration + 2*media.FrameDuration) % media.FrameDuration
	if wait > 0 {
		time.Sleep(wait) // at most one frame, once per shard start; not a readiness wait
	}
}
