package ges

import (
	"time"

	"github.com/google/uuid"
)

// CallbackID identifies one callback (a UUID string, canonical lower-case form).
type CallbackID string

// canonicalID returns id in the canonical lower-case UUID form, so that an id
// given in upper case (or in another form uuid.Parse reads) finds its
// callback; an id that is not a UUID is returned as it is (no callback has it).
func canonicalID(id CallbackID) CallbackID {
	u, err := uuid.Parse(string(id))
	if err != nil {
		return id
	}
	return CallbackID(u.String())
}

// TenantID is a contact center id (CCID).
type TenantID string

// State is the life-cycle state of a callback.
type State string

// Callback states, in life-cycle order.
const (
	StateScheduled  State = "SCHEDULED"
	StateQueued     State = "QUEUED"
	StateRouting    State = "ROUTING"
	StateProcessing State = "PROCESSING"
	StateCompleted  State = "COMPLETED"
)

// AllStates lists every state in life-cycle order (UI filters use it).
var AllStates = []State{StateScheduled, StateQueued, StateRouting, StateProcessing, StateCompleted}

// Completion reasons GES sets itself; ORS may report others (FAIL_AGENT_CONNECT, ...).
const (
	ReasonAgentConnected     = "AGENT_CONNECTED"
	ReasonCancelled          = "CANCELLED"
	ReasonCancelledByAdmin   = "CANCELLED_BY_ADMIN"
	ReasonFailCallToCustomer = "FAIL_CALL_TO_CUSTOMER"
	ReasonFailTimeoutTTL     = "FAIL_TIMEOUT_TTL"
	ReasonFailAgentConnect   = "FAIL_AGENT_CONNECT"
)

// Offer types accepted in cbOfferType.
const (
	OfferASAP      = "ASAP"
	OfferScheduled = "SCHEDULED"
	OfferCombined  = "COMBINED_SCHEDULED_AND_ASAP"
)

// waiting reports whether a callback in state s waits for an agent (position and EWT apply).
func (s State) waiting() bool {
	return s == StateQueued || s == StateRouting || s == StateProcessing
}

// HistoryEntry records one state change.
type HistoryEntry struct {
	State  State     `json:"state"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Callback is one callback record, the row stored in PostgreSQL.
type Callback struct {
	ID              CallbackID     `json:"id"`
	Tenant          TenantID       `json:"tenant"`
	Service         string         `json:"serviceName"`
	VirtualQueue    string         `json:"virtualQueue"`
	PhoneNumber     string         `json:"phoneNumber"`
	DesiredTime     time.Time      `json:"desiredTime"`
	Immediate       bool           `json:"immediate"`
	OfferType       string         `json:"cbOfferType"`
	Priority        float64        `json:"priority"`
	Language        string         `json:"language"`
	Extra           map[string]any `json:"extra,omitempty"`
	UserData        map[string]any `json:"userData,omitempty"`
	State           State          `json:"callbackState"`
	Reason          string         `json:"callbackReason,omitempty"`
	PositionInQueue int            `json:"positionInQueue"`
	EstimatedWait   int            `json:"estimatedWaitTime"`
	DialAttempts    int            `json:"dialAttempts"`
	ORSSessionID    string         `json:"orsSessionId,omitempty"`
	AgentDN         string         `json:"agentDn,omitempty"`
	MaxDialAttempts int            `json:"maxDialAttempts"`
	RetryDelaySec   int            `json:"retryDelaySec"`
	SlotStart       *time.Time     `json:"slotStart,omitempty"`
	History         []HistoryEntry `json:"history"`
	CreatedAt       time.Time      `json:"createdAt"`
	UpdatedAt       time.Time      `json:"updatedAt"`
}

// apiView is the wire form of a callback returned by retrieve: callbackReason only
// when COMPLETED, position and EWT only while waiting.
func (c *Callback) apiView() map[string]any {
	v := map[string]any{
		"id":            string(c.ID),
		"desiredTime":   formatTime(c.DesiredTime),
		"callbackState": string(c.State),
		"phoneNumber":   c.PhoneNumber,
		"serviceName":   c.Service,
	}
	if c.State == StateCompleted && c.Reason != "" {
		v["callbackReason"] = c.Reason
	}
	if c.State.waiting() {
		v["positionInQueue"] = c.PositionInQueue
		v["estimatedWaitTime"] = c.EstimatedWait
	}
	return v
}

// formatTime renders t the way GES does: UTC with milliseconds.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
