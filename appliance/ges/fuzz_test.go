package ges

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// inFuzzCoordinator reports whether this process only coordinates `go test
// -fuzz` for target: the body then runs in worker processes, so the
// coordinator need not start its own PostgreSQL.
func inFuzzCoordinator(target string) bool {
	fz, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	if fz == nil || fz.Value.String() == "" || (w != nil && w.Value.String() == "true") {
		return false
	}
	ok, err := regexp.MatchString(fz.Value.String(), target)
	return err == nil && ok
}

// fuzzRoutes are the v3 routes whose request the fuzzer writes: the body for
// POSTs, the raw query string for GETs.
var fuzzRoutes = []struct{ method, path string }{
	{http.MethodPost, pathCreate},
	{http.MethodPost, pathCancel},
	{http.MethodPost, pathRetrieve},
	{http.MethodPost, pathCallIn},
	{http.MethodPost, pathStatistics},
	{http.MethodGet, "/engagement/v3/callbacks/availability/CB_Sales"},
	{http.MethodGet, pathEWT},
}

// fuzzKeys: the demo tenant's key, the other tenant's, an unknown one, none.
var fuzzKeys = []string{demoKey, otherKey, "not-a-key", ""}

// FuzzEngagementAPI sends arbitrary bodies (and query strings) through the real
// echo handlers on real PostgreSQL and Redis: never a 5xx, always the
// {status:{code,message,corrId}} envelope, the header rules hold, and a
// callback created by one tenant is invisible to the other.
func FuzzEngagementAPI(f *testing.F) {
	seeds := []struct {
		route, key uint8
		ccid       string
		body       string
	}{
		{0, 0, "", `{"serviceName":"CB_Support","phoneNumber":"+12025550100","userData":{"order":"42"}}`},
		{0, 0, "", `{"serviceName":"CB_Sales","phoneNumber":"+12025550101","desiredTime":"2026-03-04T16:30:00.000Z","priority":"3","alwaysCheckCapacity":"true"}`},
		{0, 1, "", `{"serviceName":"CB_Support","phoneNumber":"5551234","pushTargets":[1,"a"],"offerThreshold":1e308}`},
		{0, 0, "", `{"serviceName":"CB_Support","phoneNumber":"+1202555010x","desiredTime":"2026-02-30T25:00"}`},
		{0, 0, "", `{"serviceName":7,"phoneNumber":null,"userData":[]}`},
		{0, 0, "9350e2fc-a1dd-4c65-8d40-1f75a2e080dd", `{"serviceName":"CB_Support","phoneNumber":"+12025550100"}`},
		{0, 2, "", `{"serviceName":"CB_Support","phoneNumber":"+12025550100"}`},
		{0, 3, "", `{}`},
		{1, 0, "", `{"id":"1c7c3d0e-7a5b-4d8e-9f00-000000000001"}`},
		{1, 0, "", `{"id":"../../etc/passwd"}`},
		{2, 0, "", `{"id":"' OR 1=1 --"}`},
		{2, 1, "", `{"id":""}`},
		{3, 0, "", `{"groupName":"technical_help","fromPhoneNumber":"+12025550100","userData":{"a":"b"}}`},
		{3, 0, "", `{"groupName":"nope"}`},
		{4, 0, "", `{"data":{"statistics":[{"objectId":"VQ_Sales","objectType":"Queue","name":"CurrNumberWaitingCalls"}]}}`},
		{4, 0, "", `{"data":{"statistics":[{}]}}`},
		{5, 0, "", `start=2026-03-04T10:00:00.000Z&numberOfDays=2&timezone=America/New_York&maxTimeSlots=3`},
		{5, 0, "", `startMS=-9223372036854775808&end=x&timezone=../../../etc`},
		{6, 0, "", `virtual-queues=VQ_Sales,VQ_Support`},
		{0, 0, "", `{"serviceName":"CB_Support","phoneNumber":"+12025550100","userData":{"a":"x\u0000y"},"language":"e\u0000n"}`},
		{0, 0, "", "{\"serviceName\":\"CB_Support\",\"phoneNumber\":\"+12025550100\",\"userData\":{\"a\":\"\xff\xfe\"}}"},
		{0, 0, "", `{"serviceName":"CB\u0000Support","phoneNumber":"+12025550100"}`},
		{2, 0, "", `{"id":"\u0000"}`},
		{3, 0, "", `{"groupName":"technical\u0000help","fromPhoneNumber":"+12025550100","userData":{"a":"\u0000"}}`},
		{5, 0, "", "timezone=%00&start=%FF"},
		{6, 0, "", "virtual-queues=VQ%00,%FF"},
		{0, 0, "", `[`},
		{0, 0, "", `null`},
		{0, 0, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.route, s.key, s.ccid, []byte(s.body))
	}
	var h http.Handler
	if !inFuzzCoordinator(f.Name()) {
		e := newEnv(f)
		ech := echo.New()
		e.svc.Mount(ech)
		h = ech
	}
	f.Fuzz(func(t *testing.T, route, key uint8, ccid string, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		apiKey := fuzzKeys[int(key)%len(fuzzKeys)]
		res, env := fuzzDo(t, h, rt.method, rt.path, apiKey, ccid, body)
		switch {
		case ccid != "":
			if res.Code != http.StatusBadRequest {
				t.Fatalf("ccid header %q: status %d, want 400", ccid, res.Code)
			}
			return
		case apiKey == "" || apiKey == "not-a-key":
			if res.Code != http.StatusUnauthorized || len(env.Data) != 0 {
				t.Fatalf("key %q: status %d data %s, want 401 without data", apiKey, res.Code, env.Data)
			}
			return
		}
		if rt.path != pathCreate || res.Code != http.StatusOK {
			return
		}
		// Tenant isolation: the owner retrieves what it created, the other
		// tenant gets 404 for the same id.
		var d struct{ ID string }
		if err := json.Unmarshal(env.Data, &d); err != nil || uuid.Validate(d.ID) != nil {
			t.Fatalf("create answered data %s", env.Data)
		}
		idBody := []byte(`{"id":"` + d.ID + `"}`)
		other := otherKey
		if apiKey == otherKey {
			other = demoKey
		}
		if r, _ := fuzzDo(t, h, http.MethodPost, pathRetrieve, apiKey, "", idBody); r.Code != http.StatusOK {
			t.Fatalf("owner cannot retrieve %s: %d", d.ID, r.Code)
		}
		if r, env := fuzzDo(t, h, http.MethodPost, pathRetrieve, other, "", idBody); r.Code != http.StatusNotFound || len(env.Data) != 0 {
			t.Fatalf("other tenant retrieves %s: %d %s", d.ID, r.Code, env.Data)
		}
	})
}

