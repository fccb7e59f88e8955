package postgres

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xi2/xz"
)

// binaries is a usable PostgreSQL installation: Dir/bin holds pg_ctl, initdb
// and postgres, and Version is what `postgres --version` printed.
type binaries struct {
	Dir     string
	Version string // e.g. "15.18"
	Major   int
	Source  string // explicit, download, system
}

// finder looks for binaries in the documented order: explicit dir, the
// library's cache/download, PostgreSQL installed on the machine.
type finder struct {
	explicit        string
	cacheDir        string
	extractRoot     string
	repositoryURL   string
	downloadVersion string
	downloadTimeout time.Duration
	systemRoots     []string
	// cluster is the major version of the cluster already in the data dir
	// (0: none yet). Only binaries of that major can run it, so the finder
	// neither downloads another major nor prefers one that is installed.
	cluster int
}

func newFinder(c Config, l layout) finder {
	return finder{
		explicit:        c.BinariesDir,
		cacheDir:        c.CacheDir,
		extractRoot:     l.binRoot,
		repositoryURL:   c.RepositoryURL,
		downloadVersion: c.DownloadVersion,
		downloadTimeout: c.DownloadTimeout,
		systemRoots:     c.systemRoots,
	}
}

// find returns the first usable binaries, or one error that lists what was
// tried and the three ways to fix it.
func (f finder) find(ctx context.Context) (binaries, error) {
	var tried []string
	if f.explicit != "" {
		// The directory the user names is the one to use: one without
		// binaries is a mistake to report, not to pass over for another
		// PostgreSQL. Its bin/ itself, a common slip, stands for its parent.
		b, err := probeBinaries(ctx, f.explicit)
		if err != nil && filepath.Base(filepath.Clean(f.explicit)) == "bin" {
			if pb, perr := probeBinaries(ctx, filepath.Dir(filepath.Clean(f.explicit))); perr == nil {
				b, err = pb, nil
			}
		}
		if err != nil {
			return binaries{}, fmt.Errorf("%s %s: %w (it must hold bin/initdb and bin/pg_ctl, e.g. /usr/lib/postgresql/15)", FlagBinaries, f.explicit, err)
		}
		b.Source = "explicit"
		return b, nil
	}
	switch {
	case f.repositoryURL == DownloadOff:
		tried = append(tried, "download: disabled")
	case f.cluster != 0 && versionMajor(f.downloadVersion) != f.cluster:
		// Without this a start would wait on the network for binaries that
		// cannot run the cluster, then refuse it once the network is back.
		tried = append(tried, fmt.Sprintf("download of PostgreSQL %s: skipped, the data dir holds a PostgreSQL %d cluster",
			f.downloadVersion, f.cluster))
	default:
		b, err := f.fromDownload(ctx)
		if err == nil {
			b.Source = "download"
			return b, nil
		}
		tried = append(tried, fmt.Sprintf("download of PostgreSQL %s: %v", f.downloadVersion, err))
	}
	// Installed binaries: the cluster's major if it has one, else the newest.
	var first *binaries
	for _, dir := range f.systemCandidates(ctx) {
		b, err := probeBinaries(ctx, dir)
		if err != nil {
			continue
		}
		b.Source = "system"
		if f.cluster == 0 || b.Major == f.cluster {
			return b, nil
		}
		if first == nil {
			first = &b
		}
	}
	if first != nil {
		return *first, nil // the caller refuses the mismatch, naming both versions
	}
	tried = append(tried, fmt.Sprintf("installed PostgreSQL: none under %s and no pg_config on PATH",
		strings.Join(f.systemRoots, ", ")))
	return binaries{}, fmt.Errorf("no usable PostgreSQL binaries (tried: %s); fix one of: "+
		"(1) point %s or %s at a directory containing bin/pg_ctl (e.g. /usr/lib/postgresql/15); "+
		"(2) allow network access to %s so PostgreSQL %s is downloaded once into %s; "+
		"(3) install PostgreSQL on this machine: apt-get install postgresql",
		strings.Join(tried, "; "), FlagBinaries, EnvBinaries, f.repositoryURL, f.downloadVersion, f.cacheDir)
}

// versionMajor is the major of a version such as "18.3.0" (0 if unreadable).
func versionMajor(v string) int {
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return major
}

