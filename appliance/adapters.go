package appliance

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cxlab/cxlab/appliance/ges"
	"github.com/cxlab/cxlab/mocks/gws"
	"github.com/cxlab/cxlab/mocks/tenant"
	"github.com/cxlab/cxlab/mocks/voice"
)

// voiceDirectory adapts the tenant store to what the Voice emulator reads. The
// emulator reads it on every REGISTER and call, so one read is kept briefly.
type voiceDirectory struct {
	store *tenant.Store
	ttl   time.Duration

	mu      sync.Mutex
	at      time.Time
	tenants []voice.Tenant
}

func (d *voiceDirectory) Tenants(ctx context.Context) ([]voice.Tenant, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tenants != nil && time.Since(d.at) < d.ttl {
		return d.tenants, nil
	}
	ccs, err := d.store.ContactCenters(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]voice.Tenant, 0, len(ccs))
	for _, cc := range ccs {
		t := voice.Tenant{ID: voice.TenantID(cc.ID), SIPDomain: cc.SIPDomain}
		users, err := d.store.Users(ctx, cc.ID)
		if err != nil {
			return nil, err
		}
		owner := map[string]string{}
		for _, u := range users {
			t.Users = append(t.Users, voice.User{UserName: u.UserName, Skills: u.Skills})
			if u.DN != "" {
				owner[u.DN] = u.UserName
			}
		}
		dns, err := d.store.DNs(ctx, cc.ID)
		if err != nil {
			return nil, err
		}
		for _, dn := range dns {
			t.DNs = append(t.DNs, voice.DNEntry{Number: voice.DN(dn.Number), Owner: owner[dn.Number], Password: dn.SIPPassword})
		}
		svcs, err := d.store.CallbackServices(ctx, cc.ID)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, s := range svcs {
			if !seen[s.VirtualQueue] {
				seen[s.VirtualQueue] = true
				t.Queues = append(t.Queues, voice.VirtualQueue{Name: s.VirtualQueue, DialInNumber: s.DialInNumber})
			}
		}
		groups, err := d.store.CallinGroups(ctx, cc.ID)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			t.CallInGroups = append(t.CallInGroups, voice.CallInGroup{Name: g.Name, AccessNumber: g.AccessNumber,
				AccessCodeEnabled: g.AccessCodeEnabled, VirtualQueue: g.VirtualQueue})
		}
		out = append(out, t)
	}
	d.tenants, d.at = out, time.Now()
	return out, nil
}

// invalidate drops the cached read (after a seed is applied or the demo reset).
func (d *voiceDirectory) invalidate() {
	d.mu.Lock()
	d.tenants = nil
	d.mu.Unlock()
}

var _ voice.Directory = (*voiceDirectory)(nil)

// voiceStats feeds GWS statistics from the Voice emulator's live queues.
type voiceStats struct{ voice *voice.Server }

func (s voiceStats) QueueStats(ctx context.Context, ccid tenant.CCID, vq string) (gws.QueueStats, error) {
	q := s.voice.QueueStats(ctx, voice.TenantID(ccid), vq)
	return gws.QueueStats{
		ReadyAgents:         q.ReadyAgents,
		LoggedInAgents:      q.LoggedInAgents,
		BusyAgents:          q.BusyAgents,
		WaitingCalls:        q.WaitingCalls,
		AverageHandlingTime: q.AverageHandlingTime,
		ExpectedWaitTime:    q.ExpectedWaitTime,
	}, nil
}

var _ gws.LiveStats = voiceStats{}

// orsReporter hands Voice/ORS state reports straight to GES when both run in
// this process: the same Report GES's internal HTTP endpoint calls, without the
// HTTP round trip, JSON and token check per report. ges is set once GES is
// built; until then reports get a 503 and Voice retries.
type orsReporter struct {
	ges func() *ges.Service
}

