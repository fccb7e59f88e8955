// Package rtc holds the pion pieces the gateway and the headless agent share:
// the codec table both sides offer, an audio track that can also carry RFC 4733
// telephone-events on the same SSRC, and the ROAP-style message of the Grtc
// wire protocol.
package rtc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Payload types follow what Chrome offers, so SDPs look familiar in traces.
const (
	// PTOpus is the dynamic payload type of Opus.
	PTOpus = 111
	// PTPCMU is the static payload type of G.711 mu-law.
	PTPCMU = 0
	// PTPCMA is the static payload type of G.711 A-law.
	PTPCMA = 8
	// PTEvent48k is telephone-event on the Opus clock.
	PTEvent48k = 110
	// PTEvent8k is telephone-event on the G.711 clock.
	PTEvent8k = 126
	// MimeEvent is the telephone-event media type.
	MimeEvent = "audio/telephone-event"
)

// ErrNoCodec means the two sides share no usable audio codec.
var ErrNoCodec = errors.New("no common audio codec")

// Codecs selects what a PeerConnection's MediaEngine offers or accepts.
type Codecs struct {
	// Opus enables audio/opus (48000/2).
	Opus bool
	// PCMU enables G.711 mu-law.
	PCMU bool
	// PCMA enables G.711 A-law.
	PCMA bool
}

// NewAPI builds a pion API with its own MediaEngine (pion requires one per
// PeerConnection) over a shared SettingEngine, with RTCP sender/receiver
// reports as the only interceptor: audio needs neither NACK nor TWCC.
func NewAPI(se webrtc.SettingEngine, c Codecs) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	reg := func(mime string, clock uint32, ch uint16, fmtp string, pt webrtc.PayloadType) error {
		return m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: clock, Channels: ch, SDPFmtpLine: fmtp},
			PayloadType:        pt,
		}, webrtc.RTPCodecTypeAudio)
	}
	var errs []error
	if c.Opus {
		errs = append(errs, reg(webrtc.MimeTypeOpus, 48000, 2, "minptime=10;useinbandfec=1", PTOpus))
		errs = append(errs, reg(MimeEvent, 48000, 0, "0-15", PTEvent48k))
	}
	if c.PCMU {
		errs = append(errs, reg(webrtc.MimeTypePCMU, 8000, 0, "", PTPCMU))
	}
	if c.PCMA {
		errs = append(errs, reg(webrtc.MimeTypePCMA, 8000, 0, "", PTPCMA))
	}
	if c.PCMU || c.PCMA {
		errs = append(errs, reg(MimeEvent, 8000, 0, "0-15", PTEvent8k))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("rtcp reports: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// CodecsInSDP lists the audio encodings (upper-case names such as "OPUS",
// "PCMU", "TELEPHONE-EVENT") of the first audio section in payload order, and
// its direction attribute ("" when absent). It is a light scan, enough to pick
// a codec before handing the SDP to pion.
func CodecsInSDP(sdp string) (names []string, direction string, hasAudio bool) {
	var order []string
	rtpmap := map[string]string{}
	inAudio, seenAudio := false, false
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="):
			if seenAudio {
				inAudio = false
				continue
			}
			f := strings.Fields(line[2:])
			inAudio = len(f) >= 3 && f[0] == "audio"
			if inAudio {
				seenAudio = true
				order = f[3:]
			}
		case inAudio && strings.HasPrefix(line, "a=rtpmap:"):
			f := strings.Fields(line[len("a=rtpmap:"):])
			if len(f) == 2 {
				rtpmap[f[0]] = strings.ToUpper(strings.SplitN(f[1], "/", 2)[0])
			}
		case inAudio && (line == "a=sendrecv" || line == "a=sendonly" || line == "a=recvonly" || line == "a=inactive"):
			direction = line[2:]
		}
	}
	for _, pt := range order {
		if n, ok := rtpmap[pt]; ok {
			names = append(names, n)
			continue
		}
		switch pt {
		case "0":
			names = append(names, "PCMU")
		case "8":
			names = append(names, "PCMA")
		}
	}
	return names, direction, seenAudio
}

// Track is an audio TrackLocal that writes its audio codec and, on the same
// SSRC, the telephone-event format negotiated alongside it.
// TrackLocalStaticRTP cannot do that: it overwrites every payload type.
type Track struct {
	id, stream string
	mime       string

	mu        sync.RWMutex
	ws        webrtc.TrackLocalWriter
	ssrc      uint32
	pt        uint8
	clock     uint32
	eventPT   uint8
	hasEvents bool
}

