package rtpsim

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Direction is an SDP media direction attribute.
type Direction string

// Media directions (RFC 3264).
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// Codec is one payload format of an audio stream.
type Codec struct {
	// PT is the RTP payload type.
	PT uint8
	// Name is the encoding name, e.g. PCMU or telephone-event.
	Name string
}

// Media is the first audio stream of an SDP body.
type Media struct {
	// IP is the connection address.
	IP net.IP
	// Port is the RTP port; 0 means the stream is rejected.
	Port int
	// Codecs are the payload formats in preference order.
	Codecs []Codec
	// Direction is the stream direction (sendrecv when absent).
	Direction Direction
}

// Addr is the RTP destination of the stream.
func (m Media) Addr() *net.UDPAddr { return &net.UDPAddr{IP: m.IP, Port: m.Port} }

// Audio returns the first G.711 codec of the stream.
func (m Media) Audio() (Codec, bool) {
	for _, c := range m.Codecs {
		if c.Name == "PCMU" || c.Name == "PCMA" {
			return c, true
		}
	}
	return Codec{}, false
}

// DTMF returns the telephone-event payload type, if offered.
func (m Media) DTMF() (uint8, bool) {
	for _, c := range m.Codecs {
		if strings.EqualFold(c.Name, "telephone-event") {
			return c.PT, true
		}
	}
	return 0, false
}

// ErrNoAudio means an SDP body has no usable audio stream.
var ErrNoAudio = errors.New("sdp: no audio stream")

// Parse reads the first audio stream of an SDP body.
func Parse(body []byte) (Media, error) {
	var m Media
	var sessionIP, mediaIP net.IP
	inAudio, seenAudio := false, false
	m.Direction = SendRecv
	names := map[uint8]string{0: "PCMU", 8: "PCMA"}
	var order []uint8
	for _, line := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		k, v := line[0], line[2:]
		switch k {
		case 'c':
			f := strings.Fields(v)
			if len(f) == 3 {
				ip := net.ParseIP(f[2])
				if inAudio {
					mediaIP = ip
				} else if !seenAudio {
					sessionIP = ip
				}
			}
		case 'm':
			if seenAudio {
				inAudio = false
				continue
			}
			f := strings.Fields(v)
			if len(f) < 4 || f[0] != "audio" {
				continue
			}
			p, err := strconv.Atoi(f[1])
			if err != nil || p < 0 || p > 65535 {
				return Media{}, fmt.Errorf("sdp: bad port %q", f[1])
			}
			m.Port, inAudio, seenAudio = p, true, true
			for _, s := range f[3:] {
				pt, err := strconv.Atoi(s)
				if err != nil || pt < 0 || pt > 127 {
					return Media{}, fmt.Errorf("sdp: bad payload type %q", s)
				}
				order = append(order, uint8(pt))
			}
		case 'a':
			if !inAudio && seenAudio {
				continue
			}
			switch {
			case strings.HasPrefix(v, "rtpmap:"):
				f := strings.Fields(strings.TrimPrefix(v, "rtpmap:"))
				if len(f) == 2 {
					pt, err := strconv.Atoi(f[0])
					if err == nil && pt >= 0 && pt < 128 {
						names[uint8(pt)] = strings.SplitN(f[1], "/", 2)[0]
					}
				}
			case v == "sendrecv" || v == "sendonly" || v == "recvonly" || v == "inactive":
				m.Direction = Direction(v)
			}
		}
	}
	if !seenAudio {
		return Media{}, ErrNoAudio
	}
	m.IP = sessionIP
	if mediaIP != nil {
		m.IP = mediaIP
	}
	if m.IP == nil {
		return Media{}, fmt.Errorf("sdp: no connection address: %w", ErrNoAudio)
	}
	for _, pt := range order {
		m.Codecs = append(m.Codecs, Codec{PT: pt, Name: names[pt]})
	}
	return m, nil
}

// Build writes an SDP body for one audio stream. sessID distinguishes
// sessions; version must grow with each new offer of the same session.
func Build(ip net.IP, port int, codecs []Codec, dir Direction, sessID, version uint64) []byte {
	if dir == "" {
		dir = SendRecv
	}
	var pts []string
	var attrs strings.Builder
	for _, c := range codecs {
		pts = append(pts, strconv.Itoa(int(c.PT)))
		fmt.Fprintf(&attrs, "a=rtpmap:%d %s/8000\r\n", c.PT, c.Name)
		if strings.EqualFold(c.Name, "telephone-event") {
			fmt.Fprintf(&attrs, "a=fmtp:%d 0-16\r\n", c.PT)
		}
	}
	return fmt.Appendf(nil, "v=0\r\no=cxlab %d %d IN IP4 %s\r\ns=cxlab\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP %s\r\n%sa=ptime:20\r\na=%s\r\n",
		sessID, version, ip, ip, port, strings.Join(pts, " "), attrs.String(), dir)
}

// DefaultCodecs is what simulated endpoints offer: PCMU, PCMA, telephone-event/101.
func DefaultCodecs() []Codec {
	return []Codec{{0, "PCMU"}, {8, "PCMA"}, {101, "telephone-event"}}
}

// Answer picks, from an offer, the codecs an endpoint that speaks G.711 and
// RFC 4733 accepts: the offer's first G.711 codec and its telephone-event.
func Answer(offer Media) ([]Codec, error) {
	a, ok := offer.Audio()
	if !ok {
		return nil, fmt.Errorf("sdp answer: no PCMU/PCMA offered: %w", ErrNoAudio)
	}
	out := []Codec{a}
	if pt, ok := offer.DTMF(); ok {
		out = append(out, Codec{PT: pt, Name: "telephone-event"})
	}
	return out, nil
}

// Reverse is the direction to answer with when the peer offers d.
func (d Direction) Reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	default:
		return SendRecv
	}
}
