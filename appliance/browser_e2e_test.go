package appliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/apptest/browsertest"
)

// TestBrowserCallbackEndToEnd is the demo a person gives, driven in real
// Chromium against the whole appliance: an agent logs in on the softphone page
// (GAuth authorization code + PKCE) and goes Ready; the customer page books an
// immediate callback for a simulated customer; the softphone rings; Answer;
// the simulated customer hears the browser's fake microphone and the
// softphone's speaker meter shows the customer's tone; Hang up; the callback
// shows COMPLETED (AGENT_CONNECTED) in /ges/ and in the API.
func TestBrowserCallbackEndToEnd(t *testing.T) {
	s := apptest.Start(t)
	browser := browsertest.New(t)
	const wait = 30 * time.Second

	phone := browser
	softphoneSignIn(t, phone, s, "agent1", wait)
	browsertest.Run(t, phone, wait, chromedp.Click(chromedp.ID("btn-ready")))
	browsertest.WaitJS(t, phone, wait, "Ready", `document.getElementById('agent-state').dataset.state === 'Ready'`)

	customer := browsertest.Tab(t, browser)
	browsertest.Run(t, customer, wait,
		chromedp.Navigate(s.URL+"/customer/"),
		chromedp.WaitVisible(chromedp.ID("btn-now")),
		chromedp.SetValue(chromedp.ID("phone"), "+12025550100"),
		chromedp.Click(chromedp.ID("btn-now")),
	)
	browsertest.WaitJS(t, customer, wait, "a callback id", `document.getElementById('cb-id').textContent.trim().length > 30`)
	id := strings.TrimSpace(browsertest.Eval[string](t, customer, `document.getElementById('cb-id').textContent`))
	// Enter in a field submits the form: the page must not reload (and lose
	// the booked callback's panel) for it.
	if !browsertest.Eval[bool](t, customer, `(() => { const e = new Event('submit', {cancelable: true}); document.getElementById('cb-form').dispatchEvent(e); return e.defaultPrevented; })()`) {
		t.Error("submitting the customer form (Enter in a field) reloads the page")
	}

	browsertest.WaitJS(t, phone, wait, "the softphone to ring", `document.getElementById('call-state').dataset.state === 'ringing'`)
	browsertest.Screenshot(t, phone, "softphone-ringing")
	browsertest.Run(t, phone, wait, chromedp.Click(chromedp.ID("btn-answer")))
	browsertest.WaitJS(t, phone, wait, "connected", `document.getElementById('call-state').dataset.state === 'connected'`)

	// The speaker meter shows the simulated customer's 440 Hz tone.
	browsertest.WaitJS(t, phone, wait, "the speaker meter to show the customer", `parseFloat(document.getElementById('speaker-level').dataset.dbfs) > -35`)
	// The simulated customer hears the browser's fake microphone (its beeps).
	eventually(t, wait, "the simulated customer to hear the browser", func() bool {
		return customerHeardAudio(t, s, id)
	})
	browsertest.WaitJS(t, customer, wait, "the customer page to show PROCESSING", `document.getElementById('cb-state').textContent.includes('PROCESSING')`)
	browsertest.Screenshot(t, phone, "softphone-in-call")

	// Hold and resume a call the gateway offered (the browser's re-offer is
	// answered with the DTLS role the call settled on; Chrome refuses an
	// answer saying actpass), and Voice follows.
	browsertest.Run(t, phone, wait, chromedp.Click(chromedp.ID("btn-hold")))
	browsertest.WaitJS(t, phone, wait, "on hold", `document.getElementById('call-state').dataset.state === 'held'`)
	waitVoiceCall(t, s, "7001", wait, "Voice to show the call held", func(c voiceCall) bool { return c.State == "held" })
	browsertest.Run(t, phone, wait, chromedp.Click(chromedp.ID("btn-hold")))
	browsertest.WaitJS(t, phone, wait, "resumed", `document.getElementById('call-state').dataset.state === 'connected'`)
	waitVoiceCall(t, s, "7001", wait, "Voice to show the call connected again", func(c voiceCall) bool { return c.State == "connected" })
	if msg := browsertest.Eval[string](t, phone, `document.getElementById('error').textContent`); strings.TrimSpace(msg) != "" {
		t.Fatalf("the softphone shows an error after hold and resume: %q", msg)
	}

	browsertest.Run(t, phone, wait, chromedp.Click(chromedp.ID("btn-hangup")))
	browsertest.WaitJS(t, phone, wait, "ended", `document.getElementById('call-state').dataset.state === 'ended'`)
	eventually(t, wait, "COMPLETED AGENT_CONNECTED in the API", func() bool {
		cb := retrieve(t, s, id)
		return cb.State == "COMPLETED" && cb.Reason == "AGENT_CONNECTED"
	})
	browsertest.WaitJS(t, customer, wait, "the customer page to show COMPLETED", `document.getElementById('cb-state').textContent.includes('COMPLETED')`)

	// /ges/: the supervisor signs in (their own sign-in, though the browser
	// holds the agent's GAuth session) and sees it completed.
	ges := browsertest.Tab(t, browser)
	browsertest.Run(t, ges, wait, gesSignIn(s.URL)...)
	row := fmt.Sprintf(`document.querySelector('#cb-table tr[data-id="%s"]')`, id)
	browsertest.WaitJS(t, ges, wait, "the callback row in /ges/", row+` !== null`)
	if st := browsertest.Eval[string](t, ges, row+`.dataset.state`); st != "COMPLETED" {
		t.Errorf("/ges/ shows state %q", st)
	}
	if txt := browsertest.Eval[string](t, ges, row+`.textContent`); !strings.Contains(txt, "AGENT_CONNECTED") {
		t.Errorf("/ges/ row lacks the reason: %q", txt)
	}
	browsertest.Screenshot(t, ges, "ges")

	console := browsertest.Tab(t, browser)
	browsertest.Run(t, console, wait, chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.ID("components")))
	browsertest.WaitJS(t, console, wait, "the finished call in the console", `document.getElementById('calls-table').textContent.includes('+12025550100')`)
	browsertest.Screenshot(t, console, "console")
}

