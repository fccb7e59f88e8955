package clock

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func startShared(t *testing.T, addr string) *Lab {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = rdb.Close() })
	lab := NewLab()
	s := NewShared(lab, rdb, slog.New(slog.DiscardHandler))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return lab
}

func waitOffset(t *testing.T, lab *Lab, want time.Duration) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for lab.Offset() != want {
		if time.Now().After(deadline) {
			t.Fatalf("offset %s, want %s", lab.Offset(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Appliances sharing one Redis share the lab clock: a move on one moves the
// others, one that starts later takes the offset up, and a smaller move made
// meanwhile elsewhere never takes a clock back.
func TestSharedLabClockMovesEveryAppliance(t *testing.T) {
	mr := miniredis.RunT(t)
	a, b := startShared(t, mr.Addr()), startShared(t, mr.Addr())
	moved := make(chan time.Time, 4)
	b.OnAdvance(func(now time.Time) { moved <- now })

	a.Advance(3 * time.Hour)
	waitOffset(t, b, 3*time.Hour)
	select {
	case <-moved: // b's own components (the GES monitor) hear of it
	case <-time.After(5 * time.Second):
		t.Fatal("b's listeners were not told")
	}

	b.Advance(time.Hour)
	waitOffset(t, a, 4*time.Hour)

	c := startShared(t, mr.Addr())
	if c.Offset() != 4*time.Hour {
		t.Fatalf("a new appliance starts at offset %s, want 4h", c.Offset())
	}
	if _, ok := a.AdvanceTo(time.Hour); ok || a.Offset() != 4*time.Hour {
		t.Fatalf("the clock went back to %s", a.Offset())
	}
}
