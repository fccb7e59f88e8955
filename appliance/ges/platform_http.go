package ges

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// HTTPPlatform reaches GAuth and GWS over HTTP with a client_credentials token
// (contracts 1, 3, 4, 6).
type HTTPPlatform struct {
	base     string
	clientID string
	secret   string
	hc       *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time // wall time; tokens are refreshed early
}

var _ Platform = (*HTTPPlatform)(nil)

// NewHTTPPlatform returns a Platform talking to baseURL (e.g. http://127.0.0.1:8080)
// as OAuth client clientID. A nil httpClient uses one with a 10 s timeout.
func NewHTTPPlatform(baseURL, clientID, secret string, httpClient *http.Client) *HTTPPlatform {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &HTTPPlatform{base: strings.TrimRight(baseURL, "/"), clientID: clientID, secret: secret, hc: httpClient}
}

// accessToken returns a cached service token, fetching one when needed.
func (p *HTTPPlatform) accessToken(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.token != "" && time.Now().Before(p.expires) {
		return p.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/auth/v3/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	req.SetBasicAuth(url.QueryEscape(p.clientID), url.QueryEscape(p.secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request: gauth answered %d: %.200s", resp.StatusCode, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token request: malformed answer: %w", errors.Join(err, errors.New("no access_token")))
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	p.token, p.expires = tok.AccessToken, time.Now().Add(life*8/10)
	return p.token, nil
}

// dropToken forgets a token the platform refused.
func (p *HTTPPlatform) dropToken(tok string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.token == tok {
		p.token = ""
	}
}

// call sends one request with the service token, retrying once with a fresh token
// on 401, and decodes the envelope's data into out. It returns the HTTP status.
func (p *HTTPPlatform) call(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	for attempt := 0; ; attempt++ {
		tok, err := p.accessToken(ctx)
		if err != nil {
			return 0, err
		}
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, path, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := p.hc.Do(req)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", method, path, err)
		}
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if rerr != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: read: %w", method, path, rerr)
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			p.dropToken(tok)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, &platformError{op: method + " " + path, status: resp.StatusCode, reason: reasonOf(raw)}
		}
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: malformed envelope: %w", method, path, err)
		}
		if out != nil {
			if err := json.Unmarshal(env.Data, out); err != nil {
				return resp.StatusCode, fmt.Errorf("%s %s: malformed data: %w", method, path, err)
			}
		}
		return resp.StatusCode, nil
	}
}

// platformError is a platform answer other than 200, with the reason its
// envelope gave.
type platformError struct {
	op     string
	status int
	reason string
}

func (e *platformError) Error() string {
	return fmt.Sprintf("%s: platform answered %d: %.200s", e.op, e.status, e.reason)
}

// reasonOf reads status.message of a platform envelope, or the body itself.
func reasonOf(raw []byte) string {
	var env struct {
		Status struct {
			Message string `json:"message"`
		} `json:"status"`
	}
	if json.Unmarshal(raw, &env) == nil && env.Status.Message != "" {
		return env.Status.Message
	}
	return strings.TrimSpace(string(raw))
}

// TenantForAPIKey implements Platform (contract 3).
func (p *HTTPPlatform) TenantForAPIKey(ctx context.Context, apiKey string) (TenantID, error) {
	var d struct {
		ContactCenterID string `json:"contactCenterId"`
	}
	code, err := p.call(ctx, http.MethodGet, "/environment/v3/api-keys/"+url.PathEscape(apiKey), nil, &d)
	if code == http.StatusNotFound {
		return "", ErrUnknownAPIKey
	}
	if err != nil {
		return "", fmt.Errorf("resolve api key: %w", err)
	}
	if d.ContactCenterID == "" {
		return "", ErrUnknownAPIKey
	}
	return TenantID(d.ContactCenterID), nil
}

// Services implements Platform (contract 4).
func (p *HTTPPlatform) Services(ctx context.Context, tenant TenantID) ([]ServiceConfig, error) {
	var d struct {
		Services []ServiceConfig `json:"services"`
	}
	if _, err := p.call(ctx, http.MethodGet, "/configuration/v3/callback-services?ccid="+url.QueryEscape(string(tenant)), nil, &d); err != nil {
		return nil, fmt.Errorf("callback services: %w", err)
	}
	return d.Services, nil
}

// CallInGroups implements Platform (contract 4).
func (p *HTTPPlatform) CallInGroups(ctx context.Context, tenant TenantID) ([]CallInGroup, error) {
	var d struct {
		Groups []CallInGroup `json:"groups"`
	}
	if _, err := p.call(ctx, http.MethodGet, "/configuration/v3/callin-groups?ccid="+url.QueryEscape(string(tenant)), nil, &d); err != nil {
		return nil, fmt.Errorf("call-in groups: %w", err)
	}
	return d.Groups, nil
}

// Statistics implements Platform (contract 6). A 400 from GWS becomes an
// ErrInvalid *Error carrying GWS's reason; any other failure is an outage.
func (p *HTTPPlatform) Statistics(ctx context.Context, tenant TenantID, reqs []StatisticRequest) ([]Statistic, error) {
	body, err := json.Marshal(map[string]any{"data": map[string]any{"statistics": reqs}})
	if err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	var d struct {
		Statistics []Statistic `json:"statistics"`
	}
	_, err = p.call(ctx, http.MethodPost, "/statistics/v3/operations/get-statistic-ex?ccid="+url.QueryEscape(string(tenant)), body, &d)
	if pe := (*platformError)(nil); errors.As(err, &pe) && (pe.status == http.StatusBadRequest || pe.status == http.StatusUnprocessableEntity) {
		// GWS refused the statistics asked for (unknown name or object type):
		// the caller's mistake, in GWS's words.
		if pe.reason == "" {
			return nil, invalidf("the statistics service refused the request (%d)", pe.status)
		}
		return nil, invalidf("%.500s", pe.reason)
	}
	if err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	return d.Statistics, nil
}
