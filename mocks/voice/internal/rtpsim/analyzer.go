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

	// The console polls every call's analysis; the spectrum of audio that
	// has not changed since the last snapshot is not computed again.
	loudGen   int64 // loud frames written
	domGen    int64 // loudGen the cached DominantHz belongs to
	domHz     float64
	domCached bool
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
	z.pos = ringWrite(z.ring[:], z.pos, pcm)
	z.filled = min(window, z.filled+len(pcm))
	if loud {
		z.loudPos = ringWrite(z.loud[:], z.loudPos, pcm)
		z.a.AudioArrived = true
		z.loudFill = min(window, z.loudFill+len(pcm))
		z.loudGen++
	}
}

// ringWrite copies pcm into ring at pos, wrapping, and returns the new position.
func ringWrite(ring []int16, pos int, pcm []int16) int {
	if len(pcm) > len(ring) {
		pcm = pcm[len(pcm)-len(ring):]
	}
	n := copy(ring[pos:], pcm)
	copy(ring, pcm[n:])
	return (pos + len(pcm)) % len(ring)
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
	var loud []int16
	gen, cached, hz := z.loudGen, z.domCached && z.domGen == z.loudGen, z.domHz
	if !cached {
		loud = ordered(z.loud[:], z.loudPos, min(z.loudFill, 2048))
	}
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
	if !cached {
		hz = 0
		if len(loud) >= 512 {
			hz = dominant(loud)
		}
		z.mu.Lock()
		z.domGen, z.domHz, z.domCached = gen, hz, true
		z.mu.Unlock()
	}
	a.DominantHz = hz
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

// dominant returns the strongest frequency in 50..3950 Hz of a Hann-windowed
// block, to 1 Hz: an FFT (zero-padded to 2048 points, 3.9 Hz bins) finds the
// peak bin, then Goertzel filters at 1 Hz steps around it refine it. The
// console polls this for every live call, so it must stay cheap (a 1 Hz
// Goertzel scan of the whole band cost about a millisecond per call).
func dominant(x []int16) float64 {
	n := len(x)
	if n > fftSize {
		x, n = x[n-fftSize:], fftSize
	}
	w := make([]float64, n)
	// Hann window with the cosine on a recurrence (one cos per block).
	d := 2 * math.Pi / float64(n-1)
	k := 2 * math.Cos(d)
	cPrev, c := math.Cos(-d), 1.0
	for i, s := range x {
		w[i] = float64(s) * (0.5 - 0.5*c)
		cPrev, c = c, k*c-cPrev
	}
	re := make([]float64, fftSize)
	im := make([]float64, fftSize)
	copy(re, w)
	fft(re, im)
	binHz := 8000.0 / fftSize
	best, bestP := 0, -1.0
	for b := int(math.Ceil(50 / binHz)); float64(b)*binHz <= 3950; b++ {
		if p := re[b]*re[b] + im[b]*im[b]; p > bestP {
			best, bestP = b, p
		}
	}
	// The Hann main lobe puts the true peak within half a bin of the best bin.
	centre := math.Round(float64(best) * binHz)
	hz, hzP := centre, -1.0
	for f := max(50, centre-4); f <= min(3950, centre+4); f++ {
		if p := goertzel(w, f); p > hzP {
			hz, hzP = f, p
		}
	}
	return hz
}

// fftSize is the transform length of dominant (the loud window is 2048).
const fftSize = 2048

// fft is an in-place iterative radix-2 FFT of re+i*im; the length must be
// a power of two.
func fft(re, im []float64) {
	n := len(re)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			re[i], re[j] = re[j], re[i]
			im[i], im[j] = im[j], im[i]
		}
	}
	// Twiddles of the largest stage; stage size uses every n/size-th.
	tw := make([]float64, n) // cos, sin interleaved
	for k := range n / 2 {
		s, c := math.Sincos(-2 * math.Pi * float64(k) / float64(n))
		tw[2*k], tw[2*k+1] = c, s
	}
	for size := 2; size <= n; size <<= 1 {
		half := size / 2
		stride := n / size
		for k := 0; k < half; k++ {
			wr, wi := tw[2*k*stride], tw[2*k*stride+1]
			for start := 0; start < n; start += size {
				a, b := start+k, start+k+half
				tr := re[b]*wr - im[b]*wi
				ti := re[b]*wi + im[b]*wr
				re[b], im[b] = re[a]-tr, im[a]-ti
				re[a], im[a] = re[a]+tr, im[a]+ti
			}
		}
	}
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
