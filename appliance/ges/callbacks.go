package ges

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/nyaruka/phonenumbers"
)

// CreateRequest is a callback to create (the v3 create body, or the UI dialog).
type CreateRequest struct {
	ServiceName string
	PhoneNumber string
	// DesiredTime nil means immediate (ASAP).
	DesiredTime *time.Time
	// OfferType is ASAP, SCHEDULED or COMBINED_SCHEDULED_AND_ASAP; empty derives it.
	OfferType string
	Priority  float64
	Language  string
	UserData  map[string]any
	// AlwaysCheckCapacity rejects a full slot with 429 instead of moving the callback.
	AlwaysCheckCapacity bool
	// Extra holds the other create fields (channel, inboundVQ, offerThreshold, ...), stored as given.
	Extra map[string]any
}

// e164 is the shape of an E.164 number: '+', country code, up to 15 digits.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// checkPhone validates an E.164 number. Numbers must be possible for their
// country (phonenumbers.IsPossibleNumber); fictional 555 numbers pass.
func checkPhone(field, v string) error {
	if v == "" {
		return invalidf("%s is required", field)
	}
	if !e164.MatchString(v) {
		return invalidf("%s must be an E.164 number such as +12025550100", field)
	}
	if !possibleE164(v) {
		return invalidf("%s %s is not a possible phone number", field, v)
	}
	return nil
}

// premiumRate reports a North American premium-rate number (area code 900),
// which the real product blocks by default (Permitted & Blocked Numbers): a
// callback would call the customer at the customer's cost.
func premiumRate(v string) bool { return strings.HasPrefix(v, "+1900") }

// possibleE164 is phonenumbers.Parse(v, "") then IsPossibleNumber, for v of
// e164's shape, without Parse's cost (10 us and 27 allocations, a tenth of a
// create's CPU) in the common case. It first takes v as country code plus
// national number, which is what Parse does unless it strips a national
// prefix after the country code. If that number is possible, so is Parse's:
// Parse strips a prefix only when the rest has a possible length. Otherwise
// Parse decides (TestPossibleE164MatchesParse compares the two).
func possibleE164(v string) bool {
	d := v[1:]
	for i := 1; i <= 3 && i < len(d); i++ {
		cc, _ := strconv.Atoi(d[:i])
		if phonenumbers.GetRegionCodeForCountryCode(cc) == phonenumbers.UNKNOWN_REGION {
			continue
		}
		if splitPossible(int32(cc), d[i:]) {
			return true
		}
		break
	}
	n, err := phonenumbers.Parse(v, "")
	return err == nil && phonenumbers.IsPossibleNumber(n)
}

// splitPossible reports whether the national number nat (digits) is possible
// in country code cc, with leading zeros kept as Parse keeps them.
func splitPossible(cc int32, nat string) bool {
	if len(nat) < 2 || len(nat) > 17 {
		return false
	}
	u, err := strconv.ParseUint(nat, 10, 64)
	if err != nil {
		return false
	}
	n := &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &u}
	if nat[0] == '0' {
		italian, zeros := true, int32(1)
		for int(zeros) < len(nat)-1 && nat[zeros] == '0' {
			zeros++
		}
		n.ItalianLeadingZero = &italian
		if zeros != 1 {
			n.NumberOfLeadingZeros = &zeros
		}
	}
	return phonenumbers.IsPossibleNumber(n)
}

// jsIdent reports whether k is an ECMAScript IdentifierName: an
// IdentifierStart (ID_Start, $ or _) then IdentifierParts (ID_Continue, $,
// ZWNJ or ZWJ). Reserved words are IdentifierNames too, so they pass.
func jsIdent(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if (i == 0 && !idStart(r)) || (i > 0 && !idContinue(r)) {
			return false
		}
	}
	return true
}

