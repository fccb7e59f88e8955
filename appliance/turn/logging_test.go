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
