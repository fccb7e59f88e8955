package faults

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cxlab/cxlab/appliance/apptest"
	"github.com/jackc/pgx/v5"
)

// TestFaultKill9DuringCreates kills cxlab with SIGKILL while 32 clients create
// callbacks as fast as they can, then starts it again on the same data dir:
// every acknowledged create must be there, no postgres may outlive the kill,
// and no callback may be started twice (counted on NewCallbackStream across
// both runs).
func TestFaultKill9DuringCreates(t *testing.T) {
	needFaults(t)
	kill9DuringCreates(t, "")
}

// TestFaultKill9DuringCreatesExternalRedis is the same with an external
// redis-server that outlives the kill, as several processes sharing one Redis
// would: the stream and the due index survive, so nothing is handed to ORS
// again wholesale; what the kill left half handed over (committed in
// PostgreSQL, not yet on the stream) must still reach the stream, once, after
// --ges-stranded-after.
func TestFaultKill9DuringCreatesExternalRedis(t *testing.T) {
	needFaults(t)
	bin := apptest.NeedTool(t, "redis-server", "redis-server")
	port := freePort(t)
	startRedis(t, bin, port)
	kill9DuringCreates(t, fmt.Sprintf("redis://127.0.0.1:%d/0", port))
}

// kill9DuringCreates runs the kill -9 test on the embedded Redis, or on the
// external one at redisURL.
func kill9DuringCreates(t *testing.T, redisURL string) {
	const (
		clients  = 32
		loadFor  = 3 * time.Second
		dueAfter = 90 * time.Second
	)
	external := redisURL != ""
	var extra []string
	if external {
		extra = []string{"--redis-url", redisURL, "--ges-stranded-after", strandedAfter.String()}
	}
	dir := labDir(t)
	l1 := startLab(t, dir, extra...)
	tail, err := tailStream(l1.ep.RedisURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := newGES(l1.ep, clients)
	defer g.close()

	// Half immediate (a desired time a few seconds past, so they come due at
	// once), half scheduled a few seconds ahead (the current slot takes 5,
	// the rest move to later slots).
	var (
		n       atomic.Int64
		mu      sync.Mutex
		acked   []string
		refused = map[int]int{}
		errs    atomic.Int64
		wg      sync.WaitGroup
	)
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := n.Add(1)
				desired := time.Now().Add(-3 * time.Second)
				if i%2 == 0 {
					desired = time.Now().Add(5 * time.Second)
				}
				id, code, err := g.create(ctx, phone(i), &desired)
				mu.Lock()
				switch {
				case err != nil:
					errs.Add(1)
				case code == http.StatusOK:
					acked = append(acked, id)
				default:
					refused[code]++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(loadFor) // the load runs for a fixed time by design; this is not a readiness wait
	if err := l1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	l1.waitExit(t, 5*time.Second)
	stopLoad()
	wg.Wait()
	tail.stop()
	gone := waitNoPostgres(t, dir, 15*time.Second)
	mu.Lock()
	ackedIDs := append([]string(nil), acked...)
	mu.Unlock()
	run1, _ := tail.snapshot()
	t.Logf("run 1: %d creates sent, %d acknowledged, refused %v, %d transport errors (in flight at the kill); %d started; postgres gone %s after the kill",
		n.Load(), len(ackedIDs), refused, errs.Load(), len(run1), gone.Round(time.Millisecond))
	if len(ackedIDs) == 0 {
		t.Fatal("no create was acknowledged before the kill")
	}

	l2 := startLab(t, dir, extra...)
	t.Logf("restart after kill -9 ready in %s", l2.took.Round(time.Millisecond))
	tail.resume = external
	tail, err = tailStream(l2.ep.RedisURL, tail)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.stop()
	g2 := newGES(l2.ep, clients)
	defer g2.close()
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	missing, states := g2.retrieveAll(rctx, ackedIDs, clients)
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged callbacks are not retrievable after kill -9, e.g. %v", len(missing), len(ackedIDs), missing[:min(5, len(missing))])
	}

	// Wait until nothing due is left SCHEDULED in PostgreSQL: every callback
	// that came due has then been handed to ORS by one run or the other.
	conn, err := pgx.Connect(rctx, l2.ep.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Whether the kill fell between PostgreSQL and Redis is luck; two rows as
	// a dead node leaves them make sure run 2 meets both kinds: a due callback
	// claimed from the index but still SCHEDULED, and one QUEUED whose entry
	// never reached the stream.
	var planted []string
	if external {
		planted = plantStranded(rctx, t, conn)
	}
	deadline := time.Now().Add(dueAfter)
	var dueLeft int
	for {
		if err := conn.QueryRow(rctx, "SELECT count(*) FROM ges.callbacks WHERE state = 'SCHEDULED' AND desired_time <= now()").Scan(&dueLeft); err != nil {
			t.Fatal(err)
		}
		if dueLeft == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d due callbacks still SCHEDULED %s after the restart", dueLeft, dueAfter)
		}
		time.Sleep(100 * time.Millisecond) // polling the database, bounded above
	}
	// The last dispatch's XADDs are read by the tail within its block time.
	var inStream int
	if err := conn.QueryRow(rctx, "SELECT count(*) FROM ges.callbacks WHERE state <> 'SCHEDULED'").Scan(&inStream); err != nil {
		t.Fatal(err)
	}
	// On a surviving Redis, a callback the kill left QUEUED without its entry
	// reaches the stream once it has been stranded for strandedAfter.
	waitTail(tail, inStream, 10*time.Second+strandedAfter)
	all, entries := tail.snapshot()
	// A callback started twice within one life of the appliance would be run
	// twice. A callback started in run 1 and again in run 2 is not: run 1's ORS
	// sessions died with the process before reaching anyone (no agent was
	// Ready), and GES hands what was waiting for ORS over again when Redis lost
	// the stream, which is what keeps such callbacks from being stuck.
	twice, again := 0, 0
	var example string
	for id, c := range all {
		inRun2 := c - run1[id]
		if run1[id] > 1 || inRun2 > 1 {
			twice++
			example = id
		}
		if run1[id] > 0 && inRun2 > 0 {
			again++
		}
	}
	run2 := 0
	for id := range all {
		if run1[id] == 0 {
			run2++
		}
	}
	// Callbacks that left SCHEDULED but were never seen on the stream: marked
	// QUEUED in run 1 and then lost their XADD to the kill, or XADDed just
	// before it and not yet read by the tail.
	// Stuck: waiting in QUEUED/ROUTING/PROCESSING although the ORS session that
	// ran it died with the first process (nothing in run 2 will finish it).
	var queuedUnseen, stuck int
	rows, err := conn.Query(rctx, "SELECT id::text, state FROM ges.callbacks WHERE state <> 'SCHEDULED'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			t.Fatal(err)
		}
		if all[id] == 0 {
			queuedUnseen++
		}
		if state != "COMPLETED" && run1[id] > 0 && all[id] == run1[id] {
			stuck++
		}
	}
	rows.Close()
	stuckText := fmt.Sprintf("%d left QUEUED/ROUTING/PROCESSING by run 1 (stuck)", stuck)
	if external {
		stuckText = "run 1's ORS sessions pending on the surviving stream for run 2's ORS"
	}
	t.Logf("SUMMARY kill -9 during creates (%s Redis): %d acknowledged, %d missing after restart, states %v; started %d in run 1 + %d in run 2 (%d stream entries), %d started twice within one run, %d handed to ORS again after the crash, %d out of SCHEDULED with no start seen on the stream, %s; kill->restart ready %s",
		map[bool]string{false: "embedded", true: "external"}[external], len(ackedIDs), len(missing), states, len(run1), run2, entries, twice, again, queuedUnseen, stuckText, time.Since(killedAt).Round(time.Millisecond))
	if twice > 0 {
		t.Errorf("%d callbacks were started twice within one run (e.g. %s: %d times)", twice, example, all[example])
	}
	if external {
		for _, line := range strings.Split(l2.out.String(), "\n") {
			if strings.Contains(line, "never reached ORS") {
				t.Logf("run 2 recovered what the kill left half handed over: %s", line)
			}
		}
		// The stream survived: a second start entry, in either run, is a
		// second run of the callback. Run 1's ORS sessions stay pending on
		// the stream for run 2's ORS to take over (not counted as stuck).
		if again > 0 {
			t.Errorf("%d callbacks were started in both runs although the stream survived", again)
		}
		if queuedUnseen > 0 {
			t.Errorf("%d callbacks left SCHEDULED but never reached the stream", queuedUnseen)
		}
		for _, id := range planted {
			if all[id] != 1 {
				t.Errorf("stranded callback %s: %d start entries, want 1", id, all[id])
			}
		}
	} else if stuck > 0 {
		t.Errorf("%d callbacks handed to ORS in run 1 were never handed again and stay unfinished", stuck)
	}
	if code := stopLab(t, l2); code != 0 {
		t.Errorf("second run exited %d after SIGTERM", code)
	}
	waitNoPostgres(t, dir, 10*time.Second)
}

