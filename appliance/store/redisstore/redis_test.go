package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/cxlab/cxlab/appliance/clock"
)

func startEmbedded(t *testing.T) *Embedded {
	t.Helper()
	e := NewEmbedded("127.0.0.1", 0, "--redis-port", clock.NewLab(), slog.New(slog.DiscardHandler))
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Stop(context.Background())
		_ = e.Client().Close()
	})
	return e
}

// The appliance's client and a user's tool on the TCP port see one database.
func TestEmbeddedServesTheApplianceAndUsersToolsOneDatabase(t *testing.T) {
	e := startEmbedded(t)
	ctx := t.Context()
	if err := e.Client().Set(ctx, "greeting", "from the appliance", 0).Err(); err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(e.URL())
	if err != nil {
		t.Fatal(err)
	}
	user := redis.NewClient(opt)
	defer user.Close()
	got, err := user.Get(ctx, "greeting").Result()
	if err != nil || got != "from the appliance" {
		t.Fatalf("a client of %s reads %q, %v; want the appliance's value", e.URL(), got, err)
	}
	if err := user.Set(ctx, "reply", "from a user", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Client().Get(ctx, "reply").Result(); err != nil || got != "from a user" {
		t.Fatalf("the appliance reads %q, %v; want the user's value", got, err)
	}
}

// A pipeline twenty times the size of the appliance's largest (1,000
// commands) completes over the in-process connection: miniredis answers each
// command before reading the next, so this needs writes that never wait.
func TestEmbeddedCompletesLargePipelines(t *testing.T) {
	e := startEmbedded(t)
	ctx := t.Context()
	const n = 20000
	pipe := e.Client().Pipeline()
	for i := range n {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: map[string]any{"callbackId": fmt.Sprintf("%036d", i), "action": "start"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline of %d XADDs: %v", n, err)
	}
	if got := e.Client().XLen(ctx, "s").Val(); got != n {
		t.Fatalf("stream holds %d entries, want %d", got, n)
	}
}