// idStart reports whether r may start an ECMAScript identifier: Unicode
// ID_Start (letters, letter numbers, Other_ID_Start, less pattern characters), $ or _.
func idStart(r rune) bool {
	if r == '$' || r == '_' {
		return true
	}
	return unicode.In(r, unicode.L, unicode.Nl, unicode.Other_ID_Start) && !patternRune(r)
}

// idContinue reports whether r may continue an ECMAScript identifier: Unicode
// ID_Continue (ID_Start plus marks, digits, connector punctuation and
// Other_ID_Continue, less pattern characters), $, ZWNJ or ZWJ.
func idContinue(r rune) bool {
	if idStart(r) || r == '\u200c' || r == '\u200d' {
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Pc, unicode.Other_ID_Continue) && !patternRune(r)
}

// patternRune reports Pattern_Syntax and Pattern_White_Space, which Unicode
// keeps out of identifiers.
func patternRune(r rune) bool {
	return unicode.In(r, unicode.Pattern_Syntax, unicode.Pattern_White_Space)
}

// filterUserData drops keys that are not valid JavaScript identifiers, as GES does.
func filterUserData(ud map[string]any) map[string]any {
	if len(ud) == 0 {
		return nil
	}
	out := make(map[string]any, len(ud))
	for k, v := range ud {
		if jsIdent(k) {
			out[k] = v
		}
	}
	return out
}

// Create validates and books a callback for tenant and returns its id once it is
// committed to PostgreSQL. Errors are *Error values (see statusOf).
func (s *Service) Create(ctx context.Context, tenant TenantID, req CreateRequest) (CallbackID, error) {
	if req.ServiceName == "" {
		return "", invalidf("serviceName is required")
	}
	if err := checkPhone("phoneNumber", req.PhoneNumber); err != nil {
		return "", err
	}
	if premiumRate(req.PhoneNumber) {
		return "", invalidf("phoneNumber %s is a premium-rate number: callbacks to US premium-rate numbers (+1 900) are blocked", req.PhoneNumber)
	}
	switch req.OfferType {
	case "", OfferASAP, OfferScheduled, OfferCombined:
	default:
		return "", invalidf("cbOfferType must be one of ASAP, SCHEDULED, COMBINED_SCHEDULED_AND_ASAP")
	}
	sch, err := s.service(ctx, tenant, req.ServiceName)
	if err != nil {
		return "", err
	}
	if !s.allow(tenant) {
		return "", errorf(ErrThrottled, "the tenant is throttling callback creation (more than %g per second)", s.cfg.TenantCreatesPerSec)
	}
	now := s.clock.Now()
	immediate := req.DesiredTime == nil || (!req.AlwaysCheckCapacity && !req.DesiredTime.After(now))
	desired := now
	if req.DesiredTime != nil && req.DesiredTime.After(now) {
		desired = *req.DesiredTime
	}
	if desired.After(s.horizon(now)) {
		return "", invalidf("desiredTime is too far ahead (at most %s)", humanDuration(s.cfg.ScheduleHorizon))
	}
	c := &Callback{
		ID: CallbackID(uuid.NewString()), Tenant: tenant, Service: sch.svc.Name, VirtualQueue: sch.svc.VirtualQueue,
		PhoneNumber: req.PhoneNumber, Immediate: immediate, OfferType: req.OfferType, Priority: req.Priority,
		Language: req.Language, Extra: req.Extra, UserData: filterUserData(req.UserData), State: StateScheduled,
		MaxDialAttempts: sch.svc.MaxDialAttempts, RetryDelaySec: sch.svc.RetryDelaySec, CreatedAt: now, UpdatedAt: now,
	}
	if c.Language == "" {
		c.Language = "en-US"
	}
	if c.OfferType == "" {
		c.OfferType = OfferScheduled
		if immediate {
			c.OfferType = OfferASAP
		}
	}
	var slotKeyBooked string
	if immediate {
		if !sch.svc.ImmediateEnabled {
			return "", invalidf("service %s does not accept immediate callbacks", sch.svc.Name)
		}
		if !sch.isOpen(now) {
			if req.DesiredTime != nil { // in the past: booked as an immediate callback
				return "", invalidf("desiredTime %s is not in the future, which asks for an immediate callback, and service %s is closed now (outside business hours): book a future desiredTime",
					formatTime(*req.DesiredTime), sch.svc.Name)
			}
			return "", invalidf("service %s is closed now (outside business hours); immediate callbacks are accepted only while it is open, book a desiredTime instead", sch.svc.Name)
		}
		c.DesiredTime = now
	} else {
		if !sch.svc.ScheduledEnabled {
			return "", invalidf("service %s does not accept scheduled callbacks", sch.svc.Name)
		}
		start, key, err := s.book(ctx, tenant, sch, desired, req.AlwaysCheckCapacity)
		if err != nil {
			return "", err
		}
		if !start.Equal(sch.slotStart(desired)) {
			desired = start // moved to the next open slot
		}
		c.DesiredTime, c.SlotStart, slotKeyBooked = desired, &start, key
	}
	c.History = []HistoryEntry{{State: StateScheduled, At: now.UTC()}}
	if immediate {
		// An immediate callback is due now: it is stored QUEUED and handed to
		// ORS by the commit that stores it, without a trip through the due index.
		c.State = StateQueued
		c.History = append(c.History, HistoryEntry{State: StateQueued, At: now.UTC()})
	}
	if err := s.creates.submit(ctx, c); err != nil {
		if slotKeyBooked != "" {
			if rerr := s.idx.release(context.WithoutCancel(ctx), slotKeyBooked); rerr != nil {
				s.log.Warn("release slot after failed create", "err", rerr)
			}
		}
		return "", err
	}
	s.m.created.WithLabelValues(string(tenant)).Inc()
	return c.ID, nil
}

