package httpapi_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/mitosis-dev/mitosis/shop/httpapi"
	"github.com/mitosis-dev/mitosis/shop/traced"
	"github.com/mitosis-dev/mitosis/shop/traced/tracedtest"
)

var (
	traceResponse = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)
	amznTraceID   = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=1$`)
	// The same, unsampled.
	traceResponse0 = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-00$`)
	amznTraceID0   = regexp.MustCompile(`^Root=1-([0-9a-f]{8})-([0-9a-f]{24});Parent=([0-9a-f]{16});Sampled=0$`)
)

// Every response names its trace in both spellings, the span is named after the route, and a
// caller's traceparent is continued.
func TestEveryResponseNamesItsTrace(t *testing.T) {
	rec := tracedtest.New()
	cfg := memoryConfig(t)
	cfg.TracerProvider = rec
	cfg.Propagator = propagation.TraceContext{}
	h := httpapi.New(cfg)

	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		method, target string
		header         http.Header
		status         int
		span           string
	}{
		{"GET", "/v1/products", nil, 200, "GET /v1/products"},
		{"GET", "/v1/products/nope", nil, 404, "GET /v1/products/{id}"},
		{"GET", "/no/such/route", nil, 404, "GET"},
		{"DELETE", "/v1/checkout", nil, 404, "DELETE"},
		{"POST", "/v1/checkout", http.Header{"Content-Type": {"application/json"}}, 400, "POST /v1/checkout"},
		{"GET", "/healthz", http.Header{"Traceparent": {"00-" + callerTrace + "-" + callerSpan + "-01"}}, 200, "GET /healthz"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			rec.Reset()
			res := serve(h, tc.method, tc.target, tc.header, nil)
			if res.Code != tc.status {
				t.Fatalf("status %d, want %d", res.Code, tc.status)
			}
			tr := traceResponse.FindStringSubmatch(res.Header().Get("traceresponse"))
			xr := amznTraceID.FindStringSubmatch(res.Header().Get("X-Amzn-Trace-Id"))
			if tr == nil || xr == nil {
				t.Fatalf("traceresponse %q, X-Amzn-Trace-Id %q", res.Header().Get("traceresponse"), res.Header().Get("X-Amzn-Trace-Id"))
			}
			if xr[1]+xr[2] != tr[1] || xr[3] != tr[2] {
				t.Errorf("the two headers name different spans: %q and %q", tr[0], xr[0])
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want the request's only: %+v", len(spans), spans)
			}
			s := spans[0]
			if s.Kind != trace.SpanKindServer || s.Name != tc.span {
				t.Errorf("span %q kind %v, want SERVER %q", s.Name, s.Kind, tc.span)
			}
			if s.SpanContext.TraceID().String() != tr[1] || s.SpanContext.SpanID().String() != tr[2] {
				t.Errorf("headers name %s/%s, the span is %s/%s", tr[1], tr[2], s.SpanContext.TraceID(), s.SpanContext.SpanID())
			}
			if tc.header.Get("Traceparent") != "" {
				if tr[1] != callerTrace || s.Parent.SpanID().String() != callerSpan {
					t.Errorf("the caller's trace is not continued: trace %s, parent %s", tr[1], s.Parent.SpanID())
				}
			} else if s.Parent.IsValid() {
				t.Errorf("a request without trace context has a parent: %v", s.Parent)
			}
		})
	}
}

// Without an OpenTelemetry SDK (no-op tracer provider, as with OTEL_SDK_DISABLED=true) every
// response still names a trace (API.md), an unsampled one of its own, or the caller's.
func TestEveryResponseNamesATraceWithoutSDK(t *testing.T) {
	cfg := memoryConfig(t)
	cfg.TracerProvider = noop.NewTracerProvider()
	cfg.Propagator = propagation.TraceContext{}
	h := httpapi.New(cfg)
	seen := map[string]bool{}
	for range 3 {
		res := serve(h, http.MethodGet, "/v1/products/nope", nil, nil)
		tr := traceResponse0.FindStringSubmatch(res.Header().Get("traceresponse"))
		xr := amznTraceID0.FindStringSubmatch(res.Header().Get("X-Amzn-Trace-Id"))
		if res.Code != http.StatusNotFound || tr == nil || xr == nil {
			t.Fatalf("%d, traceresponse %q, X-Amzn-Trace-Id %q: want 404 naming an unsampled trace in both",
				res.Code, res.Header().Get("traceresponse"), res.Header().Get("X-Amzn-Trace-Id"))
		}
		if xr[1]+xr[2] != tr[1] || xr[3] != tr[2] {
			t.Errorf("the two headers name different spans: %q and %q", tr[0], xr[0])
		}
		if seen[tr[1]] {
			t.Errorf("trace %s named twice", tr[1])
		}
		seen[tr[1]] = true
	}
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res := serve(h, http.MethodGet, "/healthz", http.Header{"Traceparent": {caller}}, nil)
	if got := res.Header().Get("traceresponse"); got != caller {
		t.Errorf("traceresponse %q, want the caller's trace %q", got, caller)
	}
}

// Without an SDK at the edge, a request runs in the unsampled trace its response names: a
// context's calls under it are not recorded, rather than each starting a trace of its own.
func TestRequestWithoutSDKStartsNoTraces(t *testing.T) {
	rec := tracedtest.New()
	cfg := memoryConfig(t)
	cfg.TracerProvider = noop.NewTracerProvider()
	cfg.Catalog = traced.New(rec, nil).Catalog("mitosis.catalog.v1.CatalogService", cfg.Catalog)
	h := httpapi.New(cfg)
	if res := serve(h, http.MethodGet, "/v1/products/nope", nil, nil); res.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", res.Code)
	}
	if spans := rec.Ended(); len(spans) != 0 {
		t.Fatalf("spans %+v, want none", spans)
	}
	// The same call outside any request starts a trace: the recorder records.
	if _, err := cfg.Catalog.Get(t.Context(), "nope"); err == nil || len(rec.Ended()) != 1 {
		t.Fatalf("call outside a request: %v, spans %+v; want a not-found and its span", err, rec.Ended())
	}
}

// What an edge serves while it rebuilds names its trace too, and says when to come back.
func TestUnavailableNamesItsTrace(t *testing.T) {
	res := serve(httpapi.Unavailable("reconnecting"), http.MethodGet, "/healthz", nil, nil)
	if res.Code != http.StatusServiceUnavailable || res.Header().Get("Retry-After") != "1" {
		t.Fatalf("%d, Retry-After %q: want 503 and 1", res.Code, res.Header().Get("Retry-After"))
	}
	tr := traceResponse0.FindStringSubmatch(res.Header().Get("traceresponse"))
	xr := amznTraceID0.FindStringSubmatch(res.Header().Get("X-Amzn-Trace-Id"))
	if tr == nil || xr == nil || xr[1]+xr[2] != tr[1] {
		t.Errorf("traceresponse %q, X-Amzn-Trace-Id %q: want both, naming one trace",
			res.Header().Get("traceresponse"), res.Header().Get("X-Amzn-Trace-Id"))
	}
	var p httpapi.Problem
	if err := json.Unmarshal(res.Body.Bytes(), &p); err != nil || p.Type != httpapi.ProblemTypePrefix+httpapi.CodeUnavailable || p.Detail != "reconnecting" {
		t.Errorf("problem %+v, %v", p, err)
	}
}
