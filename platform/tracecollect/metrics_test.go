package tracecollect_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// Metrics the OpenTelemetry SDK exports over either OTLP protocol are kept and read back
// through the query API: each series with its resource, attributes and points in order, a
// counter's values, a histogram's count, sum and buckets; the filters select by name,
// service and architecture, and a bad time is refused.
func TestMetricsFromTheSDKAreKeptAndServed(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			c, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close(context.Background()) })
			ctx := t.Context()
			var exp sdkmetric.Exporter
			if protocol == "grpc" {
				exp, err = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL("http://"+c.GRPCAddr()))
			} else {
				exp, err = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL("http://"+c.HTTPAddr()+"/v1/metrics"))
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
			res := resource.NewSchemaless(attribute.String("service.name", "orders"), attribute.String("mitosis.architecture", "services"),
				attribute.String("host.name", "box"), attribute.String("os.type", "linux"))
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
			meter := mp.Meter("test")
			calls, err := meter.Int64Counter("test.calls")
			if err != nil {
				t.Fatal(err)
			}
			dur, err := meter.Float64Histogram("test.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.001, 0.01))
			if err != nil {
				t.Fatal(err)
			}
			get := metric.WithAttributes(attribute.String("op", "Get"))
			export := func() {
				t.Helper()
				var rm metricdata.ResourceMetrics
				if err := reader.Collect(ctx, &rm); err != nil {
					t.Fatal(err)
				}
				if err := exp.Export(ctx, &rm); err != nil {
					t.Fatal(err)
				}
			}
			before := time.Now()
			calls.Add(ctx, 5, get)
			dur.Record(ctx, 0.0005, get)
			dur.Record(ctx, 0.002, get)
			dur.Record(ctx, 0.05, get)
			export()
			calls.Add(ctx, 2, get)
			export()

			cl := tracecollect.Client{BaseURL: "http://" + c.QueryAddr()}
			out, err := cl.Metrics(ctx, tracecollect.MetricQuery{Names: []string{"test.calls", "test.duration"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Series) != 2 {
				t.Fatalf("%d series, want test.calls and test.duration: %+v", len(out.Series), out.Series)
			}
			byName := map[string]tracecollect.MetricSeries{}
			for _, s := range out.Series {
				byName[s.Name] = s
				if s.Resource["service.name"] != "orders" || s.Resource["mitosis.architecture"] != "services" || s.Resource["host.name"] != "box" ||
					s.Resource["os.type"] != "" || s.Attributes["op"] != "Get" || s.Scope != "test" {
					t.Errorf("%s: resource %v, attributes %v, scope %q", s.Name, s.Resource, s.Attributes, s.Scope)
				}
			}
			cs := byName["test.calls"]
			if cs.Type != "sum" || !cs.Monotonic || cs.Temporality != "cumulative" || len(cs.Points) != 2 ||
				cs.Points[0].Value != 5 || cs.Points[1].Value != 7 || cs.Points[0].Time.Before(before) || cs.Points[1].Time.Before(cs.Points[0].Time) {
				t.Errorf("test.calls: %+v", cs)
			}
			h := byName["test.duration"]
			if h.Type != "histogram" || h.Unit != "s" || len(h.Points) != 2 {
				t.Fatalf("test.duration: %+v", h)
			}
			if p := h.Points[0]; p.Count != 3 || math.Abs(p.Sum-0.0525) > 1e-12 || !slices.Equal(p.Bounds, []float64{0.001, 0.01}) || !slices.Equal(p.Buckets, []uint64{1, 1, 1}) {
				t.Errorf("test.duration's first point: %+v", p)
			}

			for _, q := range []tracecollect.MetricQuery{
				{Names: []string{"test.calls"}, Services: []string{"cart"}},
				{Names: []string{"test.calls"}, Arch: "monolith"},
				{Names: []string{"no.such.metric"}},
				{Names: []string{"test.calls"}, Start: time.Now().Add(time.Minute)},
			} {
				if out, err := cl.Metrics(ctx, q); err != nil || len(out.Series) != 0 {
					t.Errorf("%+v: %d series, %v; want none", q, len(out.Series), err)
				}
			}
			if out, err := cl.Metrics(ctx, tracecollect.MetricQuery{Services: []string{"orders"}, Arch: "services"}); err != nil || len(out.Series) != 2 ||
				out.Stats.Points != 4 || out.Stats.Series != 2 || out.Stats.Received != 4 {
				t.Errorf("the service's series: %d, %+v, %v", len(out.Series), out.Stats, err)
			}
			if _, err := cl.Metrics(ctx, tracecollect.MetricQuery{Start: time.Now(), End: time.Now().Add(-time.Hour)}); err == nil || !strings.Contains(err.Error(), "400") {
				t.Errorf("a window that ends before it starts: %v, want a 400", err)
			}
		})
	}
}

