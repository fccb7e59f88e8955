package appliance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cxlab/cxlab/appliance/config"
)

// dataDir is the directory holding all state of one appliance, locked so that
// two appliances never share it.
type dataDir struct {
	path      string
	ephemeral bool
	lock      *os.File
}

func openDataDir(cfg config.Config) (*dataDir, error) {
	var path string
	if cfg.Ephemeral {
		p, err := os.MkdirTemp("", "cxlab-")
		if err != nil {
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
	return &dataDir{path: path, ephemeral: cfg.Ephemeral, lock: lock}, nil
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
