// Package config holds the appliance's one typed configuration: defaults in one
// place (Default), then a YAML file (unknown keys are errors), then CXLAB_*
// environment variables, then command-line flags, then one Validate.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration of one cxlab process.
type Config struct {
	// DataDir holds all persistent state (PostgreSQL data, TLS certificate, logs).
	// Default: /var/lib/cxlab for root, $XDG_DATA_HOME/cxlab (~/.local/share/cxlab) otherwise.
	DataDir string `yaml:"data_dir"`
	// Ephemeral keeps all state in a temporary directory removed on exit (for CI). Default: false.
	Ephemeral bool `yaml:"ephemeral"`
	// EndpointsFile, when set, receives a JSON document of every endpoint and demo credential once ready. Default: "".
	EndpointsFile string `yaml:"endpoints_file"`
	// Seed is a YAML tenant seed file applied on start (idempotent). Default: "" (demo tenant only).
	Seed string `yaml:"seed"`
	// Components lists the components this process runs; "all" runs everything. Default: [all].
	Components []string `yaml:"components"`
	// ShutdownTimeout bounds a graceful stop. Default: 5s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// GCPercent is the Go garbage collector's target (GOGC), unless the GOGC
	// environment variable is set. The default trades heap for fewer
	// collections: at 100 a busy appliance collected every half second, and
	// each collection delayed API answers by tens of milliseconds on 2 cores.
	// Default: 400.
	GCPercent int `yaml:"gc_percent"`

	Log      Log      `yaml:"log"`
	HTTP     HTTP     `yaml:"http"`
	Redis    Redis    `yaml:"redis"`
	Postgres Postgres `yaml:"postgres"`
	SIP      SIP      `yaml:"sip"`
	TURN     TURN     `yaml:"turn"`
	Gateway  Gateway  `yaml:"gateway"`
	GES      GES      `yaml:"ges"`
}

// Log configures logging.
type Log struct {
	// Level of the per-component log files: debug, info, warn, error. Default: info.
	Level string `yaml:"level"`
	// ConsoleLevel is the level of log lines echoed to stderr. Default: warn.
	ConsoleLevel string `yaml:"console_level"`
	// MaxSizeMB rotates a component's log file when it reaches this size. Default: 10.
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxFiles caps the rotated files kept per component. Default: 3.
	MaxFiles int `yaml:"max_files"`
}

// HTTP configures the one HTTP(S) port serving console, APIs and emulators.
type HTTP struct {
	// Host to bind. Non-loopback hosts require TLS. Default: 127.0.0.1.
	Host string `yaml:"host"`
	// Port to bind; 0 picks a free port. Default: 8470.
	Port int `yaml:"port"`
	// TLS is auto (plain HTTP on loopback, self-signed HTTPS otherwise), on, or off (loopback only). Default: auto.
	TLS string `yaml:"tls"`
	// CORSOrigins are web origins (scheme://host[:port]) whose pages may call
	// the APIs from a browser, with credentials, besides pages served from
	// this machine (http(s)://localhost, 127.0.0.1 or [::1], any port), which
	// always may. Default: none.
	CORSOrigins []string `yaml:"cors_origins"`
}

// Redis configures the embedded Redis or an external one.
type Redis struct {
	// URL of an external Redis (redis://[:password@]host:port/db); empty runs the embedded one. Default: "".
	URL string `yaml:"url"`
	// Host of the embedded Redis. Default: 127.0.0.1.
	Host string `yaml:"host"`
	// Port of the embedded Redis; 0 picks a free port. Default: 8471.
	Port int `yaml:"port"`
}

// Postgres configures the embedded PostgreSQL or an external one.
type Postgres struct {
	// URL of an external PostgreSQL (postgres://user:pass@host:port/db); empty runs the embedded one. Default: "".
	URL string `yaml:"url"`
	// Port of the embedded PostgreSQL on 127.0.0.1; 0 picks a free port. Default: 8472.
	Port int `yaml:"port"`
	// Binaries is a directory holding bin/initdb and bin/pg_ctl; empty tries the library download/cache, then
	// binaries installed on the machine. Env CXLAB_POSTGRES_BINARIES. Default: "".
	Binaries string `yaml:"binaries"`
	// RunAsUser is the unprivileged user that runs PostgreSQL when cxlab runs as root; empty picks
	// "postgres" when that account exists, else "nobody". Default: "".
	RunAsUser string `yaml:"run_as_user"`
}

// SIP configures the Voice emulator's SIP listener (UDP and TCP).
type SIP struct {
	// Host to bind. Default: 127.0.0.1.
	Host string `yaml:"host"`
	// Port for UDP and TCP; 0 picks a free port. Default: 5070.
	Port int `yaml:"port"`
}

