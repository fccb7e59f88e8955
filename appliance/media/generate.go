package media

import (
	"fmt"
	"math"
	"time"
)

// Source produces 8 kHz mono audio.
type Source interface {
	// Read writes up to len(p) samples and returns how many; 0 means the
	// source is exhausted.
	Read(p []int16) int
}

// ReadFrame fills frame from src, padding with silence after the source ends,
// and reports whether any sample came from the source.
func ReadFrame(src Source, frame []int16) bool {
	n := 0
	for n < len(frame) {
		m := src.Read(frame[n:])
		if m == 0 {
			break
		}
		n += m
	}
	clear(frame[n:])
	return n > 0
}

// levelAmplitude is the peak amplitude of a sine whose RMS is levelDBFS
// relative to full scale (32768).
func levelAmplitude(levelDBFS float64) float64 {
	return 32768 * math.Sqrt2 * math.Pow(10, levelDBFS/20)
}

func durationSamples(d time.Duration) int {
	return int(d * SampleRate / time.Second)
}

func clamp16(v float64) int16 {
	switch {
	case v >= 32767:
		return 32767
	case v <= -32768:
		return -32768
	case v >= 0:
		return int16(v + 0.5)
	default:
		return int16(v - 0.5)
	}
}

// Sine is a sum of up to two sine tones (one for a plain tone, two for DTMF
// or call-progress tones) with a continuous phase across reads.
type Sine struct {
	freq   [2]float64
	amp    [2]float64
	phase  [2]float64
	remain int // samples left; <0 means endless
}

// NewSine returns a tone of freqHz at levelDBFS (RMS). d = 0 means endless.
func NewSine(freqHz, levelDBFS float64, d time.Duration) *Sine {
	s := &Sine{freq: [2]float64{freqHz}, amp: [2]float64{levelAmplitude(levelDBFS)}, remain: -1}
	if d > 0 {
		s.remain = durationSamples(d)
	}
	return s
}

// NewDualTone returns the sum of two tones, each at levelDBFS. d = 0 means endless.
func NewDualTone(f1, f2, levelDBFS float64, d time.Duration) *Sine {
	s := NewSine(f1, levelDBFS, d)
	s.freq[1], s.amp[1] = f2, s.amp[0]
	return s
}

// Read implements Source.
func (s *Sine) Read(p []int16) int {
	n := len(p)
	if s.remain >= 0 && n > s.remain {
		n = s.remain
	}
	var w [2]float64
	for k := range w {
		w[k] = 2 * math.Pi * s.freq[k] / SampleRate
	}
	for i := 0; i < n; i++ {
		v := s.amp[0] * math.Sin(s.phase[0])
		s.phase[0] += w[0]
		if s.amp[1] != 0 {
			v += s.amp[1] * math.Sin(s.phase[1])
			s.phase[1] += w[1]
		}
		p[i] = clamp16(v)
	}
	// Keep the phase small so precision does not drift on long tones.
	for k := range s.phase {
		s.phase[k] = math.Mod(s.phase[k], 2*math.Pi)
	}
	if s.remain >= 0 {
		s.remain -= n
	}
	return n
}

// Silence is a source of zero samples.
type Silence struct{ remain int }

// NewSilence returns d of silence.
func NewSilence(d time.Duration) *Silence { return &Silence{remain: durationSamples(d)} }

// Read implements Source.
func (s *Silence) Read(p []int16) int {
	n := min(len(p), s.remain)
	clear(p[:n])
	s.remain -= n
	return n
}

// Sequence plays sources one after another.
type Sequence struct {
	srcs []Source
}

// NewSequence returns a source playing srcs in order.
func NewSequence(srcs ...Source) *Sequence { return &Sequence{srcs: srcs} }

// Read implements Source.
func (q *Sequence) Read(p []int16) int {
	for len(q.srcs) > 0 {
		if n := q.srcs[0].Read(p); n > 0 {
			return n
		}
		q.srcs = q.srcs[1:]
	}
	return 0
}

// dtmfLow and dtmfHigh are the row and column frequencies of the keypad
// (ITU-T Q.23), indexed by RFC 4733 event code.
var (
	dtmfRows = [4]float64{697, 770, 852, 941}
	dtmfCols = [4]float64{1209, 1336, 1477, 1633}
	// dtmfPos holds row<<2|col of each event code 0..15.
	dtmfPos = [16]uint8{
		keyPos(3, 1),                             // 0
		keyPos(0, 0), keyPos(0, 1), keyPos(0, 2), // 1 2 3
		keyPos(1, 0), keyPos(1, 1), keyPos(1, 2), // 4 5 6
		keyPos(2, 0), keyPos(2, 1), keyPos(2, 2), // 7 8 9
		keyPos(3, 0), keyPos(3, 2), // * #
		keyPos(0, 3), keyPos(1, 3), keyPos(2, 3), keyPos(3, 3), // A B C D
	}
)

// keyPos packs a keypad row and column as row<<2|col.
func keyPos(row, col uint8) uint8 { return row<<2 | col }

// DTMFFrequencies returns the row and column frequency of a key.
func DTMFFrequencies(digit byte) (low, high float64, err error) {
	ev, err := DigitEvent(digit)
	if err != nil {
		return 0, 0, err
	}
	pos := dtmfPos[ev]
	return dtmfRows[pos>>2], dtmfCols[pos&3], nil
}

// NewDTMFTones returns in-band DTMF for digits: each key sounds for on with
// both tones at levelDBFS, followed by off of silence. A ',' in digits is a
// 500 ms pause.
func NewDTMFTones(digits string, on, off time.Duration, levelDBFS float64) (*Sequence, error) {
	srcs := make([]Source, 0, 2*len(digits))
	for i := 0; i < len(digits); i++ {
		if digits[i] == ',' {
			srcs = append(srcs, NewSilence(500*time.Millisecond))
			continue
		}
		lo, hi, err := DTMFFrequencies(digits[i])
		if err != nil {
			return nil, fmt.Errorf("dtmf tones: %w", err)
		}
		srcs = append(srcs, NewDualTone(lo, hi, levelDBFS, on), NewSilence(off))
	}
	return NewSequence(srcs...), nil
}

// Clip is pre-rendered audio; Reader plays it without copying it.
type Clip struct {
	// PCM holds the 8 kHz samples.
	PCM []int16
}

// Duration returns the clip's length.
func (c *Clip) Duration() time.Duration {
	return time.Duration(len(c.PCM)) * time.Second / SampleRate
}

// Reader returns a new Source positioned at the start of the clip. Many
// readers may share one clip.
func (c *Clip) Reader() Source { return &clipReader{pcm: c.PCM} }

type clipReader struct{ pcm []int16 }

// Read implements Source.
func (r *clipReader) Read(p []int16) int {
	n := copy(p, r.pcm)
	r.pcm = r.pcm[n:]
	return n
}
