package media

import (
	"errors"
	"testing"
	"time"
)

func TestG711RoundTripKeepsToneAndLevel(t *testing.T) {
	for _, law := range []Law{PCMU, PCMA} {
		t.Run(law.String(), func(t *testing.T) {
			pcm := render(t, NewSine(1000, -12, time.Second), 100)
			enc := EncodeG711(law, pcm, nil)
			if len(enc) != len(pcm) {
				t.Fatalf("encoded %d bytes for %d samples", len(enc), len(pcm))
			}
			dec := DecodeG711(law, enc, nil)
			// G.711 keeps roughly 12 bits: the error stays far below the signal.
			var sig, noise float64
			for i := range pcm {
				d := float64(pcm[i]) - float64(dec[i])
				sig += float64(pcm[i]) * float64(pcm[i])
				noise += d * d
			}
			if snr := 10 * log10(sig/noise); snr < 30 {
				t.Errorf("SNR %.1f dB, want >= 30", snr)
			}
			s := analyse(dec)
			if !near(s.LevelDBFS, -12, 0.5) || !near(s.DominantHz, 1000, 5) {
				t.Errorf("after %s: level %.2f dBFS, %v Hz; want -12 dBFS, 1000 Hz", law, s.LevelDBFS, s.DominantHz)
			}
		})
	}
}

func TestG711SilenceAndLawConversion(t *testing.T) {
	for _, law := range []Law{PCMU, PCMA} {
		for _, v := range DecodeG711(law, SilenceG711(law, FrameSamples, nil), nil) {
			if v < -8 || v > 8 {
				t.Fatalf("%s silence decodes to %d", law, v)
			}
		}
	}
	pcm := render(t, NewSine(440, -6, 100*time.Millisecond), 10)
	ulaw := EncodeG711(PCMU, pcm, nil)
	alaw := TranscodeG711(PCMU, PCMA, ulaw, nil)
	back := DecodeG711(PCMA, alaw, nil)
	s := analyse(back)
	if !near(s.LevelDBFS, -6, 0.5) || !near(s.DominantHz, 440, 5) {
		t.Errorf("PCMU->PCMA: %.2f dBFS %v Hz", s.LevelDBFS, s.DominantHz)
	}
	same := TranscodeG711(PCMU, PCMU, ulaw, nil)
	if string(same) != string(ulaw) {
		t.Error("same-law pass-through changed the payload")
	}
}

func TestLawLookups(t *testing.T) {
	for _, tc := range []struct {
		pt   uint8
		name string
		law  Law
	}{{0, "PCMU", PCMU}, {8, "PCMA", PCMA}} {
		if l, err := LawFromPayloadType(tc.pt); err != nil || l != tc.law || l.PayloadType() != tc.pt {
			t.Errorf("payload type %d: %v %v", tc.pt, l, err)
		}
		if l, err := LawFromName(tc.name); err != nil || l != tc.law || l.String() != tc.name {
			t.Errorf("name %s: %v %v", tc.name, l, err)
		}
	}
	if _, err := LawFromPayloadType(9); !errors.Is(err, ErrMalformed) {
		t.Errorf("payload type 9 (G.722) accepted: %v", err)
	}
}

func TestG711EncodeDoesNotAllocateWithBuffer(t *testing.T) {
	pcm := render(t, NewSine(1000, -12, FrameDuration), 1)
	out := make([]byte, FrameSamples)
	back := make([]int16, FrameSamples)
	allocs := testing.AllocsPerRun(100, func() {
		out = EncodeG711(PCMA, pcm, out)
		back = DecodeG711(PCMA, out, back)
	})
	if allocs != 0 {
		t.Errorf("%v allocs per frame", allocs)
	}
}
