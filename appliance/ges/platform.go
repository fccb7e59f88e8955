package ges

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Platform is what GES needs from the Genesys platform (GAuth environment service
// and GWS). The HTTP implementation speaks the cross-service contracts 1, 3, 4 and 6;
// tests may use StaticPlatform.
type Platform interface {
	// TenantForAPIKey resolves an Engagement API key to its contact center; ErrUnknownAPIKey when unknown.
	TenantForAPIKey(ctx context.Context, apiKey string) (TenantID, error)
	// Services returns the tenant's callback services.
	Services(ctx context.Context, tenant TenantID) ([]ServiceConfig, error)
	// CallInGroups returns the tenant's Click-to-Call-In groups.
	CallInGroups(ctx context.Context, tenant TenantID) ([]CallInGroup, error)
	// Statistics reads current statistic values from GWS. Statistics GWS
	// refuses (unknown name or object type) give an *Error of kind ErrInvalid
	// with GWS's reason; other errors mean GWS is unreachable or failing.
	Statistics(ctx context.Context, tenant TenantID, reqs []StatisticRequest) ([]Statistic, error)
}

// ServiceConfig is one callback service as GWS describes it (contract 4).
type ServiceConfig struct {
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

// OpenClose is one open interval of a day, "HH:MM" local time; close may be "24:00".
type OpenClose struct {
	Open  string `json:"open"`
	Close string `json:"close"`
}

// BusinessHours is a weekly schedule (keys mon..sun; an absent day is closed) plus
// holiday dates (YYYY-MM-DD, closed all day), both in the service time zone.
type BusinessHours struct {
	Weekly   map[string][]OpenClose `json:"weekly"`
	Holidays []string               `json:"holidays,omitempty"`
}

// weekdays are the weekly keys in time.Weekday order.
var weekdays = [7]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// AlwaysOpen returns 24x7 business hours.
func AlwaysOpen() BusinessHours {
	w := make(map[string][]OpenClose, 7)
	for _, d := range weekdays {
		w[d] = []OpenClose{{Open: "00:00", Close: "24:00"}}
	}
	return BusinessHours{Weekly: w}
}

// UnmarshalJSON accepts the contract's object form and the "24x7" shorthand, either
// for the whole value or for "weekly".
func (b *BusinessHours) UnmarshalJSON(p []byte) error {
	var s string
	if json.Unmarshal(p, &s) == nil {
		if !strings.EqualFold(strings.TrimSpace(s), "24x7") {
			return fmt.Errorf("business hours: unknown shorthand %q", s)
		}
		*b = AlwaysOpen()
		return nil
	}
	var raw struct {
		Weekly   json.RawMessage `json:"weekly"`
		Holidays []string        `json:"holidays"`
	}
	if err := json.Unmarshal(p, &raw); err != nil {
		return fmt.Errorf("business hours: %w", err)
	}
	out := BusinessHours{Holidays: raw.Holidays}
	if len(raw.Weekly) > 0 && string(raw.Weekly) != "null" {
		if json.Unmarshal(raw.Weekly, &s) == nil {
			if !strings.EqualFold(strings.TrimSpace(s), "24x7") {
				return fmt.Errorf("business hours: unknown weekly shorthand %q", s)
			}
			out.Weekly = AlwaysOpen().Weekly
		} else if err := json.Unmarshal(raw.Weekly, &out.Weekly); err != nil {
			return fmt.Errorf("business hours weekly: %w", err)
		}
	}
	*b = out
	return nil
}

// CallInGroup is one Click-to-Call-In group (contract 4).
type CallInGroup struct {
	Name              string `json:"name"`
	AccessNumber      string `json:"accessNumber"`
	AccessCodeEnabled bool   `json:"accessCodeEnabled"`
	ExpirySec         int    `json:"expirySec"`
	// VirtualQueue is the queue matched callers wait in ("" = none).
	VirtualQueue string `json:"virtualQueue,omitempty"`
}

// StatisticRequest names one statistic (contract 6).
type StatisticRequest struct {
	ObjectID   string `json:"objectId"`
	ObjectType string `json:"objectType"`
	Name       string `json:"name"`
}

// Statistic is one statistic value (contract 6).
type Statistic struct {
	Name       string  `json:"name"`
	ObjectID   string  `json:"objectId"`
	ObjectType string  `json:"objectType"`
	Timestamp  int64   `json:"timestamp"`
	Value      float64 `json:"value"`
}

// Statistic names GES reads for EWT and queue status.
const (
	StatReadyAgents    = "CurrentReadyAgents"
	StatLoggedInAgents = "CurrentLoggedInAgents"
	StatBusyAgents     = "CurrentBusyAgents"
	StatWaitingCalls   = "CurrentWaitingCalls"
	StatAHT            = "AverageHandlingTime"
	StatExpectedWait   = "ExpectedWaitTime"
)
