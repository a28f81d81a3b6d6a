// Package browsertest starts headless Chromium for the tests that check a page as a person
// sees it (the load report, the collector's trace page): Debian's Chromium, found on the
// PATH, with the flags this machine needs. Without it a test skips, unless REQUIRE_BROWSER=1
// (CI) makes that a failure.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Timeout bounds a test's whole use of its browser.
const Timeout = 2 * time.Minute

// Chromium is the path of Debian's Chromium, or the test skips (fails with
// REQUIRE_BROWSER=1).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("REQUIRE_BROWSER") == "1" {
		t.Fatal("no Chromium on PATH (REQUIRE_BROWSER=1): apt-get install -y chromium")
	}
	t.Skip("no Chromium on PATH: apt-get install -y chromium (REQUIRE_BROWSER=1 makes this a failure)")
	return ""
}

// Start starts headless Chromium for the test and returns its browser context, closed when
// the test ends (its cleanups run in reverse: start the browser after the servers it talks
// to, so that it closes its connections before they wait for them). The flags: no sandbox
// (tests run as root), no background networking, updates or sync (the closed network
// refuses their connections), a profile of its own, a 1400×1000 window.
func Start(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	return bctx
}