// TURN configures the TURN server.
type TURN struct {
	// Host to bind (UDP and TCP). Default: 127.0.0.1.
	Host string `yaml:"host"`
	// Port for UDP and TCP; 0 picks a free port. Default: 3478.
	Port int `yaml:"port"`
	// RelayIP is the address relayed sockets bind to and clients are told (coturn's relay-ip); required
	// when Host is unspecified (0.0.0.0), otherwise Host. Default: "".
	RelayIP string `yaml:"relay_ip"`
	// Secret is the TURN REST shared secret (coturn static-auth-secret); empty generates one kept in the data dir. Default: "".
	Secret string `yaml:"secret"`
	// MinRelayPort and MaxRelayPort bound relay ports (coturn's min-port/max-port); 0/0 uses any free port. Each allocation holds one, so the range caps concurrent allocations. Default: 49152-65535, as coturn's.
	MinRelayPort int `yaml:"min_relay_port"`
	MaxRelayPort int `yaml:"max_relay_port"`
	// UserQuota caps concurrent allocations per user (the part after ':' of a REST username). Default: 10.
	UserQuota int `yaml:"user_quota"`
	// AllowedPeers are the peer addresses clients may relay to: "local" (this host: loopback and its interface
	// addresses), "any", IPs and CIDRs. The appliance's own service ports (HTTP, Redis, PostgreSQL, SIP, TURN)
	// are refused on this host whatever this says. Default: [local], so TURN cannot reach other machines.
	AllowedPeers []string `yaml:"allowed_peers"`
}

// Gateway configures the WebRTC gateway.
type Gateway struct {
	// MediaPort is the one UDP port carrying ICE/DTLS-SRTP for every browser session; 0 picks a free one. Default: 8473.
	MediaPort int `yaml:"media_port"`
	// EnableTranscoding allows Opus on the browser leg (the real Helm key gateway.enableTranscoding). Default: true.
	EnableTranscoding bool `yaml:"enable_transcoding"`
}

// GES configures the Engagement service's throttles (seed 004: per tenant and
// per phone number). A create over either limit is answered 429.
type GES struct {
	// TenantCreatesPerSec caps callback creations per tenant and second (a token bucket). Default: 5000.
	TenantCreatesPerSec int `yaml:"tenant_creates_per_sec"`
	// TenantCreateBurst is that bucket's size: creations a tenant may make at once. Default: 5000.
	TenantCreateBurst int `yaml:"tenant_create_burst"`
	// MaxActivePerNumber caps the callbacks not yet COMPLETED per phone number and tenant. Default: 5.
	MaxActivePerNumber int `yaml:"max_active_per_number"`
	// StrandedAfter is how long a callback left half handed over to ORS by a
	// process that died (with an external Redis that lived on) waits before
	// another process hands it over; they look twice as often. Default: 1m.
	StrandedAfter time.Duration `yaml:"stranded_after"`
}

// Default returns the configuration used when nothing overrides it.
func Default() Config {
	return Config{
		DataDir:         defaultDataDir(),
		Components:      []string{"all"},
		ShutdownTimeout: 5 * time.Second,
		GCPercent:       400,
		Log:             Log{Level: "info", ConsoleLevel: "warn", MaxSizeMB: 10, MaxFiles: 3},
		HTTP:            HTTP{Host: "127.0.0.1", Port: 8470, TLS: "auto"},
		Redis:           Redis{Host: "127.0.0.1", Port: 8471},
		Postgres:        Postgres{Port: 8472},
		SIP:             SIP{Host: "127.0.0.1", Port: 5070},
		TURN:            TURN{Host: "127.0.0.1", Port: 3478, MinRelayPort: 49152, MaxRelayPort: 65535, UserQuota: 10, AllowedPeers: []string{"local"}},
		Gateway:         Gateway{MediaPort: 8473, EnableTranscoding: true},
		GES:             GES{TenantCreatesPerSec: 5000, TenantCreateBurst: 5000, MaxActivePerNumber: 5, StrandedAfter: time.Minute},
	}
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/cxlab"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "cxlab")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "cxlab")
	}
	return filepath.Join(os.TempDir(), "cxlab")
}

// ErrInvalid marks a configuration error; the CLI exits with code 2 on it.
var ErrInvalid = errors.New("invalid configuration")

func invalid(setting, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, setting, fmt.Sprintf(format, args...))
}

// Components this binary knows, in start order.
var knownComponents = []string{"gauth", "gws", "ges", "voice", "turn", "gateway", "console"}

