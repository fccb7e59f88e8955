package ges

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBusinessHoursAcrossZoneAndHoliday(t *testing.T) {
	sch, err := compileSchedule(demoServices()[0]) // CB_Sales, New York, Mon-Fri 08-20
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		at   time.Time
		want time.Duration
	}{
		{time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC), 10 * time.Hour},      // Wed 10:00 EST
		{time.Date(2026, 3, 4, 12, 59, 0, 0, time.UTC), 0},                  // Wed 07:59 EST
		{time.Date(2026, 3, 5, 0, 30, 0, 0, time.UTC), 30 * time.Minute},    // Wed 19:30 EST, Thu in UTC
		{time.Date(2026, 3, 7, 15, 0, 0, 0, time.UTC), 0},                   // Saturday
		{time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC), 12 * time.Hour},      // Mon 08:00 EDT (after DST)
		{time.Date(2026, 12, 25, 15, 0, 0, 0, time.UTC), 0},                 // Friday, holiday
		{time.Date(2026, 12, 24, 15, 0, 0, 0, time.UTC), 10 * time.Hour},    // Thursday before
		{time.Date(2027, 1, 1, 4, 30, 0, 0, time.UTC), 0},                   // 2026-12-31 23:30 NY: night
		{time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), 90 * time.Minute}, // Thu 18:30 NY
	}
	for _, c := range cases {
		want := c.want
		if got := sch.openFor(c.at); got != want {
			t.Errorf("openFor(%s) = %s, want %s", c.at.In(sch.loc).Format(time.RFC3339), got, want)
		}
	}
	// 24x7 merges days: open for the whole look-ahead.
	sup, _ := compileSchedule(demoServices()[1])
	if got := sup.openFor(wednesday10NY); got < 7*24*time.Hour {
		t.Errorf("24x7 openFor = %s, want about a week", got)
	}
	// Slots align to local midnight in the service zone.
	if got := sch.slotStart(time.Date(2026, 3, 4, 15, 7, 0, 0, time.UTC)); !got.Equal(time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("slotStart = %s", got)
	}
	slots := sch.openSlots(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), 0)
	// Tuesday 19-20 NY (00-01 UTC Wed) + all of Wednesday + Thursday until 19:00 NY (00:00 UTC Fri).
	if len(slots) != 4+48+44 {
		t.Errorf("open slots = %d, want 96", len(slots))
	}
}

func TestImmediateRefusedWhenClosed(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(time.Date(2026, 12, 25, 15, 0, 0, 0, time.UTC)) // Christmas, 10:00 in New York
	r := e.api("POST", "/engagement/v3/callbacks/create", map[string]any{"serviceName": "CB_Sales", "phoneNumber": "+12025550100"})
	if r.code != 400 || !strings.Contains(r.Status.Message, "closed") {
		t.Fatalf("immediate on a holiday = %d %q, want 400 closed", r.code, r.Status.Message)
	}
	// A desiredTime gone by asks for an immediate callback: the refusal says so.
	r = e.api("POST", "/engagement/v3/callbacks/create", map[string]any{"serviceName": "CB_Sales", "phoneNumber": "+12025550100",
		"desiredTime": "2026-12-24T15:00:00.000Z"})
	if r.code != 400 || !strings.Contains(r.Status.Message, "desiredTime 2026-12-24T15:00:00.000Z is not in the future") {
		t.Fatalf("a past desiredTime on a holiday = %d %q, want 400 naming the past desiredTime", r.code, r.Status.Message)
	}
	// CB_Support is 24x7 in UTC.
	e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550100"})
	var of struct{ OpenFor int64 }
	r = e.api("GET", "/engagement/v3/callbacks/open-for/VQ_Sales", nil)
	json.Unmarshal(r.Data, &of)
	if r.code != 200 || of.OpenFor != 0 {
		t.Fatalf("open-for on a holiday = %d %d", r.code, of.OpenFor)
	}
	r = e.api("GET", "/engagement/v3/callbacks/open-for/CB_Sales?start=2026-12-28T19:00:00&timezone=America/New_York", nil)
	json.Unmarshal(r.Data, &of)
	if of.OpenFor != 3600 {
		t.Fatalf("open-for Monday 19:00 New York = %d, want 3600", of.OpenFor)
	}
	var qs QueueStatus
	r = e.api("GET", "/engagement/v3/callbacks/queue-status/CB_Sales", nil)
	json.Unmarshal(r.Data, &qs)
	if qs.OfferImmediateCallback || !qs.OfferScheduledCallback {
		t.Fatalf("queue-status on a holiday = %+v", qs)
	}
	if r := e.api("GET", "/engagement/v3/callbacks/open-for/Nope", nil); r.code != 400 {
		t.Fatalf("open-for unknown = %d", r.code)
	}
}

