// Package ges is the Genesys Engagement Service (callbacks) of CX Lab: the
// Engagement API v3, the callback model stored in PostgreSQL, the Redis due
// index, and the callback monitor that hands due callbacks to ORS through the
// NewCallbackStream Redis stream.
package ges

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/cxlab/cxlab/appliance/clock"
)

// errStopping answers requests that arrive while the service shuts down.
var errStopping = errorf(ErrUnavailable, "the engagement service is stopping")

// Service is the Engagement service component ("ges").
type Service struct {
	cfg      Config
	log      *slog.Logger
	clock    clock.Clock
	platform Platform
	baseURL  string
	st       *store
	idx      *index
	rdb      redis.UniversalClient
	m        *metrics

	keys    *ttlCache[string, keyLookup]
	configs *ttlCache[TenantID, *tenantConfig]
	stats   *ttlCache[statKey, queueStats]
	proxy   *ttlCache[string, []Statistic]

	limMu    sync.Mutex
	limiters map[TenantID]*rate.Limiter

	rebuilds singleflight.Group

	verifierOnce sync.Once
	orsTokens    tokenCache
	verifier     *oidc.IDTokenVerifier

	creates *batcher[*Callback]
	reports *batcher[*reportJob]
	reads   *batcher[*readJob]
	wakeCh  chan struct{}
	purgeCh chan struct{}
	quit    chan struct{}

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// keyLookup is a cached API-key resolution (tenant, or unknown).
type keyLookup struct {
	tenant TenantID
	ok     bool
}

// New builds the service. baseURL is the appliance's public origin, used to fetch
// GAuth's JWKS for ORS tokens. reg may be nil.
func New(cfg Config, pool *pgxpool.Pool, rdb redis.UniversalClient, platform Platform, clk clock.Clock,
	log *slog.Logger, reg prometheus.Registerer, baseURL string) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pool == nil || rdb == nil || platform == nil {
		return nil, errors.New("ges: pool, redis client and platform are required")
	}
	if clk == nil {
		clk = clock.System{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("ges metrics: %w", err)
	}
	cfg = cfg.withDefaults()
	s := &Service{
		cfg:      cfg,
		log:      log.With("component", "ges"),
		clock:    clk,
		platform: platform,
		baseURL:  strings.TrimRight(baseURL, "/"),
		st:       &store{pool: pool},
		idx:      &index{rdb: rdb, maxLen: cfg.StreamMaxLen},
		rdb:      rdb,
		m:        m,
		limiters: map[TenantID]*rate.Limiter{},
		wakeCh:   make(chan struct{}, 1),
		purgeCh:  make(chan struct{}, 1),
		quit:     make(chan struct{}),
	}
	s.creates = newBatcher(cfg.WriterBatch, s.quit, s.commitCreates)
	s.creates.linger = max(cfg.CreateLinger, 0)
	s.reports = newBatcher(cfg.WriterBatch, s.quit, s.commitReports)
	s.reads = newBatcher(cfg.WriterBatch, s.quit, s.commitReads)
	s.keys = newTTLCache[string, keyLookup](clk.Now, 10000)
	s.configs = newTTLCache[TenantID, *tenantConfig](clk.Now, 1000)
	s.stats = newTTLCache[statKey, queueStats](clk.Now, 10000)
	s.proxy = newTTLCache[string, []Statistic](clk.Now, 10000)
	return s, nil
}

// Name implements the appliance component contract.
func (s *Service) Name() string { return "ges" }

// Start applies migrations, rebuilds the Redis index from PostgreSQL and starts
// the writer, monitor and purge loops.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("ges: already started")
	}
	if err := migrate(ctx, s.st.pool); err != nil {
		return fmt.Errorf("ges: migrate: %w", err)
	}
	// A missing stream means Redis lost its data (an embedded Redis after a
	// restart, or an external one restarted empty): ORS forgot every callback
	// it had been handed, so they are handed over again from PostgreSQL. When
	// the stream survived, ORS's pending entries carry them and nothing is re-sent,
	// so no callback runs twice.
	n, err := s.rdb.Exists(ctx, StreamName).Result()
	if err != nil {
		return fmt.Errorf("ges: check %s: %w", StreamName, err)
	}
	if err := s.idx.ensureGroup(ctx); err != nil {
		return fmt.Errorf("ges: %w", err)
	}
	if err := s.idx.rebuild(ctx, s.st, s.clock.Now()); err != nil {
		return fmt.Errorf("ges: rebuild redis index: %w", err)
	}
	if n == 0 {
		if err := s.resubmitWaiting(ctx); err != nil {
			return fmt.Errorf("ges: %w", err)
		}
		if err := s.endLostCalls(ctx); err != nil {
			return fmt.Errorf("ges: %w", err)
		}
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.started = true
	s.wg.Add(5)
	go func() { defer s.wg.Done(); s.creates.run(loopCtx) }()
	go func() { defer s.wg.Done(); s.reports.run(loopCtx) }()
	go func() { defer s.wg.Done(); s.reads.run(loopCtx) }()
	go func() { defer s.wg.Done(); s.monitor(loopCtx) }()
	go func() { defer s.wg.Done(); s.purger(loopCtx) }()
	return nil
}

