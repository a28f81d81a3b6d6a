// Package traced gives both architectures the same trace shape. It decorates each bounded
// context's Service so that every call from one context to another (or from the HTTP edge to
// a context) is an INTERNAL span named exactly like the gRPC method that carries the call in
// the microservices ("mitosis.catalog.v1.CatalogService/Get"), and each kv.Bucket so that
// every store operation inside a trace is a CLIENT span. The monolith wraps its in-process
// implementations with it; the services get the same names from otelgrpc, since the names
// here are their proto method names (services/bounded gives each decorator its gRPC
// service's name, and tests that every span name is one of that service's methods). So the
// monolith's trace of a checkout and the services' trace differ only in what the split adds:
// a SERVER span and the wire under every call.
//
// It depends on the OpenTelemetry API only: with no SDK installed the spans are no-ops. It
// is not where the SDK is set up (platform/telemetry is).
package traced

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// ScopeName is the instrumentation scope of the spans and metrics of this package.
const ScopeName = "github.com/mitosis-dev/mitosis/shop/traced"

// Attribute keys. RPCMethod and RPCSystem follow OpenTelemetry's RPC conventions (otelgrpc
// sets the same keys on its spans); the DB keys follow its database conventions.
const (
	RPCMethod     = attribute.Key("rpc.method")
	RPCSystem     = attribute.Key("rpc.system.name")
	DBSystem      = attribute.Key("db.system.name")
	DBOperation   = attribute.Key("db.operation.name")
	DBCollection  = attribute.Key("db.collection.name")
	KVOutcome     = attribute.Key("mitosis.kv.outcome") // spans: "not_found", "conflict" or "exists", answers, not failures; the store metric: those, "ok" or "error"
	inProcessName = "inprocess"
	storeSystem   = "nats_kv"
)

// Tracing makes the decorators. Its zero value is not usable; call New.
type Tracing struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
	store    metric.Float64Histogram             // every store operation: a JetStream round trip in production
	internal []trace.SpanStartOption             // of the INTERNAL spans: their kind (see start)
	client   []trace.SpanStartOption             // of the store spans
	outcomes [len(outcomes)][]attribute.KeyValue // a store span's KVOutcome, by outcome: made once, not per answer
}

// New returns decorators that use tp and mp; nil means the global providers (as they are
// when New is called: call it after the SDK's setup).
func New(tp trace.TracerProvider, mp metric.MeterProvider) *Tracing {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	t := &Tracing{tracer: tp.Tracer(ScopeName),
		internal: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)},
		client:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}}
	for i, o := range outcomes {
		t.outcomes[i] = []attribute.KeyValue{KVOutcome.String(o)}
	}
	var err error
	t.duration, err = mp.Meter(ScopeName).Float64Histogram("mitosis.call.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of calls from one bounded context to another in the same process"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err != nil {
		otel.Handle(err) // the meter still returned a usable (no-op) instrument
	}
	// OpenTelemetry's database client convention: its count is the store round trips.
	t.store, err = mp.Meter(ScopeName).Float64Histogram("db.client.operation.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of key-value store operations, each one round trip to the store"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err != nil {
		otel.Handle(err)
	}
	return t
}

// method is one port method: its span name and the attributes of its spans and metrics,
// computed once.
type method struct {
	name   string // "mitosis.catalog.v1.CatalogService/Get", the gRPC full method without its slash
	attrs  []attribute.KeyValue
	record []metric.RecordOption // the attributes as the histogram takes them
}

func newMethod(service, name string) method {
	full := service + "/" + name
	attrs := []attribute.KeyValue{RPCSystem.String(inProcessName), RPCMethod.String(full)}
	return method{name: full, attrs: attrs, record: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}}
}

// call is one call in flight.
type call struct {
	t     *Tracing
	m     *method
	span  trace.Span // nil: no span (see start)
	start time.Time
}

// start starts the call's span. Its attributes go in after the start rather than as a start
// option: an option copies them once more, in an allocation of their own, for the sampler's
// sake, and no sampler this project configures (OTEL_TRACES_SAMPLER's) looks at them.
//
// A call inside a trace that is not recorded makes no span: every sampler the project
// configures (parent-based, always on or off, trace ID ratio) would give it its parent's
// decision, so it would be a non-recording span, which costs a context and a span value
// (two allocations per call) and records nothing. A call with no trace around it (a
// background loop's) still starts one, as the sampler decides for a root.
func (t *Tracing) start(ctx context.Context, m *method) (context.Context, call) {
	if !sampledOut(ctx) {
		var span trace.Span
		ctx, span = t.tracer.Start(ctx, m.name, t.internal...)
		span.SetAttributes(m.attrs...)
		return ctx, call{t: t, m: m, span: span, start: time.Now()}
	}
	return ctx, call{t: t, m: m, start: time.Now()}
}

// sampledOut tells whether ctx is inside a trace whose spans are not recorded.
func sampledOut(ctx context.Context) bool {
	parent := trace.SpanFromContext(ctx)
	return parent.SpanContext().IsValid() && !parent.IsRecording()
}

// end ends the span, marking it failed when err is not nil (as otelgrpc marks a client span
// whose call returned any error), and records the call's duration.
func (c call) end(ctx context.Context, err error) {
	if c.span != nil {
		if err != nil {
			c.span.SetStatus(codes.Error, err.Error())
		}
		c.span.End()
	}
	c.t.duration.Record(ctx, time.Since(c.start).Seconds(), c.m.record...)
}

// methods returns the methods of service, named as its gRPC methods are.
func methods(service string, names ...string) []method {
	out := make([]method, len(names))
	for i, m := range names {
		out[i] = newMethod(service, m)
	}
	return out
}

// errOutcome names the store's answers that are not failures: a missing key, a lost race
// on a revision, a key already there. The domain expects and handles each.
func errOutcome(err error) string {
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return "not_found"
	case errors.Is(err, kv.ErrConflict):
		return "conflict"
	case errors.Is(err, kv.ErrExists):
		return "exists"
	}
	return ""
}
