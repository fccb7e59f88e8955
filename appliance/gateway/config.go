package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cxlab/cxlab/appliance/media"
)

// Config is the gateway's configuration. Zero fields take the defaults of
// Default() in New.
type Config struct {
	// HTTPClient calls GAuth and GWS; nil: a client with a 10 s timeout.
	HTTPClient *http.Client `yaml:"-"`
	// BasePath is the URL prefix of the Grtc signalling endpoints. Default "/webrtc".
	BasePath string `yaml:"base_path"`
	// MediaHost is the IP the ICE socket and the per-call RTP sockets bind to and
	// the host candidates advertise. Default "127.0.0.1".
	MediaHost string `yaml:"media_host"`
	// MediaPort is the single UDP port all browser (ICE/DTLS-SRTP) sessions share;
	// 0 picks a free port. Default 0.
	MediaPort int `yaml:"media_port"`
	// MediaPortSetting names MediaPort in errors. Default "--media-port".
	MediaPortSetting string `yaml:"-"`
	// MediaConn, when set, is a caller-opened UDP socket used instead of binding
	// MediaHost:MediaPort; the gateway closes it in Stop. Default nil.
	MediaConn net.PacketConn `yaml:"-"`
	// RTPPortMin and RTPPortMax bound the per-call SIP-side RTP ports (inclusive);
	// both 0 lets the kernel choose. Default 0-0.
	RTPPortMin int `yaml:"rtp_port_min"`
	// RTPPortMax is the top of the RTP port range; see RTPPortMin. Default 0.
	RTPPortMax int `yaml:"rtp_port_max"`

	// SIPHost is the IP of the gateway's SIP UDP listener (the Contact it
	// registers). Default "127.0.0.1".
	SIPHost string `yaml:"sip_host"`
	// SIPPort is the SIP UDP port; 0 picks a free one. Default 0.
	SIPPort int `yaml:"sip_port"`
	// SIPPortSetting names SIPPort in errors. Default "--gateway-sip-port".
	SIPPortSetting string `yaml:"-"`
	// VoiceSIPAddr is the Voice SIP proxy host:port (gateway.voiceSipProxy). The
	// gateway talks UDP to it. Required.
	VoiceSIPAddr string `yaml:"voice_sip_addr"`
	// RegisterExpiry is the Expires of REGISTER; the gateway refreshes at half
	// of it. Default 10m.
	RegisterExpiry time.Duration `yaml:"register_expiry"`

	// AuthURL is the GAuth base URL (gateway.authService), e.g.
	// http://127.0.0.1:8080. Required for token sign-in.
	AuthURL string `yaml:"auth_url"`
	// ConfigURL is the GWS base URL (gateway.cfgService). Default AuthURL.
	ConfigURL string `yaml:"config_url"`
	// LegacyDomain is the SIP domain of DN:password sign-ins, which carry no
	// tenant. Default "demo.cxlab.local".
	LegacyDomain string `yaml:"legacy_domain"`

	// WaitTimeout is how long /wait holds a request open before it answers
	// 200 with an empty body. Default 55s: longer than the JS library's
	// default polling_timeout (30 s), so such a client re-polls on its own,
	// and shorter than the 60 s idle timeout of common proxies.
	WaitTimeout time.Duration `yaml:"wait_timeout"`
	// ClientTimeout signs out a client that has not polled for this long. Default 60s.
	ClientTimeout time.Duration `yaml:"client_timeout"`
	// ProbeInterval is how often GAuth and GWS are checked for
	// wrtc_system_error. Default 10s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// AnswerTimeout bounds how long an offer waits for the browser's answer
	// (the JS noanswer_timeout). Default 60s.
	AnswerTimeout time.Duration `yaml:"answer_timeout"`
	// MaxBodyBytes caps signalling request bodies. Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxClients is the sign-in capacity (wrtc_max_clients_per_instance);
	// sign-ins beyond it get 503. Default 2000.
	MaxClients int `yaml:"max_clients"`
	// EnableTranscoding allows Opus on the browser leg (gateway.enableTranscoding);
	// false refuses Opus-only browsers. Default true.
	EnableTranscoding *bool `yaml:"enable_transcoding"`
	// JitterDepth is the playout delay of each receive side. Default 60ms.
	JitterDepth time.Duration `yaml:"jitter_depth"`
	// Opus tunes the encoder toward the browser. Default media's defaults.
	Opus media.OpusConfig `yaml:"-"`
	// AnalyzeAudio measures levels and tones of both directions for the
	// console (costs a G.711 decode per frame). Default true.
	AnalyzeAudio *bool `yaml:"analyze_audio"`
	// RecentCalls is how many finished calls Snapshot keeps. Default 50.
	RecentCalls int `yaml:"recent_calls"`
}

