package ui

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

// errBadGrant is GAuth refusing a code (expired, reused, PKCE mismatch).
var errBadGrant = errors.New("authorization code refused")

// tokenResponse is GAuth's token answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// userInfo is the part of GAuth's /userinfo the UI uses.
type userInfo struct {
	Authorities     []string `json:"authorities"`
	CMEUserName     string   `json:"cmeUserName"`
	ContactCenterID string   `json:"contactCenterId"`
	LoginName       string   `json:"loginName"`
}

func (ui userInfo) name() string {
	if ui.CMEUserName != "" {
		return ui.CMEUserName
	}
	return ui.LoginName
}

// supervisor tells whether the user may change callbacks: Callback
// Administrator/Supervisor in GES terms, which the demo tenant maps to the
// supervisor and admin roles.
func (ui userInfo) supervisor() bool {
	for _, a := range ui.Authorities {
		a = strings.ToUpper(a)
		if strings.Contains(a, "SUPERVISOR") || strings.Contains(a, "ADMIN") {
			return true
		}
	}
	return false
}

// exchangeCode redeems an authorization code at GAuth's token endpoint with the
// client's secret (HTTP Basic) and the PKCE verifier.
func (u *UI) exchangeCode(ctx context.Context, base, clientID, secret, code, verifier, redirectURI string) (tokenResponse, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth/v3/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("exchange code: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := u.deps.HTTPClient.Do(req)
	if err != nil {
		return tokenResponse{}, fmt.Errorf("exchange code: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tokenResponse{}, fmt.Errorf("exchange code: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized:
		return tokenResponse{}, fmt.Errorf("exchange code: %w: %s", errBadGrant, oauthErrorText(body))
	case resp.StatusCode != http.StatusOK:
		return tokenResponse{}, fmt.Errorf("exchange code: gauth answered %d", resp.StatusCode)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return tokenResponse{}, errors.New("exchange code: gauth sent no access token")
	}
	return tr, nil
}

// oauthErrorText extracts error/error_description for messages.
func oauthErrorText(body []byte) string {
	var e struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return "no details"
	}
	if e.Desc != "" {
		return e.Error + ": " + e.Desc
	}
	return e.Error
}

// fetchUserInfo reads GAuth's /userinfo for a token.
// signOutGAuth ends the GAuth session a /ges/ session signed in with, so
// that after Log out or the idle timeout the next sign-in asks for the
// password again instead of passing silently on GAuth's own cookie.
func (u *UI) signOutGAuth(s session) {
	if s.token == "" || s.gauthBase == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.gauthBase+"/auth/v3/sign-out", nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := u.deps.HTTPClient.Do(req)
	if err != nil {
		u.log.Info("ges ui: gauth sign-out failed", "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	// 401: the token had ended already (expired, revoked), and its session with it.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		u.log.Info("ges ui: gauth sign-out refused", "status", resp.StatusCode)
	}
}

func (u *UI) fetchUserInfo(ctx context.Context, base, token string) (userInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/auth/v3/userinfo", nil)
	if err != nil {
		return userInfo{}, fmt.Errorf("userinfo: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := u.deps.HTTPClient.Do(req)
	if err != nil {
		return userInfo{}, fmt.Errorf("userinfo: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return userInfo{}, fmt.Errorf("userinfo: gauth answered %d", resp.StatusCode)
	}
	var ui userInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ui); err != nil {
		return userInfo{}, fmt.Errorf("userinfo: %w", err)
	}
	return ui, nil
}
