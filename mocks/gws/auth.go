package gws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/cxlab/cxlab/appliance/clock"
)

// Principal is the caller of a GWS route, read from a verified GAuth token.
type Principal struct {
	JTI         string
	Subject     string
	ClientID    string
	CCID        string // empty for clients not bound to a tenant
	UserName    string // empty for client tokens
	DBID        int64  // 0 for client tokens
	Authorities []string
}

// IsUser reports whether the token names a person (not only a client).
func (p Principal) IsUser() bool { return p.DBID != 0 }

// tokenClaims are the GAuth JWT claims GWS reads.
type tokenClaims struct {
	ID          string   `json:"jti"`
	Subject     string   `json:"sub"`
	ClientID    string   `json:"client_id"`
	CCID        string   `json:"contact_center_id"`
	UserName    string   `json:"user_name"`
	DBID        int64    `json:"dbid"`
	Authorities []string `json:"authorities"`
	TokenUse    string   `json:"token_use"`
}

// errUnauthorized marks a token GWS refuses (as opposed to GAuth being
// unreachable).
var errUnauthorized = errors.New("unauthorized")

// verifier checks GAuth tokens like a real resource server: signature, issuer
// and expiry locally against GAuth's JWKS (go-oidc caches the keys and refetches
// on an unknown key id), then revocation through GAuth's userinfo, whose answer
// is cached per token for RevocationCheckTTL. A revoked token is therefore
// refused by GWS at most RevocationCheckTTL after sign-out. Chosen over a shared
// revocation table so GWS stays swappable for a real one reached over HTTP.
type verifier struct {
	authURL func() string
	ttl     time.Duration
	client  *http.Client
	clk     clock.Clock

	mu        sync.Mutex
	issuer    string
	oidc      *oidc.IDTokenVerifier
	checked   map[string]time.Time // jti -> when the positive userinfo answer expires
	lastPrune time.Time
}

func newVerifier(authURL func() string, ttl time.Duration, client *http.Client, clk clock.Clock) *verifier {
	return &verifier{authURL: authURL, ttl: ttl, client: client, clk: clk, checked: map[string]time.Time{}}
}

// oidcVerifier returns the JWKS-backed verifier, built on first use because the
// appliance's URL is only known once its listener is bound.
func (v *verifier) oidcVerifier() (*oidc.IDTokenVerifier, string) {
	iss := strings.TrimRight(v.authURL(), "/") + "/auth/v3"
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.oidc == nil || v.issuer != iss {
		ctx := oidc.ClientContext(context.Background(), v.client)
		keys := oidc.NewRemoteKeySet(ctx, iss+"/.well-known/jwks.json")
		v.oidc = oidc.NewVerifier(iss, keys, &oidc.Config{SkipClientIDCheck: true, Now: v.clk.Now, SupportedSigningAlgs: []string{oidc.RS256}})
		v.issuer = iss
	}
	return v.oidc, iss
}

// verify returns the principal of a raw access token.
func (v *verifier) verify(ctx context.Context, raw string) (Principal, error) {
	ov, iss := v.oidcVerifier()
	tok, err := ov.Verify(ctx, raw)
	if err != nil {
		// go-oidc has no typed error for an unreachable JWKS; everything else
		// (expiry, signature, issuer, syntax) is the caller's fault.
		if strings.Contains(err.Error(), "fetching keys") {
			return Principal{}, fmt.Errorf("verify token against %s: %w", iss, err)
		}
		return Principal{}, fmt.Errorf("%w: %w", errUnauthorized, err)
	}
	var c tokenClaims
	if err := tok.Claims(&c); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", errUnauthorized, err)
	}
	if c.TokenUse != "access" || c.ID == "" {
		return Principal{}, fmt.Errorf("%w: not an access token", errUnauthorized)
	}
	if err := v.checkRevocation(ctx, c.ID, raw); err != nil {
		return Principal{}, err
	}
	return Principal{JTI: c.ID, Subject: c.Subject, ClientID: c.ClientID, CCID: c.CCID, UserName: c.UserName, DBID: c.DBID,
		Authorities: c.Authorities}, nil
}

func (v *verifier) checkRevocation(ctx context.Context, jti, raw string) error {
	now := v.clk.Now()
	v.mu.Lock()
	until, found := v.checked[jti]
	if now.Sub(v.lastPrune) > time.Minute {
		for k, exp := range v.checked {
			if !now.Before(exp) {
				delete(v.checked, k)
			}
		}
		v.lastPrune = now
	}
	v.mu.Unlock()
	if found && now.Before(until) {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(v.authURL(), "/")+"/auth/v3/userinfo", nil)
	if err != nil {
		return fmt.Errorf("userinfo request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+raw)
	resp, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if v.ttl > 0 {
			v.mu.Lock()
			v.checked[jti] = now.Add(v.ttl)
			v.mu.Unlock()
		}
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: token revoked or unknown to GAuth", errUnauthorized)
	default:
		return fmt.Errorf("userinfo answered %s", resp.Status)
	}
}
