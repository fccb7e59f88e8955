package ges

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// internal wraps an internal handler: correlation id, envelope and metrics, but
// authentication is the handler's (a GAuth service token, not an API key).
func (s *Service) internal(path string, h handlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		corr := uuid.NewString()
		c.Response().Header().Set("X-Correlation-Id", corr)
		data, err := h(c, "")
		return s.respond(c, path, "", corr, start, data, err)
	}
}

// tokenVerifier checks GAuth JWTs against the JWKS of contract 1. The key set is
// fetched lazily, so GES may start before the GAuth emulator serves.
func (s *Service) tokenVerifier() *oidc.IDTokenVerifier {
	s.verifierOnce.Do(func() {
		issuer := s.baseURL + "/auth/v3"
		keys := oidc.NewRemoteKeySet(context.Background(), issuer+"/.well-known/jwks.json")
		s.verifier = oidc.NewVerifier(issuer, keys, &oidc.Config{
			SkipClientIDCheck: true, // service tokens carry client_id, checked below
			Now:               s.clock.Now,
		})
	})
	return s.verifier
}

// authorizeORS accepts only a valid GAuth token issued to the ORS client.
func (s *Service) authorizeORS(ctx context.Context, header string) error {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errorf(ErrUnauthorized, "a Bearer token of %s is required", s.cfg.ORSClientID)
	}
	tok = strings.TrimSpace(tok)
	if s.orsTokens.valid(tok, s.clock.Now()) {
		return nil
	}
	idt, err := s.tokenVerifier().Verify(ctx, tok)
	if err != nil {
		return errorf(ErrUnauthorized, "the Bearer token is not valid")
	}
	var claims struct {
		ClientID string `json:"client_id"`
	}
	if err := idt.Claims(&claims); err != nil || claims.ClientID != s.cfg.ORSClientID {
		return errorf(ErrForbidden, "only client %s may call the internal ORS endpoints", s.cfg.ORSClientID)
	}
	s.orsTokens.add(tok, idt.Expiry)
	return nil
}

// tokenCache remembers ORS tokens whose signature and claims were verified,
// until they expire. ORS sends the same token with every state report; an
// RS256 check per report was a tenth of GES's CPU under load. A cache hit
// decides exactly what a fresh check would: the signature cannot change, and
// expiry is checked against the lab clock on every hit.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]time.Time // token -> expiry
}

// tokenCacheMax bounds the cache; ORS normally holds one token at a time.
const tokenCacheMax = 64

func (c *tokenCache) valid(tok string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.m[tok]
	return ok && now.Before(exp)
}

func (c *tokenCache) add(tok string, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= tokenCacheMax {
		c.m = make(map[string]time.Time, tokenCacheMax)
	}
	c.m[tok] = exp
}

// handleORSState applies an ORS state report (contract 8).
func (s *Service) handleORSState(c echo.Context, _ TenantID) (any, error) {
	if err := s.authorizeORS(c.Request().Context(), c.Request().Header.Get("Authorization")); err != nil {
		return nil, err
	}
	m, err := s.readObject(c)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(m)
	var r StateReport
	if err := json.Unmarshal(raw, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, invalidf("%s has the wrong type", te.Field)
		}
		return nil, invalidf("malformed state report: %v", err)
	}
	return s.Report(c.Request().Context(), CallbackID(c.Param("id")), r)
}

// handleCallInMatch matches a caller of a Click-to-Call-In access number to
// its request for Voice (an ors_client token, like the state reports).
func (s *Service) handleCallInMatch(c echo.Context, _ TenantID) (any, error) {
	if err := s.authorizeORS(c.Request().Context(), c.Request().Header.Get("Authorization")); err != nil {
		return nil, err
	}
	m, err := s.readObject(c)
	if err != nil {
		return nil, err
	}
	f := &fields{m: m}
	q := CallInMatch{AccessNumber: f.str("accessNumber"), AccessCode: f.str("accessCode"), ANI: f.str("ani")}
	if f.err != nil {
		return nil, f.err
	}
	return s.MatchCallIn(c.Request().Context(), q)
}
