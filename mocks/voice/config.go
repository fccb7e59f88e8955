package voice

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config tunes the Voice/ORS emulator. Zero fields take the documented defaults
// (see Defaults); a Config is checked once by Validate.
type Config struct {
	// SIPHost is the address the SIP listeners bind. Default: 127.0.0.1.
	SIPHost string
	// SIPPort is the UDP and TCP port of the registrar/B2BUA; 0 picks one free
	// port shared by both transports. Default: 5060 (set SIPPortSet to use 0).
	SIPPort int
	// SIPPortSet makes a zero SIPPort mean "pick a free port" instead of the default.
	SIPPortSet bool
	// SIPDomainFallback is the host put in From headers of calls that belong to
	// no tenant (for example simulated customers). Default: cxlab.local.
	SIPDomainFallback string

	// RTPHost is the address simulated customers and the parking media bind. Default: SIPHost.
	RTPHost string
	// RTPPortMin and RTPPortMax bound the UDP ports of simulated customers;
	// 0/0 lets the kernel choose. Default: 0/0.
	RTPPortMin, RTPPortMax int

	// RingTimeout bounds how long an INVITE to a registered endpoint may ring
	// before the caller gets 408/480. Default: 30s.
	RingTimeout time.Duration
	// NoAnswerTimeout is how long the never-answering simulated customer
	// (+12025550103) rings before 480, and how long a real customer endpoint may
	// ring during a callback. Default: 20s.
	NoAnswerTimeout time.Duration
	// SlowAnswerDelay is how long +12025550104 rings before answering. Default: 3s.
	SlowAnswerDelay time.Duration
	// HangupAfter is how long +12025550106 talks before hanging up. Default: 5s.
	HangupAfter time.Duration
	// AgentAnswerTimeout is how long a routed agent may ring before the call is
	// taken back, the agent set NotReady and the callback re-queued. Default: 20s.
	AgentAnswerTimeout time.Duration
	// WrapUpTime is the AfterCallWork period before an agent returns to Ready;
	// negative disables wrap-up. Default: 5s.
	WrapUpTime time.Duration
	// MaxRegisterExpiry caps the Expires a REGISTER may ask for. Default: 3600s.
	MaxRegisterExpiry time.Duration
	// DefaultRegisterExpiry applies when a REGISTER carries no Expires. Default: 3600s.
	DefaultRegisterExpiry time.Duration
	// MaxQueueWait bounds how long an inbound caller waits in a virtual queue
	// before 480 Temporarily Unavailable. Default: 10m.
	MaxQueueWait time.Duration
	// PositionReportInterval is how often waiting callbacks whose place in
	// their queue changed are reported again (position and EWT). Default: 5s.
	PositionReportInterval time.Duration

	// CallInDigitTimeout bounds how long the Click-to-Call-In IVR waits for an
	// access code (ended by '#' or the 8th digit). Default: 10s.
	CallInDigitTimeout time.Duration
	// CallInPromptLength is how long the IVR's prompt plays before it falls
	// silent to listen, and how long the failure tone plays before the IVR
	// hangs up. Default: 2s.
	CallInPromptLength time.Duration

	// GAuthURL is the base URL of GAuth (token validation, ors_client tokens). Required.
	GAuthURL string
	// GESURL is the base URL of the Engagement service receiving state reports
	// and matching call-in requests. Required for callbacks and Click-to-Call-In.
	GESURL string
	// ORSClientID is the OAuth client ORS authenticates with toward GES. Default: ors_client.
	ORSClientID string
	// ORSClientSecret is its secret. Default: ors-secret.
	ORSClientSecret string
	// TokenCacheTTL is how long a validated user token is trusted without asking
	// GAuth again. Default: 5s.
	TokenCacheTTL time.Duration

	// Stream is the Redis stream GES writes callbacks to. Default: NewCallbackStream.
	Stream string
	// Group is the consumer group ORS reads with. Default: ors.
	Group string
	// Consumer names this process inside the group; it must be stable across
	// restarts so that its own pending entries are resumed. Default: voice-<hostname>.
	Consumer string
	// ReadBlock is the XREADGROUP BLOCK time, which bounds idle Redis traffic. Default: 5s.
	ReadBlock time.Duration
	// ClaimMinIdle is how long another consumer's pending entry must be idle
	// before this one claims it (XAUTOCLAIM). Default: 60s.
	ClaimMinIdle time.Duration

	// CallHistory bounds the finished calls kept for GET /voice/v1/calls. Default: 200.
	CallHistory int
	// DirectoryTTL is how long a Directory snapshot is used before it is read again. Default: 5s.
	DirectoryTTL time.Duration
}

// Defaults returns c with every zero field replaced by its documented default.
func (c Config) Defaults() Config {
	if c.SIPHost == "" {
		c.SIPHost = "127.0.0.1"
	}
	if c.SIPPort == 0 && !c.SIPPortSet {
		c.SIPPort = 5060
	}
	if c.SIPDomainFallback == "" {
		c.SIPDomainFallback = "cxlab.local"
	}
	if c.RTPHost == "" {
		c.RTPHost = c.SIPHost
	}
	setDur(&c.RingTimeout, 30*time.Second)
	setDur(&c.NoAnswerTimeout, 20*time.Second)
	setDur(&c.SlowAnswerDelay, 3*time.Second)
	setDur(&c.HangupAfter, 5*time.Second)
	setDur(&c.AgentAnswerTimeout, 20*time.Second)
	setDur(&c.WrapUpTime, 5*time.Second)
	setDur(&c.MaxRegisterExpiry, time.Hour)
	setDur(&c.DefaultRegisterExpiry, time.Hour)
	setDur(&c.MaxQueueWait, 10*time.Minute)
	setDur(&c.PositionReportInterval, 5*time.Second)
	setDur(&c.CallInDigitTimeout, 10*time.Second)
	setDur(&c.CallInPromptLength, 2*time.Second)
	setDur(&c.TokenCacheTTL, 5*time.Second)
	setDur(&c.ReadBlock, 5*time.Second)
	setDur(&c.ClaimMinIdle, time.Minute)
	setDur(&c.DirectoryTTL, 5*time.Second)
	if c.ORSClientID == "" {
		c.ORSClientID = "ors_client"
	}
	if c.ORSClientSecret == "" {
		c.ORSClientSecret = "ors-secret"
	}
	if c.Stream == "" {
		c.Stream = "NewCallbackStream"
	}
	if c.Group == "" {
		c.Group = "ors"
	}
	if c.Consumer == "" {
		c.Consumer = defaultConsumer()
	}
	if c.CallHistory == 0 {
		c.CallHistory = 200
	}
	return c
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	if c.SIPPort < 0 || c.SIPPort > 65535 {
		return fmt.Errorf("voice config: sip.port must be 0..65535, got %d", c.SIPPort)
	}
	if c.RTPPortMin < 0 || c.RTPPortMax > 65535 || c.RTPPortMin > c.RTPPortMax || (c.RTPPortMin == 0) != (c.RTPPortMax == 0) {
		return fmt.Errorf("voice config: rtp port range %d-%d is invalid", c.RTPPortMin, c.RTPPortMax)
	}
	if c.GAuthURL == "" {
		return errors.New("voice config: GAuthURL is required")
	}
	for name, raw := range map[string]string{"GAuthURL": c.GAuthURL, "GESURL": c.GESURL} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("voice config: %s %q is not an absolute URL", name, raw)
		}
	}
	return nil
}
