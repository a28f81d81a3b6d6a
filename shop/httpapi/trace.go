package httpapi

import (
	"encoding/hex"
	"net/http"

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