func (o orsReporter) report(ctx context.Context, id voice.CallbackID, r voice.StateReport) (int, error) {
	g := o.ges()
	if g == nil {
		return http.StatusServiceUnavailable, nil
	}
	sr := ges.StateReport{State: ges.State(r.State), Reason: r.Reason, ORSSessionID: r.ORSSessionID, AgentDN: r.AgentDN, Released: r.Released}
	if r.PositionInQueue != 0 {
		sr.PositionInQueue = &r.PositionInQueue
	}
	if r.EstimatedWaitTime != 0 {
		sr.EstimatedWait = &r.EstimatedWaitTime
	}
	sr.DialAttempts = &r.DialAttempts
	if at, err := time.Parse(time.RFC3339, r.At); err == nil {
		sr.At = at
	}
	return ges.StatusOf(g.ApplyReport(ctx, ges.CallbackID(id), sr)), nil
}

// workspaceVoice serves GWS's Workspace API (agent state, calls at a DN, 3pcc
// and the event feed) from the Voice emulator.
type workspaceVoice struct{ voice *voice.Server }

func (v workspaceVoice) AgentDN(_ context.Context, ccid tenant.CCID, dn string) (gws.VoiceDN, error) {
	a := v.voice.AgentAt(voice.TenantID(ccid), voice.DN(dn))
	return gws.VoiceDN{Number: string(a.DN), State: string(a.State)}, nil
}

func (v workspaceVoice) SetAgentState(_ context.Context, ccid tenant.CCID, dn, state string) error {
	return workspaceVoiceError(v.voice.SetAgentStateAt(voice.TenantID(ccid), voice.DN(dn), voice.AgentState(state)))
}

func (v workspaceVoice) CallsAt(_ context.Context, ccid tenant.CCID, dn string) ([]gws.VoiceCall, error) {
	var out []gws.VoiceCall
	for _, c := range v.voice.CallsAt(voice.TenantID(ccid), voice.DN(dn)) {
		out = append(out, toWorkspaceCall(c))
	}
	return out, nil
}

// workspaceCallOps maps Workspace call operations to Voice's 3pcc ones.
var workspaceCallOps = map[string]string{"answer": "answer", "hold": "hold", "retrieve": "resume", "release": "hangup"}

func (v workspaceVoice) ControlCall(ctx context.Context, ccid tenant.CCID, dn, callID, op string) error {
	vop, found := workspaceCallOps[op]
	if !found {
		return fmt.Errorf("%w: unknown operation %q", gws.ErrVoiceRefused, op)
	}
	return workspaceVoiceError(v.voice.ControlCall(ctx, voice.TenantID(ccid), voice.DN(dn), voice.CallID(callID), vop))
}

func (v workspaceVoice) Watch(ccid tenant.CCID, dn string, buffer int) (<-chan gws.VoiceEvent, func()) {
	return voice.Subscribe(v.voice, voice.TenantID(ccid), voice.DN(dn), buffer, func(e voice.FeedEvent) gws.VoiceEvent {
		if e.Agent != nil {
			return gws.VoiceEvent{DN: &gws.VoiceDN{Number: string(e.Agent.DN), State: string(e.Agent.State)}}
		}
		c := toWorkspaceCall(*e.Call)
		return gws.VoiceEvent{Call: &c}
	})
}

func toWorkspaceCall(c voice.FeedCall) gws.VoiceCall {
	return gws.VoiceCall{ID: string(c.ID), Kind: c.Kind, State: c.State, From: c.From, To: c.To, AgentDN: string(c.AgentDN),
		LeftDN: string(c.LeftDN), UserData: c.UserData}
}

func workspaceVoiceError(err error) error {
	switch {
	case err == nil:
		return nil
	case voice.IsNotFound(err):
		return fmt.Errorf("%w: %w", gws.ErrVoiceNotFound, err)
	case voice.IsRefused(err):
		return fmt.Errorf("%w: %w", gws.ErrVoiceRefused, err)
	}
	return err
}

var _ gws.WorkspaceVoice = workspaceVoice{}