// bookScheduled books n scheduled callbacks at desired on CB_Support (capacity 5).
func (e *env) bookScheduled(n int, desired time.Time, extra map[string]any) []resp {
	out := make([]resp, n)
	for i := range n {
		body := map[string]any{"serviceName": "CB_Support", "phoneNumber": fmt.Sprintf("+120255501%02d", i%8),
			"desiredTime": desired.Format(time.RFC3339)}
		for k, v := range extra {
			body[k] = v
		}
		out[i] = e.api("POST", "/engagement/v3/callbacks/create", body)
	}
	return out
}

func TestCapacityFullSlot(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxActivePerNumber: 100}))
	slot := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	for i, r := range e.bookScheduled(5, slot.Add(7*time.Minute), nil) {
		if r.code != 200 {
			t.Fatalf("booking %d: %d %s", i, r.code, r.Status.Message)
		}
	}
	// alwaysCheckCapacity: refused with proposals.
	r := e.bookScheduled(1, slot, map[string]any{"alwaysCheckCapacity": true})[0]
	if r.code != 429 {
		t.Fatalf("full slot with alwaysCheckCapacity = %d, want 429", r.code)
	}
	var d struct{ Slots map[string]string }
	json.Unmarshal(r.Data, &d)
	if len(d.Slots) != 5 || d.Slots["2026-03-05T10:30:00.000Z"] != "5" || d.Slots["2026-03-05T10:00:00.000Z"] != "" {
		t.Fatalf("proposed slots = %v", d.Slots)
	}
	// Without it the callback moves to the next open slot.
	var id struct{ ID string }
	r = e.bookScheduled(1, slot, nil)[0]
	json.Unmarshal(r.Data, &id)
	if r.code != 200 {
		t.Fatalf("full slot without alwaysCheckCapacity = %d %s", r.code, r.Status.Message)
	}
	if got := e.retrieve(CallbackID(id.ID))["desiredTime"]; got != "2026-03-05T10:30:00.000Z" {
		t.Fatalf("moved desiredTime = %v, want the next slot", got)
	}
	// Availability reports remaining capacity; reportBusy shows the full slot.
	q := "?start=2026-03-05T10:00:00.000Z&end=2026-03-05T11:30:00.000Z"
	av := e.availability("CB_Support" + q)
	if len(av.Slots) != 2 || av.Slots[0].UTCTime != "2026-03-05T10:30:00.000Z" || av.Slots[0].Capacity != 4 || av.Slots[0].Total != 5 {
		t.Fatalf("availability = %+v", av)
	}
	av = e.availability("CB_Support" + q + "&reportBusy=true")
	if len(av.Slots) != 3 || av.Slots[0].Capacity != 0 || av.DurationMin != 30 || av.Timezone != "UTC" {
		t.Fatalf("availability reportBusy = %+v", av)
	}
	// Cancelling frees a place.
	page, _ := e.svc.List(context.Background(), ListQuery{Tenant: demoTenant, From: slot, To: slot.Add(10 * time.Minute)})
	if failed := e.svc.CancelByAdmin(context.Background(), demoTenant, page.Items[0].ID); len(failed) != 0 {
		t.Fatal(failed)
	}
	if got := e.retrieve(page.Items[0].ID)["callbackReason"]; got != "CANCELLED_BY_ADMIN" {
		t.Fatalf("admin cancel reason = %v", got)
	}
	if av := e.availability("CB_Support" + q); av.Slots[0].Capacity != 1 {
		t.Fatalf("after cancel availability = %+v", av.Slots)
	}
}

