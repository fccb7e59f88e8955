package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/cxlab/cxlab/appliance/gateway/agent"
)

// storage counts what one callback costs in Redis operations and in bytes of
// PostgreSQL and Redis, with cxlab on a real redis-server (its own counters:
// INFO stats, INFO memory), next to seed 004's figures for GES.
func storage(ctx context.Context, bin string, _ int) ([]Row, error) {
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is needed for the storage figures (apt-get install redis-server)")
	}
	root, err := os.MkdirTemp("", "cxlab-bench-storage-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	_ = os.Chmod(root, 0o711)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rs := exec.CommandContext(ctx, redisBin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := rs.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = rs.Process.Kill(); _ = rs.Wait() }()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer func() { _ = rdb.Close() }()
	if err := waitRedis(ctx, rdb); err != nil {
		return nil, err
	}
	in, err := startInstance(ctx, bin, filepath.Join(root, "data"), "--redis-url", fmt.Sprintf("redis://127.0.0.1:%d/0", port))
	if err != nil {
		return nil, err
	}
	defer in.stop()
	base := in.consoleURL()
	api, _ := in.endpoints["ges_api_url"].(string)
	hc := &http.Client{Timeout: 10 * time.Second}

	// Idle: nothing booked, nothing running.
	time.Sleep(2 * time.Second) // let start-up traffic settle before counting idle traffic
	c0 := commands(ctx, rdb)
	const idleFor = 60 * time.Second
	time.Sleep(idleFor) // the idle rate is what is measured
	idle := float64(commands(ctx, rdb)-c0-1) / idleFor.Seconds()

	// One immediate callback from create to COMPLETED, answered by a headless agent.
	ag := agent.New(agent.Config{URL: base, Token: agent.PasswordGrant(hc, base, "cxlab-console", "console-secret", "agent3", "agent123"),
		AutoAnswer: true, PlayHz: 1000})
	if err := ag.SignIn(ctx); err != nil {
		return nil, fmt.Errorf("agent sign-in: %w", err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ag.Run(actx) }()
	defer func() { stopAgent(); <-done }()
	if err := ag.SetState(ctx, "Ready"); err != nil {
		return nil, err
	}
	time.Sleep(time.Second) // registration traffic settles before the count starts
	c1 := commands(ctx, rdb)
	t1 := time.Now()
	var created struct {
		Data struct{ ID string } `json:"data"`
	}
	// +12025550106 answers, then hangs up after 5 s: the lifecycle ends by itself.
	if code, err := post(ctx, hc, api+"/callbacks/create", `{"serviceName":"CB_Support","phoneNumber":"+12025550106"}`, &created); err != nil || code != 200 {
		return nil, fmt.Errorf("create: %d %w", code, err)
	}
	state := ""
	polls := 0
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); polls++ {
		var cb struct {
			Data struct {
				State  string `json:"callbackState"`
				Reason string `json:"callbackReason"`
			} `json:"data"`
		}
		if _, err := post(ctx, hc, api+"/callbacks/retrieve", `{"id":"`+created.Data.ID+`"}`, &cb); err == nil && cb.Data.State == "COMPLETED" {
			state = cb.Data.State + " " + cb.Data.Reason
			break
		}
		time.Sleep(200 * time.Millisecond) // polling the API; bounded by the deadline
	}
	if state == "" {
		return nil, errors.New("the benchmark callback did not complete within 60 s")
	}
	lifetime := time.Since(t1)
	perCallback := float64(commands(ctx, rdb)-c1-1) - idle*lifetime.Seconds()

	rows := []Row{
		{Area: "redis", Figure: "operations per immediate callback, create to COMPLETED", Value: perCallback, Unit: "ops",
			Target: "<= 20", Reference: "110", Ratio: ratio(perCallback, 110),
			Conditions: fmt.Sprintf("redis-server INFO total_commands_processed, minus the idle rate over %.1f s; %s; GES + ORS traffic", lifetime.Seconds(), state)},
		{Area: "redis", Figure: "idle operations per second", Value: idle, Unit: "ops/s", Target: "~0", Reference: "50", Ratio: ratio(idle, 50),
			Conditions: "nothing booked, one tenant, one node, over 60 s"},
	}

	// Bytes per callback at 0, 1 and 10 kB of user data: scheduled callbacks
	// (booked, not yet due) as in seed 004's test.
	pg, err := pgx.Connect(ctx, in.endpoints["postgres_url"].(string))
	if err != nil {
		return nil, fmt.Errorf("connect postgres: %w", err)
	}
	defer func() { _ = pg.Close(ctx) }()
	for _, kb := range []int{0, 1, 10} {
		const n = 800 // 3 rounds stay within CB_Support's 14-day capacity (5 per 30-min slot)
		dbBefore, redisBefore := dbSize(ctx, pg), usedMemory(ctx, rdb)
		payload := ""
		if kb > 0 {
			// Randomized text, as in seed 004's test: repeated text would
			// compress in PostgreSQL's TOAST and flatter the figure.
			payload = fmt.Sprintf(`,"userData":{"notes":"%s"}`, randomText(kb*1024-12))
		}
		for i := range n {
			desired := time.Now().UTC().Add(2*time.Hour + time.Duration(kb*7+i*23)*time.Minute).Format("2006-01-02T15:04:05.000Z")
			body := fmt.Sprintf(`{"serviceName":"CB_Support","phoneNumber":"+1303555%04d","desiredTime":"%s"%s}`, (kb*1000+i)%10000, desired, payload)
			if code, err := post(ctx, hc, api+"/callbacks/create", body, nil); err != nil || code != 200 {
				return nil, fmt.Errorf("create with %d kB: %d %w", kb, code, err)
			}
		}
		pgPer := float64(dbSize(ctx, pg)-dbBefore) / n / 1024
		redisPer := float64(usedMemory(ctx, rdb)-redisBefore) / n / 1024
		refPG, refRedis := 7+3*float64(kb), 5.5+1.25*float64(kb)
		cond := fmt.Sprintf("%d scheduled callbacks with %d kB of user data; pg_database_size and INFO memory used_memory deltas", n, kb)
		rows = append(rows,
			Row{Area: "storage", Figure: fmt.Sprintf("PostgreSQL per callback, %d kB user data", kb), Value: pgPer, Unit: "kB",
				Target: targetIf(kb == 0, "<= 2 kB"), Reference: fmt.Sprintf("%.2g kB", refPG), Ratio: ratio(pgPer, refPG), Conditions: cond},
			Row{Area: "storage", Figure: fmt.Sprintf("Redis per callback, %d kB user data", kb), Value: redisPer, Unit: "kB",
				Target: targetIf(kb == 0, "<= 1 kB"), Reference: fmt.Sprintf("%.3g kB", refRedis), Ratio: ratio(redisPer, refRedis), Conditions: cond},
		)
	}
	return rows, nil
}

// randomText is n letters and digits from a fixed-seed generator.
func randomText(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	r := rand.New(rand.NewPCG(uint64(n), 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func targetIf(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

func ratio(v, ref float64) string {
	if ref == 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx", v/ref)
}

func commands(ctx context.Context, rdb *redis.Client) int64 {
	return infoInt(ctx, rdb, "stats", "total_commands_processed")
}

func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	return infoInt(ctx, rdb, "memory", "used_memory")
}

func infoInt(ctx context.Context, rdb *redis.Client, section, key string) int64 {
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && k == key {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func dbSize(ctx context.Context, pg *pgx.Conn) int64 {
	var n int64
	_ = pg.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n)
	return n
}

func waitRedis(ctx context.Context, rdb *redis.Client) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rdb.Ping(ctx).Err() == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // waiting for a child process to bind; bounded
	}
	return errors.New("redis-server did not start")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
