package loadtest

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// process is a process of a stack as the collector sees it: the SDK's meter provider with
// its resource, exporting over OTLP/HTTP when told to.
type process struct {
	reader  *sdkmetric.ManualReader
	exp     sdkmetric.Exporter
	http    metric.Float64Histogram
	store   metric.Float64Histogram
	publish metric.Float64Histogram
}

func newProcess(t *testing.T, collector *tracecollect.Collector, arch, service string) *process {
	t.Helper()
	exp, err := otlpmetrichttp.New(t.Context(), otlpmetrichttp.WithEndpointURL("http://"+collector.HTTPAddr()+"/v1/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	p := &process{reader: sdkmetric.NewManualReader(), exp: exp}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(p.reader), sdkmetric.WithResource(resource.NewSchemaless(
		attribute.String("service.name", service), attribute.String("mitosis.architecture", arch))))
	meter := mp.Meter("test")
	if p.http, err = meter.Float64Histogram(httpMetric); err != nil {
		t.Fatal(err)
	}
	if p.store, err = meter.Float64Histogram(storeMetric); err != nil {
		t.Fatal(err)
	}
	if p.publish, err = meter.Float64Histogram(publishMetric); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *process) requests(ctx context.Context, n int) {
	for range n {
		p.http.Record(ctx, 0.002, metric.WithAttributes(attribute.String("http.route", "/v1/checkout")))
	}
}

func (p *process) roundTrips(ctx context.Context, op, bucket string, n int) {
	for range n {
		p.store.Record(ctx, 0.0004, metric.WithAttributes(attribute.String("db.operation.name", op), attribute.String("db.collection.name", bucket)))
	}
}

func (p *process) publishes(ctx context.Context, subject string, n int) {
	for range n {
		p.publish.Record(ctx, 0.0006, metric.WithAttributes(attribute.String("messaging.destination.name", subject)))
	}
}

func (p *process) push(t *testing.T) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	if err := p.exp.Export(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
}

// The section reads, from the OTLP metrics a real collector keeps, each architecture's
// store round trips per request over its window alone (not what came before or after it),
// adding up every process of the architecture, whenever in the window each one pushed, and
// the report shows it.
func TestRoundTripsFromTheCollectorsMetrics(t *testing.T) {
	c := startCollector(t)
	ctx := t.Context()
	mono := newProcess(t, c, "monolith", "monolith")
	gw, orders := newProcess(t, c, "services", "gateway"), newProcess(t, c, "services", "orders")
	all := []*process{mono, gw, orders}

	// Before the window: other steps, another mix.
	mono.requests(ctx, 7)
	mono.roundTrips(ctx, "Keys", "catalog_products", 70)
	gw.requests(ctx, 3)
	orders.roundTrips(ctx, "Get", "orders_sagas", 90)
	for _, p := range all {
		p.push(t)
	}
	// The window. Each process pushes on its own clock: the gateway and orders once in the
	// middle of it (and orders' count goes on after that push), the monolith not at all.
	from := time.Now()
	mono.requests(ctx, 20)
	mono.roundTrips(ctx, "Get", "orders_sagas", 100)
	mono.roundTrips(ctx, "Create", "payments_charges", 60)
	gw.requests(ctx, 15)
	orders.roundTrips(ctx, "Get", "orders_sagas", 100)
	gw.push(t)
	orders.push(t)
	gw.requests(ctx, 5)
	orders.roundTrips(ctx, "Get", "orders_sagas", 80)
	orders.publishes(ctx, "order.paid", 20)
	to := time.Now()
	// After it, every process's next push, the architecture idle (the load test drives the
	// other); then more traffic, a later step's, pushed before the section is read.
	for _, p := range all {
		p.push(t)
	}
	mono.requests(ctx, 1)
	mono.roundTrips(ctx, "Update", "cart_carts", 50)
	gw.requests(ctx, 1)
	orders.roundTrips(ctx, "Get", "orders_sagas", 30)
	for _, p := range all {
		p.push(t)
	}

	rt := CollectRoundTrips(ctx, "http://"+c.QueryAddr(), []TraceSideSource{{Label: "monolith", From: from, To: to}, {Label: "services", From: from, To: to}}, nil)
	if rt.Reason != "" || len(rt.Sides) != 2 {
		t.Fatalf("section: %+v", rt)
	}
	m, s := rt.Sides[0], rt.Sides[1]
	if m.Arch != "monolith" || m.Requests != 20 || m.RoundTrips != 160 || m.PerRequest != 8 ||
		len(m.Top) != 2 || m.Top[0] != (RoundTripOp{"Get", "orders_sagas", 5}) || m.Top[1] != (RoundTripOp{"Create", "payments_charges", 3}) {
		t.Errorf("monolith: %+v", m)
	}
	if s.Arch != "services" || s.Requests != 20 || s.RoundTrips != 200 || s.PerRequest != 10 ||
		!slices.Contains(s.Top, RoundTripOp{"Publish", "order.paid", 1}) {
		t.Errorf("services: %+v", s)
	}

	for name, out := range rendered(t, &Report{Schema: Schema, ID: "rt", RoundTrips: rt}) {
		if !strings.Contains(out, "Store round trips per request") || !strings.Contains(out, "8.00") || !strings.Contains(out, "Get orders_sagas 5.00") {
			t.Errorf("%s lacks the section:\n%s", name, out)
		}
	}

	for _, tc := range []struct {
		collector string
		sides     []TraceSideSource
		want      string
	}{
		{"", []TraceSideSource{{Label: "monolith", From: from, To: to}}, "no collector"},
		{"http://" + c.QueryAddr(), []TraceSideSource{{Label: "monolith"}}, "no step"},
	} {
		if rt := CollectRoundTrips(ctx, tc.collector, tc.sides, nil); len(rt.Sides) != 0 || !strings.Contains(rt.Reason, tc.want) {
			t.Errorf("%q: %+v, want the reason %q", tc.collector, rt, tc.want)
		}
	}
}

// rendered writes r as report.md and report.html, by file name.
func rendered(t *testing.T, r *Report) map[string]string {
	t.Helper()
	var md, page bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"report.md": md.String(), "report.html": page.String()}
}

// The section says when an architecture was idle between its steps for less than a push
// interval, as two architectures of 8 s steps half a second apart are; make compare's five
// are not.
func TestRoundTripsCaveatOfShortGaps(t *testing.T) {
	interleaved := func(archs []string, step, pause time.Duration) []Step {
		var steps []Step
		at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
		for _, rate := range []float64{20, 50, 100} {
			for _, a := range archs {
				steps = append(steps, Step{Arch: a, Phase: "ladder", Offered: rate, Started: at, Seconds: step.Seconds()})
				at = at.Add(step + pause)
			}
		}
		return steps
	}
	got := RoundTripsCaveat(interleaved([]string{"monolith", "services"}, 8*time.Second, time.Second/2))
	if !strings.Contains(got, "(monolith 9.0 s, services 9.0 s)") {
		t.Errorf("two architectures of 8 s steps: caveat %q, want both named, 9 s apart", got)
	}
	five := []string{"monolith", "services", "services-shared", "services-measured", "services-x2"}
	if got := RoundTripsCaveat(interleaved(five, 15*time.Second, 2*time.Second)); got != "" {
		t.Errorf("five architectures of 15 s steps: caveat %q, want none", got)
	}
}
