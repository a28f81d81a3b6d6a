package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The instruments declared come out of a collection with their names, units and kinds, and
// the values the one callback observed at that collection.
func TestObservablesReportWhatTheCallbackReads(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	obs := NewObservables(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
	kept := obs.Gauge("test.kept", "By", "Bytes kept")
	seen := obs.Counter("test.seen", "{item}", "Items seen")
	var calls int64
	if err := obs.Register(func(_ context.Context, o metric.Observer) error {
		calls++
		o.ObserveInt64(kept, 100*calls)
		o.ObserveInt64(seen, 7*calls)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for want := int64(1); want <= 2; want++ {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(t.Context(), &rm); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					if v := d.DataPoints[0].Value; v != 100*want {
						t.Errorf("collection %d: %s = %d", want, m.Name, v)
					}
					got[m.Name] = "gauge " + m.Unit
				case metricdata.Sum[int64]:
					if v := d.DataPoints[0].Value; v != 7*want || !d.IsMonotonic || d.Temporality != metricdata.CumulativeTemporality {
						t.Errorf("collection %d: %s = %d (%+v)", want, m.Name, v, d)
					}
					got[m.Name] = "counter " + m.Unit
				}
			}
		}
		if len(got) != 2 || got["test.kept"] != "gauge By" || got["test.seen"] != "counter {item}" {
			t.Errorf("collection %d: %v", want, got)
		}
	}
	if calls != 2 {
		t.Errorf("the callback ran %d times for 2 collections", calls)
	}
}

// An instrument the SDK refuses (a name that is not one) makes Register fail, and nothing
// is registered.
func TestObservablesRefuseABadInstrument(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	obs := NewObservables(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
	obs.Gauge("test.fine", "1", "A fine gauge")
	obs.Counter("9 not a name", "1", "A counter named wrong")
	called := false
	err := obs.Register(func(context.Context, metric.Observer) error {
		called = true
		return nil
	})
	if err == nil {
		t.Fatal("Register accepted an instrument named wrong")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	if called {
		t.Error("the callback of a failed Register ran")
	}
}
