package ui

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/apptest/browsertest"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"
)

// fakeEngagement is the slice of the Engagement API v3 the customer page uses,
// checking the API key and refusing ccid headers as GES's ingress would.
type fakeEngagement struct {
	// noImmediate makes queue-status offer no immediate callback (with EWT 0,
	// as GES answers without agents); openFor is open-for's answer then.
	noImmediate bool
	openFor     int

	mu      sync.Mutex
	state   map[string]string
	reason  map[string]string
	desired map[string]string
	created []map[string]any
}

func newFakeEngagement() *fakeEngagement {
	return &fakeEngagement{state: map[string]string{}, reason: map[string]string{}, desired: map[string]string{}}
}

func (f *fakeEngagement) mount(e *echo.Echo) {
	ok := func(c echo.Context, data any) error {
		return c.JSON(http.StatusOK, map[string]any{"status": map[string]any{"code": 0, "message": "Successful"}, "data": data})
	}
	guard := func(h echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get("X-Api-Key") != "cxlab-demo-api-key-0000000000000000" || c.Request().Header.Get("ccid") != "" {
				return c.JSON(http.StatusUnauthorized, map[string]any{"status": map[string]any{"code": 401, "message": "bad api key"}})
			}
			return h(c)
		}
	}
	e.GET("/engagement/v3/callbacks/queue-status/:q", guard(func(c echo.Context) error {
		if f.noImmediate {
			return ok(c, map[string]any{"ewt": 0, "offerImmediateCallback": false, "offerScheduledCallback": true})
		}
		return ok(c, map[string]any{"ewt": 95, "offerImmediateCallback": true, "offerScheduledCallback": true})
	}))
	e.GET("/engagement/v3/callbacks/open-for/:svc", guard(func(c echo.Context) error {
		return ok(c, map[string]any{"openFor": f.openFor})
	}))
	e.GET("/engagement/v3/callbacks/availability/:svc", guard(func(c echo.Context) error {
		return ok(c, map[string]any{"durationMin": 30, "timezone": "UTC", "slots": []any{
			map[string]any{"utcTime": "2026-05-29T10:00:00.000Z", "capacity": 4, "total": 5},
			map[string]any{"utcTime": "2026-05-29T10:30:00.000Z", "capacity": 5, "total": 5}}})
	}))
	e.POST("/engagement/v3/callbacks/create", guard(func(c echo.Context) error {
		var body map[string]any
		_ = json.NewDecoder(c.Request().Body).Decode(&body)
		if p, _ := body["phoneNumber"].(string); !strings.HasPrefix(p, "+") {
			return c.JSON(http.StatusBadRequest, map[string]any{"status": map[string]any{"code": 400, "message": "phoneNumber must be an E.164 number such as +12025550100"}})
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		id := "8c78d4e1-0000-4000-8000-00000000000" + itoa(len(f.created))
		f.created = append(f.created, body)
		f.state[id] = "QUEUED"
		if d, _ := body["desiredTime"].(string); d != "" {
			f.state[id], f.desired[id] = "SCHEDULED", d
		}
		return ok(c, map[string]any{"id": id})
	}))
	e.POST("/engagement/v3/callbacks/retrieve", guard(func(c echo.Context) error {
		var body struct{ ID string }
		_ = json.NewDecoder(c.Request().Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		st, found := f.state[body.ID]
		if !found {
			return c.JSON(http.StatusNotFound, map[string]any{"status": map[string]any{"code": 404, "message": "not found"}})
		}
		out := map[string]any{"id": body.ID, "callbackState": st, "phoneNumber": "+12025550100", "desiredTime": f.desired[body.ID]}
		if st == "COMPLETED" {
			out["callbackReason"] = f.reason[body.ID]
		} else {
			out["positionInQueue"], out["estimatedWaitTime"] = 1, 95
		}
		return ok(c, out)
	}))
	e.POST("/engagement/v3/callbacks/cancel", guard(func(c echo.Context) error {
		var body struct{ ID string }
		_ = json.NewDecoder(c.Request().Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.state[body.ID] == "PROCESSING" {
			return c.JSON(http.StatusBadRequest, map[string]any{"status": map[string]any{"code": 400, "message": "a callback in PROCESSING cannot be cancelled"}})
		}
		f.state[body.ID], f.reason[body.ID] = "COMPLETED", "CANCELLED"
		return ok(c, map[string]any{"id": body.ID})
	}))
}

func (f *fakeEngagement) set(id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[id] = state
}

func TestBrowserCustomerCallback(t *testing.T) {
	before := goleak.IgnoreCurrent() // taken now: taken at cleanup it would ignore every leak
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	eng := newFakeEngagement()
	ts := newTestServer(t, Config{}, Deps{}, eng.mount)
	ctx := browsertest.New(t)
	browsertest.Run(t, ctx, 20*time.Second, chromedp.Navigate(ts.URL+"/customer/"), chromedp.WaitVisible(chromedp.ID("btn-now")))
	browsertest.WaitJS(t, ctx, 20*time.Second, "EWT", `document.getElementById('ewt').dataset.seconds === '95'`)
	if got := browsertest.Eval[string](t, ctx, `document.getElementById('queue-status').textContent`); !strings.Contains(got, "immediate callbacks offered") {
		t.Errorf("queue status %q", got)
	}
	browsertest.WaitJS(t, ctx, 20*time.Second, "slots", `document.getElementById('slot').options.length === 2 && document.getElementById('slot').value === '2026-05-29T10:00:00.000Z'`)

	browsertest.Eval[any](t, ctx, `document.getElementById('phone').value = ' +1 (202) 555-0100 '`) // as people type it
	// A double click books one callback (it booked two, the page following one).
	browsertest.Eval[any](t, ctx, `(() => { const b = document.getElementById('btn-now'); b.click(); b.click(); })()`)
	browsertest.WaitJS(t, ctx, 20*time.Second, "queued", `document.getElementById('cb-state').dataset.state === 'QUEUED'`)
	id := browsertest.Eval[string](t, ctx, `document.getElementById('cb-id').textContent`)
	if n := eng.count(); n != 1 {
		t.Fatalf("a double click booked %d callbacks", n)
	}
	if id == "" || eng.created[0]["phoneNumber"] != "+12025550100" || eng.created[0]["serviceName"] != "CB_Support" {
		t.Fatalf("created %v as %q", eng.created, id)
	}
	if _, scheduled := eng.created[0]["desiredTime"]; scheduled {
		t.Error("an immediate callback carried a desiredTime")
	}
	// The page follows the state as ORS moves it.
	eng.set(id, "ROUTING")
	browsertest.WaitJS(t, ctx, 20*time.Second, "routing", `document.getElementById('cb-state').dataset.state === 'ROUTING'`)
	browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("btn-cancel")))
	browsertest.WaitJS(t, ctx, 20*time.Second, "cancelled", `document.getElementById('cb-state').dataset.state === 'COMPLETED' && document.getElementById('cb-reason').textContent === '(CANCELLED)'`)
	browsertest.Screenshot(t, ctx, "cancelled")

	// A scheduled one in the picked slot; PROCESSING can't be cancelled.
	browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("btn-schedule")))
	browsertest.WaitJS(t, ctx, 20*time.Second, "scheduled", `document.getElementById('cb-state').dataset.state === 'SCHEDULED'`)
	if eng.created[1]["desiredTime"] != "2026-05-29T10:00:00.000Z" {
		t.Errorf("scheduled at %v", eng.created[1]["desiredTime"])
	}
	id = browsertest.Eval[string](t, ctx, `document.getElementById('cb-id').textContent`)
	eng.set(id, "PROCESSING")
	browsertest.WaitJS(t, ctx, 20*time.Second, "processing disables cancel", `document.getElementById('btn-cancel').disabled`)

	// A number GES refuses shows its message.
	browsertest.Eval[any](t, ctx, `document.getElementById('phone').value = '12345'`)
	browsertest.Run(t, ctx, 5*time.Second, chromedp.Click(chromedp.ID("btn-now")))
	browsertest.WaitJS(t, ctx, 20*time.Second, "refusal", `document.getElementById('error').textContent.includes('must be an E.164 number')`)

	// Enter in the phone field books one now, once the last one is over.
	eng.set(id, "COMPLETED")
	browsertest.WaitJS(t, ctx, 20*time.Second, "completed", `document.getElementById('cb-state').dataset.state === 'COMPLETED'`)
	made := eng.count()
	browsertest.Eval[any](t, ctx, `document.getElementById('phone').value = '+12025550101'`)
	browsertest.Run(t, ctx, 5*time.Second, chromedp.SendKeys(chromedp.ID("phone"), kb.Enter))
	browsertest.WaitJS(t, ctx, 20*time.Second, "booked by Enter", `document.getElementById('cb-state').dataset.state === 'QUEUED'`)
	if n := eng.count(); n != made+1 {
		t.Errorf("Enter booked %d callbacks", n-made)
	}
}

