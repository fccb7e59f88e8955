package voice

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pendingIDs lists the stream entries pending in the ORS group.
func (l *lab) pendingIDs(t *testing.T) []string {
	t.Helper()
	p, err := l.rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: "NewCallbackStream", Group: "ors",
		Start: "-", End: "+", Count: 100}).Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(p))
	for i, e := range p {
		ids[i] = e.ID
	}
	return ids
}

// claimFor moves the entries to consumer node-b, alive (its lease fresh),
// as node-b does once this process's lease has lapsed.
func (l *lab) claimFor(t *testing.T, ids []string) {
	t.Helper()
	ctx := context.Background()
	if err := l.rdb.Set(ctx, "NewCallbackStream:ors-consumer:node-b", time.Now().UnixMilli(), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.rdb.XClaim(ctx, &redis.XClaimArgs{Stream: "NewCallbackStream", Group: "ors",
		Consumer: "node-b", Messages: ids}).Err(); err != nil {
		t.Fatal(err)
	}
}

// sessionGone reports whether this process no longer runs callback id.
func (l *lab) sessionGone(id string) bool {
	l.v.mu.Lock()
	defer l.v.mu.Unlock()
	return l.v.sessions[CallbackID(id)] == nil
}

// waiting hands callback id (a customer who answers, one dial) to ORS and
// waits until it reports it QUEUED.
func (l *lab) waiting(t *testing.T, id string) {
	t.Helper()
	l.xadd(startEntry(id, simTone, 1, 0))
	l.waitStates(t, id, stQueued)
}

// waitDropped waits until this process dropped callback id, handing the
// agent it had reserved for it back to Ready.
func (l *lab) waitDropped(t *testing.T, id string) {
	t.Helper()
	eventually(t, 5*time.Second, "the session dropped", func() bool { return l.sessionGone(id) })
	eventually(t, 3*time.Second, "agent Ready again", func() bool { return l.agentState("7001") == Ready })
}

// noInvite fails if the agent's phone rang.
func noInvite(t *testing.T, a *testUA) {
	t.Helper()
	select {
	case inv := <-a.invites:
		t.Fatalf("the agent was called: %s", inv.StartLine())
	default:
	}
}

// A process whose lease lapsed (paused past ClaimMinIdle) finds, when it
// runs again, that another process claimed its waiting callback: it must not
// dial the customer nor report to GES, and leaves the entry to the other.
func TestTakenOverCallbackIsNotDialledByTheLapsedProcess(t *testing.T) {
	l := newLab(t, nil)
	a1 := l.registerAgent1(t)
	const id = "88888888-8888-8888-8888-888888888881"
	l.waiting(t, id)

	l.claimFor(t, l.pendingIDs(t))

	l.ready(t, "agent1") // the paused process runs again and has an agent for it
	l.waitDropped(t, id)
	if got := l.ges.states(id); !slices.Equal(got, []string{stQueued}) {
		t.Fatalf("the lapsed process reported %v after the takeover", got)
	}
	if o := l.pendingOwner(t); o != "node-b" {
		t.Fatalf("entry owned by %q, want node-b (the lapsed process must not acknowledge it)", o)
	}
	noInvite(t, a1)
}

// Redis lost a waiting callback's entry (emptied, or failed over without
// it): the process still holding the session must not dial it, as GES hands
// the callback over again and another process may run it; when the new
// entry comes to this process, the callback runs from it, once.
func TestCallbackWhoseEntryRedisLostRunsOnceFromTheNewEntry(t *testing.T) {
	l := newLab(t, nil)
	a1 := l.registerAgent1(t)
	const id = "88888888-8888-8888-8888-888888888882"
	l.waiting(t, id)
	ctx := context.Background()
	old := l.pendingIDs(t)
	if err := l.rdb.XAck(ctx, "NewCallbackStream", "ors", old...).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.rdb.XDel(ctx, "NewCallbackStream", old...).Err(); err != nil {
		t.Fatal(err)
	}
	l.ready(t, "agent1")
	l.waitDropped(t, id)
	noInvite(t, a1)

	l.xadd(startEntry(id, simTone, 1, 0)) // GES's hand-over of a QUEUED callback Redis has no trace of
	l.waitStates(t, id, stQueued, stQueued+":released", stQueued, stRouting, stProcessing)
	<-a1.invites
}

// A second hand-over reaching the process that runs the callback (GES found
// no trace of it in Redis) is taken up by the running session: its dials are
// checked against the new entry, and the old one is acknowledged.
func TestSecondHandOverIsTakenUpByTheRunningSession(t *testing.T) {
	l := newLab(t, nil)
	a1 := l.registerAgent1(t)
	const id = "88888888-8888-8888-8888-888888888883"
	l.waiting(t, id)
	first := l.pendingIDs(t)
	l.xadd(startEntry(id, simTone, 1, 0))
	eventually(t, 3*time.Second, "only the new entry pending", func() bool {
		ids := l.pendingIDs(t)
		return len(ids) == 1 && ids[0] != first[0]
	})
	l.ready(t, "agent1")
	l.waitStates(t, id, stQueued, stRouting, stProcessing)
	<-a1.invites
}

// A process that takes a callback over goes on counting its dials: with two
// allowed and one made before the first process stopped, it dials once more.
func TestTakeoverGoesOnCountingDials(t *testing.T) {
	const claimAfter = 600 * time.Millisecond
	l := newLab(t, func(c *Config) { c.ClaimMinIdle = claimAfter })
	a1 := l.readyAgent1(t)
	const id = "88888888-8888-8888-8888-888888888884"
	l.xadd(startEntry(id, simBusy, 2, 30)) // the retry would wait 30 s
	l.waitStates(t, id, stQueued, stRouting, stQueued)
	if r := l.ges.last(id); r.DialAttempts != 1 {
		t.Fatalf("dial attempts %d after the first dial, want 1", r.DialAttempts)
	}
	l.stop() // its entry stays pending, its lease is no longer renewed
	a1.close()

	l.cfg.Consumer = "node-b"
	l.start()
	l.readyAgent1(t)
	l.waitStates(t, id, stQueued, stRouting, stQueued, stQueued, stRouting, stCompleted+":"+reasonFailCallToCustomer)
	if r := l.ges.last(id); r.DialAttempts != 2 {
		t.Fatalf("dial attempts %d at the end, want 2", r.DialAttempts)
	}
	eventually(t, 3*time.Second, "entry acknowledged", func() bool { return l.pending(t) == 0 })
	if n, err := l.rdb.HLen(context.Background(), "NewCallbackStream:ors-attempts").Result(); err != nil || n != 0 {
		t.Fatalf("dial counts left behind: %d %v", n, err)
	}
}

// GES's cancel entry may reach a process other than the one running the
// callback: it is passed on, and the waiting callback ends where it runs.
func TestCancelReadByAnotherProcessReachesTheSession(t *testing.T) {
	l := newLab(t, nil)
	const id = "88888888-8888-8888-8888-888888888885"
	l.waiting(t, id)

	b := l.startNodeB(t)
	ctx := context.Background()
	// node-b reads GES's cancel entry (which of the two reads it is up to Redis).
	b.handle(ctx, redis.XMessage{ID: "0-1", Values: cancelEntry(id)})
	eventually(t, 5*time.Second, "the session ended where it runs", func() bool {
		return l.sessionGone(id) && l.v.QueueStats(ctx, testCCID, "VQ_Sales").WaitingCalls == 0
	})
	eventually(t, 3*time.Second, "entry acknowledged", func() bool { return l.pending(t) == 0 })
}

// A process that renews its lease too late (it was paused) drops the
// waiting callbacks another process claimed meanwhile, without waiting for an
// agent: they no longer count in its queues.
func TestLapsedProcessDropsWaitingCallbacksTakenOver(t *testing.T) {
	l := newLab(t, nil)
	const kept, taken = "88888888-8888-8888-8888-888888888886", "88888888-8888-8888-8888-888888888887"
	l.xadd(startEntry(kept, simTone, 1, 0))
	l.waitStates(t, kept, stQueued)
	keptIDs := l.pendingIDs(t)
	l.xadd(startEntry(taken, simTone, 1, 0))
	l.waitStates(t, taken, stQueued)
	var takenIDs []string
	for _, id := range l.pendingIDs(t) {
		if id != keptIDs[0] {
			takenIDs = append(takenIDs, id)
		}
	}
	l.claimFor(t, takenIDs)
	// The process was paused for a minute before its last renewal.
	l.v.lastRenewal.Store(time.Now().Add(-time.Minute).UnixNano())
	eventually(t, 5*time.Second, "the taken callback dropped", func() bool { return l.sessionGone(taken) })
	if st := l.v.QueueStats(context.Background(), testCCID, "VQ_Sales"); st.WaitingCalls != 1 || l.sessionGone(kept) {
		t.Fatalf("after the lapse: %d waiting, want the 1 still this process's", st.WaitingCalls)
	}
	if got := l.ges.states(taken); !slices.Equal(got, []string{stQueued}) {
		t.Fatalf("the lapsed process reported %v after the takeover", got)
	}
}

// Redis emptied while callbacks wait: the consumer notices its group is
// gone, and hands each waiting callback back to GES at once (a QUEUED
// report marked released), so that GES hands it over again; without it a
// waiting session's position report wrote GES's mark that ORS holds the
// callback, and the callback stayed QUEUED with no session anywhere.
func TestEmptiedRedisHandsWaitingCallbacksBackToGES(t *testing.T) {
	l := newLab(t, nil)
	const id = "88888888-8888-8888-8888-888888888888"
	l.waiting(t, id)
	l.mr.FlushAll()
	l.waitStates(t, id, stQueued, stQueued+":released")
	eventually(t, 3*time.Second, "the session dropped", func() bool {
		return l.sessionGone(id) && l.v.QueueStats(context.Background(), testCCID, "VQ_Sales").WaitingCalls == 0
	})
	l.xadd(startEntry(id, simTone, 1, 0)) // GES's new hand-over runs
	l.waitStates(t, id, stQueued, stQueued+":released", stQueued)
}

// Redis emptied, and another process recreated the consumer group before
// this one read again (so its reads never fail): this process still notices,
// its lease key being gone at its next renewal, and gives its waiting
// callbacks back. It used to notice only at a dial, and a stale session's
// position report kept the callback QUEUED, with no session, until then.
func TestEmptiedRedisNoticedWhenAnotherProcessRecreatedTheGroup(t *testing.T) {
	l := newLab(t, nil)
	const id = "88888888-8888-8888-8888-888888888889"
	l.waiting(t, id)
	ctx := context.Background()
	pipe := l.rdb.TxPipeline() // at once, as seen from the consumer
	pipe.FlushAll(ctx)
	pipe.XGroupCreateMkStream(ctx, "NewCallbackStream", "ors", "$")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	l.waitStates(t, id, stQueued, stQueued+":released")
	eventually(t, 3*time.Second, "the session dropped", func() bool { return l.sessionGone(id) })
}

// The lease is renewed every ClaimMinIdle/3 however long the stream reads
// block: renewed between reads, a consumer idle on a 30-second read went up
// to 50 s unrenewed, near the minute after which others take it for dead.
func TestLeaseIsRenewedWhileTheStreamReadBlocks(t *testing.T) {
	l := newLab(t, func(c *Config) { c.ReadBlock, c.ClaimMinIdle = 20*time.Second, 900*time.Millisecond })
	ctx := context.Background()
	key := "NewCallbackStream:ors-consumer:test-consumer"
	var first string
	eventually(t, 2*time.Second, "the lease taken", func() bool {
		v, err := l.rdb.Get(ctx, key).Result()
		first = v
		return err == nil
	})
	eventually(t, 2*time.Second, "the lease renewed within a read", func() bool {
		v, err := l.rdb.Get(ctx, key).Result()
		return err == nil && v != first
	})
}
