package appliance

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// sweepEphemeral removes only what a killed appliance left: ephemeral dirs
// (marked) whose lock nobody holds and that are not being created right
// now. A --data-dir named like one, a live appliance's dir and a fresh one
// stay; a postmaster.pid naming a process that is not PostgreSQL serving
// that directory is not signalled.
func TestSweepEphemeralRemovesOnlyWhatKilledAppliancesLeft(t *testing.T) {
	tmp := t.TempDir()
	old := time.Now().Add(-2 * time.Minute)
	mk := func(name string, mark bool, age time.Time) string {
		t.Helper()
		d := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(d, "postgres", "pgdata"), 0o700); err != nil {
			t.Fatal(err)
		}
		if mark {
			if err := os.WriteFile(filepath.Join(d, ephemeralMark), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, "cxlab.lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(d, age, age); err != nil {
			t.Fatal(err)
		}
		return d
	}
	left := mk("cxlab-111", true, old)
	// Its postmaster.pid names this test process, which serves no data dir:
	// a sweep that signalled it would end the test.
	if err := os.WriteFile(filepath.Join(left, "postgres", "pgdata", "postmaster.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(left, old, old); err != nil {
		t.Fatal(err)
	}
	live := mk("cxlab-222", true, old)
	persistent := mk("cxlab-333", false, old)
	fresh := mk("cxlab-444", true, time.Now())
	lock, err := os.OpenFile(filepath.Join(live, "cxlab.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(live, old, old); err != nil {
		t.Fatal(err)
	}

	removed := sweepEphemeral(tmp, time.Minute)
	if !slices.Equal(removed, []string{left}) {
		t.Fatalf("swept %v, want only %s", removed, left)
	}
	for _, d := range []string{live, persistent, fresh} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
	if _, err := os.Stat(left); err == nil {
		t.Errorf("%s is still there", left)
	}
}
