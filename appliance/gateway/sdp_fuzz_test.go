package gateway

import (
	"slices"
	"testing"
)

// FuzzParseSIPSDP: the SIP-side SDP parser never panics; what it accepts is
// a usable G.711 description, and the gateway's own rendering of that
// description parses back to the same laws, events and direction.
func FuzzParseSIPSDP(f *testing.F) {
	// What the Voice emulator, sipp and a desk phone send.
	f.Add([]byte("v=0\r\no=voice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"))
	f.Add([]byte("v=0\no=- 0 0 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 8\na=sendonly\n"))
	f.Add([]byte("v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 5000 RTP/AVP 96\r\nm=audio 5002 RTP/AVP 18 0\r\nc=IN IP4 192.0.2.2\r\na=inactive\r\n"))
	f.Add([]byte("v=0\r\nm=audio 9 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"))
	f.Add([]byte("m=audio x RTP/AVP 0\r\n"))
	f.Add([]byte("m=audio 0 RTP/AVP 96\r\na=rtpmap:96 pcmu/8000\r\nc=IN IP6 ::1\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := parseSIPSDP(body)
		if err != nil {
			return
		}
		if len(m.laws) == 0 || m.law != m.laws[0] {
			t.Fatalf("accepted without a law: %+v", m)
		}
		if !slices.Contains([]string{"sendrecv", "sendonly", "recvonly", "inactive"}, m.direction) {
			t.Fatalf("direction %q", m.direction)
		}
		if m.eventPT >= 128 {
			t.Fatalf("event payload type %d", m.eventPT)
		}
		if m.addr != nil && (m.addr.IP == nil || m.addr.Port <= 0) {
			t.Fatalf("unusable address %v", m.addr)
		}
		if m.eventPT == 8 {
			// Known: a non-canonical "08" telephone-event PT collides with
			// PCMA; see TestParseSIPSDPNonCanonicalEventPT.
			return
		}
		out := sipSDP("127.0.0.1", 40000, 1, 1, m.laws, m.eventPT, m.direction)
		again, err := parseSIPSDP(out)
		if err != nil {
			t.Fatalf("own SDP %q does not parse: %v", out, err)
		}
		if !slices.Equal(again.laws, m.laws) || again.eventPT != m.eventPT || again.direction != m.direction ||
			again.addr == nil || again.addr.Port != 40000 {
			t.Fatalf("round trip changed %+v into %+v (%q)", m, again, out)
		}
	})
}

// TestParseSIPSDPOutOfRangePort: an audio port beyond 65535 must not become a
// media address.
func TestParseSIPSDPOutOfRangePort(t *testing.T) {
	m, err := parseSIPSDP([]byte("c=IN IP4 127.0.0.1\r\nm=audio 70000 RTP/AVP 0\r\n"))
	if err == nil && m.addr != nil {
		t.Fatalf("port 70000 accepted as %v", m.addr)
	}
}

// TestParseSIPSDPNonCanonicalEventPT: "08" is payload type 8, PCMA's static
// number, so it cannot also be telephone-event.
func TestParseSIPSDPNonCanonicalEventPT(t *testing.T) {
	m, err := parseSIPSDP([]byte("m=audio 4000 RTP/AVP 0 08\r\na=rtpmap:08 telephone-event/8000\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.eventPT == 8 {
		t.Fatalf("eventPT 8 collides with PCMA")
	}
}
