package rtc

import (
	"slices"
	"strings"
	"testing"
)

// chromeOffer is an Opus+G.711 offer the way Chrome sends it (trimmed).
const chromeOffer = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 110 126\r\nc=IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\n" +
	"a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n" +
	"a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" +
	"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n"

// seedMessages are RSMP/SDP bodies as the Grtc JS library and the gateway send them.
var seedMessages = []string{
	`RSMP {"messageType":"OFFER","sdp":` + quote(chromeOffer) + `,"offererSessionId":1,"seq":1,"tiebreaker":123456}`,
	`RSMP {"messageType":"ANSWER","sdp":"v=0\r\nm=audio 9 RTP/AVP 0\r\na=recvonly\r\n","offererSessionId":1,"answererSessionId":2,"seq":1}`,
	`RSMP {"messageType":"OK","offererSessionId":1,"answererSessionId":2,"seq":1}`,
	`SDP {"messageType":"OFFER","sdp":"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n",` +
		`"Candidates":[{"sdpMLineIndex":0,"sdpMid":"0","candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}],` +
		`"attacheddata":[{"key":"order","value":"42"}]}`,
	`RSMP {"messageType":"PRANSWER","sdp":"v=0"}`,
	`RSMP {not json`,
	`RSMP {"messageType":"OFFER","sdp":"   "}`,
	`{"messageType":"OFFER","sdp":"v=0","Candidates":[{"sdpMLineIndex":-1,"candidate":"a=candidate:x"}]}`,
	"BYE",
}

func quote(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "\"", "\\\"", "\r", "\\r", "\n", "\\n")
	return `"` + r.Replace(s) + `"`
}

// FuzzParseMessage: the signalling parser never panics, accepts only the three
// message types with an SDP where one is due, and what it accepts survives
// the gateway's own encoding unchanged.
func FuzzParseMessage(f *testing.F) {
	for _, s := range seedMessages {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		m, err := ParseMessage(body)
		if err != nil {
			if m.Type != "" || m.SDP != "" {
				t.Fatalf("error %v came with a message %+v", err, m)
			}
			return
		}
		if !slices.Contains([]string{"OFFER", "ANSWER", "OK"}, m.Type) {
			t.Fatalf("accepted messageType %q", m.Type)
		}
		if m.Type != "OK" && strings.TrimSpace(m.SDP) == "" {
			t.Fatalf("accepted %s without sdp", m.Type)
		}
		full := m.FullSDP()
		if len(m.Candidates) == 0 && full != m.SDP {
			t.Fatalf("FullSDP changed an SDP without bulk candidates")
		}
		enc := m.Encode("RSMP ")
		again, err := ParseMessage(enc)
		if err != nil {
			t.Fatalf("own encoding %q does not parse: %v", enc, err)
		}
		if again.Encode("RSMP ") != enc || again.FullSDP() != full {
			t.Fatalf("round trip changed the message:\n%q\n%q", enc, again.Encode("RSMP "))
		}
	})
}

// wellFormedSDP reports whether every line is free of surrounding white space
// (RFC 8866 grammar), the only SDPs on which the two scanners must agree.
func wellFormedSDP(sdp string) bool {
	for _, l := range strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n") {
		if l != strings.TrimSpace(l) {
			return false
		}
	}
	return true
}

// FuzzSDPScan: CodecsInSDP and SetDirection (hold/resume) never panic,
// SetDirection is idempotent and keeps the codec list, and on a well-formed
// SDP the audio direction afterwards is the one asked for.
func FuzzSDPScan(f *testing.F) {
	f.Add(chromeOffer, uint8(0))
	f.Add("v=0\r\nm=audio 5004 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n", uint8(1))
	f.Add("v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\na=rtpmap:96 VP8/90000\nm=audio 9 RTP/AVP 0\na=inactive\n", uint8(2))
	f.Add("m=audio 9 RTP/AVP 0 8\r\nm=audio 10 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", uint8(3))
	f.Add("a=sendrecv\r\nm=audio\r\n", uint8(0))
	dirs := []string{"sendrecv", "sendonly", "recvonly", "inactive"}
	f.Fuzz(func(t *testing.T, sdp string, d uint8) {
		names, dir, hasAudio := CodecsInSDP(sdp)
		if !hasAudio && (len(names) > 0 || dir != "") {
			t.Fatalf("no audio section but names=%v direction=%q", names, dir)
		}
		if dir != "" && !slices.Contains(dirs, dir) {
			t.Fatalf("direction %q", dir)
		}
		for _, n := range names {
			if n != strings.ToUpper(n) {
				t.Fatalf("codec name %q is not upper-case", n)
			}
		}
		want := dirs[int(d)%len(dirs)]
		held := SetDirection(sdp, want)
		if again := SetDirection(held, want); again != held {
			t.Fatalf("SetDirection not idempotent:\n%q\n%q", held, again)
		}
		if !wellFormedSDP(sdp) {
			return
		}
		names2, dir2, hasAudio2 := CodecsInSDP(held)
		if hasAudio2 != hasAudio || !slices.Equal(names2, names) {
			t.Fatalf("SetDirection changed codecs: %v %v -> %v %v", hasAudio, names, hasAudio2, names2)
		}
		if hasAudio && dir2 != want {
			t.Fatalf("direction after SetDirection(%s) = %q", want, dir2)
		}
	})
}