func (e *env) availability(pathQuery string) Availability {
	e.t.Helper()
	r := e.api("GET", "/engagement/v3/callbacks/availability/"+pathQuery, nil)
	if r.code != 200 {
		e.t.Fatalf("availability %s: %d %s", pathQuery, r.code, r.Status.Message)
	}
	var av Availability
	json.Unmarshal(r.Data, &av)
	return av
}

func TestAvailabilityQuerySpellings(t *testing.T) {
	e := newEnv(t)
	startMS := time.Date(2026, 3, 5, 13, 0, 0, 0, time.UTC).UnixMilli() // Thu 08:00 New York
	camel := e.availability(fmt.Sprintf("CB_Sales?startMS=%d&numberOfDays=2&maxTimeSlots=5&timezone=America/New_York", startMS))
	kebab := e.availability(fmt.Sprintf("CB_Sales?start-ms=%d&number-of-days=2&max-time-slots=5&timezone=America/New_York", startMS))
	if len(camel.Slots) != 5 || fmt.Sprint(camel) != fmt.Sprint(kebab) {
		t.Fatalf("camel %+v != kebab %+v", camel, kebab)
	}
	if camel.Slots[0].LocalTime != "2026-03-05T08:00:00.000-05:00" || camel.Slots[0].UTCTime != "2026-03-05T13:00:00.000Z" ||
		camel.Timezone != "America/New_York" || camel.DurationMin != 15 {
		t.Fatalf("slots = %+v", camel)
	}
	// A weekend has no slots; the holiday neither.
	if av := e.availability("CB_Sales?start=2026-03-07T00:00:00&timezone=America/New_York&numberOfDays=2"); len(av.Slots) != 0 {
		t.Fatalf("weekend slots = %d", len(av.Slots))
	}
	if av := e.availability("CB_Sales?start=2026-12-25T00:00:00.000&timezone=America/New_York&number-of-days=1"); len(av.Slots) != 0 {
		t.Fatalf("holiday slots = %d", len(av.Slots))
	}
	for _, bad := range []string{"CB_Sales?start=x", "CB_Sales?timezone=Mars/Base", "CB_Sales?numberOfDays=2&end=2026-03-09T00:00:00Z",
		"CB_Sales?start=2026-03-05T00:00:00Z&startMS=1", "CB_Sales?maxTimeSlots=a", "CB_Sales?reportBusy=maybe", "CB_Nope", "CB_Sales?numberOfDays=40"} {
		if r := e.api("GET", "/engagement/v3/callbacks/availability/"+bad, nil); r.code != 400 {
			t.Errorf("%s = %d, want 400", bad, r.code)
		}
	}
}

// Redis restarting empty must not reopen a full slot: the booking that finds
// the index missing rebuilds the counters from PostgreSQL first.
func TestFullSlotStaysFullAfterRedisLoss(t *testing.T) {
	e := newEnv(t, withConfig(Config{MaxActivePerNumber: 100, PollInterval: time.Hour}))
	slot := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	for i, r := range e.bookScheduled(5, slot.Add(7*time.Minute), nil) {
		if r.code != 200 {
			t.Fatalf("booking %d: %d %s", i, r.code, r.Status.Message)
		}
	}
	e.mr.FlushAll() // Redis restarts empty; the monitor has not run since
	q := "?start=2026-03-05T10:00:00.000Z&end=2026-03-05T11:00:00.000Z&reportBusy=true"
	if av := e.availability("CB_Support" + q); len(av.Slots) == 0 || av.Slots[0].Capacity != 0 {
		t.Fatalf("availability of the full slot after Redis loss = %+v, want capacity 0", av.Slots)
	}
	e.mr.FlushAll()
	if r := e.bookScheduled(1, slot, map[string]any{"alwaysCheckCapacity": true})[0]; r.code != 429 {
		t.Fatalf("booking the full slot after Redis loss = %d %s, want 429", r.code, r.Status.Message)
	}
}

