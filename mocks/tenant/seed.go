package tenant

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"
)

// DemoCCID is the demo tenant's contact center id (fixed by the contracts).
const DemoCCID CCID = "9350e2fc-a1dd-4c65-8d40-1f75a2e080dd"

// Default token lifetimes of seeded clients that name none (GAuth's
// provisioning samples use 43200 s and 30 days).
const (
	DefaultAccessTokenTTL  = 43200 * time.Second
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
)

//go:embed seeds/demo.yaml
var demoYAML []byte

// Seed is a set of tenants and OAuth clients to upsert; see the package doc for
// the YAML format.
type Seed struct {
	ContactCenters []SeedContactCenter `yaml:"contactCenters"`
	Clients        []SeedClient        `yaml:"clients"`
}

// SeedContactCenter is one tenant with everything it owns.
type SeedContactCenter struct {
	ID               CCID                         `yaml:"id"`
	Name             string                       `yaml:"name"`
	SIPDomain        string                       `yaml:"sipDomain"`
	EnvironmentID    string                       `yaml:"environmentId"`
	Options          map[string]map[string]string `yaml:"options"`
	Users            []SeedUser                   `yaml:"users"`
	DNs              []SeedDN                     `yaml:"dns"`
	CallbackServices []SeedCallbackService        `yaml:"callbackServices"`
	CallinGroups     []SeedCallinGroup            `yaml:"callinGroups"`
	AgentGroups      []SeedAgentGroup             `yaml:"agentGroups"`
	APIKeys          []SeedAPIKey                 `yaml:"apiKeys"`
}

// SeedUser is a person; Password is clear text and hashed on apply.
type SeedUser struct {
	DBID      DBID     `yaml:"dbid"`
	UserName  string   `yaml:"userName"`
	Password  string   `yaml:"password"`
	FirstName string   `yaml:"firstName"`
	LastName  string   `yaml:"lastName"`
	Email     string   `yaml:"email"`
	Roles     []string `yaml:"roles"`
	DN        string   `yaml:"dn"`
	Skills    []string `yaml:"skills"`
	Disabled  bool     `yaml:"disabled"`
}

// SeedDN is a directory number with its SIP digest password.
type SeedDN struct {
	Number      string `yaml:"number"`
	Type        string `yaml:"type"`
	SIPPassword string `yaml:"sipPassword"`
}

// SeedCallbackService is a callback service; BusinessHours also accepts the
// scalar "24x7".
type SeedCallbackService struct {
	Name             string            `yaml:"name"`
	VirtualQueue     string            `yaml:"virtualQueue"`
	TimeZone         string            `yaml:"timeZone"`
	BusinessHours    SeedBusinessHours `yaml:"businessHours"`
	SlotDurationMin  int               `yaml:"slotDurationMin"`
	CapacityPerSlot  int               `yaml:"capacityPerSlot"`
	ImmediateEnabled bool              `yaml:"immediateEnabled"`
	ScheduledEnabled bool              `yaml:"scheduledEnabled"`
	MaxDialAttempts  int               `yaml:"maxDialAttempts"`
	RetryDelaySec    int               `yaml:"retryDelaySec"`
	DialInNumber     string            `yaml:"dialInNumber"`
}

// SeedBusinessHours is BusinessHours written either in full or as "24x7".
type SeedBusinessHours struct{ BusinessHours }

