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