// book reserves a place in the slot containing desired. When that slot is closed
// or full it either refuses with 429 and proposed slots (alwaysCheck) or takes
// the next open slot with room, as GES does without alwaysCheckCapacity.
func (s *Service) book(ctx context.Context, tenant TenantID, sch *schedule, desired time.Time, alwaysCheck bool) (time.Time, string, error) {
	start := sch.slotStart(desired)
	if sch.svc.CapacityPerSlot <= 0 {
		// Capacity 0 means unlimited: only business hours apply.
		if sch.slotOpen(start) {
			return start, "", nil
		}
	} else if sch.slotOpen(start) {
		key := slotKey(tenant, sch.svc.Name, start)
		ok, err := s.reserve(ctx, key, sch.svc.CapacityPerSlot, start)
		if err != nil {
			return time.Time{}, "", errorf(ErrUnavailable, "capacity cannot be checked now")
		}
		if ok {
			return start, key, nil
		}
	}
	horizon := s.horizon(s.clock.Now())
	closed := !sch.slotOpen(start)
	if alwaysCheck {
		return time.Time{}, "", s.slotFull(ctx, tenant, sch, start, horizon, closed)
	}
	for from := start.Add(sch.slot); from.Before(horizon); from = from.Add(24 * time.Hour) {
		cands := sch.openSlots(from, earliest(from.Add(24*time.Hour), horizon), 0)
		counts, err := s.bookedCounts(ctx, tenant, sch, cands)
		if err != nil {
			return time.Time{}, "", err
		}
		for i, st := range cands {
			if sch.svc.CapacityPerSlot <= 0 {
				return st, "", nil
			}
			if counts[i] >= sch.svc.CapacityPerSlot {
				continue
			}
			key := slotKey(tenant, sch.svc.Name, st)
			ok, err := s.reserve(ctx, key, sch.svc.CapacityPerSlot, st)
			if err != nil {
				return time.Time{}, "", errorf(ErrUnavailable, "capacity cannot be checked now")
			}
			if ok {
				return st, key, nil
			}
		}
	}
	return time.Time{}, "", s.slotFull(ctx, tenant, sch, start, horizon, closed)
}

