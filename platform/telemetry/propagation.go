package telemetry

import (
	"context"
	"strings"

	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is the propagator every binary installs (Setup does): X-Ray's header, then W3C
// tracecontext and baggage. X-Ray comes first and W3C last, so that when a request carries
// both and they disagree, the W3C context (what OpenTelemetry callers send) wins; an X-Ray
// header alone is continued, also one that names only its trace (xrayRootPropagator).
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(xrayRootPropagator{}, propagation.TraceContext{}, propagation.Baggage{})
}

// xrayRootPropagator is X-Ray's propagator (contrib's), which also continues a trace whose
// X-Amzn-Trace-Id has a Root but no Parent, as load balancers send it (an ALB sends
// "Root=1-67891233-abcdef012345678912345678", sometimes with "Self=..." or "Sampled=...").
// contrib's propagator ignores such a header, since the span context it would make has no
// span ID and so is not valid; the request would start a trace of its own and the caller
// could not find it.
//
// Here such a header becomes a remote span context with the header's trace ID and flags and
// no span ID. The SDK continues the trace ID of such a parent and, the parent being invalid,
// leaves the decision to sample to the root sampler and exports the new span with no parent
// span ID: the request's span is a root span of the caller's trace. X-Ray reads it as a
// segment with no parent_id in that trace (as a service behind an ALB always looks: the ALB
// makes no segment of its own); Jaeger shows it as a root of the trace, beside whatever
// other roots the caller's side exported.
type xrayRootPropagator struct{ xray.Propagator }

// Extract returns ctx with the remote span context of carrier's X-Amzn-Trace-Id: a whole one
// (Root and Parent) as contrib's propagator reads it, or one with only a trace ID when the
// header has a well-formed Root and no Parent. A malformed header changes nothing.
func (p xrayRootPropagator) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	out := p.Propagator.Extract(ctx, carrier)
	if out != ctx {
		return out
	}
	header := strings.TrimSpace(carrier.Get(p.Fields()[0]))
	if header == "" {
		return ctx
	}
	// Let contrib's parser judge the Root (and Sampled) fields, so that one parser decides
	// what a well-formed header is: give it a parent, then take the parent away. A header
	// with a Parent of its own was either accepted above or is malformed, and a second
	// Parent does not change that (the parser fails on the first malformed one). The
	// placeholder never reaches a span.
	placeholder := trace.SpanID{7: 1}
	sc := trace.SpanContextFromContext(p.Propagator.Extract(ctx,
		propagation.MapCarrier{p.Fields()[0]: header + ";Parent=" + placeholder.String()}))
	if !sc.IsValid() || sc.SpanID() != placeholder {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: sc.TraceID(), TraceFlags: sc.TraceFlags(), TraceState: sc.TraceState()}))
}
