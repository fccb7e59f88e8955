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
	"time"
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
// A dependency that cannot be reached sets its wrtc_system_error type.
func (s *Server) resolveAgent(ctx context.Context, token string) (identity, error) {
	var ui userInfo
	status, err := s.getJSON(ctx, s.cfg.AuthURL+"/auth/v3/userinfo", token, &ui)
	switch {
	case err != nil:
		s.dependency("auth", false)
		return identity{}, fmt.Errorf("userinfo: %w: %w: %w", ErrUnavailable, errAuthDown, err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		s.dependency("auth", true)
		return identity{}, fmt.Errorf("userinfo: %w", ErrUnauthorized)
	case status != http.StatusOK:
		s.dependency("auth", false)
		return identity{}, fmt.Errorf("userinfo: %w: %w: status %d", ErrUnavailable, errAuthDown, status)
	}
	s.dependency("auth", true)
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
		s.dependency("cfg", false)
		return identity{}, fmt.Errorf("persons: %w: %w", ErrUnavailable, err)
	case status == http.StatusUnauthorized:
		s.dependency("cfg", true)
		return identity{}, fmt.Errorf("persons: %w", ErrUnauthorized)
	case status != http.StatusOK:
		s.dependency("cfg", false)
		return identity{}, fmt.Errorf("persons: %w: status %d", ErrUnavailable, status)
	}
	s.dependency("cfg", true)
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

// dependency records whether a dependency (a wrtc_system_error type) answered.
func (s *Server) dependency(typ string, up bool) {
	v := 1.0
	if up {
		v = 0
	}
	s.met.systemErrors.WithLabelValues(typ).Set(v)
	// The log says when a dependency is lost and when it is back, once each,
	// as the real gateway's alarms do.
	s.depMu.Lock()
	was := s.depDown[typ]
	if s.depDown == nil {
		s.depDown = map[string]bool{}
	}
	s.depDown[typ] = !up
	s.depMu.Unlock()
	name := dependencyNames[typ]
	switch {
	case !up && !was:
		s.log.Warn("lost the "+name+"; sign-ins that need it fail until it is back", "type", typ)
	case up && was:
		s.log.Info("the "+name+" is back", "type", typ)
	}
}

// errAuthDown marks an ErrUnavailable of GAuth (else it is GWS's).
var errAuthDown = errors.New("authentication service down")

// dependencyNames are wrtc_system_error's types as the real gateway's alarms name them.
var dependencyNames = map[string]string{"auth": "Authentication Service (GAuth)", "env": "Environment Service (GAuth)",
	"cfg": "Configuration Service (GWS)"}

// probeDependencies checks GAuth (auth), its Environment Service (env) and
// GWS (cfg) every
// cfg.ProbeInterval, so that wrtc_system_error follows a lost connection,
// and its return, while nobody signs in. A dependency is up when it answers
// HTTP at all below 500 (the probe carries no token); down on a network
// error or a 5xx.
func (s *Server) probeDependencies() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	probe := func(typ, u string) {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ProbeInterval)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return
		}
		res, err := s.hc.Do(req)
		if s.ctx.Err() != nil {
			return // stopping: not the dependency's fault
		}
		if err != nil {
			s.dependency(typ, false)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
		_ = res.Body.Close()
		s.dependency(typ, res.StatusCode < http.StatusInternalServerError)
	}
	for {
		probe("auth", s.cfg.AuthURL+"/auth/v3/ping")
		probe("env", s.cfg.AuthURL+"/environment/v3/environments")
		probe("cfg", s.cfg.ConfigURL+"/configuration/v3/objects/persons")
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
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
