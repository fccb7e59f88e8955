package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every command answers --help on stdout with exit 0, as `up`, `agent`,
// `doctor` and `config print` do through their flag sets.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"version", "--help"}, {"config", "--help"}, {"config", "-h"}} {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, &out, &errOut)
		if code != exitOK || !strings.Contains(strings.ToLower(out.String()), "usage") || errOut.Len() != 0 {
			t.Errorf("cxlab %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"version", "extra"}, &out, &errOut); code != exitUsage {
		t.Errorf("cxlab version extra: exit %d, want %d", code, exitUsage)
	}
}

// A misspelled CXLAB_* variable is named with the setting it is closest to
// instead of being ignored without a word; settings, and the tests' own
// variables, are not.
func TestMisspelledEnvIsNamed(t *testing.T) {
	t.Setenv("CXLAB_REDIS_UR", "redis://127.0.0.1:1")
	t.Setenv("CXLAB_HTTP_PORT", "9999")
	t.Setenv("CXLAB_TEST_POSTGRES_URL", "postgres://x")
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"config", "print"}, &out, &errOut)
	if code != exitOK || !strings.Contains(out.String(), "9999") {
		t.Fatalf("cxlab config print: exit %d, stdout %q", code, out.String())
	}
	want := "cxlab: warning: CXLAB_REDIS_UR is not a setting and is ignored (did you mean CXLAB_REDIS_URL?)\n"
	if errOut.String() != want {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
}
