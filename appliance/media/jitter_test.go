package media

import (
	"errors"
	"testing"
	"time"
)

func newJB(t *testing.T, cfg JitterConfig) *JitterBuffer {
	t.Helper()
	jb, err := NewJitterBuffer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return jb
}

// pkt pushes a packet whose payload is its sequence number, so tests can see
// which packet came out.
func push(t *testing.T, jb *JitterBuffer, seq uint16) {
	t.Helper()
	if err := jb.Push(seq, uint32(seq)*160, false, []byte{byte(seq >> 8), byte(seq)}); err != nil {
		t.Fatal(err)
	}
}

type popped struct {
	status FrameStatus
	seq    uint16
}

func pop(t *testing.T, jb *JitterBuffer) popped {
	t.Helper()
	buf := make([]byte, 1500)
	f, err := jb.Pop(buf)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status == FrameOK {
		if got := uint16(f.Payload[0])<<8 | uint16(f.Payload[1]); got != f.Seq || f.Timestamp != uint32(f.Seq)*160 {
			t.Fatalf("frame %d carries payload of %d, ts %d", f.Seq, got, f.Timestamp)
		}
	}
	return popped{f.Status, f.Seq}
}

func TestJitterBufferWaitsForDepthThenPlaysInOrder(t *testing.T) {
	jb := newJB(t, JitterConfig{Depth: 60 * time.Millisecond})
	if p := pop(t, jb); p.status != FrameBuffering {
		t.Fatalf("empty buffer popped %+v", p)
	}
	// Arrival order 100, 101, 103, 102: 102 overtaken but in time.
	push(t, jb, 100)
	push(t, jb, 101)
	if p := pop(t, jb); p.status != FrameBuffering {
		t.Fatalf("played before depth: %+v", p)
	}
	push(t, jb, 103)
	if p := pop(t, jb); p != (popped{FrameOK, 100}) {
		t.Fatalf("popped %+v, want 100", p)
	}
	push(t, jb, 102)
	for want := uint16(101); want < 104; want++ {
		if p := pop(t, jb); p != (popped{FrameOK, want}) {
			t.Fatalf("popped %+v, want %d", p, want)
		}
	}
	if st := jb.Stats(); st.Lost != 0 || st.Late != 0 || st.Buffered != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterBufferLossDuplicatesAndLatePackets(t *testing.T) {
	jb := newJB(t, JitterConfig{Depth: 40 * time.Millisecond})
	for _, s := range []uint16{1, 2, 2, 4, 5, 1} { // 3 lost, 2 duplicated, 1 again
		push(t, jb, s)
	}
	want := []popped{{FrameOK, 1}, {FrameOK, 2}, {FrameMissing, 3}, {FrameOK, 4}}
	for _, w := range want {
		if p := pop(t, jb); p != w {
			t.Fatalf("popped %+v, want %+v", p, w)
		}
	}
	push(t, jb, 3) // arrives after its slot played
	if p := pop(t, jb); p != (popped{FrameOK, 5}) {
		t.Fatalf("popped %+v", p)
	}
	st := jb.Stats()
	if jb.Lost() != 1 || st.Duplicates != 2 || st.Late != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterBufferSequenceWrapAround(t *testing.T) {
	jb := newJB(t, JitterConfig{Depth: 60 * time.Millisecond, Capacity: 10})
	order := []uint16{65533, 65535, 65534, 1, 0, 2, 3, 5, 4}
	for _, s := range order {
		push(t, jb, s)
	}
	for _, want := range []uint16{65533, 65534, 65535, 0, 1, 2, 3, 4, 5} {
		if p := pop(t, jb); p != (popped{FrameOK, want}) {
			t.Fatalf("popped %+v, want %d", p, want)
		}
	}
	if st := jb.Stats(); st.Lost != 0 || st.Late != 0 || st.Resets != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterBufferRefillsAfterUnderrun(t *testing.T) {
	jb := newJB(t, JitterConfig{Depth: 40 * time.Millisecond})
	push(t, jb, 10)
	push(t, jb, 11)
	pop(t, jb)
	pop(t, jb)
	// The sender pauses (hold, DTX): no loss is invented while nothing arrives.
	for range 5 {
		if p := pop(t, jb); p.status != FrameBuffering {
			t.Fatalf("popped %+v during a pause", p)
		}
	}
	// It resumes after losing packet 12.
	push(t, jb, 13)
	push(t, jb, 14)
	if p := pop(t, jb); p != (popped{FrameMissing, 12}) {
		t.Fatalf("popped %+v, want 12 missing", p)
	}
	if p := pop(t, jb); p != (popped{FrameOK, 13}) {
		t.Fatalf("popped %+v", p)
	}
	if st := jb.Stats(); st.Lost != 1 || st.Underruns != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterBufferJumpsAndRestarts(t *testing.T) {
	jb := newJB(t, JitterConfig{Depth: 20 * time.Millisecond, Capacity: 8})
	push(t, jb, 1)
	if p := pop(t, jb); p != (popped{FrameOK, 1}) {
		t.Fatalf("popped %+v", p)
	}
	// A 2 s outage: 100 packets never came.
	push(t, jb, 102)
	if p := pop(t, jb); p != (popped{FrameOK, 102}) {
		t.Fatalf("after the outage popped %+v", p)
	}
	if jb.Lost() != 100 {
		t.Errorf("lost %d, want 100", jb.Lost())
	}
	// The sender restarts its sequence: one stray far packet is ignored,
	// two consecutive ones restart the stream.
	push(t, jb, 40000)
	if st := jb.Stats(); st.Resets != 0 || st.Buffered != 0 {
		t.Fatalf("single far packet accepted: %+v", st)
	}
	push(t, jb, 40001)
	if p := pop(t, jb); p != (popped{FrameOK, 40001}) {
		t.Fatalf("after restart popped %+v", p)
	}
	if st := jb.Stats(); st.Resets != 1 || st.Lost != 100 {
		t.Errorf("stats %+v", st)
	}
}

func TestJitterBufferRejectsOversizeAndBadConfig(t *testing.T) {
	jb := newJB(t, JitterConfig{MaxPayload: 200})
	if err := jb.Push(1, 0, false, make([]byte, 201)); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("oversize payload: %v", err)
	}
	if _, err := NewJitterBuffer(JitterConfig{Depth: time.Second, Capacity: 8}); err == nil {
		t.Error("depth beyond capacity accepted")
	}
	jb = newJB(t, JitterConfig{Depth: 20 * time.Millisecond})
	_ = jb.Push(1, 0, false, make([]byte, 100))
	if _, err := jb.Pop(make([]byte, 10)); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short pop buffer: %v", err)
	}
}

func TestJitterBufferSteadyStateAllocatesNothing(t *testing.T) {
	jb := newJB(t, JitterConfig{})
	payload := make([]byte, 80)
	buf := make([]byte, 1500)
	seq := uint16(0)
	for range 3 {
		_ = jb.Push(seq, 0, false, payload)
		seq++
	}
	allocs := testing.AllocsPerRun(200, func() {
		_ = jb.Push(seq, 0, false, payload)
		seq++
		if f, _ := jb.Pop(buf); f.Status != FrameOK {
			t.Fatalf("status %v", f.Status)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocs per packet", allocs)
	}
}

func TestJitterBufferFirstPacketsReordered(t *testing.T) {
	jb := newJB(t, JitterConfig{Depth: 60 * time.Millisecond})
	for _, s := range []uint16{501, 500, 502} {
		push(t, jb, s)
	}
	for want := uint16(500); want < 503; want++ {
		if p := pop(t, jb); p != (popped{FrameOK, want}) {
			t.Fatalf("popped %+v, want %d", p, want)
		}
	}
	if st := jb.Stats(); st.Late != 0 || st.Lost != 0 {
		t.Errorf("stats %+v", st)
	}
}
