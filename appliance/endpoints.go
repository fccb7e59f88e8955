package appliance

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Agent is a demo agent login.
type Agent struct {
	Username string `json:"username"`
	Password string `json:"password"`
	DN       string `json:"dn"`
}

// Endpoints is what the endpoints file and the banner tell: every address and
// demo credential a user or a test in any language needs. Keys of components
// this process doesn't run are absent.
type Endpoints struct {
	ConsoleURL   string            `json:"console_url,omitempty"`
	GESAPIURL    string            `json:"ges_api_url,omitempty"`
	GESUIURL     string            `json:"ges_ui_url,omitempty"`
	GAuthURL     string            `json:"gauth_url,omitempty"`
	GWSURL       string            `json:"gws_url,omitempty"`
	WebRTCURL    string            `json:"webrtc_url,omitempty"`
	RedisURL     string            `json:"redis_url"`
	PostgresURL  string            `json:"postgres_url"`
	TURNURLs     []string          `json:"turn_urls,omitempty"`
	TURNSecret   string            `json:"turn_secret,omitempty"`
	TURNNote     string            `json:"turn_secret_note,omitempty"`
	SIPURI       string            `json:"sip_uri,omitempty"`
	MetricsURL   string            `json:"metrics_url"`
	HealthURL    string            `json:"health_url"`
	ReadyURL     string            `json:"ready_url"`
	APIKey       string            `json:"api_key,omitempty"`
	CCID         string            `json:"ccid,omitempty"`
	Agents       []Agent           `json:"agents,omitempty"`
	Supervisor   *Agent            `json:"supervisor,omitempty"`
	OAuthClients map[string]string `json:"oauth_clients,omitempty"`
	Services     []string          `json:"services,omitempty"`
	CallinGroups []string          `json:"callin_groups,omitempty"`
	Customers    map[string]string `json:"customers,omitempty"`
	QueueNumbers map[string]string `json:"queue_numbers,omitempty"`
	DataDir      string            `json:"data_dir"`
	LogDir       string            `json:"log_dir"`
	Version      string            `json:"version"`
	Note         string            `json:"note"`
}

const notForProduction = "CX Lab is a lab: demo credentials are public and fixed. Not for production."

func (a *Appliance) buildEndpoints() {
	base := a.http.URL()
	e := Endpoints{
		RedisURL:    a.redis.URL(),
		PostgresURL: redactDSN(a.pg.DSN()),
		MetricsURL:  base + "/metrics",
		HealthURL:   base + "/healthz",
		ReadyURL:    base + "/readyz",
		DataDir:     a.dir.path,
		LogDir:      a.logs.Dir(),
		Version:     Version,
		Note:        notForProduction,
	}
	if a.cfg.Postgres.URL == "" {
		// The embedded store's password is a public demo value; tests need it.
		e.PostgresURL = a.pg.DSN()
	}
	for _, f := range a.endpointHooks {
		f(&e, base)
	}
	a.endpointsMu.Lock()
	a.endpoints = e
	a.endpointsMu.Unlock()
}

// Endpoints returns the endpoints of the started appliance.
func (a *Appliance) Endpoints() Endpoints {
	a.endpointsMu.Lock()
	defer a.endpointsMu.Unlock()
	return a.endpoints
}

// writeEndpointsFile writes the JSON atomically so a watcher never reads half a file.
func writeEndpointsFile(path string, e Endpoints) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("encode endpoints: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".endpoints-*.json")
	if err != nil {
		return fmt.Errorf("write endpoints file (--endpoints-file): %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write endpoints file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write endpoints file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write endpoints file: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// printBanner tells a person where everything is.
func printBanner(w io.Writer, e Endpoints, took string) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("CX Lab %s is ready (%s)", e.Version, took)
	p("")
	row := func(k, v string) {
		if v != "" {
			p("  %-16s %s", k, v)
		}
	}
	row("Console", e.ConsoleURL)
	row("Engagement API", e.GESAPIURL)
	row("GES UI", e.GESUIURL)
	row("GAuth", e.GAuthURL)
	row("GWS", e.GWSURL)
	row("WebRTC gateway", e.WebRTCURL)
	row("TURN", strings.Join(e.TURNURLs, " "))
	if e.SIPURI != "" {
		row("SIP", e.SIPURI+"  (TCP too)")
	}
	row("Redis", e.RedisURL)
	row("PostgreSQL", e.PostgresURL)
	row("Metrics", e.MetricsURL)
	row("Health", e.HealthURL)
	row("Readiness", e.ReadyURL)
	row("Data dir", e.DataDir)
	row("Logs", e.LogDir)
	if e.APIKey != "" || len(e.Agents) > 0 {
		p("")
		p("  Demo credentials:")
		row("API key", e.APIKey)
		for _, ag := range e.Agents {
			row("Agent", fmt.Sprintf("%s / %s  (DN %s)", ag.Username, ag.Password, ag.DN))
		}
		if e.Supervisor != nil {
			row("Supervisor", e.Supervisor.Username+" / "+e.Supervisor.Password)
		}
		ids := make([]string, 0, len(e.OAuthClients))
		for id := range e.OAuthClients {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			row("OAuth client", id+" / "+e.OAuthClients[id])
		}
		row("TURN secret", e.TURNSecret)
		if e.CCID != "" {
			row("Tenant", "demo, SIP domain demo.cxlab.local; DN SIP password dnpass; customer numbers register with password customer")
			row("Ops (admin)", "ops / ops")
		}
	}
	p("")
	p("  WARNING: %s", e.Note)
	p("")
}
