package media

import (
	"fmt"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// FrameStatus says what Pop produced.
type FrameStatus uint8

const (
	// FrameBuffering means there is nothing to play yet: the buffer is
	// filling to its depth (at start, or after the sender paused). Play
	// silence; nothing was lost.
	FrameBuffering FrameStatus = iota
	// FrameOK means Payload holds the next packet in sequence.
	FrameOK
	// FrameMissing means the packet due now never arrived (later ones did):
	// run packet-loss concealment. It counts in Lost.
	FrameMissing
)

// String names the status for logs.
func (s FrameStatus) String() string {
	switch s {
	case FrameBuffering:
		return "buffering"
	case FrameOK:
		return "ok"
	case FrameMissing:
		return "missing"
	default:
		return fmt.Sprintf("FrameStatus(%d)", uint8(s))
	}
}

// Frame is one playout slot.
type Frame struct {
	// Status says whether Payload is valid.
	Status FrameStatus
	// Seq is the RTP sequence number of the slot (valid unless buffering).
	Seq uint16
	// Timestamp is the packet's RTP timestamp (FrameOK only).
	Timestamp uint32
	// Marker is the packet's marker bit (FrameOK only).
	Marker bool
	// Payload is the packet's payload, copied into the caller's buffer.
	Payload []byte
}

// JitterConfig sizes a JitterBuffer. The zero value means the defaults.
type JitterConfig struct {
	// Depth is how much audio is buffered before playout starts, which is
	// also how much arrival jitter is absorbed. Default 60 ms.
	Depth time.Duration
	// Capacity is the number of packet slots, rounded up to a power of two
	// so slots map cleanly across sequence wrap-around; packets further ahead
	// than this make the buffer jump forward. Default 16 (320 ms).
	Capacity int
	// MaxPayload is the largest payload kept; larger ones are rejected.
	// Default 1500.
	MaxPayload int
}

const (
	// RFC 3550 appendix A.1: jumps beyond these are a new stream, not loss
	// or reordering, once two consecutive packets confirm them.
	maxDropout  = 3000
	maxMisorder = 100
)

type jitterSlot struct {
	valid  bool
	seq    uint16
	ts     uint32
	marker bool
	n      int
}

// JitterBuffer reorders one RTP stream of fixed 20 ms packets and releases
// one frame per Pop, which the caller runs every 20 ms. Sequence numbers
// decide order (wrap-around included); duplicates and packets that arrive
// after their slot was played are dropped and counted. It is safe for
// concurrent use by one pushing and one popping goroutine.
type JitterBuffer struct {
	mu       sync.Mutex
	depth    int
	maxLen   int
	slots    []jitterSlot
	store    []byte // capacity * maxLen payload bytes
	started  bool
	filling  bool
	fresh    bool   // nothing played since (re)start, so next may move back
	next     uint16 // next sequence number to play
	badSeq   uint16 // RFC 3550 probation for a jump
	haveBad  bool
	lost     uint64
	late     uint64
	dups     uint64
	resets   uint64
	underrun uint64
}

// NewJitterBuffer allocates a buffer; Push and Pop do not allocate.
func NewJitterBuffer(cfg JitterConfig) (*JitterBuffer, error) {
	if cfg.Depth == 0 {
		cfg.Depth = 60 * time.Millisecond
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = 16
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 1500
	}
	if cfg.Capacity < 0 || cfg.Capacity > 1024 {
		return nil, fmt.Errorf("jitter buffer: capacity %d outside 1..1024", cfg.Capacity)
	}
	capacity := 1
	for capacity < cfg.Capacity {
		capacity <<= 1
	}
	cfg.Capacity = capacity
	depth := int((cfg.Depth + FrameDuration - 1) / FrameDuration)
	if depth < 1 || depth >= cfg.Capacity {
		return nil, fmt.Errorf("jitter buffer: depth %v needs 1..%d frames of capacity %d", cfg.Depth, cfg.Capacity-1, cfg.Capacity)
	}
	if cfg.MaxPayload < 1 {
		return nil, fmt.Errorf("jitter buffer: max payload %d", cfg.MaxPayload)
	}
	return &JitterBuffer{
		depth:  depth,
		maxLen: cfg.MaxPayload,
		slots:  make([]jitterSlot, cfg.Capacity),
		store:  make([]byte, cfg.Capacity*cfg.MaxPayload),
	}, nil
}

// PushRTP is Push for a pion packet.
func (j *JitterBuffer) PushRTP(p *rtp.Packet) error {
	return j.Push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload)
}