// count is how many callbacks were created.
func (f *fakeEngagement) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.created)
}

// Without an immediate offer the page says why (closed, or no agent to take
// it) instead of an EWT of "0 s", and leaves only scheduling enabled.
func TestBrowserCustomerExplainsNoImmediateCallback(t *testing.T) {
	before := goleak.IgnoreCurrent() // taken now: taken at cleanup it would ignore every leak
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	for _, tc := range []struct {
		name    string
		openFor int
		want    string
	}{
		{"no agent", 3600, "no agent is logged in and Ready"},
		{"closed", 0, "the service is closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := newFakeEngagement()
			eng.noImmediate, eng.openFor = true, tc.openFor
			ts := newTestServer(t, Config{}, Deps{}, eng.mount)
			ctx := browsertest.New(t)
			browsertest.Run(t, ctx, 20*time.Second, chromedp.Navigate(ts.URL+"/customer/"), chromedp.WaitVisible(chromedp.ID("btn-now")))
			browsertest.WaitJS(t, ctx, 20*time.Second, "queue status", `document.getElementById('queue-status').textContent.includes('no immediate callback now')`)
			if got := browsertest.Eval[string](t, ctx, `document.getElementById('queue-status').textContent`); !strings.Contains(got, tc.want) {
				t.Errorf("queue status %q, want it to say %q", got, tc.want)
			}
			if got := browsertest.Eval[string](t, ctx, `document.getElementById('ewt').textContent`); got != "unknown" {
				t.Errorf("EWT shows %q, want unknown", got)
			}
			if !browsertest.Eval[bool](t, ctx, `document.getElementById('btn-now').disabled && !document.getElementById('btn-schedule').disabled`) {
				t.Error("Call me now should be disabled and scheduling enabled")
			}
		})
	}
}
