package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkColdStart times Start on a fresh data dir (initdb included) up to
// ready; Stop is not timed.
func BenchmarkColdStart(b *testing.B) {
	root := tempDir(b)
	for i := 0; b.Loop(); i++ {
		e := NewEmbedded(Config{DataDir: filepath.Join(root, fmt.Sprint(i))}, nil)
		benchStartStop(b, e)
	}
}

// BenchmarkWarmStart times Start on an existing data dir up to ready.
func BenchmarkWarmStart(b *testing.B) {
	dir := filepath.Join(tempDir(b), "pg")
	b.StopTimer()
	benchStartStop(b, NewEmbedded(Config{DataDir: dir}, nil))
	b.StartTimer()
	for b.Loop() {
		benchStartStop(b, NewEmbedded(Config{DataDir: dir}, nil))
	}
}

func benchStartStop(b *testing.B, e *Embedded) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if err := e.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}