// Push stores a copy of one packet's payload.
func (j *JitterBuffer) Push(seq uint16, ts uint32, marker bool, payload []byte) error {
	if len(payload) > j.maxLen {
		return fmt.Errorf("jitter push seq %d: payload %d bytes over %d: %w", seq, len(payload), j.maxLen, ErrShortBuffer)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.started {
		j.restart(seq)
	}
	d := int(int16(seq - j.next))
	if d > maxDropout || d < -maxMisorder {
		if !j.haveBad || seq != j.badSeq {
			j.badSeq, j.haveBad = seq+1, true
			return nil
		}
		// Two in a row: the sender restarted its sequence.
		j.resets++
		j.restart(seq)
		d = 0
	}
	j.haveBad = false
	if d < 0 && j.fresh && j.ahead()-d <= len(j.slots) {
		// The stream's first packets arrived out of order: start earlier.
		j.next = seq
		d = 0
	}
	if d < 0 {
		j.late++
		return nil
	}
	capacity := len(j.slots)
	if d >= capacity {
		// Far ahead (a long outage): what lies between was lost, and what is
		// buffered is too old to play; start filling again from here.
		for i := 0; i < capacity; i++ {
			s := &j.slots[i]
			if s.valid && int(int16(s.seq-j.next)) >= 0 {
				d--
			}
			s.valid = false
		}
		j.lost += uint64(d)
		j.next, j.filling = seq, true
	}
	i := int(seq) % capacity
	s := &j.slots[i]
	if s.valid && s.seq == seq {
		j.dups++
		return nil
	}
	*s = jitterSlot{valid: true, seq: seq, ts: ts, marker: marker, n: len(payload)}
	copy(j.store[i*j.maxLen:], payload)
	return nil
}

func (j *JitterBuffer) restart(seq uint16) {
	for i := range j.slots {
		j.slots[i].valid = false
	}
	j.started, j.filling, j.fresh, j.next = true, true, true, seq
}

// ahead returns how many slots from next up to the furthest buffered packet.
func (j *JitterBuffer) ahead() int {
	far := 0
	for i := range j.slots {
		s := &j.slots[i]
		if s.valid {
			if d := int(int16(s.seq-j.next)) + 1; d > far {
				far = d
			}
		}
	}
	return far
}

// Pop releases the frame due now into dst, which should hold MaxPayload bytes.
func (j *JitterBuffer) Pop(dst []byte) (Frame, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.started {
		return Frame{Status: FrameBuffering}, nil
	}
	far := j.ahead()
	if j.filling {
		if far < j.depth {
			return Frame{Status: FrameBuffering}, nil
		}
		j.filling, j.fresh = false, false
	}
	if far == 0 {
		// Nothing left: the sender paused or a jitter spike hit. Refill
		// rather than conceal indefinitely.
		j.underrun++
		j.filling = true
		return Frame{Status: FrameBuffering}, nil
	}
	seq := j.next
	j.next++
	i := int(seq) % len(j.slots)
	s := &j.slots[i]
	if !s.valid || s.seq != seq {
		j.lost++
		return Frame{Status: FrameMissing, Seq: seq}, nil
	}
	s.valid = false
	if len(dst) < s.n {
		return Frame{Status: FrameMissing, Seq: seq}, fmt.Errorf("jitter pop seq %d: %d bytes into %d: %w", seq, s.n, len(dst), ErrShortBuffer)
	}
	n := copy(dst, j.store[i*j.maxLen:i*j.maxLen+s.n])
	return Frame{Status: FrameOK, Seq: seq, Timestamp: s.ts, Marker: s.marker, Payload: dst[:n]}, nil
}

// JitterStats counts what the buffer did.
type JitterStats struct {
	// Lost counts frames played as missing (concealed) plus frames skipped by a jump.
	Lost uint64 `json:"lost"`
	// Late counts packets dropped because their slot had already been played.
	Late uint64 `json:"late"`
	// Duplicates counts packets received twice.
	Duplicates uint64 `json:"duplicates"`
	// Underruns counts times the buffer ran dry and refilled.
	Underruns uint64 `json:"underruns"`
	// Resets counts sequence restarts (RFC 3550 large jumps).
	Resets uint64 `json:"resets"`
	// Buffered is how many frames lie between the playout point and the newest packet.
	Buffered int `json:"buffered"`
}

// Lost returns the number of frames concealed or skipped.
func (j *JitterBuffer) Lost() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lost
}

// Stats returns all counters.
func (j *JitterBuffer) Stats() JitterStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return JitterStats{Lost: j.lost, Late: j.late, Duplicates: j.dups, Underruns: j.underrun, Resets: j.resets, Buffered: j.ahead()}
}
