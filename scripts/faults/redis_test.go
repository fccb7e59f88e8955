package faults

import (
	"context"
	"fmt"
	"github.com/cxlab/cxlab/appliance/apptest"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// redisServer is one redis-server child without persistence.
type redisServer struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startRedis runs redis-server on port (no RDB, no AOF) and waits until it
// answers PING.
func startRedis(t *testing.T, bin string, port int) *redisServer {
	t.Helper()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	r := &redisServer{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-r.exited })
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer rdb.Close()
	waitUntil(t, 10*time.Second, "redis-server to answer PING", func() bool {
		select {
		case <-r.exited:
			t.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err() == nil
	})
	return r
}

// kill stops the server with SIGKILL and waits.
func (r *redisServer) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// TestFaultExternalRedisRestarted runs cxlab on an external redis-server,
// books scheduled callbacks, then restarts redis-server empty (no
// persistence) under light create traffic. GES must rebuild its due index
// from PostgreSQL: every acknowledged callback is indexed again, a callback
// due soon after the restart still runs, and none is lost.
func TestFaultExternalRedisRestarted(t *testing.T) {
	needFaults(t)
	bin := apptest.NeedTool(t, "redis-server", "redis-server")
	port := freePort(t)
	rs := startRedis(t, bin, port)
	redisURL := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	dir := labDir(t)
	l := startLab(t, dir, "--redis-url", redisURL)
	g := newGES(l.ep, 8)
	defer g.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Far-ahead bookings (they must be indexed again) and three due soon after
	// the restart (they must still run).
	const far = 200
	var farIDs, soonIDs []string
	for i := range int64(far) {
		desired := time.Now().Add(24*time.Hour + time.Duration(i)*7*time.Minute)
		id, code, err := g.create(ctx, phone(i), &desired)
		if err != nil || code != http.StatusOK {
			t.Fatalf("create %d: %d %v", i, code, err)
		}
		farIDs = append(farIDs, id)
	}
	soonAt := time.Now().Add(25 * time.Second)
	for i := range int64(3) {
		id, code, err := g.create(ctx, phone(50000+i), &soonAt)
		if err != nil || code != http.StatusOK {
			t.Fatalf("create due-soon %d: %d %v", i, code, err)
		}
		soonIDs = append(soonIDs, id)
	}

	// Light traffic across the restart.
	var (
		n       atomic.Int64
		mu      sync.Mutex
		acked   []string
		refused = map[int]int{}
		errs    atomic.Int64
		wg      sync.WaitGroup
	)
	n.Store(1000)
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-lctx.Done():
					return
				case <-tick.C:
				}
				i := n.Add(1)
				desired := time.Now().Add(48*time.Hour + time.Duration(i)*time.Minute)
				id, code, err := g.create(lctx, phone(i), &desired)
				mu.Lock()
				switch {
				case err != nil:
					if lctx.Err() == nil {
						errs.Add(1)
					}
				case code == http.StatusOK:
					acked = append(acked, id)
				default:
					refused[code]++
				}
				mu.Unlock()
			}
		}()
	}

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer rdb.Close()
	before, err := rdb.ZCard(ctx, "ges:{idx}:due").Result()
	if err != nil {
		t.Fatal(err)
	}
	rs.kill()
	restartedAt := time.Now()
	waitUntil(t, 15*time.Second, "/readyz to report redis not ready", func() bool {
		_, ready, _, err := readyz(ctx, l.ep.ReadyURL, "redis")
		return err == nil && !ready
	})
	startRedis(t, bin, port)
	tail, err := tailStream(redisURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.stop()
	var readyAfter time.Duration
	waitUntil(t, 30*time.Second, "/readyz to be ready again", func() bool {
		ok, _, _, err := readyz(ctx, l.ep.ReadyURL, "redis")
		readyAfter = time.Since(restartedAt)
		return err == nil && ok
	})
	var rebuiltAfter time.Duration
	waitUntil(t, 30*time.Second, "the due index to hold the far-ahead callbacks again", func() bool {
		scores, err := rdb.ZMScore(ctx, "ges:{idx}:due", farIDs...).Result()
		if err != nil {
			return false
		}
		for _, s := range scores {
			if s == 0 {
				return false
			}
		}
		rebuiltAfter = time.Since(restartedAt)
		return true
	})
	waitUntil(t, 90*time.Second, "the due-soon callbacks to be started", func() bool {
		starts, _ := tail.snapshot()
		for _, id := range soonIDs {
			if starts[id] == 0 {
				return false
			}
		}
		return true
	})
	stopLoad()
	wg.Wait()
	mu.Lock()
	traffic := append([]string(nil), acked...)
	mu.Unlock()

	// Every acknowledged callback exists; every scheduled one is indexed.
	all := append(append(append([]string(nil), farIDs...), soonIDs...), traffic...)
	missing, states := g.retrieveAll(ctx, all, 8)
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged callbacks are missing, e.g. %v", len(missing), len(all), missing[:min(5, len(missing))])
	}
	var unindexed []string
	waitUntil(t, 30*time.Second, "every acknowledged scheduled callback to be indexed", func() bool {
		unindexed = unindexed[:0]
		ids := append(append([]string(nil), farIDs...), traffic...)
		scores, err := rdb.ZMScore(ctx, "ges:{idx}:due", ids...).Result()
		if err != nil {
			return false
		}
		for i, s := range scores {
			if s == 0 {
				unindexed = append(unindexed, ids[i])
			}
		}
		return len(unindexed) == 0
	})
	starts, _ := tail.snapshot()
	twice := 0
	for _, c := range starts {
		if c > 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Errorf("%d callbacks started twice after the index rebuild", twice)
	}
	// Slot counters were lost with Redis too: report any slot booked beyond its
	// capacity (5 per 30 minutes on CB_Support) by creates racing the rebuild.
	conn, err := pgx.Connect(ctx, l.ep.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var overbooked int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT slot_start FROM ges.callbacks
		WHERE service = 'CB_Support' AND slot_start IS NOT NULL GROUP BY slot_start HAVING count(*) > 5) s`).Scan(&overbooked); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	refusedCopy := fmt.Sprint(refused)
	mu.Unlock()
	t.Logf("SUMMARY external redis restarted: %d indexed before; %d far-ahead + 3 due-soon + %d created under traffic acknowledged (refused %s, %d transport errors); /readyz ready %s after the restart, index rebuilt within %s, due-soon started, %d missing, %d started twice, %d overbooked slots, states %v",
		before, far, len(traffic), refusedCopy, errs.Load(), readyAfter.Round(time.Millisecond), rebuiltAfter.Round(time.Millisecond), len(missing), twice, overbooked, states)
	if code := stopLab(t, l); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
