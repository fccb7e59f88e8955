package appliance_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/cxlab/cxlab/appliance/config"
	"github.com/cxlab/cxlab/appliance/freeport"
)

// freePort is a loopback TCP port free now and below the ephemeral range,
// where no other test's connection takes it before a child process binds it.
func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1", freeport.TCP, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// redisServer runs Debian's redis-server on port until stopped.
func redisServer(t *testing.T, bin string, port int) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not listen on %d", port)
		}
		time.Sleep(10 * time.Millisecond) // waiting for a child process to bind; bounded by the deadline
	}
}

type readyz struct {
	Status     string `json:"status"`
	Components []struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
		Error string `json:"error"`
	} `json:"components"`
}

func waitReadyz(t *testing.T, url string, wantCode int, within time.Duration) readyz {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var r readyz
		code := apptest.GetJSON(t, url, &r)
		if code == wantCode {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz stayed %d, want %d: %+v", code, wantCode, r)
		}
		time.Sleep(50 * time.Millisecond) // polling readiness, bounded
	}
}

func TestExternalRedisOutageShowsInReadyzAndRecovers(t *testing.T) {
	bin := apptest.NeedTool(t, "redis-server", "redis-server")
	port := freePort(t)
	stop := redisServer(t, bin, port)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	s := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Redis.URL = url }))
	if s.Endpoints.RedisURL != url {
		t.Fatalf("endpoints redis_url = %q, want the external %q", s.Endpoints.RedisURL, url)
	}
	stop()
	r := waitReadyz(t, s.Endpoints.ReadyURL, http.StatusServiceUnavailable, 10*time.Second)
	var redisErr string
	for _, c := range r.Components {
		if c.Name == "redis" {
			redisErr = c.Error
		}
	}
	if !strings.Contains(redisErr, "127.0.0.1") {
		t.Errorf("/readyz does not say redis is down: %+v", r)
	}
	redisServer(t, bin, port)
	waitReadyz(t, s.Endpoints.ReadyURL, http.StatusOK, 15*time.Second)
}

func TestExternalRedisUnreachableAtStartIsAClearError(t *testing.T) {
	cfg := apptest.Config()
	cfg.Redis.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", freePort(t))
	_, err := startErr(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "can't reach Redis at redis://127.0.0.1") {
		t.Fatalf("err = %v", err)
	}
}

func TestExternalPostgres(t *testing.T) {
	dsn := os.Getenv("CXLAB_TEST_POSTGRES_URL")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CXLAB_TEST_POSTGRES_URL is not set (.ci/run sets it with scripts/ci-postgres.sh)")
		}
		t.Skip("set CXLAB_TEST_POSTGRES_URL (scripts/ci-postgres.sh starts Debian's PostgreSQL and prints one)")
	}
	// A fresh database per run keeps the test repeatable on a shared server.
	admin, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect to the external PostgreSQL: %v", err)
	}
	db := fmt.Sprintf("cxlab_t%d", time.Now().UnixNano())
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		_ = admin.Close(context.Background())
	})
	cc, _ := pgx.ParseConfig(dsn)
	url := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cc.User, cc.Password, cc.Host, cc.Port, db)
	s := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Postgres.URL = url }))
	if strings.Contains(s.Endpoints.PostgresURL, ":"+cc.Password+"@") {
		t.Errorf("endpoints show the external password: %s", s.Endpoints.PostgresURL)
	}
	// The tenant schema was migrated and seeded into the external database.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM tenant.contact_centers").Scan(&n); err != nil || n < 1 {
		t.Fatalf("external database not migrated/seeded: n=%d err=%v", n, err)
	}
	// No embedded PostgreSQL ran: its data dir was never created.
	if _, err := os.Stat(s.DataDir() + "/postgres"); !os.IsNotExist(err) {
		t.Errorf("embedded postgres dir exists while using an external one")
	}
}

func TestExternalPostgresUnreachableAtStartIsAClearError(t *testing.T) {
	cfg := apptest.Config()
	cfg.Postgres.URL = fmt.Sprintf("postgres://u:secretpw@127.0.0.1:%d/db", freePort(t))
	_, err := startErr(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "postgres") || strings.Contains(err.Error(), "secretpw") {
		t.Fatalf("err = %v (want a clear error without the password)", err)
	}
}

// Two appliances on one host sharing a Redis are two ORS consumers of
// NewCallbackStream (named by host and data dir). Named by the host alone
// they were one: a restart of either re-read the other's pending callbacks,
// which both then dialled, and a kill -9 left them stranded.
func TestSharedRedisHasOneORSConsumerPerProcessAndOneClock(t *testing.T) {
	bin := apptest.NeedTool(t, "redis-server", "redis-server")
	port := freePort(t)
	redisServer(t, bin, port)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	shared := apptest.WithConfig(func(c *config.Config) { c.Redis.URL = url })
	a := apptest.Start(t, shared)
	b := apptest.Start(t, shared)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	var names []string
	deadline := time.Now().Add(20 * time.Second)
	for len(names) < 2 {
		cs, err := rdb.XInfoConsumers(t.Context(), "NewCallbackStream", "ors").Result()
		names = names[:0]
		if err == nil {
			for _, c := range cs {
				names = append(names, c.Name)
			}
		}
		if len(names) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ORS consumers of the shared stream: %v (err %v), want two", names, err)
		}
		time.Sleep(50 * time.Millisecond) // polling Redis for the consumers' first reads, bounded
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("ORS consumers: %v, want two distinct", names)
	}

	// They share the lab clock: moved on one, it moves on the other, so a
	// scheduled callback comes due for both monitors at once.
	a.Clock().Advance(3 * time.Hour)
	for deadline := time.Now().Add(10 * time.Second); b.Clock().Offset() != 3*time.Hour; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the other appliance's lab clock is %s ahead, want 3h", b.Clock().Offset())
		}
	}
}
