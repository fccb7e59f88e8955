package appliance_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// voiceAgentState is dn's agent state in Voice, as the supervisor sees it
// (GET /voice/v1/agents); "" when Voice lists no such agent.
func voiceAgentState(t *testing.T, s *apptest.Stack, dn string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/voice/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+agentToken(t, s, "supervisor", "super123"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Agents []struct {
				DN    string `json:"dn"`
				State string `json:"state"`
			} `json:"agents"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/voice/v1/agents: %v", err)
	}
	for _, a := range body.Data.Agents {
		if a.DN == dn {
			return a.State
		}
	}
	return ""
}

func opsRequest(t *testing.T, method, url, body string, auth bool) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if auth {
		req.SetBasicAuth("ops", "ops")
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTenantAdminAPIEditsTheModel adds an agent through the admin API, signs
// in as that agent, then removes the agent: sign-in is refused afterwards.
func TestTenantAdminAPIEditsTheModel(t *testing.T) {
	s := apptest.Start(t)
	seed := `contactCenters:
  - id: 9350e2fc-a1dd-4c65-8d40-1f75a2e080dd
    name: demo
    sipDomain: demo.cxlab.local
    users:
      - {dbid: 109, userName: agent9, password: nine999, firstName: Nia, lastName: Agent, roles: [agent], dn: "7009", skills: [VQ_Support]}
    dns:
      - {number: "7009", type: Extension, sipPassword: dnpass}
`
	if code, body := opsRequest(t, http.MethodPost, s.URL+"/configuration/v3/ops/seed", seed, false); code != http.StatusUnauthorized {
		t.Fatalf("seed without ops credentials: %d %s", code, body)
	}
	if code, body := opsRequest(t, http.MethodPost, s.URL+"/configuration/v3/ops/seed", "contactCenters: [{nmae: x}]", true); code != http.StatusBadRequest { //nolint:misspell // an unknown key on purpose
		t.Fatalf("bad seed: %d %s", code, body)
	}
	for range 2 { // idempotent
		if code, body := opsRequest(t, http.MethodPost, s.URL+"/configuration/v3/ops/seed", seed, true); code != http.StatusOK {
			t.Fatalf("apply seed: %d %s", code, body)
		}
	}
	tok := agentToken(t, s, "agent9", "nine999")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/configuration/v3/objects/persons?user_name=agent9", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"dn":"7009"`) {
		t.Fatalf("GWS persons lacks the new agent's DN: %s", b)
	}
	// The seed is in effect when its request returns: the new agent signs in
	// to the gateway (whose REGISTER Voice checks against its directory) at
	// once, not after Voice's directory cache expires.
	ag := agent.New(agent.Config{URL: s.URL, Token: func(context.Context) (string, error) { return tok, nil }})
	if err := ag.SignIn(t.Context()); err != nil {
		t.Fatalf("the seeded agent signs in right after the seed: %v", err)
	}
	if err := ag.SetState(t.Context(), "Ready"); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if st := voiceAgentState(t, s, "7009"); st != "Ready" {
		t.Fatalf("DN 7009 is %q in Voice, want Ready", st)
	}

	if code, body := opsRequest(t, http.MethodDelete, s.URL+"/configuration/v3/ops/contact-centers/9350e2fc-a1dd-4c65-8d40-1f75a2e080dd/users/agent9", "", true); code != http.StatusOK {
		t.Fatalf("delete user: %d %s", code, body)
	}
	// A deleted agent is logged out of Voice at once: left Ready, it would be
	// offered callbacks until its registration expired.
	if st := voiceAgentState(t, s, "7009"); st != "LoggedOut" && st != "" {
		t.Fatalf("DN 7009 is %q in Voice right after its user was deleted, want LoggedOut", st)
	}
	// Deleting what cannot exist: a user name PostgreSQL cannot store, a
	// contact center id that is not a UUID.
	if code, body := opsRequest(t, http.MethodDelete, s.URL+"/configuration/v3/ops/contact-centers/9350e2fc-a1dd-4c65-8d40-1f75a2e080dd/users/a%00b", "", true); code != http.StatusNotFound {
		t.Fatalf("delete user a\\x00b: %d %s, want 404", code, body)
	}
	if code, body := opsRequest(t, http.MethodDelete, s.URL+"/configuration/v3/ops/contact-centers/not-a-uuid/users/agent1", "", true); code != http.StatusBadRequest {
		t.Fatalf("delete user in contact center not-a-uuid: %d %s, want 400", code, body)
	}
	oc := oauth2.Config{ClientID: "cxlab-console", ClientSecret: "console-secret",
		Endpoint: oauth2.Endpoint{TokenURL: s.URL + "/auth/v3/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}}
	if _, err := oc.PasswordCredentialsToken(t.Context(), "agent9", "nine999"); err == nil {
		t.Fatal("a deleted agent still gets a token")
	}
}
