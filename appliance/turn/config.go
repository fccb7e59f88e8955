package turn

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config configures the TURN server. Start from Default(); zero values of the
// fields marked "(zero: default)" are replaced by their defaults in New.
type Config struct {
	// Host is the IP address the UDP and TCP listeners bind to. Default "127.0.0.1".
	Host string `yaml:"host"`
	// Port is the UDP and TCP port (the same number for both); 0 picks a free
	// port. Default 3478.
	Port int `yaml:"port"`
	// DisableTCP turns off the TCP listener (TURN over TCP). Default false.
	DisableTCP bool `yaml:"disable_tcp"`
	// PortSetting names Port in errors the user reads, e.g. "--turn-port" in
	// "can't listen on --turn-port 3478: address already in use". (zero: default)
	// Default "--turn-port".
	PortSetting string `yaml:"-"`
	// PacketConn, when set, is a caller-opened UDP socket used instead of
	// binding Host:Port. The server owns it from Start on and closes it in Stop.
	// Default nil.
	PacketConn net.PacketConn `yaml:"-"`
	// Listener, when set, is a caller-opened TCP listener used instead of
	// binding Host:Port. The server owns it from Start on and closes it in Stop.
	// Default nil.
	Listener net.Listener `yaml:"-"`

	// RelayIP is the address relayed sockets bind to and that clients are told
	// to use (XOR-RELAYED-ADDRESS). Must be set when Host is 0.0.0.0 or ::.
	// Default "" (= Host).
	RelayIP string `yaml:"relay_ip"`
	// MinPort and MaxPort bound the relay port range, both inclusive (coturn's
	// min-port/max-port). Both 0 lets the OS pick any free port. Every
	// allocation holds one port, so the range caps concurrent allocations.
	// Default 49152-65535, as coturn's.
	MinPort int `yaml:"min_port"`
	// MaxPort is the top of the relay port range; see MinPort. Default 65535.
	MaxPort int `yaml:"max_port"`
	// PublicHost is the host written into the TURN URLs handed to clients.
	// Default "" (= Host, or RelayIP when Host is unspecified).
	PublicHost string `yaml:"public_host"`

	// Realm is the long-term-credential realm (coturn's realm). (zero: default)
	// Default "cxlab".
	Realm string `yaml:"realm"`
	// AuthSecret is the TURN REST shared secret (coturn use-auth-secret +
	// static-auth-secret): username "<unix-expiry>[:<user>]", password
	// base64(HMAC-SHA1(secret, username)). Empty disables REST credentials.
	// Default "cxlab-turn-secret", a demo value not for production.
	AuthSecret string `yaml:"auth_secret"`
	// StaticUsers are fixed long-term credentials, username -> password
	// (coturn's user=name:password). They are checked before REST credentials.
	// Default none.
	StaticUsers map[string]string `yaml:"static_users"`
	// CredentialTTL is how long credentials from ICEServers stay valid.
	// (zero: default) Default 24h.
	CredentialTTL time.Duration `yaml:"credential_ttl"`
	// UserQuota is the most allocations one user may hold at once; the user is
	// the part after ':' in a REST username, else the whole username. Excess
	// Allocate requests get 486 Allocation Quota Reached. Negative means no
	// limit. (zero: default) Default 10.
	UserQuota int `yaml:"user_quota"`
	// AllowedPeers says which peer addresses clients may open permissions and
	// channels to. Each entry is "local" (loopback plus the addresses of this
	// host's interfaces, taken at Start), "any", an IP, or a CIDR such as
	// "10.0.0.0/8"; a peer is allowed when any entry matches. CreatePermission
	// and ChannelBind to other peers are refused with 403. (zero: default)
	// Default ["local"], so the server cannot be used to reach other machines.
	AllowedPeers []string `yaml:"allowed_peers"`
	// ProtectedPorts lists the ports of the services sharing this host with
	// the server (the appliance's HTTP, Redis, PostgreSQL and SIP ports). No
	// client may relay to them on this host's addresses, whatever
	// AllowedPeers says; the server's own port is always protected. It is
	// read when clients ask for permissions, so it may name ports bound after
	// Start. Default nil.
	ProtectedPorts func() []int `yaml:"-"`
	// AllocationLifetime is how long an allocation lives without a Refresh when
	// the client does not ask for a lifetime. (zero: default) Default 10m.
	AllocationLifetime time.Duration `yaml:"allocation_lifetime"`
}

