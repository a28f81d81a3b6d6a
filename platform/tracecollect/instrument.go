package tracecollect

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
)

// Instrument reports what the collector holds and was sent through mp, observed when a
// reader collects (a Prometheus scrape of the collector's own /metrics): traces, spans and
// their bytes kept, spans received, traces evicted, and the same of the metric store.
func (c *Collector) Instrument(mp metric.MeterProvider) error {
	obs := telemetry.NewObservables(mp.Meter("github.com/mitosis-dev/mitosis/platform/tracecollect"))
	traces := obs.Gauge("mitosis.collector.traces", "{trace}", "Traces kept")
	spans := obs.Gauge("mitosis.collector.spans", "{span}", "Spans kept")
	spanBytes := obs.Gauge("mitosis.collector.span.bytes", "By", "Estimated memory of the spans kept")
	received := obs.Counter("mitosis.collector.spans.received", "{span}", "Spans received")
	evicted := obs.Counter("mitosis.collector.traces.evicted", "{trace}", "Traces pushed out by the store's bounds")
	points := obs.Gauge("mitosis.collector.metric.points", "{point}", "Metric points kept")
	pointBytes := obs.Gauge("mitosis.collector.metric.bytes", "By", "Estimated memory of the metric points kept")
	pointsReceived := obs.Counter("mitosis.collector.metric.points.received", "{point}", "Metric points received")
	err := obs.Register(func(_ context.Context, o metric.Observer) error {
		st, ms := c.store.Stats(), c.metrics.Stats()
		o.ObserveInt64(traces, int64(st.Traces))
		o.ObserveInt64(spans, int64(st.Spans))
		o.ObserveInt64(spanBytes, int64(st.Bytes))
		o.ObserveInt64(received, st.Received)
		o.ObserveInt64(evicted, st.Evicted)
		o.ObserveInt64(points, int64(ms.Points))
		o.ObserveInt64(pointBytes, int64(ms.Bytes))
		o.ObserveInt64(pointsReceived, ms.Received)
		return nil
	})
	if err != nil {
		return fmt.Errorf("collector metrics: %w", err)
	}
	return nil
}
