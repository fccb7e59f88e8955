package appliance

import (
	"context"
	"log/slog"
	"strings"
)

// sipgoLogs is the handler under sipgo's package-level logger. sipgo warns
// "TCP ref went negative" (and "UDP ref went negative on try close") when a
// transport connection is released once more after it was closed: its own
// reference count dropping below zero on a connection that is already gone.
// A sign-out while a call rings does that every time, so on the console it
// was a warning about nothing; those records are logged at Debug. sipgo's
// other records pass unchanged.
type sipgoLogs struct{ slog.Handler }

func (h sipgoLogs) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && strings.Contains(r.Message, "ref went negative") {
		if !h.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h sipgoLogs) WithAttrs(as []slog.Attr) slog.Handler {
	return sipgoLogs{h.Handler.WithAttrs(as)}
}

func (h sipgoLogs) WithGroup(name string) slog.Handler { return sipgoLogs{h.Handler.WithGroup(name)} }