// Default returns the documented defaults.
func Default() Config {
	t := true
	return Config{
		BasePath: "/webrtc", MediaHost: "127.0.0.1", MediaPortSetting: "--media-port",
		SIPHost: "127.0.0.1", SIPPortSetting: "--gateway-sip-port", RegisterExpiry: 10 * time.Minute,
		LegacyDomain: "demo.cxlab.local", WaitTimeout: 55 * time.Second, ProbeInterval: 10 * time.Second, ClientTimeout: 60 * time.Second,
		AnswerTimeout: 60 * time.Second, MaxBodyBytes: 64 << 10, MaxClients: 2000,
		EnableTranscoding: &t, JitterDepth: 60 * time.Millisecond, AnalyzeAudio: &t, RecentCalls: 50,
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := Default()
	c.BasePath = strings.TrimRight(c.BasePath, "/")
	if c.BasePath == "" {
		c.BasePath = d.BasePath
	}
	if c.MediaHost == "" {
		c.MediaHost = d.MediaHost
	}
	if c.MediaPortSetting == "" {
		c.MediaPortSetting = d.MediaPortSetting
	}
	if c.SIPHost == "" {
		c.SIPHost = d.SIPHost
	}
	if c.SIPPortSetting == "" {
		c.SIPPortSetting = d.SIPPortSetting
	}
	if c.RegisterExpiry <= 0 {
		c.RegisterExpiry = d.RegisterExpiry
	}
	if c.ConfigURL == "" {
		c.ConfigURL = c.AuthURL
	}
	if c.LegacyDomain == "" {
		c.LegacyDomain = d.LegacyDomain
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = d.WaitTimeout
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = d.ProbeInterval
	}
	if c.ClientTimeout <= 0 {
		c.ClientTimeout = d.ClientTimeout
	}
	if c.AnswerTimeout <= 0 {
		c.AnswerTimeout = d.AnswerTimeout
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxClients <= 0 {
		c.MaxClients = d.MaxClients
	}
	if c.EnableTranscoding == nil {
		c.EnableTranscoding = d.EnableTranscoding
	}
	if c.JitterDepth <= 0 {
		c.JitterDepth = d.JitterDepth
	}
	if c.AnalyzeAudio == nil {
		c.AnalyzeAudio = d.AnalyzeAudio
	}
	if c.RecentCalls <= 0 {
		c.RecentCalls = d.RecentCalls
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if net.ParseIP(c.MediaHost) == nil {
		errs = append(errs, fmt.Errorf("media_host %q is not an IP address", c.MediaHost))
	}
	if net.ParseIP(c.SIPHost) == nil {
		errs = append(errs, fmt.Errorf("sip_host %q is not an IP address", c.SIPHost))
	}
	if c.VoiceSIPAddr == "" {
		errs = append(errs, errors.New("voice_sip_addr is required"))
	} else if _, _, err := net.SplitHostPort(c.VoiceSIPAddr); err != nil {
		errs = append(errs, fmt.Errorf("voice_sip_addr %q: %w", c.VoiceSIPAddr, err))
	}
	if c.RTPPortMin < 0 || c.RTPPortMax < c.RTPPortMin || c.RTPPortMax > 65535 {
		errs = append(errs, fmt.Errorf("rtp port range %d-%d is invalid", c.RTPPortMin, c.RTPPortMax))
	}
	if c.MediaPort < 0 || c.MediaPort > 65535 || c.SIPPort < 0 || c.SIPPort > 65535 {
		errs = append(errs, errors.New("ports must be within 0-65535"))
	}
	return errors.Join(errs...)
}
