package ges

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// tenantConfig is a tenant's compiled callback configuration.
type tenantConfig struct {
	services []*schedule
	byName   map[string]*schedule
	byVQ     map[string]*schedule
	groups   map[string]CallInGroup
}

// tenantFor resolves an API key (cached; unknown keys are remembered briefly too).
func (s *Service) tenantFor(ctx context.Context, apiKey string) (TenantID, error) {
	if k, _, ok := s.keys.get(apiKey); ok {
		if !k.ok {
			return "", errorf(ErrUnknownAPIKey, "x-api-key is not valid")
		}
		return k.tenant, nil
	}
	t, err := s.platform.TenantForAPIKey(ctx, apiKey)
	switch {
	case errors.Is(err, ErrUnknownAPIKey):
		s.keys.put(apiKey, keyLookup{}, s.cfg.APIKeyNegativeTTL)
		return "", errorf(ErrUnknownAPIKey, "x-api-key is not valid")
	case err != nil:
		s.log.Warn("resolve api key", "err", err)
		return "", errorf(ErrUnavailable, "the API key cannot be checked now (authentication service unavailable)")
	}
	s.keys.put(apiKey, keyLookup{tenant: t, ok: true}, s.cfg.APIKeyTTL)
	return t, nil
}

// config returns the tenant's compiled configuration (cached for ConfigTTL).
func (s *Service) config(ctx context.Context, tenant TenantID) (*tenantConfig, error) {
	if c, _, ok := s.configs.get(tenant); ok {
		return c, nil
	}
	svcs, err := s.platform.Services(ctx, tenant)
	if err != nil {
		s.log.Warn("fetch callback services", "err", err, "tenant", tenant)
		return nil, errorf(ErrUnavailable, "the tenant configuration cannot be read now (configuration service unavailable)")
	}
	groups, err := s.platform.CallInGroups(ctx, tenant)
	if err != nil {
		s.log.Warn("fetch call-in groups", "err", err, "tenant", tenant)
		return nil, errorf(ErrUnavailable, "the tenant configuration cannot be read now (configuration service unavailable)")
	}
	tc := &tenantConfig{byName: map[string]*schedule{}, byVQ: map[string]*schedule{}, groups: map[string]CallInGroup{}}
	for _, svc := range svcs {
		sch, err := compileSchedule(svc)
		if err != nil {
			s.log.Warn("skip malformed callback service", "err", err, "tenant", tenant)
			continue
		}
		tc.services = append(tc.services, sch)
		tc.byName[svc.Name] = sch
		if svc.VirtualQueue != "" {
			tc.byVQ[svc.VirtualQueue] = sch
		}
	}
	for _, g := range groups {
		tc.groups[g.Name] = g
	}
	s.configs.put(tenant, tc, s.cfg.ConfigTTL)
	return tc, nil
}

// RefetchConfig drops the cached configuration of tenant (UI Tools > Refetch
// Tenant Configuration).
func (s *Service) RefetchConfig(tenant TenantID) { s.configs.drop(tenant) }

// service finds a callback service by name.
func (s *Service) service(ctx context.Context, tenant TenantID, name string) (*schedule, error) {
	tc, err := s.config(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if sch := tc.byName[name]; sch != nil {
		return sch, nil
	}
	return nil, invalidf("unknown serviceName %q", name)
}

// serviceOrQueue finds a callback service by its name or its virtual queue.
func (s *Service) serviceOrQueue(ctx context.Context, tenant TenantID, name string) (*schedule, error) {
	tc, err := s.config(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if sch := tc.byName[name]; sch != nil {
		return sch, nil
	}
	if sch := tc.byVQ[name]; sch != nil {
		return sch, nil
	}
	for n, sch := range tc.byName {
		if strings.EqualFold(n, name) {
			return sch, nil
		}
	}
	return nil, invalidf("unknown callback service or virtual queue %q", name)
}

// Services returns the tenant's callback services (UI create dialog).
func (s *Service) Services(ctx context.Context, tenant TenantID) ([]ServiceConfig, error) {
	tc, err := s.config(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]ServiceConfig, len(tc.services))
	for i, sch := range tc.services {
		out[i] = sch.svc
	}
	return out, nil
}

// queueOf maps a virtual queue or service name to the virtual queue name.
func (tc *tenantConfig) queueOf(name string) string {
	if sch := tc.byName[name]; sch != nil && sch.svc.VirtualQueue != "" {
		return sch.svc.VirtualQueue
	}
	return name
}

// String helps logs; it never includes user data.
func (tc *tenantConfig) String() string { return fmt.Sprintf("%d services", len(tc.services)) }
