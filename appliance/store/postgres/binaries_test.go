package postgres

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeJar builds a Maven jar like zonky's: a zip holding a .txz whose bin/
// has pg_ctl, initdb and a postgres that prints the given version.
func fakeJar(t *testing.T, version string) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xz missing; install with: apt-get install xz-utils")
		}
		t.Skip("xz missing; install with: apt-get install xz-utils")
	}
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"pg_ctl", "initdb", "postgres"} {
		script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + version + "'\n"
		if err := os.WriteFile(filepath.Join(src, "bin", tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	txz := filepath.Join(t.TempDir(), "pg.txz")
	if out, err := exec.Command("sh", "-c", "tar -C "+src+" -cf - bin | xz -1 > "+txz).CombinedOutput(); err != nil {
		t.Fatalf("build archive: %v %s", err, out)
	}
	data, err := os.ReadFile(txz)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("postgres-linux-x86_64.txz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDownloadThenCache(t *testing.T) {
	jar := fakeJar(t, "17.5")
	sum := sha256.Sum256(jar)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch {
		case strings.HasSuffix(r.URL.Path, "17.5.0.jar"):
			_, _ = w.Write(jar)
		case strings.HasSuffix(r.URL.Path, "17.5.0.jar.sha256"):
			_, _ = w.Write([]byte(hex.EncodeToString(sum[:])))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cache := t.TempDir()
	f := finder{
		cacheDir: cache, extractRoot: filepath.Join(t.TempDir(), "binaries"), repositoryURL: srv.URL,
		downloadVersion: "17.5.0", downloadTimeout: 10 * time.Second, systemRoots: []string{t.TempDir()},
	}
	b, err := f.find(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.Source != "download" || b.Major != 17 || b.Version != "17.5" {
		t.Fatalf("got %+v", b)
	}
	// A second data dir reuses the cached archive: no new request.
	before := requests.Load()
	f.extractRoot = filepath.Join(t.TempDir(), "binaries")
	if _, err := f.find(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != before {
		t.Fatalf("cached archive not reused: %d new requests", n-before)
	}
}

func TestDownloadChecksumMismatchRejected(t *testing.T) {
	jar := fakeJar(t, "17.5")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".sha256") {
			_, _ = w.Write([]byte(strings.Repeat("0", 64)))
			return
		}
		_, _ = w.Write(jar)
	}))
	defer srv.Close()
	f := finder{
		cacheDir: t.TempDir(), extractRoot: t.TempDir(), repositoryURL: srv.URL,
		downloadVersion: "17.5.0", downloadTimeout: 10 * time.Second, systemRoots: []string{t.TempDir()},
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := f.find(testCtx(t)); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("want a sha256 mismatch, got %v", err)
	}
}

// A repository that never answers must not stall start: the download gives
// up after its timeout and the installed binaries are used.
func TestHangingDownloadFallsBackToSystem(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	system := fakeSystemRoot(t)
	f := finder{
		cacheDir: t.TempDir(), extractRoot: t.TempDir(), repositoryURL: srv.URL,
		downloadVersion: "17.5.0", downloadTimeout: 300 * time.Millisecond, systemRoots: []string{system},
	}
	b, err := f.find(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.Source != "system" || b.Major != 16 {
		t.Fatalf("got %+v, want the installed 16", b)
	}
}

// fakeSystemRoot makes <root>/{9,16}/bin with stub tools; 16 must win.
func fakeSystemRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, v := range []string{"9", "16"} {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, tool := range []string{"pg_ctl", "initdb", "postgres"} {
			script := "#!/bin/sh\necho 'postgres (PostgreSQL) " + v + ".1'\n"
			if err := os.WriteFile(filepath.Join(bin, tool), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestExplicitBinariesWin(t *testing.T) {
	f := finder{explicit: "/usr/lib/postgresql/15", repositoryURL: DownloadOff, systemRoots: []string{fakeSystemRoot(t)}}
	if _, err := os.Stat("/usr/lib/postgresql/15/bin/pg_ctl"); err != nil {
		f.explicit = filepath.Join(fakeSystemRoot(t), "9")
	}
	b, err := f.find(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.Source != "explicit" || b.Dir != f.explicit {
		t.Fatalf("got %+v", b)
	}
}

// A binaries directory the user names is used or refused, never passed over
// for another PostgreSQL; naming its bin/ works too.
func TestExplicitBinariesAreUsedOrRefused(t *testing.T) {
	system := fakeSystemRoot(t) // 9 and 16
	f := finder{explicit: filepath.Join(system, "16", "bin"), repositoryURL: DownloadOff, systemRoots: []string{system}}
	if b, err := f.find(testCtx(t)); err != nil || b.Source != "explicit" || b.Dir != filepath.Join(system, "16") {
		t.Fatalf("the bin dir named: %+v %v, want %s/16 as explicit", b, err, system)
	}
	f.explicit = t.TempDir()
	if b, err := f.find(testCtx(t)); err == nil || !strings.Contains(err.Error(), f.explicit) || !strings.Contains(err.Error(), "bin/initdb") {
		t.Fatalf("an empty dir named: %+v %v, want an error naming it", b, err)
	}
}

// A data dir that already holds a cluster needs binaries of its major: the
// finder does not go to the network for another major (an offline start
// would wait on it, and an online one would fetch binaries that cannot run
// the cluster), and among installed versions it takes the cluster's.
func TestExistingClusterPicksItsMajor(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	system := fakeSystemRoot(t) // 9 and 16
	f := finder{
		cacheDir: t.TempDir(), extractRoot: t.TempDir(), repositoryURL: srv.URL,
		downloadVersion: "17.5.0", downloadTimeout: time.Second, systemRoots: []string{system}, cluster: 9,
	}
	b, err := f.find(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.Source != "system" || b.Major != 9 {
		t.Fatalf("got %+v, want the installed 9 for a PostgreSQL 9 cluster (16 is newer)", b)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d download requests for PostgreSQL 17 with a 9 cluster, want none", n)
	}

	// The cluster's own major is still downloaded.
	f.cluster, f.downloadVersion = 17, "17.5.0"
	if _, err := f.find(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("%d download requests for a PostgreSQL 17 cluster, want 1", n)
	}
}
