package ges

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

// fakePlatformServer speaks contracts 1, 3, 4 and 6 with one valid token at a time.
func fakePlatformServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var issued atomic.Int32
	valid := func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer tok-"+string('0'+issued.Load())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /auth/v3/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "ges_client" || secret != "ges-secret" || r.FormValue("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		n := issued.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-" + string('0'+n), "token_type": "bearer", "expires_in": 3600})
	})
	envelope := func(w http.ResponseWriter, data any) {
		json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"code": 0}, "data": data})
	}
	mux.HandleFunc("GET /environment/v3/api-keys/{key}", func(w http.ResponseWriter, r *http.Request) {
		if !valid(r) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.PathValue("key") != demoKey {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"code": 404, "message": "unknown"}})
			return
		}
		envelope(w, map[string]any{"apiKey": demoKey, "contactCenterId": string(demoTenant)})
	})
	mux.HandleFunc("GET /configuration/v3/callback-services", func(w http.ResponseWriter, r *http.Request) {
		if !valid(r) || r.URL.Query().Get("ccid") != string(demoTenant) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"status":{"code":0},"data":{"services":[{"name":"CB_Support","virtualQueue":"VQ_Support","timeZone":"UTC",
			"businessHours":"24x7","slotDurationMin":30,"capacityPerSlot":5,"immediateEnabled":true,"scheduledEnabled":true,
			"maxDialAttempts":2,"retryDelaySec":20,"dialInNumber":"+18005550101"},{"name":"CB_Sales","virtualQueue":"VQ_Sales",
			"timeZone":"America/New_York","businessHours":{"weekly":{"mon":[{"open":"08:00","close":"20:00"}]},"holidays":["2026-12-25"]}}]}}`))
	})
	mux.HandleFunc("GET /configuration/v3/callin-groups", func(w http.ResponseWriter, r *http.Request) {
		envelope(w, map[string]any{"groups": []any{map[string]any{"name": "technical_help", "accessNumber": "+18005550199",
			"accessCodeEnabled": true, "expirySec": 600}}})
	})
	mux.HandleFunc("POST /statistics/v3/operations/get-statistic-ex", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data struct{ Statistics []StatisticRequest }
		}
		json.NewDecoder(r.Body).Decode(&body)
		out := []Statistic{}
		for _, s := range body.Data.Statistics {
			// As the GWS emulator: a statistic it does not know is the caller's 400; a queue it
			// cannot read is its own 503.
			if s.Name == "Nope" {
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"code": 400,
					"message": `unknown statistic "Nope" (known: CurrentReadyAgents)`}})
				return
			}
			if s.ObjectID == "VQ_Down" {
				w.WriteHeader(http.StatusServiceUnavailable)
				json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"code": 503, "message": "statistics unavailable"}})
				return
			}
			out = append(out, Statistic{Name: s.Name, ObjectID: s.ObjectID, ObjectType: s.ObjectType, Timestamp: 1, Value: 2})
		}
		envelope(w, map[string]any{"statistics": out})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &issued
}

func TestHTTPPlatform(t *testing.T) {
	before := goleak.IgnoreCurrent() // taken now: taken at cleanup it would ignore every leak
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	srv, issued := fakePlatformServer(t)
	p := NewHTTPPlatform(srv.URL, "ges_client", "ges-secret", srv.Client())
	ctx := context.Background()
	ten, err := p.TenantForAPIKey(ctx, demoKey)
	if err != nil || ten != demoTenant {
		t.Fatalf("TenantForAPIKey = %q %v", ten, err)
	}
	if _, err := p.TenantForAPIKey(ctx, "nope"); !errors.Is(err, ErrUnknownAPIKey) {
		t.Fatalf("unknown key err = %v", err)
	}
	// A revoked token (the platform issued a new one elsewhere) is replaced once.
	issued.Add(1)
	svcs, err := p.Services(ctx, demoTenant)
	if err != nil || len(svcs) != 2 || svcs[0].BusinessHours.Weekly["sun"][0].Close != "24:00" ||
		svcs[1].BusinessHours.Holidays[0] != "2026-12-25" {
		t.Fatalf("Services = %+v %v", svcs, err)
	}
	if issued.Load() != 3 {
		t.Fatalf("tokens issued = %d, want 3 (one refresh after 401)", issued.Load())
	}
	groups, err := p.CallInGroups(ctx, demoTenant)
	if err != nil || len(groups) != 1 || !groups[0].AccessCodeEnabled {
		t.Fatalf("CallInGroups = %+v %v", groups, err)
	}
	stats, err := p.Statistics(ctx, demoTenant, []StatisticRequest{{ObjectID: "VQ_Sales", ObjectType: "Queue", Name: StatReadyAgents}})
	if err != nil || len(stats) != 1 || stats[0].Value != 2 {
		t.Fatalf("Statistics = %+v %v", stats, err)
	}
	_, err = p.Statistics(ctx, demoTenant, []StatisticRequest{{ObjectID: "VQ_Sales", ObjectType: "Queue", Name: "Nope"}})
	if !errors.Is(err, ErrInvalid) || err.Error() != `unknown statistic "Nope" (known: CurrentReadyAgents)` {
		t.Fatalf("statistic GWS refuses: err = %v, want ErrInvalid with GWS's reason", err)
	}
	_, err = p.Statistics(ctx, demoTenant, []StatisticRequest{{ObjectID: "VQ_Down", ObjectType: "Queue", Name: StatReadyAgents}})
	if err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("GWS failing: err = %v, want an outage, not ErrInvalid", err)
	}
	bad := NewHTTPPlatform(srv.URL, "ges_client", "wrong", srv.Client())
	if _, err := bad.Services(ctx, demoTenant); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("wrong secret err = %v", err)
	}
	srv.Client().CloseIdleConnections()
}
