package rtpsim

import "math"

// FrameSamples is one 20 ms frame at 8 kHz.
const FrameSamples = 160

// Source produces the audio an endpoint sends, one frame at a time. A Source
// is used by one goroutine.
type Source interface {
	// Fill writes the next FrameSamples samples into frame.
	Fill(frame []int16)
}

// Tone is a continuous sine at Freq Hz with peak amplitude Amp (0..32767).
type Tone struct {
	Freq  float64
	Amp   float64
	phase float64
}

// NewTone returns a tone at freq Hz, -10 dBFS peak.
func NewTone(freq float64) *Tone { return &Tone{Freq: freq, Amp: 10000} }

// Fill writes the next frame. The sine runs on the Chebyshev recurrence
// sin(x+d) = 2cos(d)sin(x) - sin(x-d), seeded from the exact phase at each
// frame, so a frame costs two sines instead of 160 (every simulated call
// plays one of these 50 times a second).
func (t *Tone) Fill(frame []int16) {
	step := 2 * math.Pi * t.Freq / 8000
	k := 2 * math.Cos(step)
	prev, cur := math.Sin(t.phase-step), math.Sin(t.phase)
	for i := range frame {
		frame[i] = int16(t.Amp * cur)
		prev, cur = cur, k*cur-prev
	}
	t.phase = math.Mod(t.phase+float64(len(frame))*step, 2*math.Pi)
}

// Silence sends digital silence.
type Silence struct{}

// Fill writes zeros.
func (Silence) Fill(frame []int16) { clear(frame) }

// Prompt is a speech-like signal: a 140 Hz voiced buzz shaped by two formants
// and chopped into syllables of about 200 ms with short pauses, so that level
// and spectrum move the way a recorded announcement does.
type Prompt struct {
	n int
}

// Fill writes the next frame.
func (p *Prompt) Fill(frame []int16) {
	for i := range frame {
		t := float64(p.n) / 8000
		syl := math.Mod(t, 0.25)
		env := 0.0
		if syl < 0.2 {
			env = math.Sin(math.Pi * syl / 0.2)
		}
		if math.Mod(t, 3) > 2.4 { // a breath between sentences
			env = 0
		}
		f0 := 140 + 20*math.Sin(2*math.Pi*0.7*t)
		// Harmonic h is sin(h*x) with x = 2*pi*f0*t; the recurrence
		// sin(hx) = 2cos(x)sin((h-1)x) - sin((h-2)x) replaces 20 sines per
		// sample with one sine and one cosine.
		x := 2 * math.Pi * f0 * t
		k := 2 * math.Cos(x)
		var v, prev, cur float64
		cur = math.Sin(x)
		for h := 1; h <= 20; h++ {
			f := f0 * float64(h)
			a, b := (f-700)/150, (f-1200)/200
			w := 1/(1+a*a) + 0.6/(1+b*b)
			v += w * cur
			prev, cur = cur, k*cur-prev
		}
		frame[i] = int16(6000 * env * v)
		p.n++
	}
}

// Switch plays First for the given number of frames, then Then.
type Switch struct {
	First  Source
	Frames int
	Then   Source
}

// Fill writes the next frame.
func (s *Switch) Fill(frame []int16) {
	if s.Frames > 0 {
		s.Frames--
		s.First.Fill(frame)
		return
	}
	s.Then.Fill(frame)
}
