package apptest

import (
	"os"
	"os/exec"
	"testing"
)

// NeedTool returns the path of a peer tool from apt, or skips the test with
// the install command; under CI=true a missing tool fails the test instead.
func NeedTool(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; install with: apt-get install %s", bin, pkg)
		}
		t.Skipf("%s is missing; install with: apt-get install %s (or make deps)", bin, pkg)
	}
	return p
}
