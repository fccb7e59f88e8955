package appliance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
	"github.com/cxlab/cxlab/appliance/internal/syncbuf"
)

// agentToken gets agent's GAuth access token with the password grant.
func agentToken(t *testing.T, s *apptest.Stack, user, pass string) string {
	t.Helper()
	oc := oauth2.Config{ClientID: "cxlab-console", ClientSecret: "console-secret",
		Endpoint: oauth2.Endpoint{TokenURL: s.URL + "/auth/v3/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := oc.PasswordCredentialsToken(t.Context(), user, pass)
	if err != nil {
		t.Fatalf("password grant for %s: %v", user, err)
	}
	return tok.AccessToken
}

// ges calls the Engagement API with the demo key and decodes data into out.
func gesCall(t *testing.T, s *apptest.Stack, method, path string, body any, out any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, s.Endpoints.GESAPIURL+path, rd)
	req.Header.Set("x-api-key", s.Endpoints.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	if out != nil && len(env.Data) > 0 {
		_ = json.Unmarshal(env.Data, out)
	}
	return resp.StatusCode
}

type callback struct {
	ID          string    `json:"id"`
	State       string    `json:"callbackState"`
	Reason      string    `json:"callbackReason"`
	DesiredTime time.Time `json:"desiredTime"`
}

func retrieve(t *testing.T, s *apptest.Stack, id string) callback {
	var cb callback
	if code := gesCall(t, s, http.MethodPost, "/callbacks/retrieve", map[string]string{"id": id}, &cb); code != 200 {
		t.Fatalf("retrieve %s: %d", id, code)
	}
	return cb
}

// eventually polls cond until it holds or within passes; detail, when
// given, says what was last seen in the failure.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool, detail ...func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			seen := ""
			for _, d := range detail {
				seen += "; " + d()
			}
			t.Fatalf("timed out after %s waiting for %s%s", within, what, seen)
		}
		time.Sleep(50 * time.Millisecond) // polling observable state, bounded by the deadline
	}
}

// runAgent signs a headless agent in with cfg (a GAuth token for user when
// user is set), polls until the test ends, and sets it Ready when ready.
func runAgent(ctx context.Context, t *testing.T, s *apptest.Stack, user string, cfg agent.Config, ready bool) *agent.Agent {
	t.Helper()
	cfg.URL = s.URL
	if user != "" {
		tok := agentToken(t, s, user, "agent123")
		cfg.Token = func(context.Context) (string, error) { return tok, nil }
	}
	a := agent.New(cfg)
	if err := a.SignIn(ctx); err != nil {
		t.Fatalf("sign in %s%s: %v", user, cfg.DN, err)
	}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	runDone := make(chan error, 1)
	go func() { runDone <- a.Run(runCtx) }()
	t.Cleanup(func() { stopRun(); <-runDone })
	if ready {
		if err := a.SetState(ctx, "Ready"); err != nil {
			t.Fatalf("ready: %v", err)
		}
	}
	return a
}

// TestCallbackRingsAgentWithAudioBothWays is the product's main flow with real
// protocols end to end: a callback booked through the Engagement API goes to
// ORS over the Redis stream, Voice reserves the Ready agent and dials the
// simulated customer, then INVITEs the agent's DN at the WebRTC gateway, which
// offers the call to a pion agent signed in with a GAuth token. Audio is
// checked in both directions (Opus <-> G.711), then the agent hangs up and the
// callback completes with AGENT_CONNECTED.
func TestCallbackRingsAgentWithAudioBothWays(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	a := runAgent(ctx, t, s, "agent1", agent.Config{AutoAnswer: true, PlayHz: 1000}, true)
	if a.DN() != "7001" {
		t.Fatalf("signed in as DN %q, want 7001", a.DN())
	}

	var created struct {
		ID string `json:"id"`
	}
	if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{
		"serviceName": "CB_Support", "phoneNumber": "+12025550100", "userData": map[string]string{"account": "42"},
	}, &created); code != 200 || created.ID == "" {
		t.Fatalf("create: %d %+v", code, created)
	}

	eventually(t, 30*time.Second, "the callback to reach PROCESSING", func() bool { return retrieve(t, s, created.ID).State == "PROCESSING" })
	eventually(t, 15*time.Second, "the agent to hear the customer's 440 Hz", func() bool {
		h := a.Heard()
		return h.AudioMS > 500 && math.Abs(h.DominantHz-440) < 25
	})
	var customerHeard float64
	eventually(t, 15*time.Second, "the simulated customer to hear the agent's 1000 Hz", func() bool {
		customerHeard = customerDominantHz(t, s, created.ID)
		return math.Abs(customerHeard-1000) < 30
	})

	if err := a.Hangup(ctx); err != nil {
		t.Fatalf("hang up: %v", err)
	}
	eventually(t, 15*time.Second, "COMPLETED AGENT_CONNECTED", func() bool {
		cb := retrieve(t, s, created.ID)
		return cb.State == "COMPLETED" && cb.Reason == "AGENT_CONNECTED"
	})
}

