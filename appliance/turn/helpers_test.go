package turn

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/cxlab/cxlab/appliance/clock"
	"github.com/cxlab/cxlab/appliance/internal/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newTestLogger(t testing.TB) *slog.Logger {
	t.Helper()
	tl := &syncbuf.Buffer{} // not t.Log: pion may log from its goroutines after a test ends
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", tl.String())
		}
	})
	level := slog.LevelDebug
	if _, bench := t.(*testing.B); bench {
		// pion logs every relayed packet at Debug; keep that out of the figures.
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: level}))
}

// testConfig is Default() on free ports with any free relay port.
func testConfig() Config {
	cfg := Default()
	cfg.Port = 0
	cfg.MinPort, cfg.MaxPort = 0, 0
	cfg.AuthSecret = "test-secret"
	return cfg
}

type testServer struct {
	*Server
	reg *prometheus.Registry
	clk *clock.Lab
}

// startServer starts a server on loopback and stops it when the test ends.
func startServer(t testing.TB, mutate func(*Config)) *testServer {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	clk := clock.NewLab()
	srv, err := New(cfg, newTestLogger(t), reg, clk)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &testServer{Server: srv, reg: reg, clk: clk}
}

// creds returns fresh REST credentials for user, valid for an hour of wall time.
func (s *testServer) creds(user string) (string, string) {
	u, p, _ := NewCredentials(s.cfg.AuthSecret, user, time.Hour, time.Now())
	return u, p
}

// dialTURN returns a listening pion TURN client over "udp" or "tcp".
func dialTURN(t testing.TB, srv *testServer, transport, username, password string) *pionturn.Client {
	t.Helper()
	var conn net.PacketConn
	var addr string
	switch transport {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("client socket: %v", err)
		}
		conn, addr = c, srv.UDPAddr().String()
	case "tcp":
		c, err := net.DialTimeout("tcp", srv.TCPAddr().String(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial turn over tcp: %v", err)
		}
		conn, addr = pionturn.NewSTUNConn(c), srv.TCPAddr().String()
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	return newTURNClient(t, srv, conn, addr, username, password)
}

// newTURNClient returns a listening pion TURN client on conn toward the
// server at addr; the client and conn are closed when the test ends.
func newTURNClient(t testing.TB, srv *testServer, conn net.PacketConn, addr, username, password string) *pionturn.Client {
	t.Helper()
	client, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: addr,
		TURNServerAddr: addr,
		Conn:           conn,
		Username:       username,
		Password:       password,
		Realm:          srv.cfg.Realm,
		RTO:            100 * time.Millisecond,
		LoggerFactory:  NewPionLoggerFactory(newTestLogger(t)),
	})
	if err != nil {
		_ = conn.Close()
		t.Fatalf("NewClient: %v", err)
	}
	if err := client.Listen(); err != nil {
		client.Close()
		_ = conn.Close()
		t.Fatalf("client Listen: %v", err)
	}
	t.Cleanup(func() {
		client.Close()
		_ = conn.Close()
	})
	return client
}

// allocate allocates a UDP relay and closes it (deallocating) when the test ends.
func allocate(t testing.TB, c *pionturn.Client) (net.PacketConn, error) {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = relay.Close() })
	return relay, nil
}

// turnErrorCode returns the STUN error code in err, or 0.
func turnErrorCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// startEchoPeer is a UDP peer on loopback that sends every datagram back.
func startEchoPeer(t testing.TB) net.PacketConn {
	t.Helper()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("peer socket: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1600)
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := peer.WriteTo(buf[:n], from); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = peer.Close()
		<-done
	})
	return peer
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// roundTrip sends payload to peer through relay and waits for its echo.
func roundTrip(t testing.TB, relay net.PacketConn, peer net.Addr, payload []byte) {
	t.Helper()
	if _, err := relay.WriteTo(payload, peer); err != nil {
		t.Fatalf("relay write: %v", err)
	}
	buf := make([]byte, 1600)
	_ = relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := relay.ReadFrom(buf)
	if err != nil {
		t.Fatalf("relay read: %v", err)
	}
	if from.String() != peer.String() {
		t.Fatalf("echo came from %s, want peer %s", from, peer)
	}
	if !bytes.Equal(buf[:n], payload) {
		t.Fatalf("echo %q, want %q", buf[:n], payload)
	}
}

// requireTool finds an apt-installed tool, skipping (or failing on CI) without it.
func requireTool(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing; install with: apt-get install %s", path, pkg)
		}
		t.Skipf("%s missing; install with: apt-get install %s", path, pkg)
	}
}

// metricValue reads the single counter or gauge in c.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var total float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			continue
		}
		switch {
		case pb.Counter != nil:
			total += pb.Counter.GetValue()
		case pb.Gauge != nil:
			total += pb.Gauge.GetValue()
		}
	}
	return total
}
