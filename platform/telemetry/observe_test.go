package telemetry_test

import (
	"context"
	"maps"
	"testing"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
)

// The instruments declared come out of a collection with their names, units and kinds, and
// the values the one callback observed at that collection.
func TestObservablesReportWhatTheCallbackReads(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	obs := telemetry.NewObservables(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
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
	for n := int64(1); n <= 2; n++ {
		got := telemetrytest.Collect(t, reader)
		want := map[string]telemetrytest.Reading{"test.kept": {Kind: "gauge", Unit: "By", Value: 100 * n}, "test.seen": {Kind: "counter", Unit: "{item}", Value: 7 * n}}
		if !maps.Equal(got, want) {
			t.Errorf("collection %d: %v, want %v", n, got, want)
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
	obs := telemetry.NewObservables(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
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
	if got := telemetrytest.Collect(t, reader); len(got) != 0 || called {
		t.Errorf("a failed Register observed %v (callback ran: %t)", got, called)
	}
}