// fuzzEnvelope is the GES answer envelope.
type fuzzEnvelope struct {
	Status *struct {
		Code    *int    `json:"code"`
		Message *string `json:"message"`
		CorrID  string  `json:"corrId"`
	} `json:"status"`
	Data json.RawMessage `json:"data"`
}

// fuzzDo serves one request in-process and checks the envelope every answer must have.
func fuzzDo(t *testing.T, h http.Handler, method, path, key, ccid string, body []byte) (*httptest.ResponseRecorder, fuzzEnvelope) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://lab"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodGet {
		req.URL.RawQuery = string(body)
	} else {
		req.Body = http.NoBody
		if len(body) > 0 {
			req.Body, req.ContentLength = readCloser{bytes.NewReader(body)}, int64(len(body))
		}
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	if ccid != "" {
		req.Header["Ccid"] = []string{ccid}
	}
	res := httptest.NewRecorder()
	h.ServeHTTP(res, req)
	var env fuzzEnvelope
	if err := json.Unmarshal(res.Body.Bytes(), &env); err != nil || env.Status == nil || env.Status.Code == nil ||
		env.Status.Message == nil {
		t.Fatalf("%s %s: %d without the envelope: %q", method, path, res.Code, res.Body.String())
	}
	if res.Code >= 500 {
		t.Fatalf("%s %s: server error %d %q", method, path, res.Code, *env.Status.Message)
	}
	want := res.Code
	if want == http.StatusOK {
		want = 0
	}
	if *env.Status.Code != want || *env.Status.Message == "" || env.Status.CorrID == "" ||
		env.Status.CorrID != res.Header().Get("X-Correlation-Id") {
		t.Fatalf("%s %s: envelope %+v does not match status %d", method, path, *env.Status, res.Code)
	}
	return res, env
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
