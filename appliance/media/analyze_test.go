package media

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAnalyzerMeasuresGeneratedTones(t *testing.T) {
	for _, tc := range []struct{ freq, dbfs float64 }{
		{150, -30}, {697, -10}, {1004, -3}, {3300, -25},
	} {
		s := analyse(render(t, NewSine(tc.freq, tc.dbfs, 500*time.Millisecond), 30))
		if !near(s.DominantHz, tc.freq, 2) || !near(s.LevelDBFS, tc.dbfs, 0.1) {
			t.Errorf("%v Hz at %v dBFS measured as %v Hz at %v dBFS", tc.freq, tc.dbfs, s.DominantHz, s.LevelDBFS)
		}
		if !near(s.PeakDBFS, tc.dbfs+3.01, 0.1) {
			t.Errorf("%v dBFS sine: peak %v dBFS, want +3 dB", tc.dbfs, s.PeakDBFS)
		}
		if s.AudioMS != 500 || s.FirstAudioMS != 0 || s.DTMF != "" {
			t.Errorf("%v Hz: %+v", tc.freq, s)
		}
	}
}

func TestAnalyzerTracksWhenAudioArrives(t *testing.T) {
	a := NewAnalyzer(AnalyzerConfig{})
	if s := a.Snapshot(); s.HeardAudio || s.LevelDBFS != FloorDBFS || s.DominantHz != 0 || s.FirstAudioMS != -1 {
		t.Fatalf("fresh analyzer: %+v", s)
	}
	// 300 ms silence, 200 ms of a -60 dBFS hiss (below threshold), then 400 ms tone.
	a.Write(render(t, NewSilence(300*time.Millisecond), 20))
	a.Write(render(t, NewSine(1000, -60, 200*time.Millisecond), 20))
	if s := a.Snapshot(); s.HeardAudio || s.ReceivedMS != 500 {
		t.Fatalf("quiet part counted: %+v", s)
	}
	// Odd write sizes: the analyzer re-blocks internally.
	tone := render(t, NewSine(600, -20, 400*time.Millisecond), 20)
	for len(tone) > 0 {
		n := min(len(tone), 37)
		a.Write(tone[:n])
		tone = tone[n:]
	}
	s := a.Snapshot()
	if !s.HeardAudio || s.AudioMS != 400 || s.FirstAudioMS != 500 || s.ReceivedMS != 900 {
		t.Errorf("timing: %+v", s)
	}
	if !near(s.LevelDBFS, -20, 0.1) || !near(s.LastDBFS, -20, 0.1) || !near(s.DominantHz, 600, 2) {
		t.Errorf("levels: %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"level_dbfs":`, `"peak_dbfs":`, `"audio_ms":400`, `"dominant_hz":600`, `"dtmf":""`, `"heard_audio":true`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	a.Reset()
	if s := a.Snapshot(); s.HeardAudio || s.ReceivedMS != 0 {
		t.Errorf("after reset: %+v", s)
	}
}

func TestInBandDTMFDetectedOnce(t *testing.T) {
	const digits = "0123456789*#ABCD"
	for _, tc := range []struct {
		name    string
		on, off time.Duration
		dbfs    float64
	}{
		{"100ms", 100 * time.Millisecond, 100 * time.Millisecond, -10},
		{"quick-50ms", 50 * time.Millisecond, 50 * time.Millisecond, -20},
		{"long-press", 700 * time.Millisecond, 60 * time.Millisecond, -15},
		{"quiet", 80 * time.Millisecond, 80 * time.Millisecond, -35},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewDTMFTones(digits, tc.on, tc.off, tc.dbfs)
			if err != nil {
				t.Fatal(err)
			}
			s := analyse(render(t, src, 1000))
			if s.DTMF != digits {
				t.Errorf("detected %q, want %q", s.DTMF, digits)
			}
		})
	}
	// Repeated keys separated by the minimum gap are separate presses.
	src, _ := NewDTMFTones("5,55", 60*time.Millisecond, 40*time.Millisecond, -10)
	if s := analyse(render(t, src, 200)); s.DTMF != "555" {
		t.Errorf("repeated key: %q", s.DTMF)
	}
	if _, err := NewDTMFTones("12x", time.Millisecond, 0, -10); err == nil {
		t.Error("digit x accepted")
	}
}

func TestInBandDTMFThroughCodecs(t *testing.T) {
	const digits = "159#*0D"
	src, err := NewDTMFTones(digits, 100*time.Millisecond, 100*time.Millisecond, -12)
	if err != nil {
		t.Fatal(err)
	}
	pcm := render(t, src, 200)
	for _, law := range []Law{PCMU, PCMA} {
		g := DecodeG711(law, EncodeG711(law, pcm, nil), nil)
		if s := analyse(g); s.DTMF != digits {
			t.Errorf("through %s: %q", law, s.DTMF)
		}
		if s := analyse(pipeThroughTranscoder(t, law, pcm)); s.DTMF != digits {
			t.Errorf("through %s and Opus both ways: %q", law, s.DTMF)
		}
	}
}

func TestNoFalseDTMF(t *testing.T) {
	cases := map[string][]int16{
		"prompt":    NewPrompt(DefaultPromptText, -15).PCM,
		"tone 941":  render(t, NewSine(941, -10, time.Second), 60),
		"dial tone": render(t, NewDualTone(350, 440, -13, time.Second), 60), // North American dial tone
		"ringback":  render(t, NewDualTone(440, 480, -19, time.Second), 60),
	}
	// A 697+1209 pair with 14 dB twist is outside Q.24 limits.
	tw := NewDualTone(697, 1209, -10, time.Second)
	tw.amp[1] /= 5
	cases["twisted"] = render(t, tw, 60)
	for name, pcm := range cases {
		if s := analyse(pcm); s.DTMF != "" {
			t.Errorf("%s detected as DTMF %q", name, s.DTMF)
		}
	}
}

func TestPromptIsAudibleAndDeterministic(t *testing.T) {
	c := NewPrompt(DefaultPromptText, -18)
	if d := c.Duration(); d < 3*time.Second || d > 15*time.Second {
		t.Fatalf("prompt lasts %v", d)
	}
	if again := NewPrompt(DefaultPromptText, -18); string(int16Bytes(again.PCM)) != string(int16Bytes(c.PCM)) {
		t.Error("same text rendered differently")
	}
	s := analyse(render(t, c.Reader(), 1000))
	if !s.HeardAudio || s.AudioMS < 2000 || s.AudioMS >= c.Duration().Milliseconds() {
		t.Errorf("prompt audio %d ms of %v (pauses must stay silent)", s.AudioMS, c.Duration())
	}
	if !near(s.LevelDBFS, -18, 4) || s.DominantHz < 100 || s.DominantHz > 3400 {
		t.Errorf("prompt measured %+v", s)
	}
	if other := NewPrompt("Goodbye.", -18); other.Duration() >= c.Duration() {
		t.Error("a shorter text did not give a shorter prompt")
	}
}

func int16Bytes(p []int16) []byte {
	b := make([]byte, 2*len(p))
	for i, v := range p {
		b[2*i], b[2*i+1] = byte(v), byte(v>>8)
	}
	return b
}

func TestAnalyzerWriteAllocatesNothing(t *testing.T) {
	a := NewAnalyzer(AnalyzerConfig{})
	src, _ := NewDTMFTones("1", time.Second, 0, -10)
	frame := make([]int16, FrameSamples)
	ReadFrame(src, frame)
	if allocs := testing.AllocsPerRun(100, func() { a.Write(frame) }); allocs != 0 {
		t.Errorf("%v allocs per frame", allocs)
	}
}