// customerDominantHz reads what the simulated customer of a callback heard.
func customerDominantHz(t *testing.T, s *apptest.Stack, callbackID string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/voice/v1/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return findHz(body, callbackID)
}

// findHz looks for the call record of the callback and returns its
// customer_analysis.dominant_hz, without depending on the exact list shape.
func findHz(raw json.RawMessage, callbackID string) float64 {
	var v any
	_ = json.Unmarshal(raw, &v)
	var best float64
	var walk func(x any, inCall bool)
	walk = func(x any, inCall bool) {
		switch x := x.(type) {
		case map[string]any:
			mine := inCall
			for _, val := range x {
				if sv, ok := val.(string); ok && sv == callbackID {
					mine = true
				}
			}
			if ca, ok := x["customer_analysis"].(map[string]any); ok && mine {
				if hz, ok := ca["dominant_hz"].(float64); ok {
					best = hz
				}
			}
			for _, val := range x {
				walk(val, mine)
			}
		case []any:
			for _, val := range x {
				walk(val, inCall)
			}
		}
	}
	walk(v, false)
	return best
}

// TestAgentCommandTakesCallbacks runs `cxlab agent` as the README shows it
// (--user, --password, --auto-answer, --play): without any other flag the
// agent goes Ready, so a callback booked through the API rings it; it answers
// and reports what that call carried when the customer hangs up, twice in a
// row (after wrap-up the agent is Ready again); stopped during a third call,
// it reports that one, ends it and signs out.
func TestAgentCommandTakesCallbacks(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	out, stop := startAgentCommand(ctx, t, s, "--auto-answer", "--play", "1000")

	for round := 1; round <= 2; round++ {
		// +12025550106 answers, plays 440 Hz and hangs up after 5 s.
		agentConnectedCallback(t, s, "+12025550106", out)
		eventually(t, 10*time.Second, fmt.Sprintf("the agent to report hearing call %d", round), func() bool {
			return len(callReports(out.String())) == round
		})
	}
	// Each report is that call's own: the customer hangs up 5 s after it
	// answered, so no call carried much more than 5 s of its audio (two did).
	for _, r := range callReports(out.String()) {
		if r.ms < 500 || r.ms > 5500 || math.Abs(r.hz-440) > 25 {
			t.Fatalf("a call's report says %d ms of audio at %.0f Hz, want 500-5500 ms (one call's) of the customer's 440 Hz:\n%s",
				r.ms, r.hz, out.String())
		}
	}

	// Stopped in the middle of a third call (+12025550100 never hangs up):
	// the command reports that call too, and its sign-out ends it.
	var last struct {
		ID string `json:"id"`
	}
	if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{
		"serviceName": "CB_Support", "phoneNumber": "+12025550100"}, &last); code != 200 {
		t.Fatalf("create the third callback: %d", code)
	}
	eventually(t, 40*time.Second, "the third call to connect", func() bool {
		return retrieve(t, s, last.ID).State == "PROCESSING" && strings.Count(out.String(), "CONNECTED") == 3
	})
	eventually(t, 15*time.Second, "audio both ways on the third call", func() bool {
		return math.Abs(customerDominantHz(t, s, last.ID)-1000) < 30
	})
	if err := stop(); err != nil {
		t.Fatalf("agent command: %v\n%s", err, out.String())
	}
	if rs := callReports(out.String()); len(rs) != 3 || rs[2].ms <= 0 || math.Abs(rs[2].hz-440) > 25 {
		t.Fatalf("stopped mid-call, the command did not report that call's 440 Hz (reports %+v):\n%s", rs, out.String())
	}
	eventually(t, 15*time.Second, "the third callback to complete", func() bool {
		cb := retrieve(t, s, last.ID)
		return cb.State == "COMPLETED" && cb.Reason == "AGENT_CONNECTED"
	})
	// Signed out: the gateway unregistered DN 7002 from Voice.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/voice/v1/agents/me", nil)
	req.Header.Set("Authorization", "Bearer "+agentToken(t, s, "agent2", "agent123"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct {
		Data struct {
			Agents []struct {
				DN         string `json:"dn"`
				State      string `json:"state"`
				Registered bool   `json:"registered"`
			} `json:"agents"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || len(me.Data.Agents) != 1 {
		t.Fatalf("voice agents/me: %d %v %+v", resp.StatusCode, err, me)
	}
	if a := me.Data.Agents[0]; a.Registered || a.State != "LoggedOut" {
		t.Fatalf("after the agent command exited, DN %s is %s (registered %v), want LoggedOut", a.DN, a.State, a.Registered)
	}
}

// callReport is one "heard N ms of audio, dominant F Hz" line of `cxlab agent`.
type callReport struct {
	ms int
	hz float64
}

var reportLine = regexp.MustCompile(`heard (\d+) ms of audio, dominant (\d+) Hz`)

func callReports(out string) []callReport {
	var rs []callReport
	for _, m := range reportLine.FindAllStringSubmatch(out, -1) {
		ms, _ := strconv.Atoi(m[1])
		hz, _ := strconv.ParseFloat(m[2], 64)
		rs = append(rs, callReport{ms: ms, hz: hz})
	}
	return rs
}

// TestMovingTheClockKeepsAgentsSignedIn is the README's demo step: with an
// agent Ready on the WebRTC gateway, the lab clock is moved forward to make a
// scheduled callback come due, and the agent takes it. Registrations expire
// on the wall clock, as their refreshes come; they used to expire on the lab
// clock, so the move signed every agent out and the callback waited QUEUED.
func TestMovingTheClockKeepsAgentsSignedIn(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	a := runAgent(ctx, t, s, "agent1", agent.Config{AutoAnswer: true, PlayHz: 1000}, true)
	var created struct {
		ID string `json:"id"`
	}
	at := s.Clock().Now().Add(10 * time.Minute).UTC().Format("2006-01-02T15:04:05.000Z")
	if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{
		"serviceName": "CB_Support", "phoneNumber": "+12025550100", "desiredTime": at,
	}, &created); code != 200 || created.ID == "" {
		t.Fatalf("create: %d %+v", code, created)
	}
	s.Clock().Advance(10*time.Minute + time.Second)
	eventually(t, 30*time.Second, "the scheduled callback to reach the agent (PROCESSING)", func() bool {
		return retrieve(t, s, created.ID).State == "PROCESSING"
	})
	eventually(t, 15*time.Second, "the agent to hear the customer", func() bool { return a.Heard().AudioMS > 500 })
}

// TestAgentCommandHangsUpAfter: with --hangup-after the command ends each
// answered call itself, so that a callback to a customer who never hangs up
// (+12025550100) completes without stopping the agent, which stays signed in
// for the next one.
func TestAgentCommandHangsUpAfter(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	// --url may be the endpoints file's webrtc_url too; a URL that is none is refused as such.
	if err := agent.RunCLI(ctx, []string{"--url", "not-a-url", "--user", "agent2"}, io.Discard); !errors.Is(err, agent.ErrUsage) {
		t.Fatalf("--url not-a-url: %v, want a usage error", err)
	}
	out, _ := startAgentCommand(ctx, t, s, "--url", s.URL+"/webrtc/", "--auto-answer", "--play", "1000", "--hangup-after", "2s")
	for round := 1; round <= 2; round++ {
		agentConnectedCallback(t, s, "+12025550100", out)
		if rs := callReports(out.String()); len(rs) != round || math.Abs(rs[round-1].hz-440) > 25 {
			t.Fatalf("round %d: reports %+v, want one per call with the customer's 440 Hz:\n%s", round, rs, out.String())
		}
	}
}

// TestAgentCommandSignsInAgain: when the gateway signs a token sign-in out
// (its registration refresh refused after a lab-clock move past the token's
// 12 hours; here, a sign-out of its session), `cxlab agent` signs in again
// with a new token, goes Ready, and takes the next callback.
func TestAgentCommandSignsInAgain(t *testing.T) {
	s := apptest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	out, _ := startAgentCommand(ctx, t, s, "--auto-answer", "--hangup-after", "1s")
	m := regexp.MustCompile(`signed in as DN 7002 \(session (\w+)\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no session id in the output:\n%s", out.String())
	}
	res, err := http.Get(s.URL + "/webrtc/sign_out?id=" + m[1])
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	eventually(t, 20*time.Second, "the command to sign in again and go Ready", func() bool {
		o := out.String()
		return strings.Contains(o, "signing in again") && strings.Count(o, "Ready:") == 2
	})
	agentConnectedCallback(t, s, "+12025550100", out)
}

// startAgentCommand runs `cxlab agent --url <s> --user agent2 --password
// agent123 <args>` until the test ends or stop is called (stop returns its
// error, nil when it was stopped), and returns its output once it is Ready.
func startAgentCommand(ctx context.Context, t *testing.T, s *apptest.Stack, args ...string) (*syncbuf.Buffer, func() error) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- agent.RunCLI(runCtx, append([]string{"--url", s.URL, "--user", "agent2", "--password", "agent123"}, args...), out)
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			if err = <-done; errors.Is(err, context.Canceled) {
				err = nil
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("agent command: %v\n%s", err, out.String())
		}
	})
	eventually(t, 20*time.Second, "the agent command to report Ready", func() bool { return strings.Contains(out.String(), "Ready:") })
	return out, stop
}

// agentConnectedCallback books an immediate CB_Support callback to number
// and waits for it to complete AGENT_CONNECTED (out, the agent's output, is
// shown when it does not).
func agentConnectedCallback(t *testing.T, s *apptest.Stack, number string, out fmt.Stringer) string {
	t.Helper()
	var created struct {
		ID string `json:"id"`
	}
	if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{
		"serviceName": "CB_Support", "phoneNumber": number}, &created); code != 200 {
		t.Fatalf("create a callback to %s: %d", number, code)
	}
	eventually(t, 40*time.Second, "the callback to "+number+" to complete", func() bool {
		return retrieve(t, s, created.ID).State == "COMPLETED"
	})
	if cb := retrieve(t, s, created.ID); cb.Reason != "AGENT_CONNECTED" {
		t.Fatalf("the callback to %s ended %s, want AGENT_CONNECTED; agent output:\n%s", number, cb.Reason, out)
	}
	return created.ID
}
