package ges

import (
	"strings"
	"testing"
)

// Edge cases a client written for the real service hits (found by an audit
// against the reference): each answered as the reference describes.
func TestAPIEdgeCasesOfTheReference(t *testing.T) {
	e := newEnv(t)
	create := "/engagement/v3/callbacks/create"
	ok := `"serviceName":"CB_Support","phoneNumber":"+12025550221"`
	for _, c := range []struct {
		name, method, path string
		body               any
		code               int
		msg                string // in the message, when not 200
	}{
		// A path parameter percent-encoded otherwise than Go would (reference §2.4-2.7: the name itself).
		{"queue-status, %5F", "GET", "/engagement/v3/callbacks/queue-status/VQ%5FSales", nil, 200, ""},
		{"open-for, lowercase hex", "GET", "/engagement/v3/callbacks/open-for/CB%5fSales", nil, 200, ""},
		{"availability, %5F", "GET", "/engagement/v3/callbacks/availability/CB%5FSupport", nil, 200, ""},
		// §2.1 field shapes.
		{"pushTargets of numbers", "POST", create, `{` + ok + `,"pushTargets":[1,"x"]}`, 400, "pushTargets[0]"},
		{"pushTargets without a target", "POST", create, `{` + ok + `,"pushTargets":[{"channel":"FCM"}]}`, 400, "pushTargets[0]"},
		{"pushTargets as the reference has them", "POST", create, `{` + ok + `,"pushTargets":[{"channel":"FCM","target":"tok"}]}`, 200, ""},
		{"captchaToken not a string", "POST", create, `{` + ok + `,"captchaToken":1}`, 400, "captchaToken"},
		{"offerTiming outside its values", "POST", create, `{` + ok + `,"offerTiming":"MAYBE"}`, 400, "offerTiming"},
		{"offerTiming ON-HOURS", "POST", create, `{"serviceName":"CB_Support","phoneNumber":"+12025550222","offerTiming":"ON-HOURS"}`, 200, ""},
		// Bodies.
		{"an array body", "POST", create, `[]`, 400, "must be a JSON object, not a JSON array"},
		{"a byte-order mark", "POST", create, "\xef\xbb\xbf{\"serviceName\":\"CB_Support\",\"phoneNumber\":\"+12025550223\"}", 200, ""},
		{"lowercase t and z", "POST", create, `{"serviceName":"CB_Support","phoneNumber":"+12025550224","desiredTime":"2020-01-01t10:00:00z"}`, 200, ""},
		{"too far ahead", "POST", create, `{"serviceName":"CB_Support","phoneNumber":"+12025550225","desiredTime":"2099-01-01T10:00:00Z"}`, 400, "at most 14 days"},
	} {
		r := e.api(c.method, c.path, c.body)
		if r.code != c.code || (c.msg != "" && !strings.Contains(r.Status.Message, c.msg)) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, r.code, r.Status.Message, c.code, c.msg)
		}
	}
}
