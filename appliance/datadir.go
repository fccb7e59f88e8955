package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cxlab/cxlab/appliance/config"
	"github.com/cxlab/cxlab/appliance/store/postgres"
)

// dataDir is the directory holding all state of one appliance, locked so that
// two appliances never share it.
type dataDir struct {
	path      string
	ephemeral bool
	lock      *os.File
	swept     []string // ephemeral dirs of killed appliances removed at open (sweepEphemeral)
}

func openDataDir(cfg config.Config) (*dataDir, error) {
	var path string
	var swept []string
	if cfg.Ephemeral {
		swept = sweepEphemeral(os.TempDir(), 5*time.Second)
		p, err := os.MkdirTemp("", "cxlab-")
		if err != nil {
			return nil, fmt.Errorf("%w: ephemeral data dir: %w", config.ErrInvalid, err)
		}
		// Marks the directory as one sweepEphemeral may remove once its
		// appliance is gone; a --data-dir never has it.
		if err := os.WriteFile(filepath.Join(p, ephemeralMark), nil, 0o600); err != nil {
			_ = os.RemoveAll(p)
			return nil, fmt.Errorf("%w: ephemeral data dir: %w", config.ErrInvalid, err)
		}
		path = p
	} else {
		abs, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("%w: data_dir (--data-dir) %q: %w", config.ErrInvalid, cfg.DataDir, err)
		}
		path = abs
		if err := os.MkdirAll(path, 0o711); err != nil {
			return nil, fmt.Errorf("%w: data_dir (--data-dir) %s: %w", config.ErrInvalid, path, unwrapPath(err))
		}
	}
	// The PostgreSQL processes may run as another user, who must be able to
	// traverse (not list) the data dir.
	if os.Geteuid() == 0 {
		_ = os.Chmod(path, 0o711)
	}
	lock, err := os.OpenFile(filepath.Join(path, "cxlab.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: data_dir (--data-dir) %s is not writable: %w", config.ErrInvalid, path, unwrapPath(err))
	}
	// flock is released by the kernel when the process dies, even by kill -9,
	// so a stale lock never blocks the next start.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("data_dir (--data-dir) %s is in use by another cxlab process", path)
	}
	_ = lock.Truncate(0)
	_, _ = fmt.Fprintf(lock, "%d\n", os.Getpid())
	return &dataDir{path: path, ephemeral: cfg.Ephemeral, lock: lock, swept: swept}, nil
}

// ephemeralMark is the file that marks an ephemeral data dir.
const ephemeralMark = ".cxlab-ephemeral"

// sweepEphemeral removes the ephemeral data dirs (tmp/cxlab-*) that a killed
// appliance left behind, and stops their PostgreSQL. A clean stop removes
// its own, and a kill -9 of the appliance alone lets its supervisor stop
// PostgreSQL; but when both die by SIGKILL (a CI runner killing a job's
// process group), the postmaster, daemonised by pg_ctl, would run on, holding
// its port and memory, and the directory would stay for ever. A directory is
// left alone while its lock is held (its appliance lives) and while it is
// younger than minAge (an appliance starting this instant has made it but not
// yet locked it). It returns the directories removed.
func sweepEphemeral(tmp string, minAge time.Duration) []string {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "cxlab-*"))
	var removed []string
	for _, dir := range dirs {
		st, err := os.Lstat(dir)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < minAge {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, ephemeralMark)); err != nil {
			continue // a --data-dir that happens to be named so: never swept
		}
		lock, err := os.OpenFile(filepath.Join(dir, "cxlab.lock"), os.O_RDWR, 0)
		if err != nil {
			continue // not an appliance's data dir (or not ours to touch)
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			_ = lock.Close() // its appliance is alive
			continue
		}
		postgres.StopOrphan(filepath.Join(dir, "postgres", "pgdata"), 10*time.Second)
		if os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
		_ = lock.Close()
	}
	return removed
}

func (d *dataDir) sub(name string) string { return filepath.Join(d.path, name) }

// close releases the lock and removes an ephemeral directory.
func (d *dataDir) close() error {
	if d.lock != nil {
		_ = d.lock.Close()
		d.lock = nil
	}
	if d.ephemeral {
		return os.RemoveAll(d.path)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