// plantStranded copies an acknowledged callback twice under new ids, as a node
// that died between the stores leaves them (in PostgreSQL, not in Redis):
// SCHEDULED and due, and QUEUED, both for longer than strandedAfter.
func plantStranded(ctx context.Context, t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	const cols = `tenant, service, virtual_queue, phone_number, desired_time, immediate, offer_type, priority, language,
		extra, user_data, state, reason, max_dial_attempts, retry_delay_sec, history, created_at, updated_at`
	var ids []string
	for _, state := range []string{"SCHEDULED", "QUEUED"} {
		var id string
		err := conn.QueryRow(ctx, `INSERT INTO ges.callbacks (id, `+cols+`)
			SELECT gen_random_uuid(), tenant, service, virtual_queue, '+12025559999', now() - $2::interval, immediate, offer_type,
				priority, language, extra, user_data, $1, '', max_dial_attempts, retry_delay_sec, history, created_at, now() - $2::interval
			FROM ges.callbacks LIMIT 1 RETURNING id::text`, state, (strandedAfter + time.Second).String()).Scan(&id)
		if err != nil {
			t.Fatalf("plant a stranded %s callback: %v", state, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// strandedAfter is --ges-stranded-after for the external-Redis run.
const strandedAfter = 2 * time.Second

// waitTail waits until the tail has seen at least want start entries, or
// within has passed (a shortfall is reported by the caller's figures).
func waitTail(tail *streamTail, want int, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if got, _ := tail.snapshot(); len(got) >= want {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling the tail, bounded above
	}
}

// stopLab sends SIGTERM and returns the exit code (fails past 10 s).
func stopLab(t *testing.T, l *lab) int {
	t.Helper()
	_ = l.cmd.Process.Signal(syscall.SIGTERM)
	return l.waitExit(t, 10*time.Second)
}
