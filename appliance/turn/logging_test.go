package turn

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestPionLoggerFactoryWritesToSlog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := NewPionLoggerFactory(logger).NewLogger("ice")
	l.Warnf("candidate %s failed", "udp4")
	l.Debugf("hidden %d", 1)
	l.Trace("hidden too")
	l.Error("boom")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="candidate udp4 failed" scope=ice`,
		`level=ERROR msg=boom scope=ice`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("disabled levels were logged:\n%s", out)
	}
}

// pion's warnings that a loop met a closed connection, stream or pipe (how
// every call and allocation ends) are Debug; other warnings stay Warn.
func TestPionTeardownWarningsAreDebug(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := NewPionLoggerFactory(logger).NewLogger("pc")
	l.Warnf("Failed to accept RTP %v", "stream is already closed")
	l.Warn("Failed to read from candidate udp4 host 127.0.0.1:5000: io: read/write on closed pipe")
	l.Warnf("Failed to read: %v", "read udp 127.0.0.1:1: use of closed network connection")
	l.Warnf("Failed to start manager: %v", "connecting canceled by caller")
	l.Warnf("Failed to handle DTLS %s", "alert")
	l.Warnf("Failed to ping without candidate pairs. Connection is not possible yet.") // every 200 ms while ICE has no pair
	out := buf.String()
	if n := strings.Count(out, "level=DEBUG"); n != 5 {
		t.Errorf("%d teardown or repeated warnings at Debug, want 5:\n%s", n, out)
	}
	if !strings.Contains(out, `level=WARN msg="Failed to handle DTLS alert"`) {
		t.Errorf("an ordinary warning is no longer Warn:\n%s", out)
	}
}

// A datagram to a relayed address from a peer without a permission is one
// pion Info line: anyone could fill the log at their packet rate. Those are
// Debug; other Info lines stay Info.
func TestPionPerPacketInfoIsDebug(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := NewPionLoggerFactory(logger).NewLogger("turn")
	for range 50 {
		l.Infof("No Permission or Channel exists for %v on allocation %v", "127.0.0.1:9", "127.0.0.1:49160")
	}
	l.Infof("Listening on %s", "udp")
	out := buf.String()
	if strings.Contains(out, "No Permission") {
		t.Errorf("per-packet lines logged at Info:\n%s", out)
	}
	if !strings.Contains(out, `level=INFO msg="Listening on udp"`) {
		t.Errorf("an ordinary Info line is gone:\n%s", out)
	}
}

// A channel binding expiring after its allocation is not an error on the
// console; other pion errors still are.
func TestExpiredChannelBindIsNotAnError(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := NewPionLoggerFactory(logger).NewLogger("turn")
	l.Errorf("Failed to remove ChannelBind for %v %x %v", 16384, []byte("127.0.0.1"), "udp 127.0.0.1:5000->127.0.0.1:3478")
	l.Errorf("Failed to reset allocation timer for %v", "udp 127.0.0.1:5000->127.0.0.1:3478")
	out := buf.String()
	if strings.Contains(out, "ChannelBind") || !strings.Contains(out, `level=ERROR msg="Failed to reset allocation timer`) {
		t.Errorf("log:\n%s", out)
	}
}
