package tracecollect

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// Instrument reports what the collector holds and was sent through mp, observed when a
// reader collects (a Prometheus scrape of the collector's own /metrics): traces, spans and
// their bytes kept, spans received, traces evicted, and the same of the metric store.
func (c *Collector) Instrument(mp metric.MeterProvider) error {
	m := mp.Meter("github.com/mitosis-dev/mitosis/platform/tracecollect")
	var errs []error
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		g, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	traces := gauge("mitosis.collector.traces", "{trace}", "Traces kept")
	spans := gauge("mitosis.collector.spans", "{span}", "Spans kept")
	spanBytes := gauge("mitosis.collector.span.bytes", "By", "Estimated memory of the spans kept")
	received := counter("mitosis.collector.spans.received", "{span}", "Spans received")
	evicted := counter("mitosis.collector.traces.evicted", "{trace}", "Traces pushed out by the store's bounds")
	points := gauge("mitosis.collector.metric.points", "{point}", "Metric points kept")
	pointBytes := gauge("mitosis.collector.metric.bytes", "By", "Estimated memory of the metric points kept")
	pointsReceived := counter("mitosis.collector.metric.points.received", "{point}", "Metric points received")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("collector metrics: %w", err)
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
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
	}, traces, spans, spanBytes, received, evicted, points, pointBytes, pointsReceived)
	if err != nil {
		return fmt.Errorf("collector metrics: %w", err)
	}
	return nil
}