// gaugeExport is one export of n series of a gauge, from the service named, each with a
// histogram-sized payload of bucket counts.
func gaugeExport(service string, n int, value float64) []*metricspb.ResourceMetrics {
	var dps []*metricspb.HistogramDataPoint
	for i := range n {
		dps = append(dps, &metricspb.HistogramDataPoint{
			TimeUnixNano:   uint64(time.Now().UnixNano()),
			Attributes:     []*commonpb.KeyValue{{Key: "i", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprint(i)}}}},
			Count:          uint64(value),
			ExplicitBounds: []float64{1, 2, 3, 4, 5, 6, 7, 8},
			BucketCounts:   make([]uint64, 9),
		})
	}
	return []*metricspb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: service}}}}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: "load", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
			AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, DataPoints: dps}}}}}},
	}}
}

// The store keeps at most its byte bound, pushing the oldest points out first, and nothing
// older than its window: memory stays bounded however much and however long it is sent.
func TestMetricStoreIsBoundedInBytesAndTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const maxBytes = 64 << 10
	s := tracecollect.NewMetricStore(time.Minute, maxBytes, func() time.Time { return now })
	for i := range 200 { // 200 exports of 20 series: far more than 64 KiB
		s.Add(gaugeExport("svc-"+fmt.Sprint(i%3), 20, float64(i)))
		if st := s.Stats(); st.Bytes > maxBytes {
			t.Fatalf("after export %d: %d bytes, bound %d", i, st.Bytes, maxBytes)
		}
		now = now.Add(100 * time.Millisecond)
	}
	st := s.Stats()
	if st.Received != 4000 || st.Evicted == 0 || st.Points == 0 || st.Points+int(st.Evicted) != 4000 {
		t.Fatalf("stats %+v: want 4000 received, some evicted, the rest kept", st)
	}
	// What is left is the newest: the last export's points are all there.
	last := s.Series(tracecollect.MetricQuery{Services: []string{"svc-1"}}) // export 199 is svc-1's
	if len(last) != 20 {
		t.Fatalf("%d series of the last service, want its 20", len(last))
	}
	for _, ser := range last {
		if p := ser.Points[len(ser.Points)-1]; p.Count != 199 {
			t.Errorf("series %v: newest point %d, want 199", ser.Attributes, p.Count)
		}
		// The store holds the newest st.Points points: the last ceil(st.Points/20) exports.
		if p := ser.Points[0]; p.Count < uint64(200-(st.Points+19)/20) {
			t.Errorf("series %v keeps a point of export %d, older than what fits", ser.Attributes, p.Count)
		}
	}

	now = now.Add(time.Minute + time.Second)
	if got := s.Series(tracecollect.MetricQuery{}); len(got) != 0 {
		t.Errorf("%d series left once the window is over", len(got))
	}
	if st := s.Stats(); st.Points != 0 || st.Series != 0 || st.Bytes != 0 {
		t.Errorf("stats once the window is over: %+v, want empty", st)
	}
}

// The collector reports its own stores through a meter provider: what it keeps and what it
// was sent, read at collection time.
func TestCollectorReportsItsStores(t *testing.T) {
	c, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	reader := sdkmetric.NewManualReader()
	if err := c.Instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))); err != nil {
		t.Fatal(err)
	}
	c.Metrics().Add(gaugeExport("orders", 3, 1))
	values := func() map[string]int64 { return telemetrytest.Values(t, reader) }
	got := values()
	if got["mitosis.collector.metric.points"] != 3 || got["mitosis.collector.metric.points.received"] != 3 || got["mitosis.collector.metric.bytes"] <= 0 ||
		got["mitosis.collector.spans"] != 0 {
		t.Errorf("collector metrics: %v", got)
	}
	c.Metrics().Add(gaugeExport("orders", 2, 2))
	if got := values(); got["mitosis.collector.metric.points.received"] != 5 {
		t.Errorf("after 2 more points: %v", got)
	}
	// Names, units and kinds are what dashboards read: they stay as they are.
	telemetrytest.CheckInstruments(t, reader, map[string]telemetrytest.Reading{"mitosis.collector.traces": {Kind: "gauge", Unit: "{trace}"},
		"mitosis.collector.span.bytes": {Kind: "gauge", Unit: "By"}, "mitosis.collector.spans.received": {Kind: "counter", Unit: "{span}"},
		"mitosis.collector.metric.points.received": {Kind: "counter", Unit: "{point}"}})
}