// resubmitWaiting XADDs a start entry for every QUEUED or ROUTING callback.
func (s *Service) resubmitWaiting(ctx context.Context) error {
	cbs, err := s.st.waitingForORS(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < len(cbs); i += 500 {
		batch := cbs[i:min(i+500, len(cbs))]
		entries := make([]map[string]any, len(batch))
		var queued []CallbackID
		for j, c := range batch {
			entries[j] = startEntry(c)
			if c.State == StateQueued {
				queued = append(queued, c.ID)
			}
		}
		if err := s.idx.publish(ctx, entries, queued); err != nil {
			return fmt.Errorf("hand waiting callbacks to ORS again: %w", err)
		}
	}
	if len(cbs) > 0 {
		s.log.Info("handed waiting callbacks to ORS again after Redis lost the stream", "count", len(cbs))
	}
	return nil
}

// endLostCalls completes the PROCESSING callbacks when ORS forgot every
// session (Redis lost the stream): their calls ended with the process that
// carried them (the embedded Redis dies with it too), so no report will ever
// end them, and a PROCESSING callback cannot be cancelled. Their customer
// had reached an agent: the reason is AGENT_CONNECTED. Running them again
// would call the customer a second time.
func (s *Service) endLostCalls(ctx context.Context) error {
	n, err := s.st.completeProcessing(ctx, nil, s.clock.Now())
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Warn("completed callbacks whose calls ended with a previous run (their ORS sessions are gone)", "count", n, "reason", ReasonAgentConnected)
	}
	return nil
}

// Stop refuses new creates, lets the writer commit what it has queued, and stops
// the loops. It is idempotent.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.stopped = true
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	close(s.quit)
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		<-s.creates.done
		<-s.reports.done
		<-s.reads.done
		s.cancel()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("ges: stop: %w", ctx.Err())
	}
}

// Ready reports nil when PostgreSQL and Redis answer.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.st.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ges: postgres: %w", err)
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ges: redis: %w", err)
	}
	return nil
}

// Wake makes the monitor and the purge look at the clock now. The composition
// root calls it when the lab clock moves (clock.Lab.OnAdvance).
func (s *Service) Wake() {
	s.kick()
	select {
	case s.purgeCh <- struct{}{}:
	default:
	}
}

// kick wakes the monitor (after a local create).
func (s *Service) kick() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// allow applies the per-tenant creation rate.
func (s *Service) allow(tenant TenantID) bool {
	s.limMu.Lock()
	l := s.limiters[tenant]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(s.cfg.TenantCreatesPerSec), s.cfg.TenantCreateBurst)
		s.limiters[tenant] = l
	}
	s.limMu.Unlock()
	return l.Allow()
}
