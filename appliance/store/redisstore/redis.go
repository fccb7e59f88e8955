// Package redisstore provides the appliance's Redis: an embedded miniredis
// serving real RESP on loopback, or a client of an external Redis. Domain code
// only sees redis.UniversalClient.
package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/config"
	"github.com/cxlab/cxlab/appliance/httpd"
)

// Store is a Redis the appliance can start, stop and hand out clients of.
type Store interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Ready(ctx context.Context) error
	// Client is the shared client; it exists from construction on and connects
	// once the store has started.
	Client() redis.UniversalClient
	// URL is the redis:// URL for users (password redacted for external stores).
	URL() string
}

// Embedded runs miniredis on a TCP port for users' tools. The appliance's own
// client reaches it over in-memory connections handed straight to the server
// (see memPipe), which still speak RESP but make no system call. miniredis
// does not expire keys by wall clock on its own, so its clock is driven from
// the appliance clock.
type Embedded struct {
	host    string
	port    int
	setting string
	clk     clock.Clock
	log     *slog.Logger

	mu     sync.Mutex
	m      *miniredis.Miniredis
	client *redis.Client
	stop   chan struct{}
	wg     sync.WaitGroup
}

// NewEmbedded returns an embedded Redis bound to host:port when started. Its
// client exists at once (components take it at construction) and connects to
// the running server through an in-memory connection per pooled connection.
func NewEmbedded(host string, port int, setting string, clk clock.Clock, log *slog.Logger) *Embedded {
	e := &Embedded{host: host, port: port, setting: setting, clk: clk, log: log}
	e.client = redis.NewClient(&redis.Options{
		Addr:     net.JoinHostPort(host, strconv.Itoa(port)),
		PoolSize: 64,
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			e.mu.Lock()
			m := e.m
			e.mu.Unlock()
			if m == nil {
				return nil, fmt.Errorf("embedded redis is not running")
			}
			client, server := memPipe()
			m.Server().ServeConn(server)
			return client, nil
		},
	})
	return e
}

// Name implements the component.
func (e *Embedded) Name() string { return "redis" }

// Start listens and starts the clock driver.
func (e *Embedded) Start(ctx context.Context) error {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(net.JoinHostPort(e.host, strconv.Itoa(e.port))); err != nil {
		return httpd.ListenError(e.setting, e.port, err)
	}
	m.ClockTTL(true)
	m.SetTime(e.clk.Now())
	e.mu.Lock()
	e.m, e.stop = m, make(chan struct{})
	e.mu.Unlock()
	e.wg.Add(1)
	go e.driveClock(e.stop)
	return e.client.Ping(ctx).Err()
}

// driveClock keeps miniredis' notion of now at the appliance clock, so TTLs
// expire by wall time and jump when an operator moves the lab clock.
func (e *Embedded) driveClock(stop <-chan struct{}) {
	defer e.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			e.Sync()
		}
	}
}

// Sync sets miniredis' clock to the appliance clock now (called on clock moves).
func (e *Embedded) Sync() {
	e.mu.Lock()
	m := e.m
	e.mu.Unlock()
	if m != nil {
		m.SetTime(e.clk.Now())
	}
}

// Stop closes the server; the client stays usable if the store starts again
// and is closed with the appliance. Idempotent.
func (e *Embedded) Stop(context.Context) error {
	e.mu.Lock()
	m, stop := e.m, e.stop
	e.m, e.stop = nil, nil
	e.mu.Unlock()
	if stop != nil {
		close(stop)
		e.wg.Wait()
	}
	if m != nil {
		m.Close()
	}
	return nil
}

// Ready pings the server.
func (e *Embedded) Ready(ctx context.Context) error {
	return e.client.Ping(ctx).Err()
}

// Client returns the shared client (valid from construction on).
func (e *Embedded) Client() redis.UniversalClient { return e.client }

// URL is redis://host:port/0.
func (e *Embedded) URL() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		return ""
	}
	return "redis://" + e.m.Addr() + "/0"
}

// CommandCount is the number of commands served so far (for benchmarks).
func (e *Embedded) CommandCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		return 0
	}
	return e.m.CommandCount()
}

// External is a client of a Redis the user runs.
type External struct {
	url    string
	client *redis.Client
}

// NewExternal parses the URL; the connection is made in Start.
func NewExternal(rawURL string) (*External, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse --redis-url %s: %w", config.RedactURL(rawURL), err)
	}
	opt.PoolSize = 64
	// While the server is down, every command would spend about 2.5 s on
	// go-redis' default dial retries (5 per attempt, 100 ms apart, 4
	// attempts): a create, which makes two, answered after 5 s. A refused
	// connection fails at once; two dials per attempt and three attempts
	// still ride out a restart's blip.
	opt.DialerRetries, opt.DialerRetryTimeout, opt.MaxRetries = 2, 50*time.Millisecond, 2
	return &External{url: rawURL, client: redis.NewClient(opt)}, nil
}

// Name implements the component.
func (x *External) Name() string { return "redis" }

// Start checks that the server answers within a bounded time.
func (x *External) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := x.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("can't reach Redis at %s: %w", config.RedactURL(x.url), err)
	}
	return nil
}

// Stop closes the client.
func (x *External) Stop(context.Context) error {
	_ = x.client.Close()
	return nil
}

// Ready pings; /readyz shows an outage and recovers when the server returns.
func (x *External) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := x.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", config.RedactURL(x.url), err)
	}
	return nil
}

// Client returns the shared client.
func (x *External) Client() redis.UniversalClient { return x.client }

// URL is the user's URL with the password redacted.
func (x *External) URL() string { return config.RedactURL(x.url) }

var (
	_ Store = (*Embedded)(nil)
	_ Store = (*External)(nil)
)

// RouteLibraryLogs sends go-redis's own log lines (dial retries, which
// /readyz already reports) to slog at debug level instead of stderr. go-redis
// keeps its logger process-wide, so main and test harnesses call this once.
func RouteLibraryLogs(l *slog.Logger) {
	redis.SetLogger(libLogger{l})
}

type libLogger struct{ l *slog.Logger }

func (g libLogger) Printf(ctx context.Context, format string, v ...any) {
	g.l.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "redis-client")
}
