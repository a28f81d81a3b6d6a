package tracecollect_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mitosis-dev/mitosis/platform/browsertest"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/platform/tracecompare/checkouttrace"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// shopCheckout runs the whole shop in this process as the monolith does (every context
// and the HTTP edge in one host, on a real JetStream), with OpenTelemetry set up as every
// binary sets it up and exporting over OTLP/HTTP to c; it places one order through the
// HTTP API and returns the checkout's trace ID once that trace is whole in c (the edge,
// every call, both events and all their consumers).
func shopCheckout(t *testing.T, c *tracecollect.Collector) string {
	t.Helper()
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+c.HTTPAddr())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "monolith",
		Architecture: telemetry.Monolith, LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) }) // after the host's stop, registered below
	shop := hosttest.Start(t, "edge+catalog+cart+inventory+payments+orders+shipping+notify",
		map[string]string{"SHOP_NATS_URL": hosttest.StartNATS(t).URL()})

	api := apitest.NewClient(apitest.Target{BaseURL: shop.BaseURL, AdminToken: hosttest.Token})
	p := api.NewStockedProduct(t, 1250, 300, 10)
	user := apitest.NewID("u")
	api.AddToCart(t, user, p.ID, 2)
	r, err := api.CheckoutResponse(t.Context(), apitest.NewID("k"), apitest.NewCheckout(user, apitest.CardApproved))
	if err != nil || r.Status != 201 {
		t.Fatalf("checkout: %v %v", r, err)
	}
	parts := strings.Split(r.Header.Get("traceresponse"), "-") // W3C: 00-<trace ID>-<span ID>-<flags>
	if len(parts) != 4 || len(parts[1]) != 32 {
		t.Fatalf("traceresponse %q", r.Header.Get("traceresponse"))
	}
	id := parts[1]
	tid, err := tracecollect.ParseTraceID(id)
	if err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		td := c.Store().Trace(tid)
		if td == nil {
			return false, "the checkout's trace is not in the collector"
		}
		trs, err := tracecompare.FromOTLP(td)
		if err != nil {
			return false, err.Error()
		}
		if err := checkouttrace.Check(trs[0], "monolith"); err != nil {
			return false, "the checkout's trace is not whole: " + err.Error()
		}
		return true, ""
	})
	return id
}