// NewTrack returns a track sending mime (webrtc.MimeTypeOpus, MimeTypePCMU, ...).
func NewTrack(mime, id, stream string) *Track {
	return &Track{id: id, stream: stream, mime: mime}
}

// Bind implements webrtc.TrackLocal.
func (t *Track) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var audio *webrtc.RTPCodecParameters
	params := ctx.CodecParameters()
	for i := range params {
		if strings.EqualFold(params[i].MimeType, t.mime) {
			audio = &params[i]
			break
		}
	}
	if audio == nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("bind %s: %w", t.mime, webrtc.ErrUnsupportedCodec)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ws, t.ssrc, t.pt, t.clock = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(audio.PayloadType), audio.ClockRate
	t.hasEvents = false
	for _, p := range params {
		if strings.EqualFold(p.MimeType, MimeEvent) && p.ClockRate == audio.ClockRate {
			t.eventPT, t.hasEvents = uint8(p.PayloadType), true
			break
		}
	}
	return *audio, nil
}

// Unbind implements webrtc.TrackLocal.
func (t *Track) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.ws = nil
	t.mu.Unlock()
	return nil
}

// ID implements webrtc.TrackLocal.
func (t *Track) ID() string { return t.id }

// RID implements webrtc.TrackLocal.
func (t *Track) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (t *Track) StreamID() string { return t.stream }

// Kind implements webrtc.TrackLocal.
func (t *Track) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

// Mime returns the audio codec the track sends.
func (t *Track) Mime() string { return t.mime }

// Events reports the telephone-event payload type and clock, if negotiated.
func (t *Track) Events() (pt uint8, clock uint32, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.eventPT, t.clock, t.hasEvents
}

// errNotBound is returned while the track has no negotiated sender.
var errNotBound = errors.New("track not bound")

// WriteAudio sends one audio packet; SSRC and payload type are filled in.
func (t *Track) WriteAudio(h *rtp.Header, payload []byte) error {
	t.mu.RLock()
	ws, ssrc, pt := t.ws, t.ssrc, t.pt
	t.mu.RUnlock()
	if ws == nil {
		return errNotBound
	}
	h.SSRC, h.PayloadType = ssrc, pt
	_, err := ws.WriteRTP(h, payload)
	return err
}

// WriteEvent sends one telephone-event packet on the audio SSRC.
func (t *Track) WriteEvent(h *rtp.Header, payload []byte) error {
	t.mu.RLock()
	ws, ssrc, pt, ok := t.ws, t.ssrc, t.eventPT, t.hasEvents
	t.mu.RUnlock()
	if ws == nil {
		return errNotBound
	}
	if !ok {
		return errors.New("telephone-event not negotiated")
	}
	h.SSRC, h.PayloadType = ssrc, pt
	_, err := ws.WriteRTP(h, payload)
	return err
}

// Candidate is one ICE candidate as the Grtc library sends it in bulk.
type Candidate struct {
	// SDPMLineIndex is the m-line the candidate belongs to.
	SDPMLineIndex int `json:"sdpMLineIndex"`
	// SDPMid is the media id.
	SDPMid string `json:"sdpMid,omitempty"`
	// Candidate is the a=candidate value.
	Candidate string `json:"candidate"`
}

// KV is one attached-data pair.
type KV struct {
	// Key names the value.
	Key string `json:"key"`
	// Value is the value.
	Value string `json:"value"`
}

// Message is the ROAP-like JSON carried after "RSMP " (browser to gateway)
// or "SDP" (gateway to browser).
type Message struct {
	// Type is OFFER, ANSWER or OK.
	Type string `json:"messageType"`
	// SDP is the session description (with candidates folded in).
	SDP string `json:"sdp,omitempty"`
	// Candidates are the bulk ICE candidates.
	Candidates []Candidate `json:"Candidates,omitempty"`
	// OffererSessionID identifies the offering side's session.
	OffererSessionID int `json:"offererSessionId,omitempty"`
	// AnswererSessionID identifies the answering side's session.
	AnswererSessionID int `json:"answererSessionId,omitempty"`
	// Seq orders offers within one session.
	Seq int `json:"seq,omitempty"`
	// Tiebreaker resolves glare (OFFER only).
	Tiebreaker int `json:"tiebreaker,omitempty"`
	// AttachedData carries user data (OFFER only).
	AttachedData []KV `json:"attacheddata,omitempty"`
}

