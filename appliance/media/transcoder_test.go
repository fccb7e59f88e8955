package media

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// pipeThroughTranscoder plays pcm as a SIP-side G.711 stream, encodes it to
// Opus for the browser, and decodes that Opus back to G.711 as if the browser
// echoed it: both directions of one call.
func pipeThroughTranscoder(t *testing.T, law Law, pcm []int16) []int16 {
	t.Helper()
	tc, err := NewTranscoder(law, OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	g711 := make([]byte, MaxOpusFrameSamples)
	opus := make([]byte, MaxOpusPacket)
	var out []int16
	for off := 0; off+FrameSamples <= len(pcm); off += FrameSamples {
		in := EncodeG711(law, pcm[off:off+FrameSamples], nil)
		pkt, err := tc.G711ToOpus(in, opus)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) == 0 || len(pkt) > 120 {
			t.Fatalf("opus packet of %d bytes at ~20 kb/s", len(pkt))
		}
		back, err := tc.OpusToG711(pkt, g711)
		if err != nil {
			t.Fatal(err)
		}
		if len(back) != FrameSamples {
			t.Fatalf("opus packet decoded to %d samples", len(back))
		}
		out = append(out, DecodeG711(law, back, nil)...)
	}
	return out
}

func TestTranscodeRoundTripKeepsFrequencyAndLevel(t *testing.T) {
	for _, tc := range []struct {
		law  Law
		freq float64
		dbfs float64
	}{
		{PCMU, 440, -15},
		{PCMA, 1000, -12},
		{PCMU, 2500, -20},
	} {
		t.Run(fmt.Sprintf("%s_%vHz", tc.law, tc.freq), func(t *testing.T) {
			pcm := render(t, NewSine(tc.freq, tc.dbfs, 2*time.Second), 200)
			out := pipeThroughTranscoder(t, tc.law, pcm)
			// Skip the codec's start-up (look-ahead and level ramp).
			s := analyse(out[10*FrameSamples:])
			t.Logf("%v Hz at %v dBFS -> %v Hz at %.2f dBFS", tc.freq, tc.dbfs, s.DominantHz, s.LevelDBFS)
			if !near(s.DominantHz, tc.freq, 20) {
				t.Errorf("dominant %v Hz, want %v +-20", s.DominantHz, tc.freq)
			}
			if !near(s.LevelDBFS, tc.dbfs, 2) {
				t.Errorf("level %.2f dBFS, want %v +-2", s.LevelDBFS, tc.dbfs)
			}
			if s.AudioMS < 1700 {
				t.Errorf("only %d ms of audio survived", s.AudioMS)
			}
		})
	}
}

func TestTranscoderConcealsLostPackets(t *testing.T) {
	enc, err := NewOpusEncoder(OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := NewTranscoder(PCMU, OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Before any packet, concealment is silence and not an error.
	g, err := tc.ConcealToG711(nil)
	if err != nil || len(g) != FrameSamples {
		t.Fatalf("cold conceal: %d bytes, %v", len(g), err)
	}
	if s := analyse(DecodeG711(PCMU, g, nil)); s.HeardAudio {
		t.Errorf("cold concealment is audible: %+v", s)
	}

	src := NewSine(800, -12, 0)
	frame := make([]int16, FrameSamples)
	for range 25 {
		ReadFrame(src, frame)
		pkt, err := enc.Encode(frame, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.OpusToG711(pkt, nil); err != nil {
			t.Fatal(err)
		}
	}
	// One lost packet: concealment continues the tone rather than a gap.
	g, err = tc.OpusToG711(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := analyse(DecodeG711(PCMU, g, nil))
	if !first.HeardAudio || first.LevelDBFS < -20 {
		t.Errorf("first concealed frame: %+v, want the tone continued", first)
	}
	// A long outage fades out instead of buzzing forever.
	var last Snapshot
	for range 50 {
		g, err := tc.ConcealToG711(nil)
		if err != nil {
			t.Fatal(err)
		}
		last = analyse(DecodeG711(PCMU, g, nil))
	}
	t.Logf("concealment: first frame %.1f dBFS, after 1 s %.1f dBFS", first.LevelDBFS, last.LevelDBFS)
	if last.LevelDBFS > first.LevelDBFS-20 {
		t.Errorf("after 1 s of loss level %.1f dBFS, first concealed %.1f: no fade", last.LevelDBFS, first.LevelDBFS)
	}
}

func TestTranscoderRejectsBadInput(t *testing.T) {
	tc, err := NewTranscoder(PCMA, OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.G711ToOpus(make([]byte, 100), nil); !errors.Is(err, ErrFrameSize) {
		t.Errorf("100-byte G.711 frame: %v, want ErrFrameSize", err)
	}
	if _, err := tc.OpusToG711([]byte{0xFF, 0xFF, 0xFF}, nil); err == nil {
		t.Error("garbage Opus packet decoded without error")
	}
	if _, err := NewTranscoder(Law(7), OpusConfig{}); err == nil {
		t.Error("unknown law accepted")
	}
	if _, err := NewOpusEncoder(OpusConfig{Complexity: 11}); err == nil {
		t.Error("complexity 11 accepted")
	}
}

func TestSilenceToOpusIsQuiet(t *testing.T) {
	tc, err := NewTranscoder(PCMU, OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	for range 10 {
		pkt, err := tc.SilenceToOpus(nil)
		if err != nil {
			t.Fatal(err)
		}
		g, err := tc.OpusToG711(pkt, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, DecodeG711(PCMU, g, nil)...)
	}
	if s := analyse(out); s.HeardAudio {
		t.Errorf("silence became audible: %+v", s)
	}
}

func TestTranscoderSteadyStateAllocatesNothing(t *testing.T) {
	tc, err := NewTranscoder(PCMU, OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pcm := render(t, NewSine(1000, -12, FrameDuration), 1)
	g711 := EncodeG711(PCMU, pcm, nil)
	opus := make([]byte, MaxOpusPacket)
	back := make([]byte, MaxOpusFrameSamples)
	step := func() {
		pkt, err := tc.G711ToOpus(g711, opus)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.OpusToG711(pkt, back); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		step()
	}
	if allocs := testing.AllocsPerRun(50, step); allocs != 0 {
		t.Errorf("%v allocs per frame pair", allocs)
	}
}
