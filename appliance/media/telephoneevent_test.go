package media

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestTelephoneEventWireFormat(t *testing.T) {
	// RFC 4733 figure 1: event 11 ('#'), end bit, volume 10, duration 800.
	want := []byte{11, 0x80 | 10, 0x03, 0x20}
	ev := TelephoneEvent{Event: 11, End: true, Volume: 10, Duration: 800}
	if got := ev.Marshal(); string(got) != string(want) {
		t.Fatalf("marshal % x, want % x", got, want)
	}
	var back TelephoneEvent
	if err := back.Unmarshal(want); err != nil || back != ev {
		t.Fatalf("unmarshal %+v %v", back, err)
	}
	if d, ok := back.Digit(); !ok || d != '#' {
		t.Errorf("digit %q %v", d, ok)
	}
	if err := back.Unmarshal([]byte{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short payload: %v", err)
	}
	if _, ok := EventDigit(16); ok {
		t.Error("flash (16) reported as a DTMF key")
	}
	if _, err := DigitEvent('x'); !errors.Is(err, ErrUnknownDigit) {
		t.Errorf("digit x: %v", err)
	}
}

func TestDTMFSenderPacketSequence(t *testing.T) {
	for _, clock := range []uint32{8000, 48000} {
		s, err := NewDTMFSender(DTMFSenderConfig{ClockRate: clock, Duration: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		step := clock / 50
		pkts, err := s.Packets(nil, '5', 12345)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkts) != 5+3 {
			t.Fatalf("clock %d: %d packets, want 5 updates + 3 ends", clock, len(pkts))
		}
		for i, p := range pkts {
			if p.Timestamp != 12345 || p.Event.Event != 5 {
				t.Errorf("packet %d: %+v", i, p)
			}
			if p.Marker != (i == 0) {
				t.Errorf("packet %d marker %v", i, p.Marker)
			}
			if i < 5 {
				if p.Event.End || uint32(p.Event.Duration) != uint32(i+1)*step || p.SendAt != time.Duration(i)*FrameDuration {
					t.Errorf("update %d: %+v", i, p)
				}
			} else if !p.Event.End || uint32(p.Event.Duration) != 5*step || p.SendAt != 100*time.Millisecond {
				t.Errorf("end %d: %+v", i, p)
			}
		}
		if s.Span() != 5*step {
			t.Errorf("span %d", s.Span())
		}
		r := pkts[0].RTP(101, 0xABCD, 7)
		if !r.Marker || r.PayloadType != 101 || r.SequenceNumber != 7 || r.Timestamp != 12345 || len(r.Payload) != 4 {
			t.Errorf("rtp %+v", r.Header)
		}
	}
	// 48 kHz durations would overflow 16 bits past 1.36 s: the sender caps.
	s, err := NewDTMFSender(DTMFSenderConfig{ClockRate: 48000, Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pkts, _ := s.Packets(nil, '1', 0)
	if end := pkts[len(pkts)-1].Event.Duration; end < 60000 {
		t.Errorf("capped end duration %d", end)
	}
	if _, err := s.Packets(nil, 'Z', 0); !errors.Is(err, ErrUnknownDigit) {
		t.Errorf("digit Z: %v", err)
	}
}

// stream builds the telephone-event packets for digits on one RTP stream.
func stream(t *testing.T, clock uint32, digits string) []DTMFPacket {
	t.Helper()
	s, err := NewDTMFSender(DTMFSenderConfig{ClockRate: clock})
	if err != nil {
		t.Fatal(err)
	}
	var all []DTMFPacket
	ts := uint32(0xFFFF_F000) // cross the timestamp wrap on the way
	for i := 0; i < len(digits); i++ {
		pkts, err := s.Packets(nil, digits[i], ts)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, pkts...)
		ts += s.Span() + 10*(clock/50) // 200 ms of audio between keys
	}
	return all
}

func receive(t *testing.T, pkts []DTMFPacket) string {
	t.Helper()
	var r DTMFReceiver
	var got []byte
	for _, p := range pkts {
		d, ok, err := r.PushRTP(p.RTP(101, 1, 0))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, d)
		}
	}
	return string(got)
}

func TestDTMFSenderToReceiverEachDigitOnce(t *testing.T) {
	const digits = "0123456789*#ABCD11"
	for _, clock := range []uint32{8000, 48000} {
		pkts := stream(t, clock, digits)
		if got := receive(t, pkts); got != digits {
			t.Errorf("clock %d: received %q, want %q", clock, got, digits)
		}

		// The network duplicates every packet and reorders within each event.
		rng := rand.New(rand.NewPCG(1, 2))
		var messy []DTMFPacket
		for start := 0; start < len(pkts); start += 8 {
			ev := append([]DTMFPacket(nil), pkts[start:start+8]...)
			ev = append(ev, ev...)
			rng.Shuffle(len(ev), func(i, j int) { ev[i], ev[j] = ev[j], ev[i] })
			messy = append(messy, ev...)
		}
		if got := receive(t, messy); got != digits {
			t.Errorf("clock %d with duplicates and reordering: %q", clock, got)
		}

		// Only the end packets of each event survive.
		var ends []DTMFPacket
		for _, p := range pkts {
			if p.Event.End {
				ends = append(ends, p)
			}
		}
		if got := receive(t, ends); got != digits {
			t.Errorf("clock %d, end packets only: %q", clock, got)
		}
	}
}

func TestDTMFReceiverAcceptsZeroDurationStart(t *testing.T) {
	// sipp's bundled RFC 2833 pcap: the first packet has duration 0.
	var r DTMFReceiver
	pay := func(dur uint16, end bool) []byte {
		return TelephoneEvent{Event: 1, Volume: 10, Duration: dur, End: end}.Marshal()
	}
	d, ok, err := r.Push(1000, true, pay(0, false))
	if err != nil || !ok || d != '1' {
		t.Fatalf("zero-duration start: %q %v %v", d, ok, err)
	}
	for _, dur := range []uint16{160, 320, 400, 400, 400} {
		if _, ok, _ := r.Push(1000, false, pay(dur, dur == 400)); ok {
			t.Fatalf("update with duration %d reported again", dur)
		}
	}
}

func TestDTMFReceiverLongEventAndStragglers(t *testing.T) {
	var r DTMFReceiver
	ev := func(code uint8, dur uint16, end bool) []byte {
		return TelephoneEvent{Event: code, Duration: dur, End: end}.Marshal()
	}
	if _, ok, _ := r.Push(0, true, ev(9, 160, false)); !ok {
		t.Fatal("start not reported")
	}
	// RFC 4733 2.5.1.3: a long event continues at a new timestamp without marker.
	if _, ok, _ := r.Push(65535, false, ev(9, 160, false)); ok {
		t.Error("long-event continuation reported as a new key")
	}
	if _, ok, _ := r.Push(65535, false, ev(9, 800, true)); ok {
		t.Error("end of continuation reported")
	}
	// A straggler from the first segment arrives after the continuation.
	if _, ok, _ := r.Push(0, false, ev(9, 320, false)); ok {
		t.Error("straggler reported")
	}
	// The same key pressed again after the end is a new press.
	if d, ok, _ := r.Push(70000, true, ev(9, 0, false)); !ok || d != '9' {
		t.Error("second press of the same key lost")
	}
	if _, _, err := r.Push(80000, true, []byte{1}); err == nil {
		t.Error("1-byte payload accepted")
	}
}

func TestTelephoneEventRescaleBetweenLegs(t *testing.T) {
	browser := TelephoneEvent{Event: 3, Duration: 4800} // 100 ms at 48 kHz
	if sip := browser.Rescale(OpusClockRate, G711ClockRate); sip.Duration != 800 || sip.Event != 3 {
		t.Errorf("48k->8k: %+v", sip)
	}
	if up := (TelephoneEvent{Duration: 20000}).Rescale(8000, 48000); up.Duration != 0xFFFF {
		t.Errorf("8k->48k overflow not capped: %d", up.Duration)
	}
}
