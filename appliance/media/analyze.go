package media

import (
	"math"
	"math/cmplx"
	"sync"
)

// FloorDBFS is the level reported for digital silence (JSON has no -Inf).
const FloorDBFS = -120.0

const (
	fullScalePower = 32768.0 * 32768.0
	// spectrumSize is the FFT length of the dominant-frequency estimate:
	// 256 ms of audio, 3.9 Hz bins before interpolation.
	spectrumSize = 2048
	maxDigits    = 256
)

// AnalyzerConfig tunes an Analyzer. The zero value means the defaults.
type AnalyzerConfig struct {
	// AudioThresholdDBFS is the frame RMS above which a frame counts as audio.
	// Default -50.
	AudioThresholdDBFS float64
	// DTMFMinToneDBFS is the minimum RMS of each of the two DTMF tones.
	// Default -40.
	DTMFMinToneDBFS float64
	// DTMFMaxTwistDB is the largest level difference between the two tones.
	// Default 8 (ITU-T Q.24 allows 8 dB normal and 4-8 dB reverse twist).
	DTMFMaxTwistDB float64
}

func (c AnalyzerConfig) withDefaults() AnalyzerConfig {
	if c.AudioThresholdDBFS == 0 {
		c.AudioThresholdDBFS = -50
	}
	if c.DTMFMinToneDBFS == 0 {
		c.DTMFMinToneDBFS = -40
	}
	if c.DTMFMaxTwistDB == 0 {
		c.DTMFMaxTwistDB = 8
	}
	return c
}

// Snapshot is what an Analyzer has heard so far, ready for a JSON API.
type Snapshot struct {
	// ReceivedMS is how much audio was fed in, in milliseconds.
	ReceivedMS int64 `json:"received_ms"`
	// AudioMS is how much of it was above the audio threshold.
	AudioMS int64 `json:"audio_ms"`
	// HeardAudio reports whether any frame was above the threshold.
	HeardAudio bool `json:"heard_audio"`
	// FirstAudioMS is the offset of the first audio frame, -1 if none.
	FirstAudioMS int64 `json:"first_audio_ms"`
	// LevelDBFS is the RMS level over the audio frames (FloorDBFS if none).
	LevelDBFS float64 `json:"level_dbfs"`
	// LastDBFS is the RMS level of the most recent 20 ms.
	LastDBFS float64 `json:"last_dbfs"`
	// PeakDBFS is the largest absolute sample seen.
	PeakDBFS float64 `json:"peak_dbfs"`
	// DominantHz is the strongest frequency in 100-3400 Hz over the last
	// 256 ms of audio, 0 if none.
	DominantHz float64 `json:"dominant_hz"`
	// DTMF lists the in-band keys detected, in order.
	DTMF string `json:"dtmf"`
}

// Analyzer measures 8 kHz audio fed to it in frames of any length (it works
// on internal 20 ms blocks). It is safe for concurrent use: a media goroutine
// writes while an API handler takes snapshots.
type Analyzer struct {
	mu  sync.Mutex
	cfg AnalyzerConfig

	audioPower   float64 // threshold as mean power
	minTonePower float64
	maxTwist     float64 // as a power ratio

	block  [FrameSamples]int16
	blockN int

	received   int64 // samples
	audio      int64 // samples
	firstAudio int64
	audioSum   float64 // sum of squares over audio blocks
	lastPower  float64
	peak       int32

	ring     [spectrumSize]int16 // last audio samples, for the spectrum
	ringPos  int
	ringFull bool

	det    dtmfDetector
	digits []byte
}

// NewAnalyzer returns an Analyzer that has heard nothing.
func NewAnalyzer(cfg AnalyzerConfig) *Analyzer {
	cfg = cfg.withDefaults()
	a := &Analyzer{
		cfg:          cfg,
		audioPower:   dbfsToPower(cfg.AudioThresholdDBFS),
		minTonePower: dbfsToPower(cfg.DTMFMinToneDBFS),
		maxTwist:     math.Pow(10, cfg.DTMFMaxTwistDB/10),
		firstAudio:   -1,
		digits:       make([]byte, 0, 16),
	}
	a.det.init()
	return a
}

func dbfsToPower(db float64) float64 { return fullScalePower * math.Pow(10, db/10) }

func powerToDBFS(p float64) float64 {
	if p <= 0 {
		return FloorDBFS
	}
	return max(FloorDBFS, math.Round(100*10*math.Log10(p/fullScalePower))/100)
}

