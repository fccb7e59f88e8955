package media

import (
	"fmt"
	"testing"
	"time"
)

// benchFrames returns 10 s of speech-like G.711 frames and their Opus
// encoding, so the codecs work on realistic, changing input.
func benchFrames(b *testing.B, law Law) (g711 [][]byte, opus [][]byte) {
	b.Helper()
	clip := NewPrompt(DefaultPromptText+" "+DefaultPromptText, -18)
	enc, err := NewOpusEncoder(OpusConfig{})
	if err != nil {
		b.Fatal(err)
	}
	src := clip.Reader()
	frame := make([]int16, FrameSamples)
	for ReadFrame(src, frame) {
		g711 = append(g711, EncodeG711(law, frame, nil))
		pkt, err := enc.Encode(frame, nil)
		if err != nil {
			b.Fatal(err)
		}
		opus = append(opus, append([]byte(nil), pkt...))
	}
	return g711, opus
}

func benchTranscode(b *testing.B, cfg OpusConfig) {
	g711, opus := benchFrames(b, PCMU)
	tc, err := NewTranscoder(PCMU, cfg)
	if err != nil {
		b.Fatal(err)
	}
	outG := make([]byte, MaxOpusFrameSamples)
	outO := make([]byte, MaxOpusPacket)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := i % len(g711)
		if _, err := tc.OpusToG711(opus[k], outG); err != nil {
			b.Fatal(err)
		}
		if _, err := tc.G711ToOpus(g711[k], outO); err != nil {
			b.Fatal(err)
		}
	}
	perFrame := b.Elapsed().Seconds() / float64(b.N)
	// 50 frame pairs per second of call: calls one core can carry.
	b.ReportMetric(1/(50*perFrame), "calls/core")
}

// BenchmarkTranscodeCallBothDirections is one 20 ms frame each way of one call
// with the default configuration: Opus decode -> G.711 encode and G.711
// decode -> Opus encode.
func BenchmarkTranscodeCallBothDirections(b *testing.B) {
	benchTranscode(b, OpusConfig{})
}

// BenchmarkTranscodeComplexity shows the encoder complexity trade-off.
func BenchmarkTranscodeComplexity(b *testing.B) {
	for _, c := range []int{1, 3, 5, 8, 10} {
		b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
			benchTranscode(b, OpusConfig{Complexity: c})
		})
	}
}

func BenchmarkOpusDecode(b *testing.B) {
	_, opus := benchFrames(b, PCMU)
	dec, err := NewOpusDecoder()
	if err != nil {
		b.Fatal(err)
	}
	pcm := make([]int16, MaxOpusFrameSamples)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := dec.Decode(opus[i%len(opus)], pcm); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpusEncode(b *testing.B) {
	clip := NewPrompt(DefaultPromptText, -18)
	enc, err := NewOpusEncoder(OpusConfig{})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, MaxOpusPacket)
	frames := len(clip.PCM) / FrameSamples
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := (i % frames) * FrameSamples
		if _, err := enc.Encode(clip.PCM[k:k+FrameSamples], out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkG711 is one 20 ms frame encoded and decoded.
func BenchmarkG711(b *testing.B) {
	for _, law := range []Law{PCMU, PCMA} {
		b.Run(law.String(), func(b *testing.B) {
			pcm := NewPrompt(DefaultPromptText, -18).PCM[:FrameSamples*50]
			enc := make([]byte, FrameSamples)
			dec := make([]int16, FrameSamples)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := (i % 50) * FrameSamples
				enc = EncodeG711(law, pcm[k:k+FrameSamples], enc)
				dec = DecodeG711(law, enc, dec)
			}
		})
	}
}

// BenchmarkAnalyzerFrame is the per-frame cost of listening to a call
// (level, audio presence, DTMF detection); Snapshot is not included.
func BenchmarkAnalyzerFrame(b *testing.B) {
	src, err := NewDTMFTones("123", 100*time.Millisecond, 100*time.Millisecond, -10)
	if err != nil {
		b.Fatal(err)
	}
	var pcm []int16
	frame := make([]int16, FrameSamples)
	for ReadFrame(src, frame) {
		pcm = append(pcm, frame...)
	}
	frames := len(pcm) / FrameSamples
	a := NewAnalyzer(AnalyzerConfig{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := (i % frames) * FrameSamples
		a.Write(pcm[k : k+FrameSamples])
	}
}

func BenchmarkAnalyzerSnapshot(b *testing.B) {
	a := NewAnalyzer(AnalyzerConfig{})
	frame := make([]int16, FrameSamples)
	src := NewSine(1000, -10, 0)
	for range 20 {
		ReadFrame(src, frame)
		a.Write(frame)
	}
	b.ReportAllocs()
	for b.Loop() {
		a.Snapshot()
	}
}

func BenchmarkJitterBuffer(b *testing.B) {
	jb, err := NewJitterBuffer(JitterConfig{})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 80)
	buf := make([]byte, 1500)
	seq := uint16(0)
	for range 3 {
		_ = jb.Push(seq, 0, false, payload)
		seq++
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = jb.Push(seq, uint32(seq)*960, false, payload)
		seq++
		_, _ = jb.Pop(buf)
	}
}

func BenchmarkGenerateSineFrame(b *testing.B) {
	s := NewSine(1000, -10, 0)
	frame := make([]int16, FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		s.Read(frame)
	}
}
