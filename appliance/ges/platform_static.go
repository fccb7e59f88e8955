package ges

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// StaticPlatform is an in-memory Platform for tests and offline use: fixed API
// keys, services and groups, and statistics that the caller sets.
type StaticPlatform struct {
	mu       sync.Mutex
	keys     map[string]TenantID
	services map[TenantID][]ServiceConfig
	groups   map[TenantID][]CallInGroup
	stats    map[TenantID]map[[2]string]float64 // (objectId, name) -> value
	calls    int
}

var _ Platform = (*StaticPlatform)(nil)

// NewStaticPlatform returns an empty StaticPlatform.
func NewStaticPlatform() *StaticPlatform {
	return &StaticPlatform{
		keys:     map[string]TenantID{},
		services: map[TenantID][]ServiceConfig{},
		groups:   map[TenantID][]CallInGroup{},
		stats:    map[TenantID]map[[2]string]float64{},
	}
}

// AddTenant binds apiKey to tenant with the given services and call-in groups.
func (p *StaticPlatform) AddTenant(apiKey string, tenant TenantID, services []ServiceConfig, groups []CallInGroup) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[apiKey] = tenant
	p.services[tenant] = services
	p.groups[tenant] = groups
}

// SetStat sets one statistic value for an object (a virtual queue).
func (p *StaticPlatform) SetStat(tenant TenantID, objectID, name string, v float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stats[tenant] == nil {
		p.stats[tenant] = map[[2]string]float64{}
	}
	p.stats[tenant][[2]string{objectID, name}] = v
}

// StatisticsCalls reports how many Statistics calls were made (cache tests use it).
func (p *StaticPlatform) StatisticsCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// TenantForAPIKey implements Platform.
func (p *StaticPlatform) TenantForAPIKey(_ context.Context, apiKey string) (TenantID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.keys[apiKey]
	if !ok {
		return "", ErrUnknownAPIKey
	}
	return t, nil
}

// Services implements Platform.
func (p *StaticPlatform) Services(_ context.Context, tenant TenantID) ([]ServiceConfig, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ServiceConfig(nil), p.services[tenant]...), nil
}

// CallInGroups implements Platform.
func (p *StaticPlatform) CallInGroups(_ context.Context, tenant TenantID) ([]CallInGroup, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]CallInGroup(nil), p.groups[tenant]...), nil
}

// knownStatistics are the statistic names GWS serves per virtual queue.
var knownStatistics = []string{StatAHT, StatBusyAgents, StatLoggedInAgents, StatReadyAgents, StatWaitingCalls, StatExpectedWait}

// Statistics implements Platform. Like GWS it refuses an unknown statistic
// name or an object type other than Queue (ErrInvalid with GWS's wording); a
// statistic no one set reads 0.
func (p *StaticPlatform) Statistics(_ context.Context, tenant TenantID, reqs []StatisticRequest) ([]Statistic, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	out := make([]Statistic, 0, len(reqs))
	for _, r := range reqs {
		if !strings.EqualFold(r.ObjectType, statObjectQueue) {
			return nil, invalidf("objectType %q not supported (Queue only)", r.ObjectType)
		}
		if !slices.Contains(knownStatistics, r.Name) {
			return nil, invalidf("unknown statistic %q (known: %s)", r.Name, strings.Join(knownStatistics, ", "))
		}
		out = append(out, Statistic{Name: r.Name, ObjectID: r.ObjectID, ObjectType: r.ObjectType,
			Value: p.stats[tenant][[2]string{r.ObjectID, r.Name}]})
	}
	return out, nil
}
