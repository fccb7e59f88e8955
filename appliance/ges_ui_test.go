package appliance_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/apptest"
)

// A supervisor who books a full slot in /ges/ reads why in the UI's words,
// with the open slots to pick from, not the API's pointer to data.slots.
func TestGESFullSlotNamesOpenSlots(t *testing.T) {
	s := apptest.Start(t)
	slot := time.Now().UTC().Add(50 * time.Hour).Truncate(30 * time.Minute) // CB_Support: 30-minute slots of 5
	for i := range 5 {
		if code := gesCall(t, s, http.MethodPost, "/callbacks/create", map[string]any{"serviceName": "CB_Support",
			"phoneNumber": fmt.Sprintf("+1202555014%d", i), "desiredTime": slot.Format(time.RFC3339), "alwaysCheckCapacity": true}, nil); code != 200 {
			t.Fatalf("booking %d of the slot: %d", i+1, code)
		}
	}
	g := newGESUser(t, s)
	list := g.signIn()
	page, _ := g.post(list, "/ges/callbacks/create", url.Values{"type": {"scheduled"}, "service": {"CB_Support"},
		"phone": {"+1 202 555 0149"}, "slot": {slot.Format(time.RFC3339)}})
	toast := between(page, `id="toast"`, "</div>")
	next := slot.Add(30 * time.Minute).Format("2006-01-02 15:04")
	if !strings.Contains(toast, "no capacity in the desired time slot") || !strings.Contains(toast, "Open slots (UTC): "+next) {
		t.Errorf("the full slot's refusal reads %q, want the reason and the open slots from %s", toast, next)
	}
	if strings.Contains(toast, "data.slots") {
		t.Errorf("the UI points its user at the API's data.slots: %q", toast)
	}
}

// between returns the text of s from the first from to the next to after it.
func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		s = s[:j]
	}
	return s
}
