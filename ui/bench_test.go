package ui

import (
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// BenchmarkGESListPage renders a full 250-row page of the callback list.
func BenchmarkGESListPage(b *testing.B) {
	clk := &fakeClock{now: t0}
	fc := newFakeCallbacks(clk)
	for i := 0; i < 300; i++ {
		fc.add(StateScheduled, "CB_Support", "+12025550100", t0.Add(time.Duration(i)*time.Minute))
	}
	u, err := New(Config{}, Deps{Callbacks: fc}, nil, clk)
	if err != nil {
		b.Fatal(err)
	}
	s := session{userName: "supervisor", tenant: testCCID, supervisor: true, csrf: "x"}
	e := echo.New()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/ges/?window=all", nil)
		c := e.NewContext(req, httptest.NewRecorder())
		v := u.gesLoad(c, s)
		if err := gesCallbacksPage(u.chrome("Callbacks", "ges"), v).Render(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsolePage renders the console home with every section.
func BenchmarkConsolePage(b *testing.B) {
	u, err := New(Config{}, Deps{Console: fakeConsole()}, nil, &fakeClock{now: t0})
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/", nil)
		c := e.NewContext(req, httptest.NewRecorder())
		if err := consolePage(u.chrome("Console", "console"), u.consoleLoad(c, "")).Render(context.Background(), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScaleDecision is the pure KEDA decision.
func BenchmarkScaleDecision(b *testing.B) {
	h := SeedHelmScaling()
	for b.Loop() {
		_ = DecideGatewayScale(h, 3, 80, 55, 40)
	}
}
