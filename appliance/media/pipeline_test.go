package media

import (
	"math"
	"testing"
	"time"

	"github.com/thesyncim/gopus"
)

// A browser encodes fullband Opus at 48 kHz; the gateway's 8 kHz decoder must
// still hear the tone.
func TestDecodesBrowserStyle48kOpus(t *testing.T) {
	enc, err := gopus.NewEncoder(gopus.EncoderConfig{SampleRate: 48000, Channels: 1, Application: gopus.ApplicationAudio})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.SetBitrate(32000); err != nil {
		t.Fatal(err)
	}
	dec, err := NewOpusDecoder()
	if err != nil {
		t.Fatal(err)
	}
	a := NewAnalyzer(AnalyzerConfig{})
	pcm48 := make([]float32, 960)
	pkt := make([]byte, MaxOpusPacket)
	out := make([]int16, MaxOpusFrameSamples)
	amp := math.Sqrt2 * math.Pow(10, -12.0/20)
	for f := range 100 {
		for i := range pcm48 {
			n := float64(f*960 + i)
			pcm48[i] = float32(amp * math.Sin(2*math.Pi*1200*n/48000))
		}
		nb, err := enc.Encode(pcm48, pkt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.Decode(pkt[:nb], out)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != FrameSamples {
			t.Fatalf("48 kHz packet decoded to %d samples at 8 kHz", len(got))
		}
		if f >= 10 {
			a.Write(got)
		}
	}
	s := a.Snapshot()
	if !near(s.DominantHz, 1200, 20) || !near(s.LevelDBFS, -12, 2) {
		t.Errorf("browser tone measured as %v Hz at %v dBFS", s.DominantHz, s.LevelDBFS)
	}
}

// The receive path of the gateway: Opus packets with loss and reordering go
// through the jitter buffer; missing frames are concealed, so the SIP side
// hears continuous audio and the loss is counted.
func TestReceivePathConcealsThroughJitterBuffer(t *testing.T) {
	enc, err := NewOpusEncoder(OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := NewTranscoder(PCMA, OpusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	jb, err := NewJitterBuffer(JitterConfig{Depth: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAnalyzer(AnalyzerConfig{})

	const frames = 150
	var packets [][]byte
	src := NewSine(700, -15, 0)
	frame := make([]int16, FrameSamples)
	for range frames {
		ReadFrame(src, frame)
		pkt, err := enc.Encode(frame, nil)
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, append([]byte(nil), pkt...))
	}
	dropped := map[int]bool{30: true, 31: true, 77: true, 120: true}
	seqBase := uint16(65500) // wraps during the call
	var ok, missing int
	buf := make([]byte, MaxOpusPacket)
	g711 := make([]byte, MaxOpusFrameSamples)
	pcm := make([]int16, MaxOpusFrameSamples)
	for tick := 0; tick < frames+5; tick++ {
		// Packets arrive swapped in pairs (k+1 before k), some never arrive.
		for _, k := range []int{tick ^ 1} {
			if k < frames && !dropped[k] {
				if err := jb.Push(seqBase+uint16(k), uint32(k)*OpusTimestampStep, false, packets[k]); err != nil {
					t.Fatal(err)
				}
			}
		}
		f, err := jb.Pop(buf)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		switch f.Status {
		case FrameBuffering:
			continue
		case FrameOK:
			ok++
			out, err = tc.OpusToG711(f.Payload, g711)
		case FrameMissing:
			missing++
			out, err = tc.ConcealToG711(g711)
		}
		if err != nil {
			t.Fatal(err)
		}
		a.Write(DecodeG711(PCMA, out, pcm))
	}
	if missing != len(dropped) || jb.Lost() != uint64(len(dropped)) {
		t.Errorf("missing %d, lost %d, want %d", missing, jb.Lost(), len(dropped))
	}
	t.Logf("jitter stats %+v, played %d ok + %d concealed", jb.Stats(), ok, missing)
	if st := jb.Stats(); st.Late != 0 {
		t.Errorf("reordered packets counted late: %+v", st)
	}
	s := a.Snapshot()
	// Every played frame (including the concealed ones) carries the tone,
	// apart from the codec's start-up.
	playedMS := int64(ok+missing) * 20
	if s.AudioMS < playedMS-60 || !near(s.DominantHz, 700, 20) {
		t.Errorf("heard %d ms of %d played (%d concealed), %v Hz", s.AudioMS, playedMS, missing, s.DominantHz)
	}
}
