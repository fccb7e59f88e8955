package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Diagnosis is what `cxlab doctor` reports about PostgreSQL on this machine.
type Diagnosis struct {
	Dir, Version, Source string // the binaries a start would use; Source is explicit, download-cache or system
	RunAs                string // the unprivileged user when running as root
}

// Diagnose finds the binaries a start would use without downloading anything
// (a cached download counts) and, when running as root, the run-as user.
func Diagnose(ctx context.Context, cfg Config) (Diagnosis, error) {
	cfg = cfg.withDefaults()
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(os.TempDir(), "cxlab-doctor")
	}
	l := newLayout(cfg.DataDir)
	f := newFinder(cfg, l)
	f.repositoryURL = DownloadOff         // never download from doctor
	f.cluster, _ = dataDirMajor(l.pgdata) // an unreadable PG_VERSION is the start's error to report
	b, err := f.find(ctx)
	d := Diagnosis{Dir: b.Dir, Version: b.Version, Source: b.Source}
	if err != nil {
		return d, fmt.Errorf("%w (a start would also try the download from %s first)", err, cfg.RepositoryURL)
	}
	if os.Geteuid() == 0 {
		u, err := lookupRunAs(cfg.RunAsUser)
		if err != nil {
			return d, err
		}
		d.RunAs = u.Username
	}
	return d, nil
}
