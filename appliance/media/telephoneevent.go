package media

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pion/rtp"
)

// TelephoneEvent is the 4-byte RFC 4733 section 2.3 payload.
type TelephoneEvent struct {
	// Event is the event code: 0-9, 10 '*', 11 '#', 12-15 'A'-'D', 16 flash.
	Event uint8
	// End marks the last packet(s) of the event.
	End bool
	// Volume is the power level in -dBm0, 0..63 (larger is quieter).
	Volume uint8
	// Duration is the length so far, in RTP timestamp units of the stream.
	Duration uint16
}

// TelephoneEventSize is the size of a marshalled TelephoneEvent.
const TelephoneEventSize = 4

// MarshalTo writes the payload into b, which must hold TelephoneEventSize bytes.
func (e TelephoneEvent) MarshalTo(b []byte) error {
	if len(b) < TelephoneEventSize {
		return fmt.Errorf("marshal telephone-event: %w", ErrShortBuffer)
	}
	b[0] = e.Event
	b[1] = e.Volume & 0x3F
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], e.Duration)
	return nil
}

// Marshal returns the 4-byte payload.
func (e TelephoneEvent) Marshal() []byte {
	b := make([]byte, TelephoneEventSize)
	_ = e.MarshalTo(b) // cannot fail: b is sized above
	return b
}

// Unmarshal parses an RFC 4733 payload. Extra bytes (RFC 4733 allows several
// events in one redundant payload) are ignored: the first event is the one
// this packet reports.
func (e *TelephoneEvent) Unmarshal(b []byte) error {
	if len(b) < TelephoneEventSize {
		return fmt.Errorf("unmarshal telephone-event of %d bytes: %w", len(b), ErrMalformed)
	}
	e.Event = b[0]
	e.End = b[1]&0x80 != 0
	e.Volume = b[1] & 0x3F
	e.Duration = binary.BigEndian.Uint16(b[2:4])
	return nil
}

// Digit returns the DTMF key of the event ('0'-'9', '*', '#', 'A'-'D') and
// false for other events such as flash.
func (e TelephoneEvent) Digit() (byte, bool) { return EventDigit(e.Event) }

// Rescale converts the duration from one RTP clock to another, for relaying
// an event between the browser leg (48000) and the SIP leg (8000).
func (e TelephoneEvent) Rescale(fromClock, toClock uint32) TelephoneEvent {
	if fromClock == 0 || fromClock == toClock {
		return e
	}
	d := uint64(e.Duration) * uint64(toClock) / uint64(fromClock)
	e.Duration = uint16(min(d, 0xFFFF))
	return e
}

const dtmfKeys = "0123456789*#ABCD"

// DigitEvent maps a DTMF key to its RFC 4733 event code ('a'-'d' accepted too).
func DigitEvent(digit byte) (uint8, error) {
	if digit >= 'a' && digit <= 'd' {
		digit -= 'a' - 'A'
	}
	for i := 0; i < len(dtmfKeys); i++ {
		if dtmfKeys[i] == digit {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("digit %q: %w", digit, ErrUnknownDigit)
}

// EventDigit maps an RFC 4733 event code to its DTMF key.
func EventDigit(event uint8) (byte, bool) {
	if int(event) < len(dtmfKeys) {
		return dtmfKeys[event], true
	}
	return 0, false
}

// DTMFPacket is one RTP packet of a telephone-event, before the caller adds
// the stream's SSRC, payload type and next sequence number.
type DTMFPacket struct {
	// Marker is set on the first packet of the event.
	Marker bool
	// Timestamp is the event's start timestamp, the same in all its packets.
	Timestamp uint32
	// Event is the payload.
	Event TelephoneEvent
	// SendAt is when to send the packet, counted from the first one.
	SendAt time.Duration
}

// RTP builds the pion packet for this event packet on a stream.
func (p DTMFPacket) RTP(payloadType uint8, ssrc uint32, seq uint16) *rtp.Packet {
	return &rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			Marker:         p.Marker,
			PayloadType:    payloadType,
			SequenceNumber: seq,
			Timestamp:      p.Timestamp,
			SSRC:           ssrc,
		},
		Payload: p.Event.Marshal(),
	}
}

// DTMFSenderConfig describes the RTP stream a DTMFSender writes into. The
// zero value means the defaults.
type DTMFSenderConfig struct {
	// ClockRate is the stream's RTP clock: 8000 toward SIP, 48000 toward the
	// browser (telephone-event/48000 follows the Opus clock). Default 8000.
	ClockRate uint32
	// Duration is how long each key is held. Default 100 ms; capped so the
	// duration field (16 bits) does not overflow.
	Duration time.Duration
	// Volume is the power in -dBm0 reported in each packet, 0..63. Default 10.
	Volume uint8
}

