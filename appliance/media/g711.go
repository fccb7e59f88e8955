package media

import (
	"fmt"

	"github.com/zaf/g711"
)

// Law selects the G.711 companding law of a SIP leg.
type Law uint8

const (
	// PCMU is G.711 mu-law, RTP static payload type 0 (North America, Japan).
	PCMU Law = iota
	// PCMA is G.711 A-law, RTP static payload type 8 (rest of the world).
	PCMA
)

// String returns the SDP encoding name.
func (l Law) String() string {
	switch l {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	default:
		return fmt.Sprintf("Law(%d)", uint8(l))
	}
}

// PayloadType returns the static RTP payload type of the law (0 or 8).
func (l Law) PayloadType() uint8 {
	if l == PCMA {
		return 8
	}
	return 0
}

// SilenceByte returns the code of a zero sample, used to fill silent frames.
func (l Law) SilenceByte() byte {
	if l == PCMA {
		return 0xD5
	}
	return 0xFF
}

// LawFromPayloadType maps RTP payload type 0 or 8 to a Law.
func LawFromPayloadType(pt uint8) (Law, error) {
	switch pt {
	case 0:
		return PCMU, nil
	case 8:
		return PCMA, nil
	default:
		return 0, fmt.Errorf("law from payload type %d: %w", pt, ErrMalformed)
	}
}

// LawFromName maps an SDP encoding name ("PCMU", "PCMA", any case) to a Law.
func LawFromName(name string) (Law, error) {
	switch name {
	case "PCMU", "pcmu":
		return PCMU, nil
	case "PCMA", "pcma":
		return PCMA, nil
	default:
		return 0, fmt.Errorf("law from name %q: %w", name, ErrMalformed)
	}
}

// EncodeG711 appends the G.711 encoding of pcm to dst[:0] and returns it; it
// allocates only when dst is too small. The zaf/g711 slice helpers take
// little-endian bytes and allocate per call, so only its per-sample functions
// are used.
func EncodeG711(law Law, pcm []int16, dst []byte) []byte {
	if cap(dst) < len(pcm) {
		dst = make([]byte, len(pcm))
	}
	dst = dst[:len(pcm)]
	if law == PCMA {
		for i, s := range pcm {
			dst[i] = g711.EncodeAlawFrame(s)
		}
		return dst
	}
	for i, s := range pcm {
		dst[i] = g711.EncodeUlawFrame(s)
	}
	return dst
}

// DecodeG711 writes the linear samples of payload into dst[:0] and returns
// them; it allocates only when dst is too small.
func DecodeG711(law Law, payload []byte, dst []int16) []int16 {
	if cap(dst) < len(payload) {
		dst = make([]int16, len(payload))
	}
	dst = dst[:len(payload)]
	if law == PCMA {
		for i, b := range payload {
			dst[i] = g711.DecodeAlawFrame(b)
		}
		return dst
	}
	for i, b := range payload {
		dst[i] = g711.DecodeUlawFrame(b)
	}
	return dst
}

// TranscodeG711 converts a G.711 payload from one law to the other in place
// of dst (table lookup, no linear step), or copies it when the laws match:
// the pass-through path for a SIP leg whose peer already speaks G.711.
func TranscodeG711(from, to Law, payload []byte, dst []byte) []byte {
	if cap(dst) < len(payload) {
		dst = make([]byte, len(payload))
	}
	dst = dst[:len(payload)]
	switch from {
	case to:
		copy(dst, payload)
	case PCMU:
		for i, b := range payload {
			dst[i] = g711.Ulaw2AlawFrame(b)
		}
	default:
		for i, b := range payload {
			dst[i] = g711.Alaw2UlawFrame(b)
		}
	}
	return dst
}

// SilenceG711 fills dst with n bytes of digital silence in the given law.
func SilenceG711(law Law, n int, dst []byte) []byte {
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	b := law.SilenceByte()
	for i := range dst {
		dst[i] = b
	}
	return dst
}