// Availability offers no slot create would refuse: it stops at the booking
// horizon (ScheduleHorizon, 14 days), and the last slot it offers books.
func TestAvailabilityStopsAtBookingHorizon(t *testing.T) {
	e := newEnv(t)
	horizon := e.clk.Now().Add(14 * 24 * time.Hour)
	for _, q := range []string{"CB_Support?start=" + e.clk.Now().Add(15*24*time.Hour).Format(time.RFC3339),
		"CB_Support?start=2030-01-01T00:00:00Z&numberOfDays=3", "CB_Sales?start=2030-01-07T00:00:00Z"} {
		if av := e.availability(q); len(av.Slots) != 0 {
			t.Errorf("%s offers %d slots (first %s), want none past the horizon", q, len(av.Slots), av.Slots[0].UTCTime)
		}
	}
	// A period across the horizon stops before it: CB_Support has 30-minute slots.
	av := e.availability("CB_Support?start=" + horizon.Add(-2*time.Hour).Format(time.RFC3339) + "&numberOfDays=2")
	if len(av.Slots) != 4 {
		t.Fatalf("slots across the horizon = %d (%+v), want the 4 before it", len(av.Slots), av.Slots)
	}
	last := av.Slots[len(av.Slots)-1].UTCTime
	if r := e.bookScheduled(1, mustTime(t, last), nil)[0]; r.code != 200 {
		t.Fatalf("booking the last offered slot %s = %d %q", last, r.code, r.Status.Message)
	}
	if r := e.bookScheduled(1, horizon.Add(30*time.Minute), nil)[0]; r.code != 400 || !strings.Contains(r.Status.Message, "too far ahead") {
		t.Fatalf("booking past the horizon = %d %q, want 400", r.code, r.Status.Message)
	}
}

func mustTime(t *testing.T, v string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// A scheduled create the service cannot place says why: the desired slot is
// closed, and no open slot follows it within the horizon (data.slots empty).
func TestScheduledCreateWithoutSlotBeforeHorizon(t *testing.T) {
	e := newEnv(t)
	e.clk.Set(time.Date(2026, 3, 7, 15, 0, 0, 0, time.UTC))  // Saturday; the horizon is Saturday 2026-03-21 15:00 UTC
	desired := time.Date(2026, 3, 21, 14, 0, 0, 0, time.UTC) // Saturday 10:00 in New York: CB_Sales opens again on Monday
	for _, extra := range []map[string]any{{}, {"alwaysCheckCapacity": true}} {
		body := map[string]any{"serviceName": "CB_Sales", "phoneNumber": "+12025550100", "desiredTime": desired.Format(time.RFC3339)}
		for k, v := range extra {
			body[k] = v
		}
		r := e.api("POST", "/engagement/v3/callbacks/create", body)
		slots, ok := slotsOf(r)
		if r.code != 429 || !ok || len(slots) != 0 {
			t.Fatalf("%v: %d %s, want 429 with empty data.slots", extra, r.code, r.Data)
		}
		if msg := r.Status.Message; strings.Contains(msg, "no capacity") || !strings.Contains(msg, "business hours") ||
			!strings.Contains(msg, "within the booking horizon") {
			t.Errorf("%v: message %q, want the slot closed and nothing open within the horizon", extra, msg)
		}
	}
	// A closed slot with open ones ahead is called closed, not full, and they are proposed.
	r := e.api("POST", "/engagement/v3/callbacks/create", map[string]any{"serviceName": "CB_Sales", "phoneNumber": "+12025550100",
		"desiredTime": "2026-03-07T18:00:00Z", "alwaysCheckCapacity": true})
	if slots, _ := slotsOf(r); r.code != 429 || len(slots) != 5 || slots["2026-03-09T12:00:00.000Z"] != "10" ||
		!strings.Contains(r.Status.Message, "business hours") || strings.Contains(r.Status.Message, "no capacity") {
		t.Fatalf("closed slot with alwaysCheckCapacity = %d %q %v", r.code, r.Status.Message, slots)
	}
}
