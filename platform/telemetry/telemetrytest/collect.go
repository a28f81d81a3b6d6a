package telemetrytest

import (
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Reading is an integer instrument's first point at one collection.
type Reading struct {
	Kind  string // gauge, counter (a monotonic sum) or updowncounter
	Unit  string
	Value int64
}

// Collect reads every integer gauge and sum of r once, by metric name: what an in-process
// meter provider reports of a component, without an exporter.
func Collect(tb testing.TB, r *sdkmetric.ManualReader) map[string]Reading {
	tb.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(tb.Context(), &rm); err != nil {
		tb.Fatal(err)
	}
	out := map[string]Reading{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var points []metricdata.DataPoint[int64]
			rd := Reading{Unit: m.Unit}
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				points, rd.Kind = d.DataPoints, "gauge"
			case metricdata.Sum[int64]:
				points, rd.Kind = d.DataPoints, "updowncounter"
				if d.IsMonotonic {
					rd.Kind = "counter"
				}
			}
			if len(points) > 0 { // none: not observed at this collection
				rd.Value = points[0].Value
				out[m.Name] = rd
			}
		}
	}
	return out
}

// Values is Collect's values alone.
func Values(tb testing.TB, r *sdkmetric.ManualReader) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for name, rd := range Collect(tb, r) {
		out[name] = rd.Value
	}
	return out
}

// CheckInstruments fails tb for each instrument of want whose kind or unit, in a collection
// of r, is not want's (values are not compared): what dashboards and alerts rely on.
func CheckInstruments(tb testing.TB, r *sdkmetric.ManualReader, want map[string]Reading) {
	tb.Helper()
	got := Collect(tb, r)
	for name, w := range want {
		if g, ok := got[name]; !ok || g.Kind != w.Kind || g.Unit != w.Unit {
			tb.Errorf("instrument %s: %+v (collected: %t), want a %s in %s", name, g, ok, w.Kind, w.Unit)
		}
	}
}
