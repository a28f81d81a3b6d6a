package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/xray"
	"github.com/mitosis-dev/mitosis/shop/httpapi"
)

var (
	traceResponse = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0([01])$`)
	amznTraceID   = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=([01])$`)
)

// The shop's HTTP edge, with the propagator Setup installs, continues the trace an
// X-Amzn-Trace-Id names, also when the header has only a Root (as load balancers send it):
// the request's span is then a new root span of the caller's trace, and both response
// headers name that trace. traceparent wins over X-Amzn-Trace-Id, and a malformed header
// starts a new trace.
func TestTraceHeadersAreContinuedThroughTheHTTPEdge(t *testing.T) {
	clearEnv(t)
	shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "monolith", Architecture: telemetry.Monolith})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	// Setup's propagator (the global one: Config.Propagator is nil), the SDK's tracer as
	// Setup builds it, and a recorder to see the spans.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithIDGenerator(xray.NewIDGenerator()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	srv := httptest.NewServer(httpapi.New(httpapi.Config{TracerProvider: tp}))
	t.Cleanup(srv.Close)

	const (
		callerTrace = "5759e988bd862e3fe1be46a994272793"
		callerRoot  = "Root=1-5759e988-bd862e3fe1be46a994272793"
		callerSpan  = "53995c3f42cd8ad8"
		w3cTrace    = "4bf92f3577b34da6a3ce929d0e0e4736"
		w3cSpan     = "00f067aa0ba902b7"
	)
	for _, tc := range []struct {
		name                string
		header              http.Header
		wantTrace, wantSpan string // the parent's; "" for a new trace, or for no parent span
	}{
		{"root only", http.Header{"X-Amzn-Trace-Id": {callerRoot}}, callerTrace, ""},
		{"root sampled", http.Header{"X-Amzn-Trace-Id": {callerRoot + ";Sampled=1"}}, callerTrace, ""},
		{"root with a load balancer's fields", http.Header{"X-Amzn-Trace-Id": {"Self=1-67891234-12456789abcdef012345678;" + callerRoot + ";Sampled=1;Lineage=a87bd80c:1"}}, callerTrace, ""},
		{"root and parent", http.Header{"X-Amzn-Trace-Id": {callerRoot + ";Parent=" + callerSpan + ";Sampled=1"}}, callerTrace, callerSpan},
		{"traceparent wins", http.Header{"X-Amzn-Trace-Id": {callerRoot + ";Parent=" + callerSpan + ";Sampled=1"},
			"Traceparent": {"00-" + w3cTrace + "-" + w3cSpan + "-01"}}, w3cTrace, w3cSpan},
		{"traceparent wins over a root alone", http.Header{"X-Amzn-Trace-Id": {callerRoot},
			"Traceparent": {"00-" + w3cTrace + "-" + w3cSpan + "-01"}}, w3cTrace, w3cSpan},
		{"no header", nil, "", ""},
		{"root too short", http.Header{"X-Amzn-Trace-Id": {"Root=1-5759e988-bd862e3fe1be46a99427279"}}, "", ""},
		{"root not hex", http.Header{"X-Amzn-Trace-Id": {"Root=1-5759e988-bd862e3fe1be46a99427279z"}}, "", ""},
		{"root of another version", http.Header{"X-Amzn-Trace-Id": {"Root=2-5759e988-bd862e3fe1be46a994272793"}}, "", ""},
		{"root of zeros", http.Header{"X-Amzn-Trace-Id": {"Root=1-00000000-000000000000000000000000"}}, "", ""},
		{"root misplaced dash", http.Header{"X-Amzn-Trace-Id": {"Root=1-5759e98-8bd862e3fe1be46a994272793"}}, "", ""},
		{"root with a malformed parent", http.Header{"X-Amzn-Trace-Id": {callerRoot + ";Parent=53995c3f"}}, "", ""},
		{"parent without root", http.Header{"X-Amzn-Trace-Id": {"Parent=" + callerSpan + ";Sampled=1"}}, "", ""},
		{"field without a value", http.Header{"X-Amzn-Trace-Id": {callerRoot + ";Sampled"}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.Reset()
			req, err := http.NewRequest("GET", srv.URL+"/healthz", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			tr := traceResponse.FindStringSubmatch(res.Header.Get("traceresponse"))
			xr := amznTraceID.FindStringSubmatch(res.Header.Get("X-Amzn-Trace-Id"))
			if tr == nil || xr == nil {
				t.Fatalf("traceresponse %q, X-Amzn-Trace-Id %q", res.Header.Get("traceresponse"), res.Header.Get("X-Amzn-Trace-Id"))
			}
			if xr[1]+xr[2] != tr[1] || xr[3] != tr[2] {
				t.Fatalf("the two headers name different spans: %q and %q", tr[0], xr[0])
			}
			ended := rec.Ended()
			if len(ended) != 1 {
				t.Fatalf("%d spans, want the request's only", len(ended))
			}
			s := ended[0]
			if s.SpanContext().TraceID().String() != tr[1] || s.SpanContext().SpanID().String() != tr[2] {
				t.Fatalf("headers name %s/%s, the span is %s/%s", tr[1], tr[2], s.SpanContext().TraceID(), s.SpanContext().SpanID())
			}
			if tc.wantTrace == "" {
				if tr[1] == callerTrace || s.Parent().TraceID().IsValid() {
					t.Errorf("trace %s, parent %v: want a new trace", tr[1], s.Parent())
				}
			} else if tr[1] != tc.wantTrace {
				t.Errorf("trace %s, want the caller's %s", tr[1], tc.wantTrace)
			}
			if got := s.Parent().SpanID(); tc.wantSpan == "" && got.IsValid() || tc.wantSpan != "" && got.String() != tc.wantSpan {
				t.Errorf("parent span %s, want %q", got, tc.wantSpan)
			}
			if tr[2] == callerSpan || tr[2] == w3cSpan {
				t.Errorf("the request's span reuses the caller's span ID %s", tr[2])
			}
		})
	}
}
