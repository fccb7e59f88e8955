// Package telemetry owns the appliance's logging (one slog tree fanned out to
// per-component rotated files and stderr) and its Prometheus registry.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"
)

// LogConfig says where and how much to log.
type LogConfig struct {
	Dir          string     // directory of the per-component files; empty disables files
	FileLevel    slog.Level // level written to files
	ConsoleLevel slog.Level // level echoed to Console
	Console      io.Writer  // usually os.Stderr; nil disables
	MaxSizeMB    int        // rotate at this size
	MaxFiles     int        // rotated files kept per component
}

// Logs fans log records out to stderr and to one rotated file per component,
// chosen by the record's "component" attribute (logger.With("component", "turn")).
type Logs struct {
	cfg    LogConfig
	mu     sync.Mutex
	files  map[string]*lumberjack.Logger
	closed bool
}

// NewLogs returns the log hub; Logger() is the root logger to pass down.
func NewLogs(cfg LogConfig) (*Logs, error) {
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("create log dir: %w", err)
		}
	}
	return &Logs{cfg: cfg, files: map[string]*lumberjack.Logger{}}, nil
}

// Logger returns the root logger; records without a component go to "cxlab.log".
func (l *Logs) Logger() *slog.Logger {
	return slog.New(&fanout{logs: l, component: "cxlab"})
}

// Dir is the directory holding the component log files.
func (l *Logs) Dir() string { return l.cfg.Dir }

// Files lists the component log files written so far, by component name.
func (l *Logs) Files() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.files))
	for name, f := range l.files {
		out[name] = f.Filename
	}
	return out
}

// Components returns the names of components that have logged, sorted.
func (l *Logs) Components() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.files))
	for name := range l.files {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Close flushes and closes every file.
func (l *Logs) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		_ = f.Close()
	}
	l.files = map[string]*lumberjack.Logger{}
	l.closed = true // later records go to the console only: the dir may be gone
	return nil
}

func (l *Logs) file(component string) io.Writer {
	if l.cfg.Dir == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	f, ok := l.files[component]
	if !ok {
		f = &lumberjack.Logger{
			Filename:   filepath.Join(l.cfg.Dir, safeName(component)+".log"),
			MaxSize:    l.cfg.MaxSizeMB,
			MaxBackups: l.cfg.MaxFiles,
		}
		l.files[component] = f
	}
	return f
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == '.' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// fanout is a slog.Handler that renders each record twice at most: a JSON line
// in the component's file and a text line on the console.
type fanout struct {
	logs      *Logs
	component string
	attrs     []slog.Attr
	groups    []string
}

func (h *fanout) Enabled(_ context.Context, lvl slog.Level) bool {
	return lvl >= h.logs.cfg.FileLevel || (h.logs.cfg.Console != nil && lvl >= h.logs.cfg.ConsoleLevel)
}

func (h *fanout) Handle(ctx context.Context, r slog.Record) error {
	if w := h.logs.file(h.component); w != nil && r.Level >= h.logs.cfg.FileLevel {
		if err := h.build(slog.NewJSONHandler(w, nil)).Handle(ctx, r); err != nil {
			return err
		}
	}
	if h.logs.cfg.Console != nil && r.Level >= h.logs.cfg.ConsoleLevel {
		return h.build(slog.NewTextHandler(h.logs.cfg.Console, nil)).Handle(ctx, r)
	}
	return nil
}

func (h *fanout) build(base slog.Handler) slog.Handler {
	out := base.WithAttrs([]slog.Attr{slog.String("component", h.component)})
	if len(h.attrs) > 0 {
		out = out.WithAttrs(h.attrs)
	}
	for _, g := range h.groups {
		out = out.WithGroup(g)
	}
	return out
}

func (h *fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append([]slog.Attr{}, h.attrs...)
	for _, a := range attrs {
		if a.Key == "component" && len(h.groups) == 0 {
			n.component = a.Value.String()
			continue
		}
		n.attrs = append(n.attrs, a)
	}
	return &n
}

func (h *fanout) WithGroup(name string) slog.Handler {
	n := *h
	n.groups = append(append([]string{}, h.groups...), name)
	return &n
}

// ParseLevel turns "debug|info|warn|error" into a slog.Level.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
