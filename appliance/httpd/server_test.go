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
