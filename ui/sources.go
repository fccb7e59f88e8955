package ui

import (
	"context"
	"errors"
	"io"
	"time"
)

// Callbacks is what the /ges/ UI needs from the Engagement service. The tenant
// is the signed-in user's contact center id. ui/gesadapter implements it over
// *ges.Service.
type Callbacks interface {
	// List returns one page of callbacks matching q.
	List(ctx context.Context, q CallbackQuery) (CallbackPage, error)
	// Get returns one callback of the tenant (ErrNotFound when unknown).
	Get(ctx context.Context, tenant, id string) (Callback, error)
	// Create books a callback; desired nil means immediate.
	Create(ctx context.Context, tenant string, req CreateCallback) (string, error)
	// CancelByAdmin cancels callbacks (reason CANCELLED_BY_ADMIN) and returns the
	// error of each id that could not be cancelled (PROCESSING, finished, unknown).
	CancelByAdmin(ctx context.Context, tenant string, ids []string) map[string]error
	// Recreate books a new callback from a finished one; desired nil means immediate.
	Recreate(ctx context.Context, tenant, id string, desired *time.Time) (string, error)
	// ExportCSV writes every callback matching q (all pages) as CSV.
	ExportCSV(ctx context.Context, q CallbackQuery, w io.Writer) error
	// Availability lists the open slots of a service in [from, to).
	Availability(ctx context.Context, tenant, service string, from, to time.Time) (Availability, error)
	// Services returns the tenant's callback services with hours and capacity.
	Services(ctx context.Context, tenant string) ([]ServiceInfo, error)
	// CallIns returns Click-to-Call-In requests, newest first, matching search (id or ANI).
	CallIns(ctx context.Context, tenant, search string, limit int) ([]CallIn, error)
}

// ErrNotFound is what Callbacks.Get returns for an unknown callback.
var ErrNotFound = errors.New("not found")

// Callback states as GES names them.
const (
	StateScheduled  = "SCHEDULED"
	StateQueued     = "QUEUED"
	StateRouting    = "ROUTING"
	StateProcessing = "PROCESSING"
	StateCompleted  = "COMPLETED"
)

// AllStates lists the callback states in lifecycle order.
var AllStates = []string{StateScheduled, StateQueued, StateRouting, StateProcessing, StateCompleted}

// CallbackQuery selects callbacks for the list, search and export.
type CallbackQuery struct {
	Tenant   string
	From, To time.Time // bounds on the desired time; zero = unbounded
	States   []string
	Services []string
	Search   string // callback id prefix or phone-number substring
	SortBy   string // id, state, desiredTime, phoneNumber, serviceName, updatedAt
	Desc     bool
	Page     int // 1-based
	PageSize int // 250 in the UI
}

// CallbackPage is one page of a list.
type CallbackPage struct {
	Items []Callback
	Total int
	Page  int
	Pages int
}

// Callback is one callback as the UI shows it.
type Callback struct {
	ID              string
	State           string
	Reason          string
	DesiredTime     time.Time
	PhoneNumber     string
	Service         string
	VirtualQueue    string
	Immediate       bool
	PositionInQueue int
	EstimatedWait   int
	DialAttempts    int
	AgentDN         string
	UserData        map[string]any
	CreatedAt       time.Time
	UpdatedAt       time.Time
	History         []HistoryEntry
}

// HistoryEntry is one state change of a callback.
type HistoryEntry struct {
	State  string
	Reason string
	At     time.Time
}

// CreateCallback is the create dialog's input.
type CreateCallback struct {
	Service     string
	PhoneNumber string
	Desired     *time.Time
	UserData    map[string]any
}

// Availability is a service's open slots.
type Availability struct {
	Slots       []Slot
	DurationMin int
}

// Slot is one bookable slot.
type Slot struct {
	Start    time.Time
	Capacity int // places left
	Total    int // configured capacity
}

// ServiceInfo is a callback service's configuration.
type ServiceInfo struct {
	Name             string
	VirtualQueue     string
	TimeZone         string
	Weekly           map[string][]OpenClose // mon..sun; absent = closed
	Holidays         []string
	SlotDurationMin  int
	CapacityPerSlot  int
	ImmediateEnabled bool
	ScheduledEnabled bool
	MaxDialAttempts  int
	RetryDelaySec    int
	DialInNumber     string
}

// OpenClose is one open interval, "HH:MM" local time.
type OpenClose struct {
	Open, Close string
}

// CallIn is one Click-to-Call-In request.
type CallIn struct {
	ID              string
	GroupName       string
	ToPhoneNumber   string
	FromPhoneNumber string
	AccessCode      string
	CreatedAt       time.Time
	ExpiresAt       time.Time
	State           string    // PENDING, MATCHED (the caller dialled in with the code) or EXPIRED; "" if unknown
	MatchedAt       time.Time // when it was matched
}