// Default returns the documented defaults.
func Default() Config {
	return Config{
		Host:               "127.0.0.1",
		Port:               3478,
		PortSetting:        "--turn-port",
		MinPort:            49152,
		MaxPort:            65535,
		Realm:              "cxlab",
		AuthSecret:         "cxlab-turn-secret",
		CredentialTTL:      24 * time.Hour,
		UserQuota:          10,
		AllowedPeers:       []string{"local"},
		AllocationLifetime: 10 * time.Minute,
	}
}

// withDefaults fills the fields whose zero value has no meaning of its own.
func (c Config) withDefaults() Config {
	d := Default()
	if c.Host == "" {
		c.Host = d.Host
	}
	if c.PortSetting == "" {
		c.PortSetting = d.PortSetting
	}
	if c.Realm == "" {
		c.Realm = d.Realm
	}
	if c.CredentialTTL == 0 {
		c.CredentialTTL = d.CredentialTTL
	}
	if c.UserQuota == 0 {
		c.UserQuota = d.UserQuota
	}
	if len(c.AllowedPeers) == 0 {
		c.AllowedPeers = d.AllowedPeers
	}
	if c.AllocationLifetime == 0 {
		c.AllocationLifetime = d.AllocationLifetime
	}
	return c
}

// Validate reports the first setting that cannot work. Zero values that New
// replaces by defaults are accepted.
func (c Config) Validate() error {
	c = c.withDefaults()
	host := net.ParseIP(c.Host)
	if host == nil {
		return fmt.Errorf("turn host %q: not an IP address", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("turn port %d: out of range 0-65535", c.Port)
	}
	if c.RelayIP != "" {
		ip := net.ParseIP(c.RelayIP)
		if ip == nil {
			return fmt.Errorf("turn relay ip %q: not an IP address", c.RelayIP)
		}
		if ip.IsUnspecified() {
			return fmt.Errorf("turn relay ip %q: must be a concrete address", c.RelayIP)
		}
	} else if host.IsUnspecified() {
		return fmt.Errorf("turn relay ip: required when listening on %s", c.Host)
	}
	switch {
	case c.MinPort == 0 && c.MaxPort == 0:
	case c.MinPort < 1 || c.MaxPort > 65535 || c.MinPort > c.MaxPort:
		return fmt.Errorf("turn relay port range %d-%d: need 1 <= min <= max <= 65535, or both 0", c.MinPort, c.MaxPort)
	}
	if c.AuthSecret == "" && len(c.StaticUsers) == 0 {
		return errors.New("turn credentials: set an auth secret or static users; the server never runs as an open relay")
	}
	if c.CredentialTTL < 0 {
		return fmt.Errorf("turn credential ttl %s: must be positive", c.CredentialTTL)
	}
	if c.AllocationLifetime < 0 {
		return fmt.Errorf("turn allocation lifetime %s: must be positive", c.AllocationLifetime)
	}
	if _, err := parsePeerPolicy(c.AllowedPeers); err != nil {
		return err
	}
	return nil
}

// relayIP returns the address relayed sockets bind to and advertise.
func (c Config) relayIP() net.IP {
	if c.RelayIP != "" {
		return net.ParseIP(c.RelayIP)
	}
	return net.ParseIP(c.Host)
}

// publicHost returns the host written into TURN URLs.
func (c Config) publicHost() string {
	if c.PublicHost != "" {
		return c.PublicHost
	}
	if ip := net.ParseIP(c.Host); ip != nil && ip.IsUnspecified() {
		return c.RelayIP
	}
	return c.Host
}
