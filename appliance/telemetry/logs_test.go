package telemetry

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"log/slog"
)

// turnLogs returns the sizes of the turn log files in dir. lumberjack deletes
// backups past MaxFiles in a goroutine of its own after each rotation, and
// Close does not wait for it, so this waits (at most 5 s) until no more than
// 3 files are left.
func turnLogs(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		sizes := map[string]int64{}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), "turn") {
				continue
			}
			st, err := e.Info()
			if err != nil {
				continue // pruned between ReadDir and Info
			}
			sizes[e.Name()] = st.Size()
		}
		if len(sizes) <= 3 || time.Now().After(deadline) {
			return sizes
		}
		time.Sleep(10 * time.Millisecond) // lumberjack's pruning gives no signal; bounded by the deadline
	}
}

func TestComponentLogsGoToTheirOwnRotatedCappedFiles(t *testing.T) {
	dir := t.TempDir()
	var console bytes.Buffer
	logs, err := NewLogs(LogConfig{Dir: dir, FileLevel: slog.LevelInfo, ConsoleLevel: slog.LevelWarn, Console: &console, MaxSizeMB: 1, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	root := logs.Logger()
	turn := root.With("component", "turn")
	ges := root.With("component", "ges")
	line := strings.Repeat("x", 1000)
	for range 3500 { // ~3.5 MB: three rotations at 1 MB
		turn.Info("relay", "pad", line)
	}
	ges.Debug("below the file level")
	ges.Warn("one warning")
	root.Info("no component")
	if err := logs.Close(); err != nil {
		t.Fatal(err)
	}

	var turnFiles []string
	var total int64
	for name, size := range turnLogs(t, dir) {
		turnFiles = append(turnFiles, name)
		total += size
		if size > 1<<20+4096 {
			t.Errorf("%s is %d bytes, over the 1 MB rotation size", name, size)
		}
	}
	if len(turnFiles) != 3 { // the current file and MaxFiles=2 rotated ones
		t.Errorf("turn log files = %v, want the current one plus 2 rotated", turnFiles)
	}
	if total > 3<<20+8192 {
		t.Errorf("turn logs take %d bytes, over the cap", total)
	}
	b, err := os.ReadFile(filepath.Join(dir, "ges.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "one warning") || strings.Contains(string(b), "below the file level") {
		t.Errorf("ges.log = %s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "cxlab.log")); err != nil {
		t.Errorf("records without a component should go to cxlab.log: %v", err)
	}
	if !strings.Contains(console.String(), "one warning") || strings.Contains(console.String(), "relay") {
		t.Errorf("console should carry warnings only: %.300s", console.String())
	}
	// After Close nothing recreates files (the data dir of an ephemeral run is gone).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	turn.Info("late")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Error("a log line after Close recreated the log dir")
	}
}