// ParseMessage extracts the JSON object of an RSMP/SDP body, skipping
// whatever precedes the first '{' as the JS library does.
func ParseMessage(body string) (Message, error) {
	i := strings.IndexByte(body, '{')
	if i < 0 {
		return Message{}, errors.New("no json object in message")
	}
	var m Message
	if err := json.Unmarshal([]byte(body[i:]), &m); err != nil {
		return Message{}, fmt.Errorf("parse roap json: %w", err)
	}
	switch m.Type {
	case "OFFER", "ANSWER", "OK":
	default:
		return Message{}, fmt.Errorf("unknown messageType %q", m.Type)
	}
	if m.Type != "OK" && strings.TrimSpace(m.SDP) == "" {
		return Message{}, fmt.Errorf("%s without sdp", m.Type)
	}
	return m, nil
}

// FullSDP returns the message SDP with bulk candidates folded into the audio
// section when the SDP itself carries none, which is how pion wants them.
func (m Message) FullSDP() string {
	if len(m.Candidates) == 0 || strings.Contains(m.SDP, "a=candidate:") {
		return m.SDP
	}
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(m.SDP, "\r\n", "\n"), "\n")
	mIndex := -1
	flush := func() {
		for _, c := range m.Candidates {
			if c.SDPMLineIndex == mIndex {
				b.WriteString("a=" + strings.TrimPrefix(c.Candidate, "a=") + "\r\n")
			}
		}
	}
	for _, l := range lines {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "m=") {
			if mIndex >= 0 {
				flush()
			}
			mIndex++
		}
		b.WriteString(l + "\r\n")
	}
	if mIndex >= 0 {
		flush()
	}
	return b.String()
}

// Encode renders the message with the prefix the sender uses ("RSMP " or "SDP ").
func (m Message) Encode(prefix string) string {
	b, _ := json.Marshal(m) // a struct of strings and ints always marshals
	return prefix + string(b)
}

// Gather completes ICE gathering for pc's pending local description and
// returns it with every candidate (the Grtc protocol is non-trickle).
func Gather(pc *webrtc.PeerConnection, desc webrtc.SessionDescription, done <-chan struct{}) (string, error) {
	complete := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-complete:
	case <-done:
		return "", errors.New("gathering interrupted")
	}
	ld := pc.LocalDescription()
	if ld == nil {
		return "", errors.New("no local description")
	}
	return ld.SDP, nil
}

// SetDirection rewrites every direction attribute of sdp to dir (the way the
// Grtc library puts a call on hold), adding one to sections that lack it.
func SetDirection(sdp, dir string) string {
	lines := strings.Split(strings.ReplaceAll(sdp, "\r\n", "\n"), "\n")
	var b strings.Builder
	inMedia, hasDir := false, false
	flush := func() {
		if inMedia && !hasDir {
			b.WriteString("a=" + dir + "\r\n")
		}
	}
	for _, l := range lines {
		if l == "" {
			continue
		}
		switch {
		case strings.HasPrefix(l, "m="):
			flush()
			inMedia, hasDir = true, false
		case l == "a=sendrecv" || l == "a=sendonly" || l == "a=recvonly" || l == "a=inactive":
			if inMedia {
				l, hasDir = "a="+dir, true
			}
		}
		b.WriteString(l + "\r\n")
	}
	flush()
	return b.String()
}

// AudioRefused reports whether the first audio section of an SDP is refused
// (port 0).
func AudioRefused(sdp string) bool {
	for line := range strings.SplitSeq(sdp, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "m=audio" {
			return f[1] == "0"
		}
	}
	return false
}

// SettledSetup gives an answer built from the gateway's own description the
// DTLS role the call settled on. When the gateway offered the call (an
// incoming call), its description says a=setup:actpass, which an answer may
// not (RFC 5763: active or passive; Chrome refuses it: "Answerer must use
// either active or passive value for setup attribute"): the gateway's role
// is the complement of the browser's answer.
func SettledSetup(answer, remote string) string {
	if !strings.Contains(answer, "a=setup:actpass") {
		return answer
	}
	role := "a=setup:passive" // the browser answered active, as browsers do
	if strings.Contains(remote, "a=setup:passive") {
		role = "a=setup:active"
	}
	return strings.ReplaceAll(answer, "a=setup:actpass", role)
}
