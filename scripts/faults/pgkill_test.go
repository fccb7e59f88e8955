package faults

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFaultPostgresKilled kill -9s the embedded postmaster under light create
// traffic: /readyz must report postgres not ready, then ready again by
// itself (the supervisor restarts it and crash recovery replays the WAL), and
// every acknowledged create must be present afterwards.
func TestFaultPostgresKilled(t *testing.T) {
	needFaults(t)
	const clients = 4
	dir := labDir(t)
	l := startLab(t, dir)
	g := newGES(l.ep, clients)
	defer g.close()

	var (
		n       atomic.Int64
		mu      sync.Mutex
		acked   []string
		failed  = map[int]int{}
		errs    atomic.Int64
		wg      sync.WaitGroup
		ackedAt []time.Time
	)
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond) // light traffic: about 80 creates/s in all
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				i := n.Add(1)
				desired := time.Now().Add(24*time.Hour + time.Duration(i)*time.Minute)
				id, code, err := g.create(ctx, phone(i), &desired)
				mu.Lock()
				switch {
				case err != nil:
					if ctx.Err() == nil {
						errs.Add(1)
					}
				case code == http.StatusOK:
					acked = append(acked, id)
					ackedAt = append(ackedAt, time.Now())
				default:
					failed[code]++
				}
				mu.Unlock()
			}
		}()
	}
	ackedSoFar := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitUntil(t, 30*time.Second, "creates to be acknowledged before the kill", func() bool { return ackedSoFar() >= 50 })

	pid, err := postmasterPID(l.ep.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 postmaster %d: %v", pid, err)
	}
	killedAt := time.Now()
	beforeKill := ackedSoFar()

	var downErr string
	var notReadyAt, readyAt time.Time
	waitUntil(t, 15*time.Second, "/readyz to report postgres not ready", func() bool {
		_, ready, e, err := readyz(context.Background(), l.ep.ReadyURL, "postgres")
		if err == nil && !ready {
			downErr, notReadyAt = e, time.Now()
			return true
		}
		return false
	})
	waitUntil(t, 90*time.Second, "/readyz to be ready again", func() bool {
		ok, ready, _, err := readyz(context.Background(), l.ep.ReadyURL, "postgres")
		if err == nil && ok && ready {
			readyAt = time.Now()
			return true
		}
		return false
	})
	newPID, err := postmasterPID(l.ep.DataDir)
	if err != nil || newPID == pid {
		t.Fatalf("postmaster after recovery: pid %d (killed %d), %v", newPID, pid, err)
	}
	// Creates must succeed again, not only /readyz.
	waitUntil(t, 30*time.Second, "creates to be acknowledged after recovery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ackedAt) > 0 && ackedAt[len(ackedAt)-1].After(readyAt)
	})
	stopLoad()
	wg.Wait()
	mu.Lock()
	ids := append([]string(nil), acked...)
	refused := failed
	mu.Unlock()

	rctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	missing, states := g.retrieveAll(rctx, ids, 8)
	if len(missing) > 0 {
		t.Errorf("%d of %d acknowledged callbacks are missing after the postmaster was killed, e.g. %v", len(missing), len(ids), missing[:min(5, len(missing))])
	}
	t.Logf("SUMMARY postgres killed: %d creates sent, %d acknowledged (%d before the kill), refused during the outage %v, %d transport errors; /readyz not ready after %s (%s), ready again after %s; %d missing, states %v",
		n.Load(), len(ids), beforeKill, refused, errs.Load(), notReadyAt.Sub(killedAt).Round(time.Millisecond), firstLine(downErr),
		readyAt.Sub(killedAt).Round(time.Millisecond), len(missing), states)
	if code := stopLab(t, l); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
	waitNoPostgres(t, dir, 10*time.Second)
}

// waitUntil polls cond until it holds or fails the test after within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(25 * time.Millisecond) // polling observable state, bounded above
	}
}