// Write feeds samples; it does not allocate.
func (a *Analyzer) Write(pcm []int16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(pcm) > 0 {
		n := copy(a.block[a.blockN:], pcm)
		a.blockN += n
		pcm = pcm[n:]
		if a.blockN == FrameSamples {
			a.processBlock()
			a.blockN = 0
		}
	}
}

func (a *Analyzer) processBlock() {
	var sum float64
	for _, s := range a.block {
		v := int32(s)
		sum += float64(v * v)
		if v < 0 {
			v = -v
		}
		a.peak = max(a.peak, v)
	}
	power := sum / FrameSamples
	a.lastPower = power
	if power >= a.audioPower {
		if a.firstAudio < 0 {
			a.firstAudio = a.received
		}
		a.audio += FrameSamples
		a.audioSum += sum
		n := copy(a.ring[a.ringPos:], a.block[:])
		copy(a.ring[:], a.block[n:])
		a.ringPos = (a.ringPos + FrameSamples) % spectrumSize
		if a.ringPos < FrameSamples {
			a.ringFull = true
		}
	}
	a.received += FrameSamples

	key, ok := a.det.block(&a.block, power, a.minTonePower, a.maxTwist)
	if ok && len(a.digits) < maxDigits {
		a.digits = append(a.digits, key)
	}
}

// Snapshot reports what was heard so far. It computes the spectrum, so call
// it when asked, not per frame.
func (a *Analyzer) Snapshot() Snapshot {
	a.mu.Lock()
	s := Snapshot{
		ReceivedMS:   a.received * 1000 / SampleRate,
		AudioMS:      a.audio * 1000 / SampleRate,
		HeardAudio:   a.audio > 0,
		FirstAudioMS: -1,
		LevelDBFS:    FloorDBFS,
		LastDBFS:     powerToDBFS(a.lastPower),
		PeakDBFS:     FloorDBFS,
		DTMF:         string(a.digits),
	}
	if a.firstAudio >= 0 {
		s.FirstAudioMS = a.firstAudio * 1000 / SampleRate
	}
	if a.audio > 0 {
		s.LevelDBFS = powerToDBFS(a.audioSum / float64(a.audio))
	}
	if a.peak > 0 {
		s.PeakDBFS = powerToDBFS(float64(a.peak) * float64(a.peak))
	}
	// Copy the window out in time order so the FFT runs outside the lock.
	var win [spectrumSize]int16
	n := 0
	if a.ringFull {
		n = copy(win[:], a.ring[a.ringPos:])
		n += copy(win[n:], a.ring[:a.ringPos])
	} else {
		n = copy(win[:], a.ring[:a.ringPos])
	}
	a.mu.Unlock()
	if n >= 2*FrameSamples {
		s.DominantHz = dominantFrequency(win[:n])
	}
	return s
}

// Digits returns the in-band DTMF keys detected so far.
func (a *Analyzer) Digits() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return string(a.digits)
}

// Reset forgets everything heard.
func (a *Analyzer) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.blockN, a.received, a.audio, a.audioSum, a.lastPower, a.peak = 0, 0, 0, 0, 0, 0
	a.firstAudio = -1
	a.ringPos, a.ringFull = 0, false
	a.digits = a.digits[:0]
	a.det.reset()
}

// dominantFrequency returns the strongest frequency of pcm between 100 and
// 3400 Hz: Hann window, zero-padded FFT, parabolic interpolation of the peak.
func dominantFrequency(pcm []int16) float64 {
	buf := make([]complex128, spectrumSize)
	n := len(pcm)
	for i, s := range pcm {
		w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1))
		buf[i] = complex(float64(s)*w, 0)
	}
	fft(buf)
	binHz := float64(SampleRate) / spectrumSize
	lo, hi := int(100/binHz), int(3400/binHz)+1
	best, bestMag := 0, 0.0
	for k := lo; k <= hi; k++ {
		if m := cmplx.Abs(buf[k]); m > bestMag {
			best, bestMag = k, m
		}
	}
	if bestMag == 0 {
		return 0
	}
	// Parabolic interpolation on log magnitude (Gaussian-like peak of Hann).
	a, b, c := math.Log(cmplx.Abs(buf[best-1])+1e-9), math.Log(bestMag), math.Log(cmplx.Abs(buf[best+1])+1e-9)
	delta := 0.0
	if d := a - 2*b + c; d != 0 {
		delta = 0.5 * (a - c) / d
	}
	return math.Round((float64(best) + delta) * binHz)
}

