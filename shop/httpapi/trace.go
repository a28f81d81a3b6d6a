package httpapi

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Response headers naming the trace of a request (API.md), so that a caller can find it.
const (
	// TraceResponseHeader is W3C Trace Context's response header:
	// "00-<trace id>-<span id of the request's server span>-<flags>".
	TraceResponseHeader = "Traceresponse"
	// AmznTraceIDHeader is X-Ray's: "Root=1-<8 hex>-<24 hex>;Parent=<span id>;Sampled=<0|1>",
	// the same trace ID in X-Ray's spelling (the SDK's X-Ray ID generator makes the first 8
	// hex digits the epoch seconds, as X-Ray requires).
	AmznTraceIDHeader = "X-Amzn-Trace-Id"
)

// namedSpan is the span a response names: the request's server span, or, where no SDK makes
// spans (OTEL_SDK_DISABLED, or a process that never set one up) and no caller sent a trace,
// a span context made here. API.md promises the headers on every response; such a span is
// unsampled (flags 00: recorded nowhere), and its trace ID starts with the time in seconds,
// as X-Ray's and the SDK's X-Ray ID generator's do.
func namedSpan(sc trace.SpanContext) trace.SpanContext {
	if sc.IsValid() {
		return sc
	}
	var tid trace.TraceID
	var sid trace.SpanID
	binary.BigEndian.PutUint32(tid[:4], uint32(time.Now().Unix()))
	binary.BigEndian.PutUint32(tid[4:8], rand.Uint32()) // math/rand/v2: fast, safe for concurrent use
	binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	binary.BigEndian.PutUint64(sid[:], rand.Uint64()|1) // never all zero
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
}

// setTraceHeaders writes both headers for the span sc: two allocations, one for both values
// and one for both slices, since every response of the shop pays for them.
func setTraceHeaders(h http.Header, sc trace.SpanContext) {
	tid, sid := sc.TraceID(), sc.SpanID()
	sampled := "01"[boolIndex(sc.IsSampled())]

	const trLen = len("00-") + 32 + 1 + 16 + len("-01")
	const xrLen = len("Root=1-") + 8 + 1 + 24 + len(";Parent=") + 16 + len(";Sampled=") + 1
	var buf [trLen + xrLen]byte

	// 00-{32}-{16}-{2}
	b := append(buf[:0], "00-"...)
	b = hex.AppendEncode(b, tid[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, sid[:])
	b = append(b, '-', '0', sampled)

	// Root=1-{8}-{24};Parent={16};Sampled={1}
	b = append(b, "Root=1-"...)
	b = hex.AppendEncode(b, tid[:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, tid[4:])
	b = append(b, ";Parent="...)
	b = hex.AppendEncode(b, sid[:])
	b = append(b, ";Sampled="...)
	b = append(b, sampled)
	both := string(b)
	values := [2]string{both[:trLen], both[trLen:]}
	h[TraceResponseHeader] = values[0:1:1]
	h[AmznTraceIDHeader] = values[1:2:2]
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

var httpRoute = attribute.Key("http.route")

// tracerName names the spans this package makes itself (otelhttp makes the edge's).
const tracerName = "github.com/mitosis-dev/mitosis/shop/httpapi"

// nameSpan names the request's span "<method> <route pattern>" (e.g. "GET /v1/products/{id}")
// once chi has routed the request, and adds the route to the request's HTTP metrics. A
// request no route matched keeps the bare method as its name, as OpenTelemetry's HTTP
// conventions say: a raw path would make one span name per product ID.
func nameSpan(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			pattern := chi.RouteContext(r.Context()).RoutePattern()
			if pattern == "" || pattern == "/*" {
				return
			}
			if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
				span.SetName(r.Method + " " + pattern)
				span.SetAttributes(httpRoute.String(pattern))
			}
			if l, ok := otelhttp.LabelerFromContext(r.Context()); ok {
				l.Add(httpRoute.String(pattern))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
