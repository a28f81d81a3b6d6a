package host

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"
)

// Message size attributes of the gRPC spans: what `mitosis advise` reads as the bytes a cut
// call moves each way. otelgrpc (v0.72) records no message sizes on spans, and these calls
// are unary, so each span gets one of each: the request (client to server) and the
// response, uncompressed, on both the client and the server span.
const (
	RPCRequestBytes  = attribute.Key("mitosis.rpc.request.bytes")
	RPCResponseBytes = attribute.Key("mitosis.rpc.response.bytes")
)

// messageSizes is a stats handler that sets the size attributes on the span otelgrpc's
// handler, registered before it, put in the call's context.
type messageSizes struct{}

func (messageSizes) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (messageSizes) HandleRPC(ctx context.Context, s stats.RPCStats) {
	var key attribute.Key
	var n int
	switch p := s.(type) {
	case *stats.OutPayload:
		key, n = RPCResponseBytes, p.Length
		if p.IsClient() {
			key = RPCRequestBytes
		}
	case *stats.InPayload:
		key, n = RPCRequestBytes, p.Length
		if p.IsClient() {
			key = RPCResponseBytes
		}
	default:
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(key.Int(n))
	}
}

func (messageSizes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (messageSizes) HandleConn(context.Context, stats.ConnStats) {}
