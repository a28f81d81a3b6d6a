package loadtest

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mitosis-dev/mitosis/platform/browsertest"
)

// TestReportScreenshot opens report.html in headless Chromium from the file system (no
// server, no network) and checks that its charts rendered: every SVG has a size, the
// latency chart has its lines, and the screenshot is not blank.
func TestReportScreenshot(t *testing.T) {
	dir := t.TempDir()
	if err := sampleReport(Traces{Reason: "no trace collector answered (test)"}).WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	bctx := browsertest.Start(t)

	if err := chromedp.Do(bctx,
		chromedp.Navigate("file://"+filepath.Join(dir, "report.html")),
		chromedp.WaitVisible(chromedp.CSS("svg")),
	); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	eval := func(js string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return n
	}
	charts := eval(`document.querySelectorAll("svg").length`)
	sized := eval(`Array.from(document.querySelectorAll("svg")).filter(s => { const r = s.getBoundingClientRect(); return r.width > 100 && r.height > 100 }).length`)
	lines := eval(`document.querySelector("svg[aria-label='Latency vs offered load']").querySelectorAll("polyline").length`)
	colours := eval(`new Set(Array.from(document.querySelector("svg[aria-label='Latency vs offered load']").querySelectorAll("polyline")).map(p => p.getAttribute("stroke"))).size`)
	missing, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#traces-missing")))
	if err != nil {
		t.Fatalf("trace section: %v", err)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if charts < 7 || sized != charts {
		t.Errorf("%d charts, %d of them with a size: want at least 7, all drawn", charts, sized)
	}
	if lines != 6 { // p50 and p99 of each of the three architectures
		t.Errorf("latency chart has %d lines, want 6", lines)
	}
	if colours != 3 {
		t.Errorf("latency chart's lines have %d colours, want one per architecture", colours)
	}
	if !bytes.Contains([]byte(missing), []byte("Traces were not collected")) {
		t.Errorf("trace section reads %q", missing)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 1000 || b.Dy() < 1000 {
		t.Errorf("screenshot %dx%d, want a full page", b.Dx(), b.Dy())
	}
	// Coloured pixels (the charts' lines and bars), not just text on white.
	coloured := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if max(r, g, bl)-min(r, g, bl) > 0x4000 {
				coloured++
			}
		}
	}
	if coloured < 2000 {
		t.Errorf("%d coloured pixels in the screenshot: the charts did not render", coloured)
	}
	if out := os.Getenv("SCREENSHOT_DIR"); out != "" {
		if err := os.WriteFile(filepath.Join(out, "report-screenshot.png"), shot, 0o644); err != nil {
			t.Error(err)
		}
	}
}
