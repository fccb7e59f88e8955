package appliance_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/config"
)

func TestMain(m *testing.M) { apptest.Main(m) }

func TestApplianceServesHealthReadyMetrics(t *testing.T) {
	s := apptest.Start(t)

	if code := apptest.GetJSON(t, s.URL+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("/healthz = %d, want 200", code)
	}
	var ready struct {
		Status     string `json:"status"`
		Components []struct {
			Name  string `json:"name"`
			Ready bool   `json:"ready"`
		} `json:"components"`
	}
	if code := apptest.GetJSON(t, s.URL+"/readyz", &ready); code != http.StatusOK || ready.Status != "ready" {
		t.Fatalf("/readyz = %d %+v", code, ready)
	}
	names := map[string]bool{}
	for _, c := range ready.Components {
		names[c.Name] = c.Ready
	}
	for _, want := range []string{"redis", "postgres", "http"} {
		if !names[want] {
			t.Errorf("/readyz: component %q missing or not ready: %+v", want, ready.Components)
		}
	}

	resp, err := http.Get(s.Endpoints.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"go_goroutines", "process_resident_memory_bytes",
		"ges_process_cpu_seconds_total", "ges_process_resident_memory_bytes", "ges_process_start_time_seconds"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func TestEmbeddedRedisServesRealClientsAndExpiresByClock(t *testing.T) {
	s := apptest.Start(t)
	opt, err := redis.ParseURL(s.Endpoints.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx := t.Context()
	if err := rc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Set(ctx, "ttl", "v", 60_000_000_000).Err(); err != nil { // 60 s
		t.Fatal(err)
	}
	s.Clock().Advance(61_000_000_000)
	if n, _ := rc.Exists(ctx, "ttl").Result(); n != 0 {
		t.Errorf("key with 60 s TTL still exists after moving the clock 61 s")
	}
	if v, _ := rc.Get(ctx, "k").Result(); v != "v" {
		t.Errorf("key without TTL lost: %q", v)
	}
	if _, err := exec.LookPath("redis-cli"); err == nil {
		out, err := exec.CommandContext(ctx, "redis-cli", "-u", s.Endpoints.RedisURL, "GET", "k").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "v" {
			t.Errorf("redis-cli GET k = %q, %v", out, err)
		}
	}
}

func TestEndpointsListDemoTenantServicesCustomersAndQueues(t *testing.T) {
	s := apptest.Start(t)
	e := s.Endpoints
	if len(e.Agents) != 4 || e.Agents[0].Username != "agent1" || e.Agents[0].DN != "7001" || e.APIKey == "" {
		t.Errorf("agents/api key: %+v %q", e.Agents, e.APIKey)
	}
	if strings.Join(e.Services, ",") != "CB_Sales,CB_Support" && strings.Join(e.Services, ",") != "CB_Support,CB_Sales" {
		t.Errorf("services = %v", e.Services)
	}
	if len(e.CallinGroups) != 1 || e.CallinGroups[0] != "technical_help" {
		t.Errorf("callin_groups = %v", e.CallinGroups)
	}
	if e.QueueNumbers["VQ_Sales"] != "+18005550100" || len(e.Customers) < 8 {
		t.Errorf("queue_numbers %v customers %v", e.QueueNumbers, e.Customers)
	}
	for k, v := range map[string]string{"gauth_url": e.GAuthURL, "ges_api_url": e.GESAPIURL, "sip_uri": e.SIPURI, "turn_secret": e.TURNSecret} {
		if v == "" {
			t.Errorf("%s is empty", k)
		}
	}
	if len(e.TURNURLs) != 2 {
		t.Errorf("turn_urls = %v", e.TURNURLs)
	}
}

// The ges section of the configuration sets the Engagement throttles: a
// phone number's active callbacks and a tenant's creation rate, each answered
// 429 past its limit.
func TestGESThrottlesComeFromTheConfiguration(t *testing.T) {
	s := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.GES.TenantCreatesPerSec, c.GES.TenantCreateBurst, c.GES.MaxActivePerNumber = 1, 2, 1
	}))
	create := func(phone string) int {
		return gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{"serviceName": "CB_Support", "phoneNumber": phone}, nil)
	}
	if code := create("+12025550171"); code != http.StatusOK {
		t.Fatalf("first create: %d", code)
	}
	if code := create("+12025550171"); code != http.StatusTooManyRequests {
		t.Fatalf("second active callback for one number with max_active_per_number 1: %d, want 429", code)
	}
	// The refused create spent a token of the burst of 2, as GES counts attempts.
	if code := create("+12025550172"); code != http.StatusTooManyRequests {
		t.Fatalf("third create within a second with a burst of 2: %d, want 429", code)
	}
}

// sipgo's package-level logger (TCP connection bookkeeping, among others)
// writes into the appliance's sip.log, not raw onto stderr.
func TestSIPLibraryLogsLandInTheSIPLogFile(t *testing.T) {
	s := apptest.Start(t)
	sip.DefaultLogger().Warn("sipgo probe", "conn", "127.0.0.1:5060")
	b, err := os.ReadFile(filepath.Join(s.Endpoints.LogDir, "sip.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "sipgo probe") || !strings.Contains(string(b), `"component":"sip"`) {
		t.Fatalf("sip.log does not hold the sipgo record with component sip:\n%s", b)
	}
}
