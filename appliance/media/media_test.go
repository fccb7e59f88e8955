package media

import (
	"math"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// render reads src to the end (bounded) as one slice.
func render(t testing.TB, src Source, maxFrames int) []int16 {
	t.Helper()
	var out []int16
	frame := make([]int16, FrameSamples)
	for range maxFrames + 1 {
		if !ReadFrame(src, frame) {
			return out
		}
		out = append(out, frame...)
	}
	t.Fatalf("source longer than %d frames", maxFrames)
	return nil
}

func analyse(pcm []int16) Snapshot {
	a := NewAnalyzer(AnalyzerConfig{})
	a.Write(pcm)
	return a.Snapshot()
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func log10(v float64) float64 { return math.Log10(v) }
