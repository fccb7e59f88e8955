package voice

import (
	"context"
	"os"
	"regexp"
	"strings"
)

// TenantID is a contact center id (CCID).
type TenantID string

// DN is a directory number (an agent's extension) inside one tenant.
type DN string

// CallbackID is the GES callback UUID carried by the stream entry.
type CallbackID string

// CallID identifies one call record of this emulator.
type CallID string

// Tenant is the data the emulator needs about one contact center.
type Tenant struct {
	// ID is the contact center id.
	ID TenantID
	// SIPDomain is the host part of the tenant's DN addresses (REGISTER sip:7001@<domain>).
	SIPDomain string
	// DNs are the extensions that may register.
	DNs []DNEntry
	// Users are the people owning DNs, with their skills.
	Users []User
	// Queues are the virtual queues, reachable by their dial-in numbers.
	Queues []VirtualQueue
	// CallInGroups are the Click-to-Call-In groups, reachable by their access numbers.
	CallInGroups []CallInGroup
}

// DNEntry is one extension.
type DNEntry struct {
	// Number is the DN, e.g. "7001".
	Number DN
	// Owner is the user name of the agent the DN belongs to ("" = shared phone).
	Owner string
	// Password is the SIP digest password for phones that do not use a token.
	Password string
}

// User is an agent or supervisor.
type User struct {
	// UserName is the login name, as GAuth userinfo reports it.
	UserName string
	// Skills are the virtual queues the user may take calls from (a skill is named after its queue).
	Skills []string
}

// VirtualQueue is a routing point customers and callbacks wait in.
type VirtualQueue struct {
	// Name is the queue name, e.g. VQ_Sales; agents with a skill of this name serve it.
	Name string
	// DialInNumber is the E.164 number inbound customers dial ("" = none).
	DialInNumber string
}

// CallInGroup is a Click-to-Call-In group: a caller of its access number is
// matched by GES to a request made beforehand, then queued for an agent.
type CallInGroup struct {
	// Name is the group name, e.g. technical_help.
	Name string
	// AccessNumber is the E.164 number customers dial.
	AccessNumber string
	// AccessCodeEnabled makes the IVR collect the request's access code (DTMF);
	// without it the caller's number identifies the request.
	AccessCodeEnabled bool
	// VirtualQueue is the queue matched callers wait in ("" = the one GES names).
	VirtualQueue string
}

// Directory is the tenant model as Voice sees it. The composition root adapts
// the tenant store to it; it is read often, so it should be cheap.
type Directory interface {
	// Tenants returns every tenant.
	Tenants(ctx context.Context) ([]Tenant, error)
}

// StaticDirectory is a Directory over a fixed slice (tests, simple wiring).
type StaticDirectory []Tenant

// Tenants returns the slice.
func (d StaticDirectory) Tenants(context.Context) ([]Tenant, error) { return d, nil }

var _ Directory = StaticDirectory(nil)

// dirSnapshot indexes one read of the Directory.
type dirSnapshot struct {
	byDomain map[string]*Tenant
	byID     map[TenantID]*Tenant
	dialIn   map[string]queueRef
	callIn   map[string]callInRef
}

type queueRef struct {
	tenant *Tenant
	queue  VirtualQueue
}

type callInRef struct {
	tenant *Tenant
	group  CallInGroup
}

func newSnapshot(ts []Tenant) *dirSnapshot {
	s := &dirSnapshot{byDomain: map[string]*Tenant{}, byID: map[TenantID]*Tenant{}, dialIn: map[string]queueRef{},
		callIn: map[string]callInRef{}}
	for i := range ts {
		t := &ts[i]
		s.byDomain[strings.ToLower(t.SIPDomain)] = t
		s.byID[t.ID] = t
		for _, q := range t.Queues {
			if q.DialInNumber != "" {
				s.dialIn[q.DialInNumber] = queueRef{tenant: t, queue: q}
			}
		}
		for _, g := range t.CallInGroups {
			if g.AccessNumber != "" {
				s.callIn[g.AccessNumber] = callInRef{tenant: t, group: g}
			}
		}
	}
	return s
}

func (t *Tenant) dn(n DN) (DNEntry, bool) {
	for _, d := range t.DNs {
		if d.Number == n {
			return d, true
		}
	}
	return DNEntry{}, false
}

func (t *Tenant) user(name string) (User, bool) {
	for _, u := range t.Users {
		if strings.EqualFold(u.UserName, name) {
			return u, true
		}
	}
	return User{}, false
}

func (t *Tenant) dnsOf(user string) []DN {
	var out []DN
	for _, d := range t.DNs {
		if strings.EqualFold(d.Owner, user) {
			out = append(out, d.Number)
		}
	}
	return out
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// isE164 reports whether s is a customer number rather than a DN.
func isE164(s string) bool { return e164.MatchString(s) }

func defaultConsumer() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "local"
	}
	return "voice-" + h
}
