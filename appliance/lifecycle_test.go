package appliance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type fakeComponent struct {
	name     string
	failWith error
	events   *[]string
	stops    int
}

func (f *fakeComponent) Name() string { return f.name }

func (f *fakeComponent) Start(context.Context) error {
	*f.events = append(*f.events, "start "+f.name)
	return f.failWith
}

func (f *fakeComponent) Stop(context.Context) error {
	f.stops++
	*f.events = append(*f.events, "stop "+f.name)
	return nil
}

func TestStartFailureStopsStartedComponentsInReverseAndNamesTheFailure(t *testing.T) {
	var ev []string
	a := &fakeComponent{name: "a", events: &ev}
	b := &fakeComponent{name: "b", events: &ev}
	c := &fakeComponent{name: "c", events: &ev, failWith: errors.New("port busy")}
	d := &fakeComponent{name: "d", events: &ev}
	lc := newLifecycle(slog.New(slog.NewTextHandler(io.Discard, nil)), []Component{a, b, c, d})
	err := lc.start(context.Background(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "start c: port busy") {
		t.Fatalf("err = %v, want it to name component c", err)
	}
	want := "start a,start b,start c,stop c,stop b,stop a"
	if got := strings.Join(ev, ","); got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
	if err := lc.stop(context.Background()); err != nil || a.stops != 1 {
		t.Fatalf("second stop must be a no-op: err %v, a stopped %d times", err, a.stops)
	}
	ok, st := lc.status(context.Background())
	if ok || len(st) != 4 || st[0].Ready {
		t.Fatalf("status after failed start = %v %+v", ok, st)
	}
}

func TestStopIsReverseOrderAndIdempotent(t *testing.T) {
	var ev []string
	cs := []Component{&fakeComponent{name: "a", events: &ev}, &fakeComponent{name: "b", events: &ev}}
	lc := newLifecycle(slog.New(slog.NewTextHandler(io.Discard, nil)), cs)
	if err := lc.start(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, _ := lc.status(context.Background()); !ok {
		t.Fatal("not ready after start")
	}
	_ = lc.stop(context.Background())
	_ = lc.stop(context.Background())
	if got := strings.Join(ev, ","); got != "start a,start b,stop b,stop a" {
		t.Fatalf("events = %s", got)
	}
}
