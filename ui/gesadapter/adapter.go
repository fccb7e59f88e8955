// Package gesadapter lets the /ges/ callback UI (package ui) use the Engagement
// service in the same process. It is the only place where ui meets ges types,
// so each package keeps its own model.
package gesadapter

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cxlab/cxlab/appliance/ges"
	"github.com/cxlab/cxlab/ui"
)

// Adapter implements ui.Callbacks over *ges.Service.
type Adapter struct {
	svc *ges.Service
}

// New returns the adapter.
func New(svc *ges.Service) *Adapter { return &Adapter{svc: svc} }

var _ ui.Callbacks = (*Adapter)(nil)

func listQuery(q ui.CallbackQuery) ges.ListQuery {
	lq := ges.ListQuery{Tenant: ges.TenantID(q.Tenant), From: q.From, To: q.To, Services: q.Services, Search: q.Search,
		SortBy: q.SortBy, Desc: q.Desc, Page: q.Page, PageSize: q.PageSize}
	for _, s := range q.States {
		lq.States = append(lq.States, ges.State(s))
	}
	return lq
}

func callback(c *ges.Callback) ui.Callback {
	out := ui.Callback{ID: string(c.ID), State: string(c.State), Reason: c.Reason, DesiredTime: c.DesiredTime,
		PhoneNumber: c.PhoneNumber, Service: c.Service, VirtualQueue: c.VirtualQueue, Immediate: c.Immediate,
		PositionInQueue: c.PositionInQueue, EstimatedWait: c.EstimatedWait, DialAttempts: c.DialAttempts,
		AgentDN: c.AgentDN, UserData: c.UserData, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	for _, h := range c.History {
		out.History = append(out.History, ui.HistoryEntry{State: string(h.State), Reason: h.Reason, At: h.At})
	}
	return out
}

// List implements ui.Callbacks.
func (a *Adapter) List(ctx context.Context, q ui.CallbackQuery) (ui.CallbackPage, error) {
	p, err := a.svc.List(ctx, listQuery(q))
	if err != nil {
		return ui.CallbackPage{}, err
	}
	out := ui.CallbackPage{Total: p.Total, Page: p.Page, Pages: p.Pages, Items: make([]ui.Callback, 0, len(p.Items))}
	for _, c := range p.Items {
		out.Items = append(out.Items, callback(c))
	}
	return out, nil
}

// Get implements ui.Callbacks.
func (a *Adapter) Get(ctx context.Context, tenant, id string) (ui.Callback, error) {
	c, err := a.svc.Get(ctx, ges.TenantID(tenant), ges.CallbackID(id))
	if errors.Is(err, ges.ErrNotFound) {
		return ui.Callback{}, ui.ErrNotFound
	}
	if err != nil {
		return ui.Callback{}, err
	}
	return callback(c), nil
}

// Create implements ui.Callbacks.
func (a *Adapter) Create(ctx context.Context, tenant string, req ui.CreateCallback) (string, error) {
	id, err := a.svc.Create(ctx, ges.TenantID(tenant), ges.CreateRequest{ServiceName: req.Service,
		PhoneNumber: req.PhoneNumber, DesiredTime: req.Desired, UserData: req.UserData, AlwaysCheckCapacity: req.Desired != nil})
	return string(id), forPeople(err)
}

// forPeople words an Engagement API refusal for the UI's user: the API's
// pointers to its own fields (data.slots, desiredTime) become what the form
// offers, and a full slot's proposed slots are listed.
func forPeople(err error) error {
	var apiErr *ges.Error
	if !errors.As(err, &apiErr) {
		return err
	}
	msg := strings.NewReplacer("; data.slots proposes open slots", "",
		"book a desiredTime instead", "book a Scheduled callback at an open slot instead",
		"book a future desiredTime", "pick an open slot ahead").Replace(apiErr.Message)
	if errors.Is(err, ges.ErrSlotFull) {
		if slots, ok := apiErr.Data.(map[string]any)["slots"].(map[string]string); ok && len(slots) > 0 {
			starts := make([]string, 0, len(slots))
			for at := range slots {
				if t, perr := time.Parse(time.RFC3339, at); perr == nil {
					starts = append(starts, t.UTC().Format("2006-01-02 15:04"))
				}
			}
			sort.Strings(starts)
			msg += ". Open slots (UTC): " + strings.Join(starts[:min(len(starts), 5)], ", ")
		}
	}
	return errors.New(msg)
}

// CancelByAdmin implements ui.Callbacks.
func (a *Adapter) CancelByAdmin(ctx context.Context, tenant string, ids []string) map[string]error {
	cids := make([]ges.CallbackID, len(ids))
	for i, id := range ids {
		cids[i] = ges.CallbackID(id)
	}
	out := map[string]error{}
	for id, err := range a.svc.CancelByAdmin(ctx, ges.TenantID(tenant), cids...) {
		out[string(id)] = err
	}
	return out
}

// Recreate implements ui.Callbacks.
func (a *Adapter) Recreate(ctx context.Context, tenant, id string, desired *time.Time) (string, error) {
	nid, err := a.svc.Recreate(ctx, ges.TenantID(tenant), ges.CallbackID(id), desired)
	return string(nid), forPeople(err)
}

// ExportCSV implements ui.Callbacks.
func (a *Adapter) ExportCSV(ctx context.Context, q ui.CallbackQuery, w io.Writer) error {
	return a.svc.ExportCSV(ctx, listQuery(q), w)
}

// Availability implements ui.Callbacks; full slots are included (capacity 0)
// so the UI can show booked against capacity.
func (a *Adapter) Availability(ctx context.Context, tenant, service string, from, to time.Time) (ui.Availability, error) {
	av, err := a.svc.Availability(ctx, ges.TenantID(tenant), service, ges.AvailabilityQuery{Start: from, End: to, ReportBusy: true})
	if err != nil {
		return ui.Availability{}, err
	}
	out := ui.Availability{DurationMin: av.DurationMin}
	for _, s := range av.Slots {
		t, err := time.Parse(time.RFC3339, s.UTCTime)
		if err != nil {
			continue
		}
		out.Slots = append(out.Slots, ui.Slot{Start: t, Capacity: s.Capacity, Total: s.Total})
	}
	return out, nil
}

// Services implements ui.Callbacks.
func (a *Adapter) Services(ctx context.Context, tenant string) ([]ui.ServiceInfo, error) {
	svcs, err := a.svc.Services(ctx, ges.TenantID(tenant))
	if err != nil {
		return nil, err
	}
	out := make([]ui.ServiceInfo, 0, len(svcs))
	for _, s := range svcs {
		si := ui.ServiceInfo{Name: s.Name, VirtualQueue: s.VirtualQueue, TimeZone: s.TimeZone, Holidays: s.BusinessHours.Holidays,
			SlotDurationMin: s.SlotDurationMin, CapacityPerSlot: s.CapacityPerSlot, ImmediateEnabled: s.ImmediateEnabled,
			ScheduledEnabled: s.ScheduledEnabled, MaxDialAttempts: s.MaxDialAttempts, RetryDelaySec: s.RetryDelaySec,
			DialInNumber: s.DialInNumber, Weekly: map[string][]ui.OpenClose{}}
		for day, ivs := range s.BusinessHours.Weekly {
			for _, iv := range ivs {
				si.Weekly[day] = append(si.Weekly[day], ui.OpenClose{Open: iv.Open, Close: iv.Close})
			}
		}
		out = append(out, si)
	}
	return out, nil
}

// CallIns implements ui.Callbacks.
func (a *Adapter) CallIns(ctx context.Context, tenant, search string, limit int) ([]ui.CallIn, error) {
	rs, err := a.svc.ListCallIns(ctx, ges.TenantID(tenant), search, limit)
	if err != nil {
		return nil, err
	}
	out := make([]ui.CallIn, 0, len(rs))
	for _, r := range rs {
		out = append(out, ui.CallIn{ID: string(r.ID), GroupName: r.GroupName, ToPhoneNumber: r.ToPhoneNumber,
			FromPhoneNumber: r.FromPhoneNumber, AccessCode: r.AccessCode, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
			State: string(r.State), MatchedAt: r.MatchedAt})
	}
	return out, nil
}
