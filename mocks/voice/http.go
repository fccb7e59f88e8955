package voice

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cxlab/cxlab/mocks/voice/internal/rtpsim"
)

// AgentView is an agent DN as the API and the console show it.
type AgentView struct {
	TenantID   TenantID   `json:"contactCenterId"`
	DN         DN         `json:"dn"`
	UserName   string     `json:"userName"`
	Skills     []string   `json:"skills"`
	State      AgentState `json:"state"`
	Since      time.Time  `json:"since"`
	CallID     CallID     `json:"callId,omitempty"`
	Registered bool       `json:"registered"`
}

// CallView is a call record.
type CallView struct {
	ID               CallID            `json:"id"`
	Kind             string            `json:"kind"`
	TenantID         TenantID          `json:"contactCenterId,omitempty"`
	VirtualQueue     string            `json:"virtualQueue,omitempty"`
	From             string            `json:"from"`
	To               string            `json:"to"`
	AgentDN          DN                `json:"agentDn,omitempty"`
	CallbackID       CallbackID        `json:"callbackId,omitempty"`
	ORSSessionID     string            `json:"orsSessionId,omitempty"`
	State            string            `json:"state"`
	Created          time.Time         `json:"created"`
	Answered         *time.Time        `json:"answered,omitempty"`
	Ended            *time.Time        `json:"ended,omitempty"`
	EndReason        string            `json:"endReason,omitempty"`
	UserData         map[string]string `json:"userData,omitempty"`
	CustomerAnalysis *rtpsim.Analysis  `json:"customer_analysis"`
}

// QueueView is a virtual queue with its statistics.
type QueueView struct {
	TenantID TenantID `json:"contactCenterId"`
	Name     string   `json:"name"`
	QueueStats
}

// Snapshot is the live state the console shows.
type Snapshot struct {
	Agents []AgentView `json:"agents"`
	Calls  []CallView  `json:"calls"`
	Queues []QueueView `json:"queues"`
}

func (c *call) view() CallView {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := CallView{ID: c.id, Kind: c.kind, TenantID: c.tenant, VirtualQueue: c.vq, From: c.from, To: c.to,
		AgentDN: c.agent.dn, CallbackID: c.callback, ORSSessionID: c.orsSession, State: c.state, Created: c.created,
		EndReason: c.reason, UserData: c.userData, CustomerAnalysis: c.analysis}
	if !c.answered.IsZero() {
		t := c.answered
		v.Answered = &t
	}
	if !c.ended.IsZero() {
		t := c.ended
		v.Ended = &t
	}
	if v.CustomerAnalysis == nil && c.sim != nil {
		a := c.sim.ep.Analysis()
		v.CustomerAnalysis = &a
	}
	return v
}

// Calls returns live calls, then recent finished ones, newest first.
func (s *Server) Calls() []CallView {
	s.mu.Lock()
	cs := make([]*call, 0, len(s.calls)+len(s.history))
	for _, c := range s.calls {
		cs = append(cs, c)
	}
	cs = append(cs, s.history...)
	s.mu.Unlock()
	out := make([]CallView, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.view())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

func (s *Server) findCall(id CallID) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.calls[id]; c != nil {
		return c
	}
	for _, c := range s.history {
		if c.id == id {
			return c
		}
	}
	return nil
}

func (s *Server) agentViewLocked(a *agent) AgentView {
	_, reg := s.bindings[bindKey{tenant: a.key.tenant, user: string(a.key.dn)}]
	return AgentView{TenantID: a.key.tenant, DN: a.key.dn, UserName: a.user, Skills: slices.Clone(a.skills),
		State: a.state, Since: a.since, CallID: a.call, Registered: reg}
}

// Agents returns every known agent DN (tenant "" = all tenants).
func (s *Server) Agents(tenant TenantID) []AgentView {
	s.mu.Lock()
	out := []AgentView{} // an empty list, not null, when nobody is signed in
	for _, a := range s.agents {
		if tenant == "" || a.key.tenant == tenant {
			out = append(out, s.agentViewLocked(a))
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].TenantID != out[j].TenantID {
			return out[i].TenantID < out[j].TenantID
		}
		return out[i].DN < out[j].DN
	})
	return out
}

