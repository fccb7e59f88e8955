// Package browsertest drives Debian's headless chromium with chromedp for the
// tests of pages: a fake microphone and camera granted without a prompt, a new
// empty profile, and screenshots under .artifacts/screenshots/ (not committed).
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath finds chromium, or skips the test (fails it under CI=true).
func ChromiumPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is missing; install with: apt-get install chromium")
	}
	t.Skip("chromium is missing; install with: apt-get install chromium (or make deps)")
	return ""
}

// New starts a headless chromium, stopped at test cleanup.
func New(t testing.TB) context.Context {
	t.Helper()
	path := ChromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // start the browser outside any step deadline
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Tab opens another tab of the same browser.
func Tab(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return tab
}

// Run runs browser steps within d; on failure it saves a screenshot.
func Run(t testing.TB, ctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		Screenshot(t, ctx, "failure")
		t.Fatalf("browser: %v", err)
	}
}

// WaitJS polls a JavaScript condition for up to d.
func WaitJS(t testing.TB, ctx context.Context, d time.Duration, what, expr string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		Screenshot(t, ctx, "failure")
		msg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('error') ? document.getElementById('error').textContent : ''`))
		t.Fatalf("waiting for %s: %v (page error: %q)", what, err, msg)
	}
}

// Eval evaluates a JavaScript expression.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Screenshot saves the page as .artifacts/screenshots/<test>-<name>.png.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	buf, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		return ""
	}
	dir := ArtifactsDir("screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		return ""
	}
	return path
}

// ArtifactsDir is <repo>/.artifacts/<sub>, found from this file's location.
func ArtifactsDir(sub string) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join(os.TempDir(), "cxlab-artifacts", sub)
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", ".artifacts", sub)
}
