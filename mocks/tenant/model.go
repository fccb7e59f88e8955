package tenant

import (
	"slices"
	"time"
)

// CCID is a contact center id (a UUID), the tenant key every object hangs off.
type CCID string

// DBID is a person's Configuration Server database id; unique across tenants.
type DBID int64

// Roles a person may hold (the GWS [htcc] roles annex).
const (
	RoleAgent      = "agent"
	RoleSupervisor = "supervisor"
	RoleAdmin      = "admin"
)

// ContactCenter is one tenant.
type ContactCenter struct {
	ID            CCID   `json:"id"`
	Name          string `json:"name"`
	SIPDomain     string `json:"sipDomain"`
	EnvironmentID string `json:"environmentId"`
	// Options are application options by section, served flattened as
	// "section.option" by GWS /configuration/v3/system/application and by group
	// by GWS /api/v2/settings/{group}.
	Options   map[string]map[string]string `json:"options,omitempty"`
	CreatedAt time.Time                    `json:"createdAt"`
}

// User is a person who can sign in: agent, supervisor or admin.
type User struct {
	DBID         DBID     `json:"dbid"`
	CCID         CCID     `json:"contactCenterId"`
	UserName     string   `json:"userName"`
	PasswordHash string   `json:"-"`
	FirstName    string   `json:"firstName"`
	LastName     string   `json:"lastName"`
	Email        string   `json:"email,omitempty"`
	Roles        []string `json:"roles"`
	DN           string   `json:"dn,omitempty"`
	Skills       []string `json:"skills"`
	Enabled      bool     `json:"enabled"`
}

// HasRole reports whether the user holds role r.
func (u User) HasRole(r string) bool { return slices.Contains(u.Roles, r) }

// DN is a directory number (an agent extension). SIPPassword is kept in clear
// text because SIP digest authentication needs it (or an HA1 bound to the realm);
// this is a lab, and the value is per-DN, not a person's password.
type DN struct {
	CCID        CCID   `json:"contactCenterId"`
	Number      string `json:"number"`
	Type        string `json:"type"`
	SIPPassword string `json:"-"`
}

// Interval is one opening period of a day, "HH:MM" to "HH:MM" ("24:00" allowed
// as a close).
type Interval struct {
	Open  string `json:"open" yaml:"open"`
	Close string `json:"close" yaml:"close"`
}

// BusinessHours is a weekly schedule (keys mon..sun; an absent day is closed)
// plus holiday dates (YYYY-MM-DD, closed all day).
type BusinessHours struct {
	Weekly   map[string][]Interval `json:"weekly" yaml:"weekly"`
	Holidays []string              `json:"holidays" yaml:"holidays"`
}

// CallbackService is a callback service bound to one virtual queue.
type CallbackService struct {
	CCID             CCID          `json:"-"`
	Name             string        `json:"name"`
	VirtualQueue     string        `json:"virtualQueue"`
	TimeZone         string        `json:"timeZone"`
	BusinessHours    BusinessHours `json:"businessHours"`
	SlotDurationMin  int           `json:"slotDurationMin"`
	CapacityPerSlot  int           `json:"capacityPerSlot"`
	ImmediateEnabled bool          `json:"immediateEnabled"`
	ScheduledEnabled bool          `json:"scheduledEnabled"`
	MaxDialAttempts  int           `json:"maxDialAttempts"`
	RetryDelaySec    int           `json:"retryDelaySec"`
	DialInNumber     string        `json:"dialInNumber"`
}

// CallinGroup is a Click-to-Call-In group.
type CallinGroup struct {
	CCID              CCID   `json:"-"`
	Name              string `json:"name"`
	AccessNumber      string `json:"accessNumber"`
	AccessCodeEnabled bool   `json:"accessCodeEnabled"`
	ExpirySec         int    `json:"expirySec"`
	// VirtualQueue is the queue matched callers wait in for an agent ("" = none).
	VirtualQueue string `json:"virtualQueue,omitempty"`
}

// AgentGroup is a named set of persons (by user name) with free-form
// properties (served as groupInfo.userProperties).
type AgentGroup struct {
	CCID           CCID                         `json:"contactCenterId"`
	Name           string                       `json:"name"`
	Members        []string                     `json:"members"`
	UserProperties map[string]map[string]string `json:"userProperties,omitempty"`
}

// Client is an OAuth client registered with GAuth. CCID is empty for clients
// not bound to a tenant (service clients working for every tenant).
type Client struct {
	ID              string        `json:"client_id"`
	SecretHash      string        `json:"-"`
	Name            string        `json:"name"`
	GrantTypes      []string      `json:"authorizedGrantTypes"`
	RedirectURIs    []string      `json:"redirectURIs"`
	AccessTokenTTL  time.Duration `json:"-"`
	RefreshTokenTTL time.Duration `json:"-"`
	Authorities     []string      `json:"authorities"`
	Scopes          []string      `json:"scope"`
	CCID            CCID          `json:"-"`
}

// AllowsGrant reports whether the client may use grant type g.
func (c Client) AllowsGrant(g string) bool { return slices.Contains(c.GrantTypes, g) }

// APIKey binds an Engagement API key to one contact center.
type APIKey struct {
	Key         string    `json:"apiKey"`
	CCID        CCID      `json:"contactCenterId"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
}