// systemCandidates lists installed PostgreSQL dirs, highest version first,
// then what pg_config reports.
func (f finder) systemCandidates(ctx context.Context) []string {
	type cand struct {
		dir string
		ver int
	}
	var cs []cand
	for _, root := range f.systemRoots {
		entries, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if v, err := strconv.Atoi(e.Name()); err == nil {
				cs = append(cs, cand{filepath.Join(root, e.Name()), v})
			}
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].ver > cs[j].ver })
	out := make([]string, 0, len(cs)+1)
	for _, c := range cs {
		out = append(out, c.dir)
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if b, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output(); err == nil {
			// The library wants the parent of bin/ (it runs <dir>/bin/pg_ctl).
			out = append(out, filepath.Dir(strings.TrimSpace(string(b))))
		}
	}
	return out
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// probeBinaries checks that dir/bin holds the tools we run and asks postgres
// for its version.
func probeBinaries(ctx context.Context, dir string) (binaries, error) {
	for _, tool := range []string{"pg_ctl", "initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, "bin", tool)); err != nil {
			return binaries{}, fmt.Errorf("no bin/%s", tool)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "bin", "postgres"), "--version").Output()
	if err != nil {
		return binaries{}, fmt.Errorf("run bin/postgres --version: %w", err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return binaries{}, fmt.Errorf("unrecognised postgres --version output %q", strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	version := m[1]
	if m[2] != "" {
		version += "." + m[2]
	}
	return binaries{Dir: dir, Version: version, Major: major}, nil
}

// fromDownload returns the binaries of downloadVersion, extracting them from
// the library's cached archive and downloading that archive first if needed.
func (f finder) fromDownload(ctx context.Context) (binaries, error) {
	dir := filepath.Join(f.extractRoot, f.downloadVersion)
	if b, err := probeBinaries(ctx, dir); err == nil {
		return b, nil
	}
	goos, arch := libraryPlatform()
	// Same file name as embedded-postgres' cache, so either can reuse the other's.
	archive := filepath.Join(f.cacheDir, fmt.Sprintf("embedded-postgres-binaries-%s-%s-%s.txz", goos, arch, f.downloadVersion))
	if _, err := os.Stat(archive); err != nil {
		ctx, cancel := context.WithTimeout(ctx, f.downloadTimeout)
		defer cancel()
		if err := f.download(ctx, goos, arch, archive); err != nil {
			return binaries{}, err
		}
	}
	if err := extractTxz(archive, dir); err != nil {
		return binaries{}, err
	}
	return probeBinaries(ctx, dir)
}

// libraryPlatform names the platform the way the zonky binaries do.
func libraryPlatform() (goos, arch string) {
	arch = runtime.GOARCH
	if arch == "arm64" {
		arch = "arm64v8"
	}
	return runtime.GOOS, arch
}

// download fetches the Maven jar, checks its sha256 and stores the .txz inside
// it at archive.
func (f finder) download(ctx context.Context, goos, arch, archive string) error {
	name := fmt.Sprintf("embedded-postgres-binaries-%s-%s", goos, arch)
	url := fmt.Sprintf("%s/io/zonky/test/postgres/%s/%s/%s-%s.jar",
		strings.TrimRight(f.repositoryURL, "/"), name, f.downloadVersion, name, f.downloadVersion)
	client := &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		Proxy:                 http.ProxyFromEnvironment,
	}}
	defer client.CloseIdleConnections()
	jar, err := httpGet(ctx, client, url)
	if err != nil {
		return err
	}
	if sum, err := httpGet(ctx, client, url+".sha256"); err == nil {
		got := sha256.Sum256(jar)
		if want := strings.TrimSpace(string(sum)); want != hex.EncodeToString(got[:]) {
			return fmt.Errorf("download %s: sha256 mismatch", url)
		}
	}
	zr, err := zip.NewReader(bytes.NewReader(jar), int64(len(jar)))
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	for _, zf := range zr.File {
		if !strings.HasSuffix(zf.Name, ".txz") {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("download %s: %w", url, err)
		}
		defer rc.Close()
		return writeFileAtomic(archive, rc, 0o644)
	}
	return fmt.Errorf("download %s: no .txz inside", url)
}

func httpGet(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	return b, nil
}

// writeFileAtomic writes r to path through a temp file and a rename, so that
// a concurrent reader never sees a partial archive.
func writeFileAtomic(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // best effort; gone after the rename
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// extractTxz unpacks a tar.xz into dir (through a temp dir and a rename).
func extractTxz(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	defer f.Close()
	xr, err := xz.NewReader(f, 0)
	if err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".extract-*")
	if err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	defer func() { _ = os.RemoveAll(tmp) }() // best effort; gone after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	tr := tar.NewReader(xr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", archive, err)
		}
		target := filepath.Join(tmp, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
				err = writeFile(target, tr, os.FileMode(h.Mode).Perm())
			}
		case tar.TypeSymlink:
			if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
				err = os.Symlink(h.Linkname, target)
			}
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", archive, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	return nil
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dataDirMajor returns the major version recorded in pgdata/PG_VERSION, or 0
// when the cluster does not exist yet.
func dataDirMajor(pgdata string) (int, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Join(pgdata, "PG_VERSION"), err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read %s: unexpected content %q", filepath.Join(pgdata, "PG_VERSION"), b)
	}
	return v, nil
}
