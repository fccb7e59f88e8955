package appliance

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// sipgo's reference-count warnings about connections it already closed are
// Debug; its other warnings stay Warn.
func TestSipgoRefcountWarningsAreDebug(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(sipgoLogs{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})}).With("component", "sip")
	l.Warn("TCP ref went negative", "ip", "127.0.0.1:5060", "ref", -1)
	l.Warn("UDP ref went negative on try close", "src", "127.0.0.1:5060", "ref", -1)
	l.Warn("Failed to read message", "err", "bad header")
	out := buf.String()
	if n := strings.Count(out, "level=DEBUG"); n != 2 {
		t.Errorf("%d refcount warnings at Debug, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, `level=WARN msg="Failed to read message" component=sip`) {
		t.Errorf("another sipgo warning is no longer Warn:\n%s", out)
	}

	buf.Reset()
	quiet := slog.New(sipgoLogs{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})})
	quiet.Warn("TCP ref went negative", "ref", -1)
	if buf.Len() != 0 {
		t.Errorf("a Debug record reached an Info handler: %s", buf.String())
	}
}
