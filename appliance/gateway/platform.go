package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Sentinel errors of the platform lookups; the HTTP layer maps them.
var (
	// ErrUnauthorized means GAuth refused the token (expired, revoked, invalid).
	ErrUnauthorized = errors.New("token refused")
	// ErrNoDN means the user has no DN in the configuration service.
	ErrNoDN = errors.New("user has no DN")
	// ErrUnknownDN means Voice has no such DN (REGISTER answered 404).
	ErrUnknownDN = errors.New("unknown DN")
	// ErrUnavailable means a platform dependency could not be reached or failed.
	ErrUnavailable = errors.New("platform service unavailable")
)

// userInfo is the part of GAuth's /auth/v3/userinfo the gateway uses (contract 2).
type userInfo struct {
	LoginName       string `json:"loginName"`
	UserName        string `json:"username"`
	CMEUserName     string `json:"cmeUserName"`
	ContactCenterID string `json:"contactCenterId"`
	DBID            int64  `json:"dbid"`
}

// person is one GWS person object (contract 5).
type person struct {
	DBID            int64  `json:"dbid"`
	UserName        string `json:"userName"`
	ContactCenterID string `json:"contactCenterId"`
	DN              string `json:"dn"`
	SIPDomain       string `json:"sipDomain"`
}

// identity is a signed-in agent as resolved from the platform.
type identity struct {
	user   string
	ccid   string
	dn     DN
	domain string
}

// resolveAgent validates token with GAuth and finds the user's DN in GWS.
// The error kind tells the caller which wrtc_system_error type to count.
func (s *Server) resolveAgent(ctx context.Context, token string) (identity, error) {
	var ui userInfo
	status, err := s.getJSON(ctx, s.cfg.AuthURL+"/auth/v3/userinfo", token, &ui)
	switch {
	case err != nil:
		s.met.systemErrors.WithLabelValues("auth").Inc()
		return identity{}, fmt.Errorf("userinfo: %w: %w", ErrUnavailable, err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return identity{}, fmt.Errorf("userinfo: %w", ErrUnauthorized)
	case status != http.StatusOK:
		s.met.systemErrors.WithLabelValues("auth").Inc()
		return identity{}, fmt.Errorf("userinfo: %w: status %d", ErrUnavailable, status)
	}
	user := ui.CMEUserName
	if user == "" {
		user = ui.LoginName
	}
	if user == "" {
		user = ui.UserName
	}
	var env struct {
		Data struct {
			Objects []person `json:"objects"`
		} `json:"data"`
	}
	u := s.cfg.ConfigURL + "/configuration/v3/objects/persons?user_name=" + url.QueryEscape(user)
	status, err = s.getJSON(ctx, u, token, &env)
	switch {
	case err != nil:
		s.met.systemErrors.WithLabelValues("cfg").Inc()
		return identity{}, fmt.Errorf("persons: %w: %w", ErrUnavailable, err)
	case status == http.StatusUnauthorized:
		return identity{}, fmt.Errorf("persons: %w", ErrUnauthorized)
	case status != http.StatusOK:
		s.met.systemErrors.WithLabelValues("cfg").Inc()
		return identity{}, fmt.Errorf("persons: %w: status %d", ErrUnavailable, status)
	}
	for _, p := range env.Data.Objects {
		if strings.EqualFold(p.UserName, user) && p.DN != "" {
			domain := p.SIPDomain
			if domain == "" {
				domain = s.cfg.LegacyDomain
			}
			ccid := p.ContactCenterID
			if ccid == "" {
				ccid = ui.ContactCenterID
			}
			return identity{user: user, ccid: ccid, dn: DN(p.DN), domain: domain}, nil
		}
	}
	return identity{}, fmt.Errorf("persons %q: %w", user, ErrNoDN)
}

// getJSON GETs u with a Bearer token and decodes a 200 body into v.
func (s *Server) getJSON(ctx context.Context, u, token string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return res.StatusCode, fmt.Errorf("decode %s: %w", u, err)
	}
	return res.StatusCode, nil
}