// The collector's page, in headless Chromium: a search by service, operation, minimum
// duration and time window finds a real checkout of the shop, which the page then draws as
// a waterfall: one bar per span on a time axis, each row nested under its parent's, and a
// span's attributes under its row when it is clicked.
func TestTracePageFindsACheckoutAndDrawsItsWaterfall(t *testing.T) {
	c := startCollector(t, 0)
	// Cleanups run in reverse: the browser closes its connections before the collector's
	// Close waits for them.
	bctx := browsertest.Start(t)
	id := shopCheckout(t, c)
	tid, _ := tracecollect.ParseTraceID(id)
	// What the page must show: every span, under its parent.
	parents := map[string]string{}
	for _, rs := range c.Store().Trace(tid).GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				parents[hex.EncodeToString(sp.GetSpanId())] = hex.EncodeToString(sp.GetParentSpanId())
			}
		}
	}
	base := "http://" + c.QueryAddr()
	eval := func(js string, v any) {
		t.Helper()
		var err error
		switch p := v.(type) {
		case *int:
			*p, err = chromedp.Run(bctx, chromedp.Evaluate[int](js))
		case *string:
			*p, err = chromedp.Run(bctx, chromedp.Evaluate[string](js))
		case *[]string:
			*p, err = chromedp.Run(bctx, chromedp.Evaluate[[]string](js))
		default:
			t.Fatalf("eval into %T", v)
		}
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
	}
	waitFor := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			var status string
			eval(`document.querySelector("[role=status]:not([hidden])") ? document.body.innerText : ""`, &status)
			t.Fatalf("%s: %v\n%s", what, err, status)
		}
	}
	setSelect := func(id, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
				`(() => { const s = document.getElementById(%q); s.value = %q; s.dispatchEvent(new Event("change")); return s.value === %q })()`, id, value, value)))
			return err
		})
	}

	// The search: the form fills from the API (services, then the service's operations).
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/search"), chromedp.WaitVisible(chromedp.CSS("#search-form"))); err != nil {
		t.Fatalf("open the search: %v", err)
	}
	waitFor("the services listed", `[...document.querySelectorAll("#service option")].some(o => o.value === "monolith")`)
	if err := chromedp.Do(bctx, setSelect("service", "monolith")); err != nil {
		t.Fatal(err)
	}
	waitFor("the operations listed", `[...document.querySelectorAll("#operation option")].some(o => o.value === "POST /v1/checkout")`)
	search := func(minDuration string) {
		t.Helper()
		if err := chromedp.Do(bctx,
			setSelect("operation", "POST /v1/checkout"),
			setSelect("lookback", "15m"),
			chromedp.SetValue(chromedp.CSS("#minDuration"), minDuration),
			chromedp.Click(chromedp.CSS("#find")),
		); err != nil {
			t.Fatalf("search: %v", err)
		}
	}
	search("10s") // longer than any checkout here
	waitFor("a search that finds nothing", `document.getElementById("search-status").textContent === "No traces found."`)
	search("100us")
	waitFor("the checkout found", `document.getElementById("search-status").textContent === "1 trace"`)
	var found []string
	eval(`[...document.querySelectorAll("tr.result")].map(r => r.dataset.traceId)`, &found)
	var loc string
	eval(`location.pathname + location.search`, &loc)
	if len(found) != 1 || found[0] != id {
		t.Fatalf("search found %v, want the checkout %s", found, id)
	}
	if !strings.Contains(loc, "service=monolith") || !strings.Contains(loc, "minDuration=100us") || !strings.Contains(loc, "lookback=15m") {
		t.Errorf("the search is not in the page's address: %s", loc)
	}
	keepScreenshot(t, bctx, "trace-search.png")

	// Open it: the waterfall.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS("a.trace-link")), chromedp.WaitVisible(chromedp.CSS(".span-row"))); err != nil {
		t.Fatalf("open the trace: %v", err)
	}
	eval(`location.pathname`, &loc)
	if loc != "/trace/"+id {
		t.Errorf("trace page at %s", loc)
	}
	// Every row: its span, its parent, its depth, its bar's place and size in the timeline.
	var rows []string
	eval(`[...document.querySelectorAll(".span-row")].map(r => {
		const bar = r.querySelector(".wf-bar").getBoundingClientRect(), axis = r.querySelector(".wf-time").getBoundingClientRect();
		return [r.dataset.spanId, r.dataset.parentId, r.dataset.depth, r.dataset.service, r.querySelector(".op").textContent,
			(bar.left - axis.left).toFixed(1), bar.width.toFixed(1), axis.width.toFixed(1), r.title].join("|") })`, &rows)
	if len(rows) != len(parents) {
		t.Fatalf("%d rows for %d spans", len(rows), len(parents))
	}
	depthOf := map[string]int{}
	maxDepth := 0
	for i, row := range rows {
		f := strings.Split(row, "|")
		span, parent, service, name, title := f[0], f[1], f[3], f[4], f[8]
		var depth int
		var left, width, axis float64
		fmt.Sscan(f[2], &depth)
		fmt.Sscan(f[5], &left)
		fmt.Sscan(f[6], &width)
		fmt.Sscan(f[7], &axis)
		want, ok := parents[span]
		if !ok || parent != want {
			t.Errorf("row %d: span %s under %q, want under %q", i, span, parent, want)
		}
		if i == 0 && (parent != "" || depth != 0 || name != tracecompare.CheckoutRoot || service != "monolith") {
			t.Errorf("first row %s: want the root %q", row, tracecompare.CheckoutRoot)
		}
		if pd, seen := depthOf[parent]; parent != "" && (!seen || depth != pd+1) {
			t.Errorf("row %d (%s) at depth %d: not right under its parent's row (seen %v, at %d)", i, name, depth, seen, pd)
		}
		depthOf[span] = depth
		maxDepth = max(maxDepth, depth)
		if width < 2 || left < -0.5 || left+width > axis+0.5 || axis < 400 {
			t.Errorf("row %d (%s): bar at %.1f, %.1f wide, in %.1f", i, name, left, width, axis)
		}
		if !strings.Contains(title, service+" "+name) || !strings.Contains(title, " at +") {
			t.Errorf("row %d: hover text %q", i, title)
		}
	}
	if maxDepth < 3 {
		t.Errorf("waterfall %d levels deep: a checkout nests deeper", maxDepth+1)
	}

	// Click the root: its attributes and its process under its row; click again: gone.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(".span-row .wf-label"))); err != nil {
		t.Fatal(err)
	}
	waitFor("the root's details", `document.querySelector(".span-row + .wf-details") !== null`)
	var kind, process, expanded string
	eval(`document.querySelector(".wf-details tr[data-key='span.kind'] .value").textContent`, &kind)
	eval(`[...document.querySelectorAll(".wf-details h3")].map(h => h.textContent).join(",")`, &process)
	eval(`document.querySelector(".span-row").getAttribute("aria-expanded")`, &expanded)
	if kind != "server" || !strings.Contains(process, "Attributes,Process: monolith") || expanded != "true" {
		t.Errorf("root's details: span.kind %q, sections %q, expanded %q", kind, process, expanded)
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(".span-row .wf-label"))); err != nil {
		t.Fatal(err)
	}
	waitFor("the root's details closed", `document.querySelector(".wf-details") === null`)

	// The bars are drawn: coloured pixels, not only text on white.
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	coloured := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 2 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			if max(r, g, b)-min(r, g, b) > 0x4000 {
				coloured++
			}
		}
	}
	if coloured < 500 {
		t.Errorf("%d coloured pixels in the screenshot: the bars did not render", coloured)
	}
	if out := os.Getenv("SCREENSHOT_DIR"); out != "" {
		if err := os.WriteFile(filepath.Join(out, "trace-waterfall.png"), shot, 0o644); err != nil {
			t.Error(err)
		}
	}

	// A trace that is not there says so.
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/trace/00000000000000000000000000000001")); err != nil {
		t.Fatal(err)
	}
	waitFor("a missing trace", `document.getElementById("trace-status").textContent === "trace not found"`)
}

// keepScreenshot writes the page as it is to SCREENSHOT_DIR/name, if that is set.
func keepScreenshot(t *testing.T, bctx context.Context, name string) {
	t.Helper()
	out := os.Getenv("SCREENSHOT_DIR")
	if out == "" {
		return
	}
	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(out, name), shot, 0o644); err != nil {
		t.Error(err)
	}
}
