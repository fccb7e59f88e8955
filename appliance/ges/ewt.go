package ges

import (
	"context"
	"math"
	"time"
)

// statKey caches queue statistics per tenant and virtual queue.
type statKey struct {
	tenant TenantID
	vq     string
}

// queueStats is what EWT needs about one virtual queue.
type queueStats struct {
	ready, loggedIn, waiting, aht, ewt float64
	err                                error
}

// EWTResult is one element of the estimated-wait-time answer.
type EWTResult struct {
	VirtualQueue      string `json:"virtualQueue"`
	EstimatedWaitTime int    `json:"estimatedWaitTime"`
	Message           string `json:"message,omitempty"`
	ResultCode        int    `json:"resultCode"`
}

// EWT result codes (reference §2.7).
const (
	ewtOK        = 0
	ewtNoHistory = -1
	ewtNoAgents  = -2
)

// queueStats reads live statistics for a VQ from GWS plus GES's own count of
// callbacks waiting there, cached for StatsTTL.
func (s *Service) queueStats(ctx context.Context, tenant TenantID, vq string) queueStats {
	k := statKey{tenant, vq}
	if q, _, ok := s.stats.get(k); ok {
		return q
	}
	var q queueStats
	names := []string{StatReadyAgents, StatLoggedInAgents, StatWaitingCalls, StatAHT, StatExpectedWait}
	reqs := make([]StatisticRequest, len(names))
	for i, n := range names {
		reqs[i] = StatisticRequest{ObjectID: vq, ObjectType: "Queue", Name: n}
	}
	vals, err := s.platform.Statistics(ctx, tenant, reqs)
	if err != nil {
		s.log.Warn("read queue statistics", "err", err, "vq", vq)
		q.err = err
	}
	for _, v := range vals {
		switch v.Name {
		case StatReadyAgents:
			q.ready = v.Value
		case StatLoggedInAgents:
			q.loggedIn = v.Value
		case StatWaitingCalls:
			q.waiting = v.Value
		case StatAHT:
			q.aht = v.Value
		case StatExpectedWait:
			q.ewt = v.Value
		}
	}
	if own, err := s.st.waitingCount(ctx, tenant, vq); err == nil && float64(own) > q.waiting {
		q.waiting = float64(own)
	}
	if q.aht <= 0 {
		q.aht = s.cfg.DefaultAHT
	}
	s.stats.put(k, q, s.cfg.StatsTTL)
	return q
}

// estimate computes the EWT of a VQ in mode 1, 2 or 3:
//   - mode1 uses the backlog and handling time only, ignoring agent state;
//   - mode2 (default) also needs logged-in agents (-2 when none) and lets ready
//     agents take waiting callbacks at once;
//   - mode3 takes the statistics server's ExpectedWaitTime.
//
// Without any handled interaction yet (no average handling time) the answer is
// -1 with resultCode -1.
func (s *Service) estimate(ctx context.Context, tenant TenantID, vq string, mode int) EWTResult {
	q := s.queueStats(ctx, tenant, vq)
	r := EWTResult{VirtualQueue: vq, EstimatedWaitTime: -1}
	if q.err != nil {
		r.ResultCode, r.Message = ewtNoHistory, "statistics are unavailable"
		return r
	}
	if mode != 1 && q.loggedIn <= 0 {
		r.ResultCode, r.Message = ewtNoAgents, "no agents are logged in to the virtual queue"
		return r
	}
	if mode == 3 && q.ewt > 0 {
		r.EstimatedWaitTime = int(math.Ceil(q.ewt))
		return r
	}
	if q.aht <= 0 {
		r.ResultCode, r.Message = ewtNoHistory, "no interactions in the virtual queue yet"
		return r
	}
	ahead, agents := q.waiting, math.Max(q.loggedIn, 1)
	if mode != 1 {
		ahead = math.Max(0, q.waiting-q.ready)
	}
	r.EstimatedWaitTime = int(math.Ceil(ahead * q.aht / agents))
	return r
}

// QueueStatus is the queue-status answer.
type QueueStatus struct {
	EWT                    int  `json:"ewt"`
	OfferImmediateCallback bool `json:"offerImmediateCallback"`
	OfferScheduledCallback bool `json:"offerScheduledCallback"`
}

// QueueStatus reports EWT (mode2) and what the queue offers now: immediate
// callbacks when enabled, open, and (when EWT is known) forecast to finish before
// closing; scheduled callbacks when enabled.
func (s *Service) QueueStatus(ctx context.Context, tenant TenantID, queue string) (QueueStatus, error) {
	sch, err := s.serviceOrQueue(ctx, tenant, queue)
	if err != nil {
		return QueueStatus{}, err
	}
	r := s.estimate(ctx, tenant, sch.svc.VirtualQueue, 2)
	openFor := sch.openFor(s.clock.Now())
	qs := QueueStatus{EWT: r.EstimatedWaitTime, OfferScheduledCallback: sch.svc.ScheduledEnabled}
	if sch.svc.ImmediateEnabled && openFor > 0 {
		switch r.ResultCode {
		case ewtOK:
			qs.OfferImmediateCallback = time.Duration(r.EstimatedWaitTime)*time.Second < openFor
		case ewtNoHistory:
			qs.OfferImmediateCallback = true
		}
	}
	return qs, nil
}

// OpenFor returns how long the service (or its virtual queue) stays open from at.
func (s *Service) OpenFor(ctx context.Context, tenant TenantID, name string, at time.Time) (time.Duration, error) {
	sch, err := s.serviceOrQueue(ctx, tenant, name)
	if err != nil {
		return 0, err
	}
	return sch.openFor(at), nil
}