// UnmarshalYAML accepts "24x7" or a mapping with weekly and holidays.
func (b *SeedBusinessHours) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value != "24x7" {
			return fmt.Errorf("line %d: businessHours: want a mapping or \"24x7\", got %q", n.Line, n.Value)
		}
		b.BusinessHours = AlwaysOpen()
		return nil
	}
	var raw struct {
		Weekly   map[string][]Interval `yaml:"weekly"`
		Holidays []string              `yaml:"holidays"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	b.BusinessHours = BusinessHours{Weekly: raw.Weekly, Holidays: raw.Holidays}
	return nil
}

// AlwaysOpen returns "24x7": every day 00:00-24:00, no holidays.
func AlwaysOpen() BusinessHours {
	w := map[string][]Interval{}
	for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
		w[d] = []Interval{{Open: "00:00", Close: "24:00"}}
	}
	return BusinessHours{Weekly: w, Holidays: []string{}}
}

// SeedCallinGroup is a Click-to-Call-In group.
type SeedCallinGroup struct {
	Name              string `yaml:"name"`
	AccessNumber      string `yaml:"accessNumber"`
	AccessCodeEnabled bool   `yaml:"accessCodeEnabled"`
	ExpirySec         int    `yaml:"expirySec"`
	// VirtualQueue is the queue matched callers wait in ("" = none).
	VirtualQueue string `yaml:"virtualQueue"`
}

// SeedAgentGroup is an agent group with member user names.
type SeedAgentGroup struct {
	Name           string                       `yaml:"name"`
	Members        []string                     `yaml:"members"`
	UserProperties map[string]map[string]string `yaml:"userProperties"`
}

// SeedAPIKey is an Engagement API key of the enclosing tenant.
type SeedAPIKey struct {
	Key         string `yaml:"key"`
	Description string `yaml:"description"`
}

// SeedClient is an OAuth client; Secret is clear text and hashed on apply.
// Lifetimes of 0 take DefaultAccessTokenTTL / DefaultRefreshTokenTTL.
type SeedClient struct {
	ClientID           string   `yaml:"clientId"`
	Secret             string   `yaml:"secret"`
	Name               string   `yaml:"name"`
	GrantTypes         []string `yaml:"grantTypes"`
	RedirectURIs       []string `yaml:"redirectUris"`
	AccessTokenTTLSec  int      `yaml:"accessTokenTTLSec"`
	RefreshTokenTTLSec int      `yaml:"refreshTokenTTLSec"`
	Authorities        []string `yaml:"authorities"`
	Scopes             []string `yaml:"scopes"`
	ContactCenterID    CCID     `yaml:"contactCenterId"`
}

// ParseSeed decodes a YAML seed; unknown keys are errors.
func ParseSeed(r io.Reader) (Seed, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var s Seed
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return Seed{}, nil
		}
		return Seed{}, fmt.Errorf("parse seed: %w", err)
	}
	return s, nil
}

// DemoSeed returns the embedded demo tenant seed.
func DemoSeed() (Seed, error) {
	s, err := ParseSeed(bytes.NewReader(demoYAML))
	if err != nil {
		return Seed{}, fmt.Errorf("demo seed: %w", err)
	}
	return s, nil
}

// Apply upserts everything in the seed by natural key (CCID, user name, DN
// number, object name, client id, API key) in one transaction. Applying the same
// seed twice changes nothing: stored password and secret hashes are kept when
// they already match. Objects absent from the seed are left alone.
func (s *Store) Apply(ctx context.Context, seed Seed) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return applySeed(ctx, tx, seed) })
	if err != nil {
		return fmt.Errorf("apply seed: %w", err)
	}
	s.changed(seedCCIDs(seed)...)
	return nil
}

func seedCCIDs(seed Seed) []CCID {
	ids := make([]CCID, 0, len(seed.ContactCenters))
	for _, cc := range seed.ContactCenters {
		ids = append(ids, cc.ID)
	}
	return ids
}

// ResetDemo deletes the demo tenant and the demo clients (with every object
// they own, including API keys added later) and applies the demo seed again.
func (s *Store) ResetDemo(ctx context.Context) error {
	seed, err := DemoSeed()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, cc := range seed.ContactCenters {
			if _, err := tx.Exec(ctx, `DELETE FROM tenant.contact_centers WHERE ccid = $1`, string(cc.ID)); err != nil {
				return err
			}
		}
		for _, c := range seed.Clients {
			if _, err := tx.Exec(ctx, `DELETE FROM tenant.oauth_clients WHERE client_id = $1`, c.ClientID); err != nil {
				return err
			}
		}
		return applySeed(ctx, tx, seed)
	})
	if err != nil {
		return fmt.Errorf("reset demo: %w", err)
	}
	s.changed(seedCCIDs(seed)...)
	return nil
}

func applySeed(ctx context.Context, q querier, seed Seed) error {
	for _, sc := range seed.ContactCenters {
		cc := ContactCenter{ID: sc.ID, Name: sc.Name, SIPDomain: sc.SIPDomain, EnvironmentID: sc.EnvironmentID, Options: sc.Options}
		if cc.EnvironmentID == "" {
			cc.EnvironmentID = "cxlab-env"
		}
		if _, err := putContactCenter(ctx, q, cc); err != nil {
			return err
		}
		for _, u := range sc.Users {
			user := User{DBID: u.DBID, CCID: sc.ID, UserName: u.UserName, FirstName: u.FirstName, LastName: u.LastName,
				Email: u.Email, Roles: u.Roles, DN: u.DN, Skills: u.Skills, Enabled: !u.Disabled}
			if _, err := putUser(ctx, q, user, u.Password); err != nil {
				return err
			}
		}
		for _, d := range sc.DNs {
			if err := putDN(ctx, q, DN{CCID: sc.ID, Number: d.Number, Type: d.Type, SIPPassword: d.SIPPassword}); err != nil {
				return err
			}
		}
		for _, c := range sc.CallbackServices {
			if err := putCallbackService(ctx, q, CallbackService{CCID: sc.ID, Name: c.Name, VirtualQueue: c.VirtualQueue,
				TimeZone: c.TimeZone, BusinessHours: c.BusinessHours.BusinessHours, SlotDurationMin: c.SlotDurationMin,
				CapacityPerSlot: c.CapacityPerSlot, ImmediateEnabled: c.ImmediateEnabled, ScheduledEnabled: c.ScheduledEnabled,
				MaxDialAttempts: c.MaxDialAttempts, RetryDelaySec: c.RetryDelaySec, DialInNumber: c.DialInNumber}); err != nil {
				return err
			}
		}
		for _, g := range sc.CallinGroups {
			if err := putCallinGroup(ctx, q, CallinGroup{CCID: sc.ID, Name: g.Name, AccessNumber: g.AccessNumber,
				AccessCodeEnabled: g.AccessCodeEnabled, ExpirySec: g.ExpirySec, VirtualQueue: g.VirtualQueue}); err != nil {
				return err
			}
		}
		for _, g := range sc.AgentGroups {
			if err := putAgentGroup(ctx, q, AgentGroup{CCID: sc.ID, Name: g.Name, Members: g.Members, UserProperties: g.UserProperties}); err != nil {
				return err
			}
		}
		for _, k := range sc.APIKeys {
			if _, err := putAPIKey(ctx, q, APIKey{Key: k.Key, CCID: sc.ID, Description: k.Description}); err != nil {
				return err
			}
		}
	}
	for _, c := range seed.Clients {
		cl := Client{ID: c.ClientID, Name: c.Name, GrantTypes: c.GrantTypes, RedirectURIs: c.RedirectURIs,
			AccessTokenTTL: time.Duration(c.AccessTokenTTLSec) * time.Second, RefreshTokenTTL: time.Duration(c.RefreshTokenTTLSec) * time.Second,
			Authorities: c.Authorities, Scopes: c.Scopes, CCID: c.ContactCenterID}
		if cl.AccessTokenTTL == 0 {
			cl.AccessTokenTTL = DefaultAccessTokenTTL
		}
		if cl.RefreshTokenTTL == 0 {
			cl.RefreshTokenTTL = DefaultRefreshTokenTTL
		}
		if len(cl.Scopes) == 0 {
			cl.Scopes = []string{"*"}
		}
		if _, err := putClient(ctx, q, cl, c.Secret); err != nil {
			return err
		}
	}
	return nil
}