// DTMFSender turns keys into RFC 4733 packet sequences.
type DTMFSender struct {
	clock  uint32
	step   uint32 // timestamp units per 20 ms
	steps  int    // update packets per event
	volume uint8
}

// NewDTMFSender validates cfg and returns a sender.
func NewDTMFSender(cfg DTMFSenderConfig) (*DTMFSender, error) {
	if cfg.ClockRate == 0 {
		cfg.ClockRate = G711ClockRate
	}
	if cfg.ClockRate%50 != 0 {
		return nil, fmt.Errorf("dtmf sender: clock rate %d is not a multiple of 50 Hz", cfg.ClockRate)
	}
	if cfg.Duration == 0 {
		cfg.Duration = 100 * time.Millisecond
	}
	if cfg.Volume == 0 {
		cfg.Volume = 10
	}
	if cfg.Volume > 63 {
		return nil, fmt.Errorf("dtmf sender: volume %d above 63", cfg.Volume)
	}
	step := cfg.ClockRate / 50
	steps := int(cfg.Duration / FrameDuration)
	if steps < 2 {
		steps = 2 // 40 ms, the shortest key most receivers accept
	}
	if maxSteps := int(0xFFFF / step); steps > maxSteps {
		steps = maxSteps
	}
	return &DTMFSender{clock: cfg.ClockRate, step: step, steps: steps, volume: cfg.Volume}, nil
}

// Span returns how many timestamp units one key occupies, so the caller can
// advance its audio timestamp past the event.
func (s *DTMFSender) Span() uint32 { return uint32(s.steps) * s.step }

// Packets appends to dst[:0] the packets for one key starting at RTP
// timestamp ts: a first packet with the marker bit, an update every 20 ms
// with growing duration, then the final packet sent three times (RFC 4733
// section 2.5.1.4) with the same timestamp and the full duration.
func (s *DTMFSender) Packets(dst []DTMFPacket, digit byte, ts uint32) ([]DTMFPacket, error) {
	ev, err := DigitEvent(digit)
	if err != nil {
		return nil, fmt.Errorf("dtmf packets: %w", err)
	}
	dst = dst[:0]
	for k := 1; k <= s.steps; k++ {
		dst = append(dst, DTMFPacket{
			Marker:    k == 1,
			Timestamp: ts,
			Event:     TelephoneEvent{Event: ev, Volume: s.volume, Duration: uint16(uint32(k) * s.step)},
			SendAt:    time.Duration(k-1) * FrameDuration,
		})
	}
	end := TelephoneEvent{Event: ev, End: true, Volume: s.volume, Duration: uint16(s.Span())}
	for range 3 {
		dst = append(dst, DTMFPacket{Timestamp: ts, Event: end, SendAt: time.Duration(s.steps) * FrameDuration})
	}
	return dst, nil
}

// DTMFReceiver turns a stream of telephone-event packets into key presses,
// each reported exactly once however many updates, retransmitted end packets,
// duplicates or reorderings arrive. It is not safe for concurrent use.
type DTMFReceiver struct {
	have  bool
	ts    uint32 // start timestamp of the current event
	event uint8
	ended bool
}

// Push feeds one packet's RTP timestamp, marker bit and payload. It returns
// the key and true the first time an event (a new start timestamp) is seen,
// whatever its first packet's duration: sipp's pcap starts with duration 0.
func (r *DTMFReceiver) Push(ts uint32, marker bool, payload []byte) (byte, bool, error) {
	var ev TelephoneEvent
	if err := ev.Unmarshal(payload); err != nil {
		return 0, false, fmt.Errorf("dtmf receive: %w", err)
	}
	if r.have {
		diff := int32(ts - r.ts)
		if diff == 0 {
			r.ended = r.ended || ev.End
			return 0, false, nil
		}
		if diff < 0 {
			// A straggler from an event already reported.
			return 0, false, nil
		}
		// RFC 4733 section 2.5.1.3: a long event continues with a new
		// timestamp, no marker bit, and the same code; it is not a new press.
		if !marker && !r.ended && ev.Event == r.event && uint32(diff) <= 0xFFFF {
			r.ts, r.ended = ts, ev.End
			return 0, false, nil
		}
	}
	r.have, r.ts, r.event, r.ended = true, ts, ev.Event, ev.End
	d, ok := ev.Digit()
	return d, ok, nil
}

// PushRTP is Push for a pion packet.
func (r *DTMFReceiver) PushRTP(p *rtp.Packet) (byte, bool, error) {
	return r.Push(p.Timestamp, p.Marker, p.Payload)
}

// Reset forgets the stream, for a new call or SSRC.
func (r *DTMFReceiver) Reset() { *r = DTMFReceiver{} }
