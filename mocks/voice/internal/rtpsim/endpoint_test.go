package rtpsim

import (
	"math"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestEndpointsExchangeToneAndDigits(t *testing.T) {
	defer goleak.VerifyNone(t)
	ca, err := Listen("127.0.0.1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := Listen("127.0.0.1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := New(ca, NewTone(440))
	defer a.Close()
	b := New(cb, NewTone(1000))
	defer b.Close()

	offer, err := Parse(a.SDP(DefaultCodecs(), SendRecv, 1))
	if err != nil {
		t.Fatal(err)
	}
	codecs, err := Answer(offer)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := Parse(b.SDP(codecs, SendRecv, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetRemote(offer); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRemote(answer); err != nil {
		t.Fatal(err)
	}
	b.SendDigits("12#")

	deadline := time.Now().Add(5 * time.Second)
	for {
		ha, hb := a.Analysis(), b.Analysis()
		if ha.Digits == "12#" && math.Abs(ha.DominantHz-1000) < 5 && math.Abs(hb.DominantHz-440) < 5 {
			if ha.Lost != 0 || hb.Codec != "PCMU" || ha.LevelDBFS > -5 || ha.LevelDBFS < -20 {
				t.Fatalf("unexpected analysis a=%+v b=%+v", ha, hb)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exchange: a=%+v b=%+v", ha, hb)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestParseRejectsSDPWithoutAudio(t *testing.T) {
	if _, err := Parse([]byte("v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n")); err == nil {
		t.Fatal("expected an error for SDP without audio")
	}
	m, err := Parse([]byte("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := m.Audio(); c.Name != "PCMA" || m.Direction != SendOnly || m.Port != 4000 {
		t.Fatalf("parsed %+v", m)
	}
}

func TestAnalyzerDominantMatchesTone(t *testing.T) {
	for _, hz := range []float64{60, 440, 1000, 1633, 3300} {
		var z Analyzer
		tone := NewTone(hz)
		frame := make([]int16, FrameSamples)
		for range 20 {
			tone.Fill(frame)
			z.Audio("PCMU", frame)
		}
		a := z.Snapshot()
		if math.Abs(a.DominantHz-hz) > 1 || !a.AudioArrived {
			t.Fatalf("tone %v Hz: analysis %+v", hz, a)
		}
		// The level of a -10 dBFS-peak sine is -13 dBFS RMS re a full-scale square.
		if math.Abs(a.LevelDBFS+13.3) > 0.5 {
			t.Fatalf("tone %v Hz: level %v", hz, a.LevelDBFS)
		}
		if again := z.Snapshot(); again.DominantHz != a.DominantHz {
			t.Fatalf("cached snapshot differs: %v vs %v", again.DominantHz, a.DominantHz)
		}
		tone = NewTone(hz * 1.5)
		for range 20 {
			tone.Fill(frame)
			z.Audio("PCMU", frame)
		}
		if b := z.Snapshot(); math.Abs(b.DominantHz-hz*1.5) > 1 && hz*1.5 <= 3950 {
			t.Fatalf("after a change to %v Hz: %+v", hz*1.5, b)
		}
	}
}

func BenchmarkToneFill(b *testing.B) {
	tone := NewTone(440)
	frame := make([]int16, FrameSamples)
	for b.Loop() {
		tone.Fill(frame)
	}
}

func BenchmarkPromptFill(b *testing.B) {
	var p Prompt
	frame := make([]int16, FrameSamples)
	for b.Loop() {
		p.Fill(frame)
	}
}

func BenchmarkAnalyzerSnapshot(b *testing.B) {
	var z Analyzer
	tone := NewTone(440)
	frame := make([]int16, FrameSamples)
	for b.Loop() {
		tone.Fill(frame)
		z.Audio("PCMU", frame)
		_ = z.Snapshot()
	}
}
