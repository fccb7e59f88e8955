package ges

import (
	"errors"
	"time"
)

// Config tunes the Engagement service. Zero values take the documented defaults
// (see withDefaults), so Config{} is a working configuration.
type Config struct {
	// BodyLimit caps request bodies in bytes; larger bodies get 413. Default 65536.
	BodyLimit int64
	// MaxActivePerNumber caps callbacks not yet COMPLETED per phone number and tenant; more get 429. Default 5.
	MaxActivePerNumber int
	// TenantCreatesPerSec caps callback creations per tenant and second (token bucket); more get 429. Default 5000.
	TenantCreatesPerSec float64
	// TenantCreateBurst is the token-bucket size of TenantCreatesPerSec. Default 5000.
	TenantCreateBurst int
	// PollInterval is how often the monitor looks for callbacks made due by other nodes. Default 3s.
	PollInterval time.Duration
	// PurgeInterval is how often records past their retention are deleted. Default 1m.
	PurgeInterval time.Duration
	// StrandedAfter is how long a callback must have been overdue and out of
	// the due index, or QUEUED without having reached ORS, before another
	// hand-over is tried (see recoverStranded); the check runs twice as
	// often. Default 1m.
	StrandedAfter time.Duration
	// Retention is how long a record lives after its desired time (seed 004: 14 days). Default 336h.
	Retention time.Duration
	// ScheduleHorizon is how far ahead a callback may be scheduled. Default 336h (14 days).
	ScheduleHorizon time.Duration
	// ORSClientID is the OAuth client whose tokens may post ORS state reports. Default "ors_client".
	ORSClientID string
	// APIKeyTTL is how long a resolved API key is cached. Default 60s.
	APIKeyTTL time.Duration
	// APIKeyNegativeTTL is how long an unknown API key is remembered. Default 5s.
	APIKeyNegativeTTL time.Duration
	// ConfigTTL is how long tenant configuration (services, call-in groups) is cached. Default 10s.
	ConfigTTL time.Duration
	// StatsTTL is how long queue statistics used for EWT are cached. Default 2s.
	StatsTTL time.Duration
	// WriterBatch caps how many creates share one PostgreSQL transaction. Default 256.
	WriterBatch int
	// CreateLinger is how long a batch of creates waits for more while
	// creates arrive faster than they commit (see batcher). At 3,000
	// creates/s on 2 cores, 300us cut the transactions per create by about
	// a third, and the CPU used by cxlab and PostgreSQL by about 0.2 of a
	// core, for about 0.7 ms more at the median.
	// Default 300us; negative: never wait.
	CreateLinger time.Duration
	// ProposedSlots is how many open slots a 429 proposes in data.slots. Default 5.
	ProposedSlots int
	// StreamMaxLen trims NewCallbackStream approximately to this many entries. Default 100000.
	StreamMaxLen int64
	// DefaultAHT is the average handling time (s) assumed before GWS reports one; 0 means EWT is
	// unknown (-1) until calls have been handled. Default 0.
	DefaultAHT float64
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = 64 << 10
	}
	if c.MaxActivePerNumber <= 0 {
		c.MaxActivePerNumber = 5
	}
	if c.TenantCreatesPerSec <= 0 {
		c.TenantCreatesPerSec = 5000
	}
	if c.TenantCreateBurst <= 0 {
		c.TenantCreateBurst = 5000
	}
	def(&c.PollInterval, 3*time.Second)
	def(&c.PurgeInterval, time.Minute)
	def(&c.StrandedAfter, time.Minute)
	def(&c.Retention, 14*24*time.Hour)
	def(&c.ScheduleHorizon, 14*24*time.Hour)
	if c.ORSClientID == "" {
		c.ORSClientID = "ors_client"
	}
	def(&c.APIKeyTTL, 60*time.Second)
	def(&c.APIKeyNegativeTTL, 5*time.Second)
	def(&c.ConfigTTL, 10*time.Second)
	def(&c.StatsTTL, 2*time.Second)
	if c.CreateLinger == 0 {
		c.CreateLinger = 300 * time.Microsecond
	}
	if c.WriterBatch <= 0 {
		c.WriterBatch = 256
	}
	if c.ProposedSlots <= 0 {
		c.ProposedSlots = 5
	}
	if c.StreamMaxLen <= 0 {
		c.StreamMaxLen = 100000
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.BodyLimit < 0 || c.MaxActivePerNumber < 0 || c.TenantCreatesPerSec < 0 || c.TenantCreateBurst < 0 {
		return errors.New("ges config: limits must not be negative")
	}
	if c.DefaultAHT < 0 {
		return errors.New("ges config: DefaultAHT must not be negative")
	}
	return nil
}
