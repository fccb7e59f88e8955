package ges

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// benchHandler returns the env's echo with the API mounted, served in-process.
func benchHandler(e *env) *echo.Echo {
	ech := echo.New()
	e.svc.Mount(ech)
	return ech
}

// runParallel32 runs op from 32 goroutines b.N times in all and reports ops/s and p99.
func runParallel32(b *testing.B, op func(i int64) int) {
	var n atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/32+1)
			for {
				i := n.Add(1)
				if i > int64(b.N) {
					break
				}
				t0 := time.Now()
				if code := op(i); code != http.StatusOK {
					b.Errorf("status %d", code)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkCreate books immediate callbacks through the HTTP handler with 32
// concurrent clients (embedded PostgreSQL, miniredis; the monitor dispatches them meanwhile).
func BenchmarkCreate(b *testing.B) {
	e := newEnv(b, withConfig(Config{TenantCreatesPerSec: 1e6, TenantCreateBurst: 1e6}))
	h := benchHandler(e)
	runParallel32(b, func(i int64) int {
		body := fmt.Sprintf(`{"serviceName":"CB_Support","phoneNumber":"+1303%07d","userData":{"order":"A-%d"}}`, i, i)
		req := httptest.NewRequest(http.MethodPost, pathCreate, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", demoKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	})
}

// BenchmarkRetrieve reads callbacks through the HTTP handler with 32 concurrent clients.
func BenchmarkRetrieve(b *testing.B) {
	e := newEnv(b, withConfig(Config{TenantCreatesPerSec: 1e6, TenantCreateBurst: 1e6}))
	ids := make([]CallbackID, 256)
	for i := range ids {
		ids[i] = e.create(map[string]any{"serviceName": "CB_Support", "phoneNumber": fmt.Sprintf("+1303%07d", i)})
	}
	h := benchHandler(e)
	runParallel32(b, func(i int64) int {
		req := httptest.NewRequest(http.MethodPost, pathRetrieve, strings.NewReader(`{"id":"`+string(ids[i%256])+`"}`))
		req.Header.Set("X-API-Key", demoKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	})
}
