package cli

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// When cxlab runs as root, PostgreSQL runs as an unprivileged user that must
// traverse every directory on the way to the data dir: doctor says so before
// `cxlab up` fails on it.
func TestDoctorChecksThePostgresUserReachesTheDataDir(t *testing.T) {
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody on this machine")
	}
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} { // t.TempDir makes 0700 directories
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	private := filepath.Join(root, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	err := reachableBy("nobody", filepath.Join(private, "data", "more"))
	if err == nil || !strings.Contains(err.Error(), private) {
		t.Fatalf("data dir under a 0700 directory: %v, want an error naming %s", err, private)
	}
	if err := os.Chmod(private, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := reachableBy("nobody", filepath.Join(private, "data")); err != nil {
		t.Fatalf("data dir under a 0711 directory: %v", err)
	}
}
