package httpd_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cxlab/cxlab/appliance/httpd"
)

func start(t *testing.T, cfg httpd.Config) *httpd.Server {
	t.Helper()
	s, err := httpd.New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		func(context.Context) (bool, any) { return true, nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// TestUnfinishedBodyIsCutOff: a request whose body never arrives in full is
// answered or dropped once the read timeout passes, instead of holding its
// connection and handler for ever; a long-poll whose request was read in
// full is held past that timeout.
func TestUnfinishedBodyIsCutOff(t *testing.T) {
	const limit = 300 * time.Millisecond
	s := start(t, httpd.Config{Host: "127.0.0.1", ReadTimeout: limit})
	s.Echo().POST("/echo", func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return c.String(http.StatusRequestTimeout, "body read: "+err.Error())
		}
		return c.String(http.StatusOK, string(b))
	})
	s.Echo().GET("/hold", func(c echo.Context) error {
		select {
		case <-time.After(3 * limit):
			return c.String(http.StatusOK, "held")
		case <-c.Request().Context().Done():
			return nil
		}
	})
	u, _ := url.Parse(s.URL())

	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"id\":"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * limit))
	got, err := io.ReadAll(conn) // the server answers and closes, or just closes
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("request with an unfinished body still open after %s (read %q)", 10*limit, got)
	}

	res, err := http.Get(s.URL() + "/hold")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "held") {
		t.Fatalf("long-poll past the read timeout: %d %q", res.StatusCode, body)
	}
}

// TestCORS: pages served from this machine, on any port, and the configured
// origins may call the APIs from a browser with credentials (a preflight is
// answered); any other origin gets no CORS headers, so the browser refuses.
func TestCORS(t *testing.T) {
	s := start(t, httpd.Config{Host: "127.0.0.1", CORSOrigins: []string{"https://app.example.com"}})
	s.Echo().POST("/auth/v3/oauth/token", func(c echo.Context) error {
		c.Response().Header().Set("X-GWS-User", "jwt")
		return c.JSON(http.StatusOK, map[string]string{"access_token": "t"})
	})
	do := func(method, origin string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, s.URL()+"/auth/v3/oauth/token", nil)
		req.Header.Set("Origin", origin)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res
	}
	for _, origin := range []string{"http://localhost:3000", "http://127.0.0.1:5173", "https://app.example.com"} {
		pre := do(http.MethodOptions, origin, map[string]string{"Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization,content-type"})
		if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != origin ||
			pre.Header.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Errorf("preflight from %s: %d %v", origin, pre.StatusCode, pre.Header)
		}
		res := do(http.MethodPost, origin, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Access-Control-Allow-Origin") != origin ||
			!strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "X-GWS-User") {
			t.Errorf("POST from %s: %d %v", origin, res.StatusCode, res.Header)
		}
	}
	for _, origin := range []string{"https://evil.example", "http://localhost.evil.example", "null"} {
		if res := do(http.MethodPost, origin, nil); res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("origin %s admitted: %v", origin, res.Header)
		}
	}
}

// TestDNSRebindingIsRefused: a server on loopback answers to addresses,
// localhost names and the machine's own name; a request carrying another
// Host (a hostile page's name that its DNS points at 127.0.0.1) gets 421
// before any route runs.
func TestDNSRebindingIsRefused(t *testing.T) {
	s := start(t, httpd.Config{Host: "127.0.0.1"})
	reached := 0
	s.Echo().POST("/auth/v3/ops/emulator/reset-demo", func(c echo.Context) error { reached++; return c.NoContent(http.StatusOK) })
	u, _ := url.Parse(s.URL())
	try := func(host string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/auth/v3/ops/emulator/reset-demo", nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	for _, h := range []string{u.Host, "localhost:" + u.Port(), "app.localhost:" + u.Port(), "[::1]:" + u.Port()} {
		if code := try(h); code != http.StatusOK {
			t.Errorf("Host %s: %d, want 200", h, code)
		}
	}
	for _, h := range []string{"evil.example:" + u.Port(), "evil.example", "localhost.evil.example"} {
		if code := try(h); code != http.StatusMisdirectedRequest {
			t.Errorf("Host %s: %d, want 421", h, code)
		}
	}
	if reached != 4 {
		t.Errorf("the route ran %d times, want 4 (only for trusted hosts)", reached)
	}
}
