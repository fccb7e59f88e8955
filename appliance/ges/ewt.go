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

// statObjectQueue is the statistics object type of a virtual queue, the only
// one GES reads and proxies.
const statObjectQueue = "Queue"

// queueStatNames are the statistics EWT reads per virtual queue.
var queueStatNames = []string{StatReadyAgents, StatLoggedInAgents, StatWaitingCalls, StatAHT, StatExpectedWait}

// maxStatsPerCall caps the statistics of one call to GWS, which refuses more
// than 200 in one request.
const maxStatsPerCall = 200

// queueStatsMany reads live statistics for VQs from GWS plus GES's own count
// of callbacks waiting there, cached per VQ for StatsTTL. The VQs the cache
// lacks cost one GWS call per maxStatsPerCall statistics and one PostgreSQL
// query in all, not round trips per VQ.
func (s *Service) queueStatsMany(ctx context.Context, tenant TenantID, vqs []string) map[string]queueStats {
	out := make(map[string]queueStats, len(vqs))
	var miss []string
	for _, vq := range vqs {
		if _, seen := out[vq]; seen {
			continue
		}
		q, _, ok := s.stats.get(statKey{tenant, vq})
		out[vq] = q
		if !ok {
			miss = append(miss, vq)
		}
	}
	if len(miss) == 0 {
		return out
	}
	perCall := maxStatsPerCall / len(queueStatNames)
	for i := 0; i < len(miss); i += perCall {
		chunk := miss[i:min(i+perCall, len(miss))]
		reqs := make([]StatisticRequest, 0, len(chunk)*len(queueStatNames))
		for _, vq := range chunk {
			for _, n := range queueStatNames {
				reqs = append(reqs, StatisticRequest{ObjectID: vq, ObjectType: statObjectQueue, Name: n})
			}
		}
		vals, err := s.platform.Statistics(ctx, tenant, reqs)
		if err != nil {
			s.log.Warn("read queue statistics", "err", err, "queues", len(chunk))
			for _, vq := range chunk {
				out[vq] = queueStats{err: err}
			}
			continue
		}
		for _, v := range vals {
			q, ok := out[v.ObjectID]
			if !ok {
				continue
			}
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
			out[v.ObjectID] = q
		}
	}
	own, err := s.st.waitingCounts(ctx, tenant, miss)
	if err != nil {
		s.log.Warn("count waiting callbacks", "err", err)
	}
	for _, vq := range miss {
		q := out[vq]
		if n := float64(own[vq]); n > q.waiting {
			q.waiting = n
		}
		if q.aht <= 0 {
			q.aht = s.cfg.DefaultAHT
		}
		out[vq] = q
		s.stats.put(statKey{tenant, vq}, q, s.cfg.StatsTTL)
	}
	return out
}

// estimate computes the EWT of one VQ (see estimateFrom).
func (s *Service) estimate(ctx context.Context, tenant TenantID, vq string, mode int) EWTResult {
	r := estimateFrom(s.queueStatsMany(ctx, tenant, []string{vq})[vq], mode)
	r.VirtualQueue = vq
	return r
}

// estimateFrom computes an EWT from a VQ's statistics in mode 1, 2 or 3:
//   - mode1 uses the backlog and handling time only, ignoring agent state;
//   - mode2 (default) also needs logged-in agents (-2 when none) and lets ready
//     agents take waiting callbacks at once;
//   - mode3 takes the statistics server's ExpectedWaitTime.
//
// Without any handled interaction yet (no average handling time) the answer is
// -1 with resultCode -1. A name no agent serves, configured or not, reads as a
// queue without agents: VQs live in the platform's configuration, not GES's,
// and the reference answers per queue with a resultCode (0, -1, -2) rather
// than failing the whole request.
func estimateFrom(q queueStats, mode int) EWTResult {
	r := EWTResult{EstimatedWaitTime: -1}
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
		r.ResultCode, r.Message = ewtNoHistory, "no interaction handled in the virtual queue yet, so no average handling time"
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