// horizon is the end of the booking horizon as seen at now. Create refuses a
// desiredTime after it; booking and availability offer only slots starting
// before it.
func (s *Service) horizon(now time.Time) time.Time { return now.Add(s.cfg.ScheduleHorizon) }

// reserve books a place in the slot starting at start. If Redis lost the index,
// it is rebuilt from PostgreSQL first, so a booking never counts from zero.
func (s *Service) reserve(ctx context.Context, key string, capacity int, start time.Time) (bool, error) {
	ok, err := s.idx.reserve(ctx, key, capacity, start.Add(slotKeyLife).Sub(s.clock.Now()))
	if errors.Is(err, errIndexMissing) {
		if err := s.rebuildIndex(ctx); err != nil {
			return false, err
		}
		ok, err = s.idx.reserve(ctx, key, capacity, start.Add(slotKeyLife).Sub(s.clock.Now()))
	}
	return ok, err
}

// rebuildIndex restores the Redis index from PostgreSQL after Redis lost it.
// Concurrent callers (every booking in flight when Redis came back empty)
// share one rebuild.
func (s *Service) rebuildIndex(ctx context.Context) error {
	_, err, _ := s.rebuilds.Do("index", func() (any, error) {
		s.log.Info("redis index missing; rebuilding from postgres")
		if err := s.idx.rebuild(ctx, s.st, s.clock.Now()); err != nil {
			s.log.Warn("rebuild redis index", "err", err)
			return nil, err
		}
		return nil, nil
	})
	return err
}

// bookedCounts reads the booking counters of slot starts (zeros when capacity is unlimited).
func (s *Service) bookedCounts(ctx context.Context, tenant TenantID, sch *schedule, starts []time.Time) ([]int, error) {
	if sch.svc.CapacityPerSlot <= 0 {
		return make([]int, len(starts)), nil
	}
	keys := make([]string, len(starts))
	for i, st := range starts {
		keys[i] = slotKey(tenant, sch.svc.Name, st)
	}
	n, err := s.idx.booked(ctx, keys)
	if errors.Is(err, errIndexMissing) && s.rebuildIndex(ctx) == nil {
		n, err = s.idx.booked(ctx, keys)
	}
	if err != nil {
		return nil, errorf(ErrUnavailable, "capacity cannot be checked now")
	}
	return n, nil
}

// slotFull builds the 429: data.slots maps the UTC start of the next open slots
// with room (up to ProposedSlots) to their remaining capacity, as strings. The
// message says why the desired slot was refused (closed or full) and, when
// data.slots is empty, that no slot with room is open before the horizon.
func (s *Service) slotFull(ctx context.Context, tenant TenantID, sch *schedule, from, horizon time.Time, closed bool) error {
	proposed := map[string]string{}
	for day := from; day.Before(horizon) && len(proposed) < s.cfg.ProposedSlots; day = day.Add(24 * time.Hour) {
		cands := sch.openSlots(day, earliest(day.Add(24*time.Hour), horizon), 0)
		counts, err := s.bookedCounts(ctx, tenant, sch, cands)
		if err != nil {
			return err
		}
		for i, st := range cands {
			left := sch.svc.CapacityPerSlot - counts[i]
			if left <= 0 && sch.svc.CapacityPerSlot > 0 {
				continue
			}
			proposed[formatTime(st)] = strconv.Itoa(left)
			if len(proposed) >= s.cfg.ProposedSlots {
				break
			}
		}
	}
	why := "no capacity in the desired time slot"
	if closed {
		why = "the desired time slot is outside the service's business hours"
	}
	msg := why + "; data.slots proposes open slots"
	if len(proposed) == 0 {
		msg = fmt.Sprintf("%s, and no open slot with room follows it within the booking horizon (%s from now)", why, s.cfg.ScheduleHorizon)
	}
	return &Error{Kind: ErrSlotFull, Message: msg, Data: map[string]any{"slots": proposed}}
}

