package rtpsim

import (
	"math"
	"sync"
)

// Analysis is what an endpoint heard; it is the JSON attached to call records.
type Analysis struct {
	// AudioArrived is true once a frame above -50 dBFS was received.
	AudioArrived bool `json:"audio_arrived"`
	// Packets counts RTP packets received (audio and events).
	Packets int `json:"packets"`
	// Lost counts packets missing from the sequence numbers seen.
	Lost int `json:"lost"`
	// LevelDBFS is the RMS level of the most recent half second (dBFS, sine peak at full scale = -3).
	LevelDBFS float64 `json:"level_dbfs"`
	// DominantHz is the strongest frequency of the most recent audio above -50 dBFS.
	DominantHz float64 `json:"dominant_hz"`
	// Digits are the RFC 4733 keys received, in order.
	Digits string `json:"digits"`
	// Codec is the payload format of the received audio.
	Codec string `json:"codec,omitempty"`
	// PacketsSent counts RTP packets sent.
	PacketsSent int `json:"packets_sent"`
}

const window = 4096 // samples kept for level and frequency (~0.5 s)

// Analyzer accumulates received audio. It is safe for concurrent use.
type Analyzer struct {
	mu       sync.Mutex
	a        Analysis
	ring     [window]int16
	pos      int
	filled   int
	loud     [window]int16 // last audio above the silence threshold, for DominantHz
	loudPos  int
	loudFill int
	baseSeq  int64
	maxSeq   int64
	cycles   int64
	lastSeq  uint16
	haveSeq  bool
}

// Packet records one received packet's sequence number.
func (z *Analyzer) Packet(seq uint16) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.a.Packets++
	if !z.haveSeq {
		z.haveSeq, z.lastSeq = true, seq
		z.baseSeq, z.maxSeq = int64(seq), int64(seq)
		return
	}
	if seq < z.lastSeq && z.lastSeq-seq > 0x8000 {
		z.cycles += 0x10000
	}
	z.lastSeq = seq
	if ext := z.cycles + int64(seq); ext > z.maxSeq {
		z.maxSeq = ext
	}
	if lost := int(z.maxSeq-z.baseSeq+1) - z.a.Packets; lost > 0 {
		z.a.Lost = lost
	} else {
		z.a.Lost = 0
	}
}

// Sent counts one sent packet.
func (z *Analyzer) Sent() {
	z.mu.Lock()
	z.a.PacketsSent++
	z.mu.Unlock()
}

// Audio records one decoded frame.
func (z *Analyzer) Audio(codec string, pcm []int16) {
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	loud := len(pcm) > 0 && dbfs(sum/float64(len(pcm))) > -50
	z.mu.Lock()
	defer z.mu.Unlock()
	z.a.Codec = codec
	for _, s := range pcm {
		z.ring[z.pos] = s
		z.pos = (z.pos + 1) % window
		if loud {
			z.loud[z.loudPos] = s
			z.loudPos = (z.loudPos + 1) % window
		}
	}
	z.filled = min(window, z.filled+len(pcm))
	if loud {
		z.a.AudioArrived = true
		z.loudFill = min(window, z.loudFill+len(pcm))
	}
}

// Digit records one received key.
func (z *Analyzer) Digit(d byte) {
	z.mu.Lock()
	z.a.Digits += string(d)
	z.mu.Unlock()
}

// Snapshot returns the analysis so far.
func (z *Analyzer) Snapshot() Analysis {
	z.mu.Lock()
	a := z.a
	recent := ordered(z.ring[:], z.pos, min(z.filled, 4000))
	loud := ordered(z.loud[:], z.loudPos, min(z.loudFill, 2048))
	z.mu.Unlock()
	if len(recent) > 0 {
		var sum float64
		for _, s := range recent {
			sum += float64(s) * float64(s)
		}
		a.LevelDBFS = math.Round(dbfs(sum/float64(len(recent)))*10) / 10
	} else {
		a.LevelDBFS = -120
	}
	if len(loud) >= 512 {
		a.DominantHz = dominant(loud)
	}
	return a
}

func ordered(ring []int16, pos, n int) []int16 {
	out := make([]int16, n)
	start := (pos - n + len(ring)) % len(ring)
	for i := range out {
		out[i] = ring[(start+i)%len(ring)]
	}
	return out
}

// dbfs converts a mean square to dBFS relative to a full-scale square wave.
func dbfs(meanSquare float64) float64 {
	if meanSquare <= 0 {
		return -120
	}
	return math.Max(-120, 10*math.Log10(meanSquare/(32768.0*32768.0)))
}

// dominant scans 50..3950 Hz with Goertzel filters (10 Hz steps, then 1 Hz
// around the best) over a Hann-windowed block.
func dominant(x []int16) float64 {
	w := make([]float64, len(x))
	for i, s := range x {
		w[i] = float64(s) * (0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(len(x)-1)))
	}
	best, bestP := 0.0, -1.0
	scan := func(lo, hi, step float64) {
		for f := lo; f <= hi; f += step {
			if p := goertzel(w, f); p > bestP {
				best, bestP = f, p
			}
		}
	}
	scan(50, 3950, 10)
	scan(best-10, best+10, 1)
	return best
}

func goertzel(x []float64, f float64) float64 {
	c := 2 * math.Cos(2*math.Pi*f/8000)
	var s1, s2 float64
	for _, v := range x {
		s0 := v + c*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - c*s1*s2
}
