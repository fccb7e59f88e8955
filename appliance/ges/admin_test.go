package ges

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestAdminListExportRecreate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	at := e.clk.Now().Add(3 * time.Hour)
	a := e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": "+12025550105", "desiredTime": at.Format(time.RFC3339)})
	b := e.create(map[string]any{"serviceName": "CB_Sales", "phoneNumber": "+12025550106", "userData": map[string]any{"k": "v"}})
	waitFor(t, "queued", func() bool { return e.retrieve(b)["callbackState"] == "QUEUED" })

	page, err := e.svc.List(ctx, ListQuery{Tenant: demoTenant, States: []State{StateScheduled}})
	if err != nil || page.Total != 1 || page.Items[0].ID != a {
		t.Fatalf("SCHEDULED filter = %+v %v", page, err)
	}
	// A number as people write it finds the E.164 one.
	for _, q := range []string{"0106", "+1 (202) 555-0106", "(202) 555-0106", "202.555.0106"} {
		page, _ = e.svc.List(ctx, ListQuery{Tenant: demoTenant, Search: q})
		if page.Total != 1 || page.Items[0].ID != b {
			t.Fatalf("phone search %q = %+v", q, page)
		}
	}
	page, _ = e.svc.List(ctx, ListQuery{Tenant: demoTenant, Search: string(a)[:8]})
	if page.Total != 1 || page.Items[0].ID != a {
		t.Fatalf("id search = %+v", page)
	}
	page, _ = e.svc.List(ctx, ListQuery{Tenant: demoTenant, SortBy: "desiredTime", Desc: true, PageSize: 1, Page: 2})
	if page.Total != 2 || page.Pages != 2 || len(page.Items) != 1 || page.Items[0].ID != b {
		t.Fatalf("paging = %+v", page)
	}
	// A page past the last shows the last; one too large to multiply by the
	// page size used to reach PostgreSQL as a negative OFFSET.
	for _, p := range []int{3, math.MaxInt} {
		page, err = e.svc.List(ctx, ListQuery{Tenant: demoTenant, SortBy: "desiredTime", Desc: true, PageSize: 1, Page: p})
		if err != nil || page.Page != 2 || len(page.Items) != 1 || page.Items[0].ID != b {
			t.Fatalf("page %d = %+v %v, want the last page", p, page, err)
		}
	}
	if failed := e.svc.CancelByAdmin(ctx, demoTenant, a, b, "3b8f8a52-1111-4111-8111-111111111111"); len(failed) != 1 {
		t.Fatalf("bulk cancel failures = %v, want only the unknown id", failed)
	}
	n, err := e.svc.Recreate(ctx, demoTenant, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := e.svc.Get(ctx, demoTenant, n)
	if nc.PhoneNumber != "+12025550106" || nc.Service != "CB_Sales" || nc.UserData["k"] != "v" {
		t.Fatalf("recreated = %+v", nc)
	}
	// Only a finished callback: another would be a second call to the customer.
	if _, err := e.svc.Recreate(ctx, demoTenant, n, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("recreate of a %s callback: %v, want refused", nc.State, err)
	}
	var buf bytes.Buffer
	if err := e.svc.ExportCSV(ctx, ListQuery{Tenant: demoTenant, Reason: ReasonCancelledByAdmin}, &buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "id" || rows[1][2] != ReasonCancelledByAdmin || !strings.HasPrefix(rows[1][4], "'+1202") {
		t.Fatalf("csv = %v %v", rows, err)
	}
	if strings.Contains(buf.String(), `"k"`) {
		t.Fatal("export leaks user data")
	}
	// Metrics count what happened, per tenant.
	if v := metricValue(t, e, "ges_callbacks_created", "tenant", string(demoTenant)); v != 3 {
		t.Fatalf("ges_callbacks_created = %v, want 3", v)
	}
	e.api("POST", "/engagement/v3/callbacks/retrieve", map[string]any{"id": "3b8f8a52-1111-4111-8111-111111111111"})
	if v := metricValue(t, e, "ges_http_failed_requests_total", "httpCode", "404"); v != 1 {
		t.Fatalf("ges_http_failed_requests_total{404} = %v", v)
	}
}

// metricValue reads a counter from the env's registry, matching one label.
func metricValue(t *testing.T, e *env, name, label, value string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