// Retrieve returns one callback of tenant.
func (s *Service) Retrieve(ctx context.Context, tenant TenantID, id CallbackID) (*Callback, error) {
	id = canonicalID(id)
	if !validUUID(id) {
		return nil, errorf(ErrNotFound, "callback %s not found", id)
	}
	j := &readJob{tenant: tenant, id: id}
	err := s.reads.submit(ctx, j)
	if errors.Is(err, ErrNotFound) {
		return nil, errorf(ErrNotFound, "callback %s not found", id)
	}
	if err != nil {
		return nil, err
	}
	return j.out, nil
}

// readJob is one retrieve waiting for the reader; tenant "" reads any tenant's.
type readJob struct {
	tenant TenantID
	id     CallbackID
	out    *Callback
}

// commitReads answers a batch of retrieves with one PostgreSQL query and one
// Redis read of queue state, as creates share a transaction: under load a
// retrieve costs a share of a round trip to each store, not a round trip.
func (s *Service) commitReads(ctx context.Context, batch []*readJob) []error {
	errs := make([]error, len(batch))
	ids := make([]string, len(batch))
	for i, j := range batch {
		ids[i] = string(j.id)
	}
	rows, err := s.st.getMany(ctx, ids)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	found := make([]*Callback, 0, len(batch))
	taken := make(map[CallbackID]bool, len(batch))
	for i, j := range batch {
		c := rows[j.id]
		if c == nil || (j.tenant != "" && c.Tenant != j.tenant) {
			errs[i] = ErrNotFound
			continue
		}
		if taken[j.id] { // the same callback twice in a batch: each caller gets its own record
			cp := *c
			c = &cp
		}
		taken[j.id] = true
		j.out = c
		found = append(found, c)
	}
	s.overlayLive(ctx, found...)
	return errs
}

// Cancel ends a callback that is not PROCESSING or COMPLETED, with reason CANCELLED
// (API) or CANCELLED_BY_ADMIN (UI). A queued callback also gets a cancel entry on
// the ORS stream; a scheduled one leaves the due index and frees its slot.
func (s *Service) Cancel(ctx context.Context, tenant TenantID, id CallbackID, reason string) error {
	id = canonicalID(id)
	prev, err := s.st.complete(ctx, tenant, id, reason, s.clock.Now())
	if errors.Is(err, ErrNotFound) {
		return errorf(ErrNotFound, "callback %s not found", id)
	}
	if err != nil {
		return err
	}
	if prev.State == StateQueued {
		if err := s.idx.dropLive(ctx, []CallbackID{id}); err != nil {
			s.log.Warn("cancel: drop queue state", "err", err, "id", id)
		}
	}
	if prev.State == StateScheduled {
		if err := s.idx.removeDue(ctx, id); err != nil {
			s.log.Warn("cancel: unindex", "err", err, "id", id)
		}
	} else if err := s.idx.publish(ctx, []map[string]any{cancelEntry(prev)}, nil); err != nil {
		s.log.Warn("cancel: notify ORS", "err", err, "id", id)
	}
	if prev.SlotStart != nil {
		if err := s.idx.release(ctx, slotKey(prev.Tenant, prev.Service, *prev.SlotStart)); err != nil {
			s.log.Warn("cancel: free slot", "err", err, "id", id)
		}
	}
	return nil
}

// Report applies an ORS state report (contract 8) and returns the updated callback.
func (s *Service) Report(ctx context.Context, id CallbackID, r StateReport) (*Callback, error) {
	return s.report(ctx, id, r, true)
}

// ApplyReport is Report for a caller that needs only the outcome: GES does not
// read the updated record back.
func (s *Service) ApplyReport(ctx context.Context, id CallbackID, r StateReport) error {
	_, err := s.report(ctx, id, r, false)
	return err
}