// Snapshot returns agents, calls and queues for the console.
func (s *Server) Snapshot(ctx context.Context) Snapshot {
	snap := Snapshot{Agents: s.Agents(""), Calls: s.Calls()}
	if d, err := s.snapshot(ctx); err == nil {
		s.mu.Lock()
		for _, t := range d.byID {
			for _, q := range t.Queues {
				snap.Queues = append(snap.Queues, QueueView{TenantID: t.ID, Name: q.Name,
					QueueStats: s.queueStatsLocked(queueKey{tenant: t.ID, vq: q.Name})})
			}
		}
		s.mu.Unlock()
		sort.Slice(snap.Queues, func(i, j int) bool { return snap.Queues[i].Name < snap.Queues[j].Name })
	}
	return snap
}

type envelope struct {
	Status status `json:"status"`
	Data   any    `json:"data,omitempty"`
}

type status struct {
	Code    int    `json:"code"`
	Message string `json:"message,omitempty"`
}

func fail(c echo.Context, code int, msg string) error {
	return c.JSON(code, envelope{Status: status{Code: code, Message: msg}})
}

func ok(c echo.Context, data any) error {
	return c.JSON(http.StatusOK, envelope{Status: status{Code: 0}, Data: data})
}

// Mount registers the HTTP API:
//
//	GET  /voice/v1/agents/me              the caller's DN(s) (user Bearer token)
//	PUT  /voice/v1/agents/me/state        {"state":"Ready"|"NotReady"}
//	GET  /voice/v1/agents                 all agents of the tenant (supervisor/admin)
//	POST /voice/v1/calls/{id}/answer      3pcc answer (NOTIFY Event: talk)
//	POST /voice/v1/calls/{id}/hold        3pcc hold (NOTIFY Event: hold)
//	POST /voice/v1/calls/{id}/resume      3pcc resume (NOTIFY Event: talk)
//	POST /voice/v1/calls/{id}/hangup      3pcc release
//	GET  /voice/v1/calls[/{id}]           call records with customer_analysis (open, read-only lab diagnostics)
//	GET  /voice/v1/queues/{vq}/stats?ccid= queue statistics (open, read-only)
func (s *Server) Mount(e *echo.Echo) {
	e.GET("/voice/v1/agents/me", s.withUser(s.httpMe))
	e.PUT("/voice/v1/agents/me/state", s.withUser(s.httpSetState))
	e.GET("/voice/v1/agents", s.withUser(s.httpAgents))
	for _, op := range []string{"answer", "hold", "resume", "hangup"} {
		e.POST("/voice/v1/calls/:id/"+op, s.withUser(s.httpCallOp(op)))
	}
	e.GET("/voice/v1/calls", func(c echo.Context) error { return ok(c, map[string]any{"calls": s.Calls()}) })
	e.GET("/voice/v1/calls/:id", func(c echo.Context) error {
		call := s.findCall(CallID(c.Param("id")))
		if call == nil {
			return fail(c, http.StatusNotFound, "call not found")
		}
		return ok(c, call.view())
	})
	e.GET("/voice/v1/queues/:vq/stats", func(c echo.Context) error {
		return ok(c, s.QueueStats(c.Request().Context(), TenantID(c.QueryParam("ccid")), c.Param("vq")))
	})
}

type userHandler func(c echo.Context, u userInfo) error

func (s *Server) withUser(h userHandler) echo.HandlerFunc {
	return func(c echo.Context) error {
		authz := c.Request().Header.Get("Authorization")
		tok, found := strings.CutPrefix(authz, "Bearer ")
		if !found {
			tok, found = strings.CutPrefix(authz, "bearer ")
		}
		if !found || strings.TrimSpace(tok) == "" {
			return fail(c, http.StatusUnauthorized, "bearer token required")
		}
		u, err := s.userinfo(c.Request().Context(), strings.TrimSpace(tok))
		if errors.Is(err, errInvalidToken) {
			return fail(c, http.StatusUnauthorized, "invalid token")
		}
		if err != nil {
			return fail(c, http.StatusBadGateway, "token validation unavailable")
		}
		return h(c, u)
	}
}

// myAgents are the agent DNs of the token's user.
func (s *Server) myAgents(ctx context.Context, u userInfo) []AgentView {
	d, err := s.snapshot(ctx)
	if err != nil {
		return nil
	}
	t := d.byID[TenantID(u.ContactCenterID)]
	if t == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []AgentView
	for _, dn := range t.dnsOf(u.name()) {
		if a := s.agents[agentKey{tenant: t.ID, dn: dn}]; a != nil {
			out = append(out, s.agentViewLocked(a))
		} else {
			var skills []string
			if usr, ok := t.user(u.name()); ok {
				skills = usr.Skills
			}
			out = append(out, AgentView{TenantID: t.ID, DN: dn, UserName: u.name(), Skills: skills, State: LoggedOut})
		}
	}
	return out
}