// ConsoleSources feed the console. Any field may be nil; its section then
// says "not available". Every time.Time a source returns (starts, sign-ins,
// allocations) is wall-clock time: uptimes and durations are real elapsed
// time, while the lab clock, which the console can move, is business time.
type ConsoleSources struct {
	// Overview returns the addresses and demo credentials to show.
	Overview func() Overview
	// Components returns every component's status.
	Components func(ctx context.Context) []ComponentStatus
	// Agents returns the agents known to Voice.
	Agents func(ctx context.Context) ([]AgentRow, error)
	// Calls returns current and recent calls.
	Calls func(ctx context.Context) ([]CallRow, error)
	// Queues returns live queue figures.
	Queues func(ctx context.Context) ([]QueueRow, error)
	// Slots returns booked vs capacity for upcoming slots per service.
	Slots func(ctx context.Context) ([]SlotUsage, error)
	// TURN returns current TURN allocations.
	TURN func(ctx context.Context) ([]TURNAllocation, error)
	// Logs returns the last n log lines of a component ("" = all).
	Logs func(ctx context.Context, component string, n int) ([]LogLine, error)
	// Scaling returns the live inputs of the scaling view.
	Scaling func(ctx context.Context) (ScalingLive, error)
	// ClockOffset tells how far the lab clock is ahead of wall time.
	ClockOffset func() time.Duration
	// AdvanceClock moves the lab clock forward.
	AdvanceClock func(d time.Duration) time.Time
	// Faults lists the failures that can be injected and whether each is on.
	Faults func() []Fault
	// SetFault turns an injectable failure on or off.
	SetFault func(ctx context.Context, name string, on bool) error
	// ResetDemo restores the demo tenant.
	ResetDemo func(ctx context.Context) error
}

// Overview is what the console's home shows besides component status.
type Overview struct {
	ConsoleURL  string
	GESAPIURL   string
	GESUIURL    string
	GAuthURL    string
	WebRTCURL   string
	TURNURIs    []string
	TURNSecret  string
	SIPURI      string
	RedisURL    string
	PostgresURL string
	MetricsURL  string
	APIKey      string
	CCID        string
	Logins      []Login
	Version     string
}

// Login is a demo credential.
type Login struct {
	Role, Username, Password, DN string
}

// ComponentStatus is one row of the overview.
type ComponentStatus struct {
	Name     string
	Ready    bool
	Detail   string // error text when not ready
	Endpoint string
	Version  string
	Since    time.Time // wall-clock start time; uptime is computed from it
}

// AgentRow is one agent DN.
type AgentRow struct {
	UserName string
	DN       string
	State    string
	Skills   []string
	Since    time.Time // wall-clock time of the last state change
	Signed   bool      // signed in to the gateway / registered
	Call     *AgentCall
}

// AgentCall is an agent's current call at the WebRTC gateway, with its media.
type AgentCall struct {
	Peer         string // the remote party
	State        string // ringing, connected, held
	Started      time.Time
	BrowserCodec string // the browser leg's codec, e.g. audio/opus
	SIPCodec     string // PCMU or PCMA
	Transcoding  bool
	// Agent is what the gateway received from the browser (the agent's
	// microphone), Customer what it received on the SIP leg.
	Agent, Customer MediaLeg
}

// MediaLeg is what one direction of a call carried so far.
type MediaLeg struct {
	Packets  uint64
	Lost     uint64
	HasLevel bool    // false until the leg's audio is analysed
	LevelDB  float64 // RMS level of the last 20 ms, dBFS
}

// CallRow is one call.
type CallRow struct {
	ID       string
	From, To string
	State    string
	Queue    string
	AgentDN  string
	Started  time.Time
	Duration time.Duration // wall-clock time from start to end (or now)
	Detail   string        // e.g. the simulated customer's audio analysis
}

// QueueRow is one virtual queue's live figures.
type QueueRow struct {
	Name        string
	Waiting     int
	ReadyAgents int
	LoggedIn    int
	EWTSeconds  int // -1 when unknown
}

// SlotUsage is one service's booked places in one slot.
type SlotUsage struct {
	Service  string
	Start    time.Time
	Booked   int
	Capacity int
}

// TURNAllocation is one relay allocation and the traffic it relayed.
type TURNAllocation struct {
	Username        string
	Client          string
	Relay           string
	Peers           []string // peer IPs with a permission
	Created         time.Time
	BytesToPeer     uint64 // payload relayed from the client to peers
	BytesFromPeer   uint64 // payload relayed from peers to the client
	PacketsToPeer   uint64
	PacketsFromPeer uint64
}

// LogLine is one log record.
type LogLine struct {
	Time      time.Time
	Level     string
	Component string
	Message   string
	Attrs     []LogAttr // the record's structured fields, in order
}

// LogAttr is one structured field of a log record; a group's fields are
// named group.key.
type LogAttr struct {
	Key, Value string
}

// ScalingLive are the live figures the scaling view decides on.
type ScalingLive struct {
	GatewayReplicas int
	SignIns         int     // summed sign-in gauge of the gateways
	CPUPercent      float64 // gateway CPU, percent of request, averaged over replicas
	MemoryPercent   float64
	CoturnReplicas  int
	CoturnCPU       float64
	CoturnMemory    float64
	Values          HelmScaling // the Helm values in effect; zero = seed 000 defaults
}

// Fault is an injectable failure of an emulator.
type Fault struct {
	Name        string // e.g. "gauth.token-500"
	Description string
	On          bool
}
