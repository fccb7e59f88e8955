package gateway

import (
	"time"

	"github.com/cxlab/cxlab/appliance/media"
)

// LegStats is what one direction of a call carried.
type LegStats struct {
	// PacketsIn counts RTP packets received on this leg.
	PacketsIn uint64 `json:"packetsIn"`
	// PacketsOut counts RTP packets sent on this leg.
	PacketsOut uint64 `json:"packetsOut"`
	// Lost counts the RTP packets of this leg that never arrived (audio and
	// telephone-events alike).
	Lost uint64 `json:"lost"`
	// JitterMS is the current RFC 3550 interarrival jitter.
	JitterMS float64 `json:"jitterMs"`
	// MaxJitterMS is the largest jitter seen in the call.
	MaxJitterMS float64 `json:"maxJitterMs"`
	// Heard is the audio analysis of what this leg received (levels, tone).
	Heard *media.Snapshot `json:"heard,omitempty"`
	// Digits are the RFC 4733 keys received on this leg and relayed.
	Digits string `json:"digits"`
}

// CallInfo describes a live or finished call for the console and PUT-STATS.
type CallInfo struct {
	// ID is the gateway's call id.
	ID string `json:"id"`
	// DN is the agent's DN.
	DN DN `json:"dn"`
	// Peer is the remote party.
	Peer string `json:"peer"`
	// Direction is inbound or outbound.
	Direction string `json:"direction"`
	// State is ringing, connected, held or ended.
	State string `json:"state"`
	// SIPCallID is the SIP leg's Call-ID.
	SIPCallID string `json:"sipCallId"`
	// BrowserCodec is the browser leg's codec (audio/opus, audio/PCMU, ...).
	BrowserCodec string `json:"browserCodec"`
	// SIPCodec is PCMU or PCMA.
	SIPCodec string `json:"sipCodec"`
	// Transcoding reports Opus <-> G.711 conversion.
	Transcoding bool `json:"transcoding"`
	// Started is when the call was offered.
	Started time.Time `json:"started"`
	// Answered is when media started (zero if never).
	Answered time.Time `json:"answered,omitzero"`
	// Ended is when the call ended (zero if live).
	Ended time.Time `json:"ended,omitzero"`
	// EndReason says why it ended.
	EndReason string `json:"endReason,omitempty"`
	// Browser is the browser leg (what the agent said).
	Browser LegStats `json:"browser"`
	// SIP is the SIP leg (what the far end said).
	SIP LegStats `json:"sip"`
	// AttachedData is the user data delivered with the offer.
	AttachedData map[string]string `json:"attachedData,omitempty"`
}

// SessionInfo describes a signed-in client.
type SessionInfo struct {
	// ID is the SSID.
	ID SSID `json:"id"`
	// User is the agent's user name (the DN for legacy sign-ins).
	User string `json:"user"`
	// ContactCenterID is the tenant.
	ContactCenterID string `json:"contactCenterId,omitempty"`
	// DN is the registered DN.
	DN DN `json:"dn"`
	// Domain is the SIP domain.
	Domain string `json:"domain"`
	// SignedIn is when the client signed in.
	SignedIn time.Time `json:"signedIn"`
	// Polling reports an open /wait.
	Polling bool `json:"polling"`
	// Call is the current call, if any.
	Call *CallInfo `json:"call,omitempty"`
}

// Snapshot is the console's view of the gateway.
type Snapshot struct {
	// Sessions are the signed-in clients.
	Sessions []SessionInfo `json:"sessions"`
	// Recent are finished calls, oldest first.
	Recent []CallInfo `json:"recent"`
}

// Snapshot returns the sessions, their calls and the recent calls.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	recent := append([]CallInfo(nil), s.recent...)
	s.mu.Unlock()
	out := Snapshot{Sessions: make([]SessionInfo, 0, len(sessions)), Recent: recent}
	for _, ss := range sessions {
		ss.mu.Lock()
		si := SessionInfo{ID: ss.id, User: ss.user, ContactCenterID: ss.ccid, DN: ss.dn, Domain: ss.domain,
			SignedIn: ss.signedIn, Polling: ss.polling > 0}
		c := ss.call
		ss.mu.Unlock()
		if c != nil {
			ci := c.info()
			si.Call = &ci
		}
		out.Sessions = append(out.Sessions, si)
	}
	return out
}

// info snapshots the call.
func (c *call) info() CallInfo {
	c.mu.Lock()
	ci := CallInfo{ID: c.id, DN: c.sess.dn, Peer: c.peer, Direction: c.direction, State: c.state, SIPCallID: c.sipCallID,
		BrowserCodec: c.browserMime, SIPCodec: c.sipMedia.law.String(), Started: c.started, Answered: c.answered,
		Ended: c.endedAt, EndReason: c.endReason}
	br := c.br
	c.mu.Unlock()
	if len(c.attached) > 0 {
		ci.AttachedData = map[string]string{}
		for _, a := range c.attached {
			ci.AttachedData[a.Key] = a.Value
		}
	}
	if br == nil {
		return ci
	}
	ci.Transcoding = br.xcode != nil
	ci.Browser = LegStats{PacketsIn: br.pktFromBrowser.Load(), PacketsOut: br.pktToBrowser.Load(), Lost: br.lossB.lost(),
		Digits: br.digitsToSIP.Load().(string)}
	ci.Browser.JitterMS, ci.Browser.MaxJitterMS = br.jitB.ms()
	ci.SIP = LegStats{PacketsIn: br.pktFromSIP.Load(), PacketsOut: br.pktToSIP.Load(), Lost: br.lossS.lost(),
		Digits: br.digitsToBrowser.Load().(string)}
	ci.SIP.JitterMS, ci.SIP.MaxJitterMS = br.jitS.ms()
	if br.anaB != nil {
		h := br.anaB.Snapshot()
		ci.Browser.Heard = &h
	}
	if br.anaS != nil {
		h := br.anaS.Snapshot()
		ci.SIP.Heard = &h
	}
	return ci
}