func (s *Service) report(ctx context.Context, id CallbackID, r StateReport, want bool) (*Callback, error) {
	id = canonicalID(id)
	switch r.State {
	case StateQueued, StateRouting, StateProcessing, StateCompleted:
	default:
		return nil, invalidf("state must be one of QUEUED, ROUTING, PROCESSING, COMPLETED")
	}
	if r.State == StateCompleted && r.Reason == "" {
		return nil, invalidf("reason is required with state COMPLETED")
	}
	j := &reportJob{id: id, r: r, want: want}
	err := s.reports.submit(ctx, j)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, errorf(ErrNotFound, "callback %s not found", id)
	case errors.Is(err, ErrCompleted):
		return nil, errorf(ErrCompleted, "callback %s is already COMPLETED", id)
	case err != nil:
		return nil, err
	}
	return j.out, nil
}

// commitReports applies a batch of state reports: those that leave a callback
// QUEUED update its queue state in Redis; the others change its state in
// PostgreSQL, in one transaction, and drop its queue state.
func (s *Service) commitReports(ctx context.Context, batch []*reportJob) []error {
	errs := make([]error, len(batch))
	fail := func(err error) []error {
		s.log.Error("apply state reports", "err", err, "batch", len(batch))
		for i := range errs {
			errs[i] = errorf(ErrUnavailable, "state report could not be stored")
		}
		return errs
	}
	live, err := s.applyLive(ctx, batch)
	if err != nil {
		return fail(err)
	}
	var rest []*reportJob
	var restAt []int
	for i, j := range batch {
		if !live[i] {
			rest, restAt = append(rest, j), append(restAt, i)
		}
	}
	if len(rest) == 0 {
		return errs
	}
	s.fillORSSession(ctx, rest)
	restErrs, err := s.st.applyReports(ctx, rest, s.clock.Now())
	if err != nil {
		return fail(err)
	}
	// A callback's last report in the batch decides: back in ORS's queue
	// (from ROUTING, say), its field is the mark that ORS holds it (see
	// recoverStranded) and is set; in any other state it is dropped.
	last := map[CallbackID]int{}
	for k, i := range restAt {
		errs[i] = restErrs[k]
		if restErrs[k] == nil {
			last[rest[k].id] = k
		}
	}
	changed := make([]CallbackID, 0, len(last))
	var requeued, released []CallbackID
	var requeuedAt []liveState
	var releasedBy []string
	for k, j := range rest {
		if at, ok := last[j.id]; !ok || at != k {
			continue
		}
		switch {
		case j.r.State != StateQueued:
			changed = append(changed, j.id)
		case j.r.Released:
			// ORS gave the callback back: without its mark, the stranded
			// scan hands it over again (unless another session holds it).
			released, releasedBy = append(released, j.id), append(releasedBy, j.r.ORSSessionID)
		default:
			requeued, requeuedAt = append(requeued, j.id), append(requeuedAt, liveOf(j.r))
		}
	}
	if len(released) > 0 {
		if err := s.idx.dropLiveOf(ctx, released, releasedBy); err != nil {
			s.log.Warn("drop queue state of callbacks ORS gave back", "err", err, "count", len(released))
		}
		s.log.Info("ORS gave back callbacks whose stream entries Redis lost; they will be handed over again", "count", len(released))
	}
	if err := s.idx.dropLive(ctx, changed); err != nil {
		// A stale hash is only read while the callback is QUEUED; it expires.
		s.log.Warn("drop queue state", "err", err, "count", len(changed))
	}
	if len(requeued) > 0 {
		if err := s.idx.setLive(ctx, requeued, requeuedAt); err != nil {
			s.log.Warn("store queue state", "err", err, "count", len(requeued))
		}
	}
	return errs
}

