package voice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// errInvalidToken means GAuth rejected a token (expired, revoked, unknown).
var errInvalidToken = errors.New("invalid token")

// userInfo is GAuth's GET /auth/v3/userinfo answer (contract 2).
type userInfo struct {
	Authorities     []string `json:"authorities"`
	CMEUserName     string   `json:"cmeUserName"`
	ContactCenterID string   `json:"contactCenterId"`
	DBID            int64    `json:"dbid"`
	LoginName       string   `json:"loginName"`
	UserName        string   `json:"username"`
}

// name is the login name the tenant model knows the user by.
func (u userInfo) name() string {
	for _, n := range []string{u.LoginName, u.CMEUserName, u.UserName} {
		if n != "" {
			return n
		}
	}
	return ""
}

// supervisor reports whether the user may see every agent (any authority
// mentioning supervisor or admin, whatever its ROLE_ prefix).
func (u userInfo) supervisor() bool {
	for _, a := range u.Authorities {
		a = strings.ToLower(a)
		if strings.Contains(a, "supervisor") || strings.Contains(a, "admin") {
			return true
		}
	}
	return false
}

type tokenEntry struct {
	info    userInfo
	token   string
	expires time.Time
}

// userinfo validates a user token with GAuth, trusting an answer for TokenCacheTTL.
func (s *Server) userinfo(ctx context.Context, token string) (userInfo, error) {
	if token == "" {
		return userInfo{}, errInvalidToken
	}
	s.mu.Lock()
	e, ok := s.tokens[token]
	s.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.info, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.cfg.GAuthURL, "/")+"/auth/v3/userinfo", nil)
	if err != nil {
		return userInfo{}, fmt.Errorf("userinfo: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := s.hc.Do(req)
	if err != nil {
		return userInfo{}, fmt.Errorf("userinfo: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return userInfo{}, errInvalidToken
	case res.StatusCode != http.StatusOK:
		return userInfo{}, fmt.Errorf("userinfo: gauth answered %d", res.StatusCode)
	}
	var info userInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return userInfo{}, fmt.Errorf("userinfo: decode: %w", err)
	}
	s.mu.Lock()
	if len(s.tokens) > 1000 {
		now := time.Now()
		for k, v := range s.tokens {
			if now.After(v.expires) {
				delete(s.tokens, k)
			}
		}
	}
	s.tokens[token] = tokenEntry{info: info, expires: time.Now().Add(s.cfg.TokenCacheTTL)}
	s.mu.Unlock()
	return info, nil
}

// orsToken returns a cached ors_client access token (client_credentials).
func (s *Server) orsToken(ctx context.Context, fresh bool) (string, error) {
	s.mu.Lock()
	t := s.orsTok
	s.mu.Unlock()
	if !fresh && t.token != "" && time.Now().Before(t.expires) {
		return t.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.cfg.GAuthURL, "/")+"/auth/v3/oauth/token",
		strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("ors token: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.cfg.ORSClientID, s.cfg.ORSClientSecret)
	res, err := s.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("ors token: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ors token: gauth answered %d", res.StatusCode)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("ors token: bad token response: %v", err) //nolint:errorlint // err is nil when only the token is missing and must print as <nil>
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Minute
	}
	// Refresh a little early so a report never carries a token about to expire.
	life = max(life-life/10, time.Second)
	s.mu.Lock()
	s.orsTok = tokenEntry{token: tr.AccessToken, expires: time.Now().Add(life)}
	s.mu.Unlock()
	return tr.AccessToken, nil
}