func (s *Server) httpMe(c echo.Context, u userInfo) error {
	as := s.myAgents(c.Request().Context(), u)
	if len(as) == 0 {
		return fail(c, http.StatusNotFound, "no DN belongs to this user")
	}
	return ok(c, map[string]any{"agents": as})
}

func (s *Server) httpSetState(c echo.Context, u userInfo) error {
	var body struct {
		State AgentState `json:"state"`
	}
	if err := c.Bind(&body); err != nil || body.State == "" {
		return fail(c, http.StatusBadRequest, `body must be {"state":"Ready"|"NotReady"}`)
	}
	as := s.myAgents(c.Request().Context(), u)
	if len(as) == 0 {
		return fail(c, http.StatusNotFound, "no DN belongs to this user")
	}
	var lastErr error
	var out []AgentView
	for _, a := range as {
		if _, err := s.setAgentState(agentKey{tenant: a.TenantID, dn: a.DN}, body.State); err != nil {
			lastErr = err
			continue
		}
	}
	out = s.myAgents(c.Request().Context(), u)
	switch {
	case errors.Is(lastErr, errBadState):
		return fail(c, http.StatusBadRequest, lastErr.Error())
	case lastErr != nil && !anyState(out, body.State):
		return fail(c, http.StatusConflict, lastErr.Error())
	}
	return ok(c, map[string]any{"agents": out})
}

func anyState(as []AgentView, st AgentState) bool {
	for _, a := range as {
		if a.State == st {
			return true
		}
	}
	return false
}

func (s *Server) httpAgents(c echo.Context, u userInfo) error {
	if !u.supervisor() {
		return fail(c, http.StatusForbidden, "supervisor or admin role required")
	}
	return ok(c, map[string]any{"agents": s.Agents(TenantID(u.ContactCenterID))})
}

func (s *Server) httpCallOp(op string) userHandler {
	return func(c echo.Context, u userInfo) error {
		call := s.findCall(CallID(c.Param("id")))
		if call == nil || call.tenant != TenantID(u.ContactCenterID) {
			return fail(c, http.StatusNotFound, errCallNotFound.Error())
		}
		call.mu.Lock()
		at := call.agent.dn
		call.mu.Unlock()
		mine := false
		for _, a := range s.myAgents(c.Request().Context(), u) {
			if a.DN == at {
				mine = true
			}
		}
		if !mine && !u.supervisor() {
			return fail(c, http.StatusForbidden, errNotYours.Error())
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
		defer cancel()
		var err error
		if mine && op == "hangup" {
			// The agent's own hang-up: of a queued call still ringing there,
			// a reject (the call goes back to its queue).
			err = s.ControlCall(ctx, call.tenant, at, call.id, op)
		} else {
			err = s.CallOp(ctx, call.id, op)
		}
		if err != nil {
			switch {
			case errors.Is(err, errCallNotFound):
				return fail(c, http.StatusNotFound, err.Error())
			case errors.Is(err, errNoRemoteCtl), errors.Is(err, errCallState):
				return fail(c, http.StatusConflict, err.Error())
			}
			return fail(c, http.StatusBadGateway, err.Error())
		}
		return ok(c, call.view())
	}
}

// CallOp applies a third-party call control operation to the agent leg of a
// call: answer and resume send NOTIFY Event: talk, hold sends Event: hold,
// hangup releases every leg.
func (s *Server) CallOp(ctx context.Context, id CallID, op string) error {
	c := s.findCall(id)
	if c == nil {
		return errCallNotFound
	}
	st := c.getState()
	if st == "ended" {
		return errCallState
	}
	if op == "hangup" {
		s.endCall(c, nil, "released by 3pcc")
		return nil
	}
	a, b := c.legs()
	agentLeg := b
	if c.kind == kindOutbound || (c.kind == kindInternal && b == nil) {
		agentLeg = a
	}
	if c.kind == kindInternal && c.agent.dn == "" {
		agentLeg = a
	}
	if agentLeg == nil {
		return errCallState
	}
	switch op {
	case "answer":
		if st != "ringing" {
			return errCallState
		}
		return agentLeg.notify(ctx, "talk")
	case "hold":
		if st != "connected" {
			return errCallState
		}
		return agentLeg.notify(ctx, "hold")
	case "resume":
		if st != "held" {
			return errCallState
		}
		return agentLeg.notify(ctx, "talk")
	}
	return errCallState
}