// fft is an in-place iterative radix-2 FFT; len(x) must be a power of two.
func fft(x []complex128) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		step := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			w := complex(1, 0)
			for k := 0; k < size/2; k++ {
				u, v := x[start+k], x[start+k+size/2]*w
				x[start+k], x[start+k+size/2] = u+v, u-v
				w *= step
			}
		}
	}
}

// dtmfDetector finds DTMF keys with the Goertzel algorithm on the eight
// keypad frequencies, one 20 ms block at a time. A key counts when it holds
// for two consecutive blocks (40 ms, the ITU minimum) and is reported once per
// press; a press ends after two blocks without it.
type dtmfDetector struct {
	coef     [8]float64
	cand     byte // candidate of the previous block, 0 if none
	held     byte // key currently reported as pressed, 0 if none
	misses   int
	rowsCols [16]byte // row<<2|col -> key
}

func (d *dtmfDetector) init() {
	freqs := [8]float64{697, 770, 852, 941, 1209, 1336, 1477, 1633}
	for i, f := range freqs {
		d.coef[i] = 2 * math.Cos(2*math.Pi*f/SampleRate)
	}
	for ev, pos := range dtmfPos {
		d.rowsCols[pos], _ = EventDigit(uint8(ev))
	}
}

func (d *dtmfDetector) reset() { d.cand, d.held, d.misses = 0, 0, 0 }

// classify returns the key present in the block, or 0.
func (d *dtmfDetector) classify(blk *[FrameSamples]int16, power, minTone, maxTwist float64) byte {
	if power < minTone {
		return 0
	}
	// Rows first: most blocks that are not DTMF (speech, a test tone) fail
	// on the row group alone, and then the column filters are skipped.
	var p [8]float64
	goertzel4(blk, (*[4]float64)(d.coef[0:4]), (*[4]float64)(p[0:4]))
	r := 0
	for k := 1; k < 4; k++ {
		if p[k] > p[r] {
			r = k
		}
	}
	pr := p[r]
	if pr < minTone {
		return 0
	}
	for k := range 4 {
		if k != r && p[k]*4 > pr {
			return 0
		}
	}
	goertzel4(blk, (*[4]float64)(d.coef[4:8]), (*[4]float64)(p[4:8]))
	c := 4
	for k := 5; k < 8; k++ {
		if p[k] > p[c] {
			c = k
		}
	}
	pc := p[c]
	if pc < minTone {
		return 0
	}
	if pr > pc*maxTwist || pc > pr*maxTwist {
		return 0
	}
	// Each tone must stand 6 dB above its neighbours in the same group,
	// and together they must carry most of the block's energy (speech and
	// music spread theirs).
	for k := range 4 {
		if k != r && p[k]*4 > pr {
			return 0
		}
		if 4+k != c && p[4+k]*4 > pc {
			return 0
		}
	}
	if pr+pc < 0.6*power {
		return 0
	}
	return d.rowsCols[r<<2|(c-4)]
}

// goertzel4 runs four Goertzel filters over blk in one pass (four independent
// recurrences keep the FPU busy where one would wait on its own latency) and
// writes each tone's power, normalised to the mean power of the sinusoid (A^2/2).
func goertzel4(blk *[FrameSamples]int16, coef, out *[4]float64) {
	c0, c1, c2, c3 := coef[0], coef[1], coef[2], coef[3]
	var a1, a2, b1, b2, e1, e2, f1, f2 float64
	for _, x := range blk {
		v := float64(x)
		a1, a2 = v+c0*a1-a2, a1
		b1, b2 = v+c1*b1-b2, b1
		e1, e2 = v+c2*e1-e2, e1
		f1, f2 = v+c3*f1-f2, f1
	}
	const norm = 2.0 / (FrameSamples * FrameSamples)
	out[0] = norm * (a1*a1 + a2*a2 - c0*a1*a2)
	out[1] = norm * (b1*b1 + b2*b2 - c1*b1*b2)
	out[2] = norm * (e1*e1 + e2*e2 - c2*e1*e2)
	out[3] = norm * (f1*f1 + f2*f2 - c3*f1*f2)
}

// block processes one block and returns a newly pressed key.
func (d *dtmfDetector) block(blk *[FrameSamples]int16, power, minTone, maxTwist float64) (byte, bool) {
	k := d.classify(blk, power, minTone, maxTwist)
	prev := d.cand
	d.cand = k
	if k != 0 && k == d.held {
		d.misses = 0
		return 0, false
	}
	if k != 0 && k == prev {
		d.held, d.misses = k, 0
		return k, true
	}
	if d.held != 0 {
		d.misses++
		if d.misses >= 2 {
			d.held = 0
		}
	}
	return 0, false
}
