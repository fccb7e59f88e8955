package config

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// otherEnv are CXLAB_* variables that are not settings of `cxlab up`: the
// tests', the bench's and the PostgreSQL supervisor's own.
var otherEnv = []string{
	"CXLAB_TEST_POSTGRES_URL", "CXLAB_BENCH_PROFILE", "CXLAB_BENCH_TRACE", "CXLAB_BENCH_UP_ARGS",
	"CXLAB_FAULTS", "CXLAB_BIN", "CXLAB_POSTGRES_SUPERVISOR", "CXLAB_PG_TEST_HELPER", "CXLAB_DUMP_PG_LOG",
}

// UnknownEnv returns a warning for each CXLAB_* variable in environ (as
// os.Environ gives it) that is no setting, naming the setting it is
// closest to: a misspelled variable would otherwise be ignored without a word.
func UnknownEnv(environ []string) []string {
	var known []string
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cfg := Default()
	Bind(fs, &cfg)
	fs.VisitAll(func(f *flag.Flag) { known = append(known, EnvName(f.Name)) })
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "CXLAB_") || slices.Contains(known, name) || slices.Contains(otherEnv, name) {
			continue
		}
		w := fmt.Sprintf("%s is not a setting and is ignored", name)
		if near := nearest(name, known); near != "" {
			w += fmt.Sprintf(" (did you mean %s?)", near)
		}
		warnings = append(warnings, w)
	}
	slices.Sort(warnings)
	return warnings
}

// nearest is the name in names within three edits of s with the fewest, or "".
func nearest(s string, names []string) string {
	best, bestD := "", 4
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