// componentNeeds lists the components each one calls: GAuth for tokens and
// API keys, GWS for configuration and the agent directory, the Engagement
// service for ORS's state reports, Voice for the gateway's SIP.
var componentNeeds = map[string][]string{
	"gws":     {"gauth"},
	"ges":     {"gauth", "gws"},
	"voice":   {"gauth", "ges"},
	"gateway": {"gauth", "gws", "voice"},
}

// andList joins names as a sentence does: "a", "a and b", "a, b and c".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// Runs reports whether this process runs the named component.
func (c Config) Runs(name string) bool {
	for _, n := range c.Components {
		if n == "all" || n == name {
			return true
		}
	}
	return false
}

// Validate checks every setting once and names the first bad one.
// validPeerEntry reports whether e is an entry turn.allowed_peers takes (the
// TURN server parses it; checked here so that a bad one fails before start).
func validPeerEntry(e string) bool {
	e = strings.TrimSpace(e)
	switch strings.ToLower(e) {
	case "local", "any":
		return true
	}
	if strings.Contains(e, "/") {
		_, err := netip.ParsePrefix(e)
		return err == nil
	}
	_, err := netip.ParseAddr(e)
	return err == nil
}

func (c Config) Validate() error {
	if !c.Ephemeral && strings.TrimSpace(c.DataDir) == "" {
		return invalid("data_dir (--data-dir)", "must not be empty unless --ephemeral")
	}
	// `cxlab config print` is itself a config file, with secrets replaced by
	// placeholders; read back as they are, they would become the secrets.
	if c.TURN.Secret == redacted {
		return invalid("turn.secret (--turn-secret)", "is %q, the placeholder `cxlab config print` writes: give the real secret, or remove the key to use the one kept in the data dir", redacted)
	}
	for _, u := range []struct{ name, v string }{{"redis.url (--redis-url)", c.Redis.URL}, {"postgres.url (--postgres-url)", c.Postgres.URL}} {
		if pu, err := url.Parse(u.v); err == nil && pu.User != nil {
			if pw, ok := pu.User.Password(); ok && pw == "xxxxx" {
				return invalid(u.name, "has the password xxxxx, the placeholder `cxlab config print` writes: give the real password")
			}
		}
	}
	if c.GCPercent < 25 {
		return invalid("gc_percent", "must be at least 25, got %d", c.GCPercent)
	}
	if c.ShutdownTimeout <= 0 {
		return invalid("shutdown_timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	for _, n := range c.Components {
		if n != "all" && !contains(knownComponents, n) {
			return invalid("components (--components)", "unknown component %q (known: all, %s)", n, strings.Join(knownComponents, ", "))
		}
	}
	// The services reach each other at this process's own URL: a subset
	// must hold what its members call, or they fail on first use.
	for _, n := range knownComponents {
		var missing []string
		for _, d := range componentNeeds[n] {
			if c.Runs(n) && !c.Runs(d) {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			return invalid("components (--components)", "%s needs %s in the same process (the services call each other at this process's URL)",
				n, andList(missing))
		}
	}
	for _, l := range []struct{ name, v string }{{"log.level", c.Log.Level}, {"log.console_level", c.Log.ConsoleLevel}} {
		if !contains([]string{"debug", "info", "warn", "error"}, l.v) {
			return invalid(l.name, "must be debug, info, warn or error, got %q", l.v)
		}
	}
	if c.Log.MaxSizeMB <= 0 || c.Log.MaxFiles <= 0 {
		return invalid("log.max_size_mb/log.max_files", "must be positive")
	}
	ports := []struct {
		name string
		v    int
	}{
		{"http.port (--http-port)", c.HTTP.Port}, {"redis.port (--redis-port)", c.Redis.Port},
		{"postgres.port (--postgres-port)", c.Postgres.Port}, {"sip.port (--sip-port)", c.SIP.Port},
		{"turn.port (--turn-port)", c.TURN.Port}, {"gateway.media_port (--media-port)", c.Gateway.MediaPort},
		{"turn.min_relay_port", c.TURN.MinRelayPort}, {"turn.max_relay_port", c.TURN.MaxRelayPort},
	}
	for _, p := range ports {
		if p.v < 0 || p.v > 65535 {
			return invalid(p.name, "must be 0..65535, got %d", p.v)
		}
	}
	for _, g := range []struct {
		name string
		v    int
	}{
		{"ges.tenant_creates_per_sec (--ges-tenant-creates-per-sec)", c.GES.TenantCreatesPerSec},
		{"ges.tenant_create_burst (--ges-tenant-create-burst)", c.GES.TenantCreateBurst},
		{"ges.max_active_per_number (--ges-max-active-per-number)", c.GES.MaxActivePerNumber},
	} {
		if g.v <= 0 {
			return invalid(g.name, "must be positive, got %d", g.v)
		}
	}
	if c.GES.StrandedAfter < time.Second {
		return invalid("ges.stranded_after (--ges-stranded-after)", "must be at least 1s, got %s", c.GES.StrandedAfter)
	}
	if c.TURN.UserQuota <= 0 {
		return invalid("turn.user_quota (--turn-user-quota)", "must be positive, got %d", c.TURN.UserQuota)
	}
	if (c.TURN.MinRelayPort == 0) != (c.TURN.MaxRelayPort == 0) || c.TURN.MinRelayPort > c.TURN.MaxRelayPort {
		return invalid("turn.min_relay_port/turn.max_relay_port", "need both or neither, min <= max, got %d-%d", c.TURN.MinRelayPort, c.TURN.MaxRelayPort)
	}
	for _, e := range c.TURN.AllowedPeers {
		if !validPeerEntry(e) {
			return invalid("turn.allowed_peers", "want local, any, an IP or a CIDR, got %q", e)
		}
	}
	if r := c.TURN.RelayIP; r != "" {
		if ip := net.ParseIP(r); ip == nil || ip.IsUnspecified() {
			return invalid("turn.relay_ip (--turn-relay-ip)", "want this machine's address that clients reach, got %q", r)
		}
	} else if ip := net.ParseIP(c.TURN.Host); ip != nil && ip.IsUnspecified() {
		return invalid("turn.relay_ip (--turn-relay-ip)", "required with --turn-host %s: the address of this machine that clients reach, which relayed sockets bind to", c.TURN.Host)
	}
	for _, h := range []struct{ name, v string }{{"http.host (--http-host)", c.HTTP.Host}, {"redis.host", c.Redis.Host}, {"sip.host (--sip-host)", c.SIP.Host}, {"turn.host (--turn-host)", c.TURN.Host}} {
		if net.ParseIP(h.v) == nil && h.v != "localhost" {
			return invalid(h.name, "must be an IP address or localhost, got %q", h.v)
		}
	}
	switch c.HTTP.TLS {
	case "auto", "on":
	case "off":
		if !IsLoopback(c.HTTP.Host) {
			return invalid("http.tls (--tls)", "plain HTTP is allowed only on loopback; %s is not (use auto or on)", c.HTTP.Host)
		}
	default:
		return invalid("http.tls (--tls)", "must be auto, on or off, got %q", c.HTTP.TLS)
	}
	for _, o := range c.HTTP.CORSOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return invalid("http.cors_origins (--cors-origins)", "must be origins such as https://app.example.com:8443, got %q", o)
		}
	}
	if c.Redis.URL != "" {
		if err := checkURL(c.Redis.URL, "redis", "rediss"); err != nil {
			return invalid("redis.url (--redis-url)", "%v", err)
		}
	}
	if c.Postgres.URL != "" {
		if err := checkURL(c.Postgres.URL, "postgres", "postgresql"); err != nil {
			return invalid("postgres.url (--postgres-url)", "%v", err)
		}
	}
	if u := c.Postgres.RunAsUser; u != "" {
		if _, err := user.Lookup(u); err != nil {
			if _, err := user.LookupId(u); err != nil {
				return invalid("postgres.run_as_user (--postgres-user)", "no user %q on this machine", u)
			}
		}
	}
	if c.Postgres.Binaries != "" {
		if st, err := os.Stat(c.Postgres.Binaries); err != nil || !st.IsDir() {
			return invalid("postgres.binaries (--postgres-binaries)", "%q is not a directory", c.Postgres.Binaries)
		}
		_, inBin := os.Stat(filepath.Join(c.Postgres.Binaries, "bin", "pg_ctl"))
		_, itself := os.Stat(filepath.Join(c.Postgres.Binaries, "pg_ctl")) // its bin/ named: taken too
		if inBin != nil && itself != nil {
			return invalid("postgres.binaries (--postgres-binaries)", "%q holds no bin/pg_ctl (name the directory above bin/, e.g. /usr/lib/postgresql/15)", c.Postgres.Binaries)
		}
	}
	if c.Seed != "" {
		if _, err := os.Stat(c.Seed); err != nil {
			return invalid("seed (--seed)", "can't read %q: %v", c.Seed, errors.Unwrap(err))
		}
	}
	return nil
}

func checkURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included; what it wraps does not.
		return fmt.Errorf("not a URL: %w", errors.Unwrap(err))
	}
	if !contains(schemes, u.Scheme) {
		return fmt.Errorf("scheme must be %s, got %q", strings.Join(schemes, " or "), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("missing host in %s", RedactURL(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %s out of range 1-65535 in %s", p, RedactURL(raw))
		}
	}
	return nil
}

// RedactURL hides the password of a URL for logs and errors.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	return u.Redacted()
}

// IsLoopback reports whether host is a loopback address or localhost.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
