package media

import "math"

// A crude formant synthesiser: a glottal pulse train (or noise for fricatives)
// through three cascaded resonators, one segment per letter. It does not say
// words, but a listener hears a voice-like "announcement" with pitch and vowel
// colour that changes with the text, and it is deterministic, so tests and
// demos sound the same every time.

type segment struct {
	f1, f2, f3 float64 // formants, Hz
	voiced     bool
	noise      bool
	gain       float64
	ms         int
}

// vowelFormants returns F1 and F2 of a vowel (Peterson and Barney averages).
func vowelFormants(c byte) (f1, f2 float64, ok bool) {
	switch c {
	case 'a':
		return 730, 1090, true
	case 'e':
		return 530, 1840, true
	case 'i', 'y':
		return 270, 2290, true
	case 'o':
		return 570, 840, true
	case 'u':
		return 300, 870, true
	}
	return 0, 0, false
}

func letterSegment(c byte) (segment, bool) {
	switch {
	case c >= 'A' && c <= 'Z':
		c += 'a' - 'A'
	case c >= '0' && c <= '9':
		// Digits sound like a vowel chosen by their value.
		c = "oieauoieau"[c-'0']
	}
	if f1, f2, ok := vowelFormants(c); ok {
		return segment{f1: f1, f2: f2, f3: 2500, voiced: true, gain: 1, ms: 130}, true
	}
	switch c {
	case 'm', 'n':
		return segment{f1: 250, f2: 1100, f3: 2300, voiced: true, gain: 0.5, ms: 70}, true
	case 'l', 'r', 'w':
		return segment{f1: 350, f2: 1000, f3: 2400, voiced: true, gain: 0.6, ms: 60}, true
	case 'b', 'd', 'g', 'v', 'z', 'j':
		return segment{f1: 300, f2: 1500, f3: 2600, voiced: true, noise: true, gain: 0.4, ms: 50}, true
	case 's', 'c', 'x':
		return segment{f1: 2600, f2: 3200, f3: 3400, noise: true, gain: 0.35, ms: 80}, true
	case 'f', 'h', 'p', 't', 'k', 'q':
		return segment{f1: 1500, f2: 2500, f3: 3300, noise: true, gain: 0.3, ms: 50}, true
	case ' ':
		return segment{ms: 90}, true
	case ',', ';', ':':
		return segment{ms: 250}, true
	case '.', '!', '?':
		return segment{ms: 450}, true
	}
	return segment{}, false
}

// resonator is a two-pole filter (Klatt) with unity gain at DC.
type resonator struct{ a, b, c, y1, y2 float64 }

func (r *resonator) tune(f, bw float64) {
	t := 1.0 / SampleRate
	r.c = -math.Exp(-2 * math.Pi * bw * t)
	r.b = 2 * math.Exp(-math.Pi*bw*t) * math.Cos(2*math.Pi*f*t)
	r.a = 1 - r.b - r.c
}

func (r *resonator) step(x float64) float64 {
	y := r.a*x + r.b*r.y1 + r.c*r.y2
	r.y2, r.y1 = r.y1, y
	return y
}

// NewPrompt renders text as a speech-like clip whose voiced parts have an RMS
// of about levelDBFS. Unknown characters are skipped.
func NewPrompt(text string, levelDBFS float64) *Clip {
	var segs []segment
	for i := 0; i < len(text); i++ {
		if s, ok := letterSegment(text[i]); ok {
			segs = append(segs, s)
		}
	}
	total := 0
	for _, s := range segs {
		total += s.ms * SampleRate / 1000
	}
	out := make([]float64, total)

	var r1, r2, r3 resonator
	var cur segment
	if len(segs) > 0 {
		cur = segs[0]
	}
	noiseState := uint32(0x2545F491)
	phase := 0.0
	pos := 0
	for idx, s := range segs {
		n := s.ms * SampleRate / 1000
		ramp := min(n/4, 80) // 10 ms attack and release
		// Pitch falls across the utterance (declination) and lifts on vowels.
		f0 := 150 - 40*float64(idx)/float64(max(len(segs), 1))
		if s.gain == 1 {
			f0 += 15
		}
		for i := 0; i < n; i++ {
			// Glide formants towards the segment's targets over ~20 ms.
			if s.gain > 0 {
				const glide = 0.006
				cur.f1 += (s.f1 - cur.f1) * glide
				cur.f2 += (s.f2 - cur.f2) * glide
				cur.f3 += (s.f3 - cur.f3) * glide
			}
			if i%16 == 0 {
				r1.tune(cur.f1, 90)
				r2.tune(cur.f2, 110)
				r3.tune(cur.f3, 170)
			}
			var x float64
			if s.voiced {
				phase += f0 / SampleRate
				if phase >= 1 {
					phase--
					x += 1 // one glottal pulse per period
				}
			}
			if s.noise {
				noiseState ^= noiseState << 13
				noiseState ^= noiseState >> 17
				noiseState ^= noiseState << 5
				x += (float64(noiseState)/math.MaxUint32 - 0.5) * 0.3
			}
			env := s.gain
			if i < ramp {
				env *= float64(i) / float64(ramp)
			} else if n-i < ramp {
				env *= float64(n-i) / float64(ramp)
			}
			out[pos+i] = env * r3.step(r2.step(r1.step(x)))
		}
		pos += n
	}

	// Normalise on the loud part so the level does not depend on pauses.
	var sum float64
	var cnt int
	for _, v := range out {
		if v != 0 {
			sum += v * v
			cnt++
		}
	}
	pcm := make([]int16, total)
	if cnt > 0 && sum > 0 {
		scale := levelAmplitude(levelDBFS) / math.Sqrt2 / math.Sqrt(sum/float64(cnt))
		for i, v := range out {
			pcm[i] = clamp16(v * scale)
		}
	}
	return &Clip{PCM: pcm}
}

// DefaultPromptText is what simulated customers say when nothing else is configured.
const DefaultPromptText = "Hello, this is your callback from CX Lab. Please hold while we connect you to an agent."
