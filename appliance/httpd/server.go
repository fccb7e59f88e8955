// Package httpd is the appliance's one HTTP(S) server: console, APIs and
// emulators share it, routed by path; it also serves /healthz, /readyz and
// /metrics.
package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config of the HTTP server.
type Config struct {
	Host    string           // bind address
	Port    int              // 0 = free port
	Setting string           // flag naming the port in errors, e.g. "--http-port"
	TLS     *tls.Certificate // nil serves plain HTTP
	// ReadTimeout bounds reading a whole request, body included, so a client
	// that never finishes its body does not hold a connection and a handler
	// for ever. Long-polls are not affected: the limit ends once the body
	// is read. Default 30s.
	ReadTimeout time.Duration
	// CORSOrigins are the web origins, besides this machine's, whose pages
	// may call the APIs from a browser (see allowOrigin).
	CORSOrigins []string
}

// ReadyFunc reports overall readiness and a per-component body for /readyz.
type ReadyFunc func(ctx context.Context) (ready bool, body any)

// Server owns the HTTP listener and the echo router.
type Server struct {
	log  *slog.Logger
	e    *echo.Echo
	ln   net.Listener
	srv  *http.Server
	url  string
	done chan error
}

// New opens the listener at once (so the base URL is known to every component
// before any of them starts) and builds the router with the health routes.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry, ready ReadyFunc) (*Server, error) {
	ln, err := Listen(cfg.Host, cfg.Port, cfg.Setting)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cfg.TLS}, MinVersion: tls.VersionTLS12})
	}
	port := ln.Addr().(*net.TCPAddr).Port
	host := cfg.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(slogWriter{log})
	if ip := net.ParseIP(cfg.Host); ip != nil && ip.IsLoopback() {
		e.Pre(loopbackHosts(os.Hostname))
	}
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("handler panic", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	// Browser apps under development (a page on localhost:3000 signing in at
	// GAuth, long-polling the gateway) call across origins, with cookies
	// (the JS library sets withCredentials for the gateway's sticky cookie).
	e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOriginFunc:  allowOrigin(cfg.CORSOrigins),
		AllowCredentials: true,
		ExposeHeaders:    []string{"X-GWS-User", "Pragma", "Location"},
		MaxAge:           600,
	}))
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "alive"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		ok, body := ready(c.Request().Context())
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		return c.JSON(code, body)
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	// Go profiles of the running appliance, for clients on this machine only.
	e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)), loopbackOnly)
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)), loopbackOnly)
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)), loopbackOnly)
	s := &Server{
		log: log, e: e, ln: ln,
		url: scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)),
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	s.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: cfg.ReadTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return s, nil
}

// Echo is the router components mount their routes on.
func (s *Server) Echo() *echo.Echo { return s.e }

// URL is the base URL, e.g. http://127.0.0.1:8470.
func (s *Server) URL() string { return s.url }

// Name implements the appliance component.
func (s *Server) Name() string { return "http" }

// Start serves on the listener opened by New.
func (s *Server) Start(context.Context) error {
	s.done = make(chan error, 1)
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return nil
}

// Stop shuts down gracefully within ctx, then closes what is left.
func (s *Server) Stop(ctx context.Context) error {
	if s.done == nil {
		return s.ln.Close()
	}
	// In-flight requests get at most 2 s of the stop budget, then their
	// connections are closed: one request stuck on a broken store connection
	// must not leave the stores no time to stop.
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		_ = s.srv.Close()
	}
	serveErr := <-s.done
	s.done = nil
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown http: %w", err)
	}
	return serveErr
}

// allowOrigin admits pages served from this machine (http or https on
// localhost, 127.0.0.1 or [::1], any port) and the configured origins.
func allowOrigin(extra []string) func(string) (bool, error) {
	allowed := map[string]bool{}
	for _, o := range extra {
		allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return func(origin string) (bool, error) {
		if allowed[strings.ToLower(origin)] {
			return true, nil
		}
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" {
			return false, nil
		}
		h := u.Hostname()
		ip := net.ParseIP(h)
		return strings.EqualFold(h, "localhost") || (ip != nil && ip.IsLoopback()), nil
	}
}

// loopbackHosts refuses DNS rebinding on a server bound to loopback: a page
// from a hostile name that its DNS points at 127.0.0.1 reaches this server
// with that name as Host, and could otherwise drive the admin routes (whose
// credentials are public demo values) or read the console's secrets. Every
// client on this machine can use an address, localhost (or a *.localhost
// name) or the machine's own name; other names get 421 Misdirected Request.
func loopbackHosts(hostname func() (string, error)) echo.MiddlewareFunc {
	own, _ := hostname()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Host
			if host, _, err := net.SplitHostPort(h); err == nil {
				h = host
			}
			h = strings.ToLower(strings.Trim(h, "[]"))
			if h == "" || h == "localhost" || strings.HasSuffix(h, ".localhost") || net.ParseIP(h) != nil ||
				(own != "" && strings.EqualFold(h, own)) {
				return next(c)
			}
			return c.String(http.StatusMisdirectedRequest, fmt.Sprintf(
				"CX Lab on loopback answers to 127.0.0.1 or localhost, not to Host %q (DNS-rebinding protection)\n", c.Request().Host))
		}
	}
}

// loopbackOnly refuses requests whose peer is not on this machine.
func loopbackOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return c.JSON(http.StatusForbidden, map[string]string{"error": "profiles are served to loopback clients only"})
		}
		return next(c)
	}
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(p))
	return len(p), nil
}
