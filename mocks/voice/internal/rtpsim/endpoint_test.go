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