// softphoneSignIn logs user in on the softphone page and waits until the page
// has signed in to the WebRTC gateway.
func softphoneSignIn(t *testing.T, phone context.Context, s *apptest.Stack, user string, wait time.Duration) {
	t.Helper()
	browsertest.Run(t, phone, wait,
		chromedp.Navigate(s.URL+"/softphone/"),
		chromedp.WaitVisible(chromedp.ID("login-user")),
		chromedp.SetValue(chromedp.ID("login-user"), user),
		chromedp.SetValue(chromedp.ID("login-pass"), "agent123"),
		chromedp.Click(chromedp.ID("btn-login")),
		chromedp.WaitVisible(chromedp.ID("phone-panel")),
	)
	browsertest.WaitJS(t, phone, wait, "gateway sign-in", `document.getElementById('gw-state').dataset.state === 'signed-in'`)
	// The sign-in registered the DN: the page shows it logged in at once,
	// not LoggedOut until its next 5 s look at Voice.
	browsertest.WaitJS(t, phone, 2*time.Second, "the agent logged in after the gateway sign-in",
		`['NotReady', 'Ready'].includes(document.getElementById('agent-state').dataset.state)`)
}

// customerHeardAudio reports whether the simulated customer of a callback
// received audio above the analysis threshold.
func customerHeardAudio(t *testing.T, s *apptest.Stack, callbackID string) bool {
	t.Helper()
	var calls []struct {
		CallbackID string `json:"callbackId"`
		Analysis   *struct {
			AudioArrived bool    `json:"audio_arrived"`
			LevelDBFS    float64 `json:"level_dbfs"`
		} `json:"customer_analysis"`
	}
	resp, err := http.Get(s.URL + "/voice/v1/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := decodeCalls(resp, &calls); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if c.CallbackID == callbackID && c.Analysis != nil && c.Analysis.AudioArrived {
			return true
		}
	}
	return false
}

// decodeCalls reads Voice's {"status":..,"data":{"calls":[...]}} answer.
func decodeCalls[T any](resp *http.Response, calls *T) error {
	var env struct {
		Data struct {
			Calls json.RawMessage `json:"calls"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return err
	}
	return json.Unmarshal(env.Data.Calls, calls)
}

// TestBrowserSoftphoneDialsOut: an agent signed in on the softphone (a GAuth
// token, as the page signs in) types a customer's number and presses Call;
// the simulated customer answers, each side hears the other, and Hang up
// ends the call at Voice too.
func TestBrowserSoftphoneDialsOut(t *testing.T) {
	s := apptest.Start(t)
	phone := browsertest.New(t)
	const wait = 30 * time.Second
	const number = "+12025550100"

	softphoneSignIn(t, phone, s, "agent2", wait)
	// The softphone follows the agent state Voice holds, whoever changes it
	// (here another client; in a call that rings out, Voice itself).
	browsertest.WaitJS(t, phone, wait, "the softphone to show NotReady", `document.getElementById('agent-state').dataset.state === 'NotReady'`)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL+"/voice/v1/agents/me/state", strings.NewReader(`{"state":"Ready"}`))
	req.Header.Set("Authorization", "Bearer "+agentToken(t, s, "agent2", "agent123"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set Ready through the Voice API: %d", resp.StatusCode)
	}
	browsertest.WaitJS(t, phone, wait, "the softphone to show Ready set elsewhere", `document.getElementById('agent-state').dataset.state === 'Ready'`)
	// A number the gateway refuses ends the attempt at once, saying so,
	// instead of leaving the phone "Calling".
	browsertest.Run(t, phone, wait,
		chromedp.SetValue(chromedp.ID("dial-number"), "abc"),
		chromedp.Click(chromedp.ID("btn-call")),
	)
	browsertest.WaitJS(t, phone, wait, "the refused call to end", `document.getElementById('call-state').dataset.state === 'ended' && document.getElementById('error').textContent.includes('The call failed')`)
	browsertest.Run(t, phone, wait,
		chromedp.SetValue(chromedp.ID("dial-number"), number),
		chromedp.Click(chromedp.ID("btn-call")),
	)
	browsertest.WaitJS(t, phone, wait, "connected", `document.getElementById('call-state').dataset.state === 'connected'`)
	browsertest.WaitJS(t, phone, wait, "the speaker meter to show the customer", `parseFloat(document.getElementById('speaker-level').dataset.dbfs) > -35`)
	waitVoiceCall(t, s, number, wait, "the customer to hear the browser", func(c voiceCall) bool {
		return c.From == "7002" && c.CustomerAnalysis != nil && c.CustomerAnalysis.DominantHz > 0
	})
	browsertest.Screenshot(t, phone, "softphone-dialled")
	browsertest.Run(t, phone, wait, chromedp.Click(chromedp.ID("btn-hangup")))
	browsertest.WaitJS(t, phone, wait, "ended", `document.getElementById('call-state').dataset.state === 'ended'`)
	waitVoiceCall(t, s, number, wait, "the call to end at Voice", func(c voiceCall) bool { return c.State == "ended" })
}
