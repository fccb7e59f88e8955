package gateway

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/cxlab/cxlab/appliance/media"
)

// sipMedia is the SIP leg's audio description: what an SDP offered or answered.
type sipMedia struct {
	law       media.Law
	laws      []media.Law // all G.711 laws offered, in preference order
	eventPT   uint8       // telephone-event/8000 payload type, 0 when absent
	addr      *net.UDPAddr
	direction string
}

var errNoG711 = errors.New("sdp offers no G.711 audio")

// parseSIPSDP reads the first audio section of a SIP SDP.
func parseSIPSDP(body []byte) (sipMedia, error) {
	var m sipMedia
	var sessIP, mediaIP string
	var port int
	var pts []string
	rtpmap := map[string]string{}
	inAudio, seen := false, false
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "c="):
			f := strings.Fields(line[2:])
			if len(f) == 3 {
				if inAudio {
					mediaIP = f[2]
				} else if !seen {
					sessIP = f[2]
				}
			}
		case strings.HasPrefix(line, "m="):
			if seen {
				inAudio = false
				continue
			}
			f := strings.Fields(line[2:])
			if len(f) >= 4 && f[0] == "audio" {
				inAudio, seen = true, true
				p, err := strconv.Atoi(f[1])
				if err != nil || p < 0 || p > 65535 {
					return m, fmt.Errorf("sdp: bad audio port %q", f[1])
				}
				port, pts = p, f[3:]
			}
		case inAudio && strings.HasPrefix(line, "a=rtpmap:"):
			f := strings.Fields(line[len("a=rtpmap:"):])
			if len(f) == 2 {
				rtpmap[f[0]] = strings.ToLower(f[1])
			}
		case inAudio && (line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive"):
			m.direction = line[2:]
		}
	}
	if !seen {
		return m, errors.New("sdp has no audio section")
	}
	for _, pt := range pts {
		enc := rtpmap[pt]
		switch {
		case pt == "0" || strings.HasPrefix(enc, "pcmu/"):
			m.laws = append(m.laws, media.PCMU)
		case pt == "8" || strings.HasPrefix(enc, "pcma/"):
			m.laws = append(m.laws, media.PCMA)
		case strings.HasPrefix(enc, "telephone-event/8000"):
			// Only a canonical dynamic payload type (RFC 3551: 96-127): "08"
			// would otherwise become 8, PCMA's static number.
			if n, err := strconv.Atoi(pt); err == nil && n >= 96 && n < 128 && strconv.Itoa(n) == pt {
				m.eventPT = uint8(n)
			}
		}
	}
	if len(m.laws) == 0 {
		return m, errNoG711
	}
	m.law = m.laws[0]
	ip := mediaIP
	if ip == "" {
		ip = sessIP
	}
	if parsed := net.ParseIP(ip); parsed != nil && port > 0 {
		m.addr = &net.UDPAddr{IP: parsed, Port: port}
	}
	if m.direction == "" {
		m.direction = "sendrecv"
	}
	return m, nil
}

// sipSDP renders the gateway's SIP-side SDP.
func sipSDP(ip string, port int, sessID uint64, version int, laws []media.Law, eventPT uint8, direction string) []byte {
	var fmts []string
	for _, l := range laws {
		fmts = append(fmts, strconv.Itoa(int(l.PayloadType())))
	}
	if eventPT != 0 {
		fmts = append(fmts, strconv.Itoa(int(eventPT)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=cxlab-gateway %d %d IN IP4 %s\r\ns=cxlab\r\nc=IN IP4 %s\r\nt=0 0\r\n", sessID, version, ip, ip)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\n", port, strings.Join(fmts, " "))
	for _, l := range laws {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/8000\r\n", l.PayloadType(), l.String())
	}
	if eventPT != 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-15\r\n", eventPT, eventPT)
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\n", direction)
	return []byte(b.String())
}