// fillORSSession gives a state change without an ORS session id the one its
// queue state holds, so that the row keeps it once the queue state is dropped.
func (s *Service) fillORSSession(ctx context.Context, jobs []*reportJob) {
	var need []*reportJob
	for _, j := range jobs {
		if j.r.ORSSessionID == "" && validUUID(j.id) {
			need = append(need, j)
		}
	}
	if len(need) == 0 {
		return
	}
	ids := make([]CallbackID, len(need))
	for i, j := range need {
		ids[i] = j.id
	}
	live, err := s.idx.getLive(ctx, ids)
	if err != nil {
		return
	}
	for _, j := range need {
		if st, ok := live[j.id]; ok && st.orsSession != "" {
			j.r.ORSSessionID = st.orsSession
		}
	}
}

// applyLive stores in Redis the reports that keep a callback QUEUED (it is
// QUEUED in PostgreSQL and this is its only report in the batch, so no state
// change of the same batch is reordered around it). It reports which jobs it
// took.
func (s *Service) applyLive(ctx context.Context, batch []*reportJob) ([]bool, error) {
	took := make([]bool, len(batch))
	count := map[CallbackID]int{}
	for _, j := range batch {
		count[j.id]++
	}
	var ids, full []string
	for _, j := range batch {
		if j.r.State == StateQueued && !j.r.Released && count[j.id] == 1 && validUUID(j.id) {
			if j.want {
				full = append(full, string(j.id))
			} else {
				ids = append(ids, string(j.id))
			}
		}
	}
	if len(ids) == 0 && len(full) == 0 {
		return took, nil
	}
	queued, err := s.stillQueued(ctx, ids, full)
	if err != nil {
		return nil, err
	}
	var liveIDs []CallbackID
	var states []liveState
	var at []int
	for i, j := range batch {
		c, ok := queued[j.id]
		if !ok || j.r.State != StateQueued || j.r.Released || count[j.id] != 1 {
			continue
		}
		st := liveOf(j.r)
		liveIDs, states, at = append(liveIDs, j.id), append(states, st), append(at, i)
		if j.want && c != nil {
			c.PositionInQueue, c.EstimatedWait = st.position, st.ewt
			if st.orsSession != "" {
				c.ORSSessionID = st.orsSession
			}
			j.out = c
		}
	}
	if len(liveIDs) == 0 {
		return took, nil
	}
	if err := s.idx.setLive(ctx, liveIDs, states); err != nil {
		// Redis refused: PostgreSQL takes these reports instead.
		s.log.Warn("store queue state; writing the reports to postgres", "err", err, "count", len(liveIDs))
		for _, i := range at {
			batch[i].out = nil
		}
		return took, nil
	}
	for _, i := range at {
		took[i] = true
	}
	return took, nil
}

// stillQueued returns which of ids and full are QUEUED, with the rows of those
// in full (nil values for the others). The queue mark in Redis answers for ids
// (see liveHash); PostgreSQL answers for the ids without one and for full.
func (s *Service) stillQueued(ctx context.Context, ids, full []string) (map[CallbackID]*Callback, error) {
	out := make(map[CallbackID]*Callback, len(ids)+len(full))
	ask := ids
	if len(ids) > 0 {
		if marked, err := s.idx.markedQueued(ctx, ids); err == nil {
			ask = nil
			for i, id := range ids {
				if marked[i] {
					out[CallbackID(id)] = nil
				} else {
					ask = append(ask, id)
				}
			}
		}
	}
	for _, q := range []struct {
		ids  []string
		full bool
	}{{ask, false}, {full, true}} {
		if len(q.ids) == 0 {
			continue
		}
		got, err := s.st.queuedAmong(ctx, q.ids, q.full)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, got)
	}
	return out, nil
}

// earliest returns the earlier of a and b.
func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// humanDuration says d in whole days or hours where it is one ("14 days"),
// for messages to API clients; Go's form ("336h0m0s") otherwise.
func humanDuration(d time.Duration) string {
	switch {
	case d > 0 && d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	case d > 0 && d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return d.String()
}
