package ges

import (
	"context"
	"time"
)

// AvailabilityQuery selects slots: [Start, End) in the service's slot grid.
type AvailabilityQuery struct {
	Start time.Time
	End   time.Time
	// Location renders localTime; nil means UTC.
	Location *time.Location
	// MaxTimeSlots caps the number of slots returned (0: no cap).
	MaxTimeSlots int
	// ReportBusy also returns open slots that are fully booked.
	ReportBusy bool
}

// Slot is one availability slot.
type Slot struct {
	UTCTime   string `json:"utcTime"`
	LocalTime string `json:"localTime"`
	Capacity  int    `json:"capacity"`
	Total     int    `json:"total"`
}

// Availability is the availability answer.
type Availability struct {
	Slots       []Slot `json:"slots"`
	DurationMin int    `json:"durationMin"`
	Timezone    string `json:"timezone"`
}

// maxAvailabilityRange bounds one availability query.
const maxAvailabilityRange = 31 * 24 * time.Hour

// Availability lists the open slots of a service between q.Start and q.End with
// their remaining capacity. Slots already over, and slots starting at or after
// the booking horizon (ScheduleHorizon from now), are left out.
func (s *Service) Availability(ctx context.Context, tenant TenantID, service string, q AvailabilityQuery) (*Availability, error) {
	sch, err := s.serviceOrQueue(ctx, tenant, service)
	if err != nil {
		return nil, err
	}
	if q.End.Before(q.Start) {
		return nil, invalidf("end must not be before start")
	}
	if q.End.Sub(q.Start) > maxAvailabilityRange {
		return nil, invalidf("the requested period is longer than 31 days")
	}
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	now := s.clock.Now()
	from := sch.slotStart(q.Start)
	// Slots past the booking horizon are not offered: create would refuse them.
	starts := sch.openSlots(from, earliest(q.End, s.horizon(now)), 0)
	for len(starts) > 0 && !starts[0].Add(sch.slot).After(now) {
		starts = starts[1:]
	}
	counts, err := s.bookedCounts(ctx, tenant, sch, starts)
	if err != nil {
		return nil, err
	}
	out := &Availability{Slots: []Slot{}, DurationMin: sch.svc.SlotDurationMin, Timezone: loc.String()}
	if out.DurationMin == 0 {
		out.DurationMin = int(sch.slot / time.Minute)
	}
	for i, st := range starts {
		total := sch.svc.CapacityPerSlot
		left := total - counts[i]
		if left < 0 {
			left = 0
		}
		if left == 0 && total > 0 && !q.ReportBusy {
			continue
		}
		out.Slots = append(out.Slots, Slot{UTCTime: formatTime(st),
			LocalTime: st.In(loc).Format("2006-01-02T15:04:05.000Z07:00"), Capacity: left, Total: total})
		if q.MaxTimeSlots > 0 && len(out.Slots) >= q.MaxTimeSlots {
			break
		}
	}
	return out, nil
}
