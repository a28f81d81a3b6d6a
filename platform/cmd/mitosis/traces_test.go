package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// Jaeger v2's query service, as its source reads a request (jaegertracing/jaeger,
// cmd/jaeger/internal/extension/jaegerquery/internal/apiv3): in every release the
// snake_case names below (v2.19 added camelCase ones and keeps these as aliases); v2.0 to
// v2.18 read the search depth from query.num_traces only, v2.19 and later from
// query.search_depth first; both ends of the window are required, in RFC 3339 with
// nanoseconds, the start before the end (v2.19); durations are Go durations.
var jaegerV2SearchParams = []string{"query.service_name", "query.operation_name", "query.start_time_min",
	"query.start_time_max", "query.num_traces", "query.search_depth", "query.duration_min", "query.duration_max",
	"query.raw_traces", "query.attributes"}

// jaegerV2Accepts reports why a Jaeger v2 query service, of any release, would refuse r or
// read it otherwise than meant.
func jaegerV2Accepts(r *http.Request) error {
	if r.Method != http.MethodGet || r.ContentLength > 0 {
		return fmt.Errorf("%s with a body of %d: Jaeger's query API is GET", r.Method, r.ContentLength)
	}
	if id, ok := strings.CutPrefix(r.URL.Path, "/api/v3/traces/"); ok {
		if b, err := hex.DecodeString(id); err != nil || len(b) != 16 {
			return fmt.Errorf("trace ID %q: want 32 hex digits", id)
		}
		if len(r.URL.Query()) > 0 {
			return fmt.Errorf("parameters %v on a trace by ID", r.URL.Query())
		}
		return nil
	}
	if r.URL.Path != "/api/v3/traces" {
		return fmt.Errorf("path %s: not Jaeger's api_v3", r.URL.Path)
	}
	q, err := url.ParseQuery(r.URL.RawQuery) // as Go's server reads it, as Jaeger does
	if err != nil {
		return err
	}
	var errs []error
	for name, values := range q {
		if !slices.Contains(jaegerV2SearchParams, name) {
			errs = append(errs, fmt.Errorf("parameter %s: not one that every Jaeger v2 reads", name))
		}
		if len(values) != 1 {
			errs = append(errs, fmt.Errorf("parameter %s given %d times", name, len(values)))
		}
	}
	minT, err1 := time.Parse(time.RFC3339Nano, q.Get("query.start_time_min"))
	maxT, err2 := time.Parse(time.RFC3339Nano, q.Get("query.start_time_max"))
	switch {
	case err1 != nil || err2 != nil:
		errs = append(errs, fmt.Errorf("the window, required: %v; %v", err1, err2))
	case !minT.Before(maxT):
		errs = append(errs, fmt.Errorf("the window's start %s is not before its end %s", minT, maxT))
	}
	old, err1 := strconv.Atoi(q.Get("query.num_traces"))
	current, err2 := strconv.Atoi(q.Get("query.search_depth"))
	if err1 != nil || err2 != nil || old < 1 || old != current {
		errs = append(errs, fmt.Errorf("search depth %q (read by v2.0 to v2.18) and %q (v2.19 on): want the same positive number in both",
			q.Get("query.num_traces"), q.Get("query.search_depth")))
	}
	for _, name := range []string{"query.duration_min", "query.duration_max"} {
		if s := q.Get(name); s != "" {
			if _, err := time.ParseDuration(s); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// exportCheckouts sends a checkout of the monolith and one of the microservices through the
// OpenTelemetry SDK's OTLP/HTTP exporter, and returns their trace IDs.
func exportCheckouts(t *testing.T, otlpAddr string) (mono, svc string) {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(otlpAddr), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	var tps []*sdktrace.TracerProvider
	tracer := func(service string) trace.Tracer {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))))
		tps = append(tps, tp)
		return tp.Tracer("test")
	}
	at := time.Now().Add(-time.Second)
	ms := func(n int) trace.SpanEventOption {
		return trace.WithTimestamp(at.Add(time.Duration(n) * time.Millisecond))
	}
	start := func(tr trace.Tracer, ctx context.Context, name string, kind trace.SpanKind, n int, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
		return tr.Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(at.Add(time.Duration(n)*time.Millisecond)), trace.WithAttributes(attrs...))
	}

	m := tracer("monolith")
	mctx, root := start(m, ctx, tracecompare.DefaultOperation, trace.SpanKindServer, 0)
	octx, call := start(m, mctx, "mitosis.orders.v1.OrdersService/Checkout", trace.SpanKindInternal, 1, attribute.String("rpc.system.name", "inprocess"))
	_, kv := start(m, octx, "Create orders_orders", trace.SpanKindClient, 2, attribute.String("db.system.name", "nats_kv"))
	kv.End(ms(4))
	call.End(ms(5))
	root.End(ms(6))

	g, o := tracer("gateway"), tracer("orders")
	gctx, groot := start(g, ctx, tracecompare.DefaultOperation, trace.SpanKindServer, 0)
	cctx, client := start(g, gctx, "mitosis.orders.v1.OrdersService/Checkout", trace.SpanKindClient, 1, attribute.String("rpc.system.name", "grpc"))
	sctx, server := start(o, trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(cctx)), "mitosis.orders.v1.OrdersService/Checkout", trace.SpanKindServer, 2)
	_, gkv := start(o, sctx, "Create orders_orders", trace.SpanKindClient, 3, attribute.String("db.system.name", "nats_kv"))
	gkv.End(ms(6))
	server.End(ms(8))
	client.End(ms(9))
	groot.End(ms(10))
	for _, tp := range tps {
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return root.SpanContext().TraceID().String(), groot.SpanContext().TraceID().String()
}

// `mitosis traces compare` reads the collector only through requests that a Jaeger v2
// query service, of any v2 release, takes as meant: it can read a real Jaeger. A proxy in
// front of the collector records every request the command makes.
func TestTracesCompareAsksAsJaegerV2Requires(t *testing.T) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = col.Close(context.Background()) })
	mono, svc := exportCheckouts(t, col.HTTPAddr())

	var mu sync.Mutex
	var asked []*http.Request
	target := &url.URL{Scheme: "http", Host: col.QueryAddr()}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Clone(context.Background()))
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	root := repoRoot(t)
	compare := func(args ...string) []string {
		t.Helper()
		mu.Lock()
		asked = nil
		mu.Unlock()
		code, out, errOut := runCLI(t, append([]string{"--root", root, "traces", "compare", "--collector", front.URL, "--format", "json"}, args...)...)
		if code != exitOK {
			t.Fatalf("traces compare %v: exit %d\n%s%s", args, code, out, errOut)
		}
		var c struct {
			Sides []struct {
				TraceIDs []string `json:"trace_ids"`
			} `json:"sides"`
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil || len(c.Sides) != 2 {
			t.Fatalf("traces compare %v: %v\n%s", args, err, out)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(asked) == 0 {
			t.Fatalf("traces compare %v asked nothing", args)
		}
		for _, r := range asked {
			if err := jaegerV2Accepts(r); err != nil {
				t.Errorf("traces compare %v: GET %s: %v", args, r.URL, err)
			}
		}
		return append(c.Sides[0].TraceIDs, c.Sides[1].TraceIDs...)
	}

	// The latest checkout of each edge: two searches, one per side.
	if got := compare("--settle", "100ms"); !slices.Equal(got, []string{mono, svc}) {
		t.Errorf("the latest checkouts: %v, want %v", got, []string{mono, svc})
	}
	searches := 0
	for _, r := range asked {
		q := r.URL.Query()
		if r.URL.Path == "/api/v3/traces" && q.Get("query.operation_name") == tracecompare.DefaultOperation {
			searches++
			minT, _ := time.Parse(time.RFC3339Nano, q.Get("query.start_time_min"))
			maxT, _ := time.Parse(time.RFC3339Nano, q.Get("query.start_time_max"))
			if window := maxT.Sub(minT); window != tracecollect.DefaultLookback || time.Since(maxT) > time.Minute {
				t.Errorf("window %s to %s: want the day before the command started", minT, maxT)
			}
		}
	}
	if searches != 2 {
		t.Errorf("%d searches for the checkouts, want one per side", searches)
	}
	// The last N, in a window of its own; and by trace ID.
	if got := compare("--settle", "0", "--last", "3", "--lookback", "10m"); !slices.Equal(got, []string{mono, svc}) {
		t.Errorf("the last 3: %v", got)
	}
	if q := asked[0].URL.Query(); q.Get("query.search_depth") != "3" {
		t.Errorf("--last 3 asked for %s", asked[0].URL.RawQuery)
	}
	if got := compare("--settle", "0", svc, mono); !slices.Equal(got, []string{svc, mono}) {
		t.Errorf("by IDs: %v", got)
	}

	// The check itself refuses what a Jaeger would refuse or misread.
	for _, bad := range []string{
		"/api/v3/traces?query.service_name=x&query.num_traces=1&query.search_depth=1",
		"/api/v3/traces?query.start_time_min=2026-01-02T00:00:00Z&query.start_time_max=2026-01-01T00:00:00Z&query.num_traces=1&query.search_depth=1",
		"/api/v3/traces?query.startTimeMin=2026-01-01T00:00:00Z&query.startTimeMax=2026-01-02T00:00:00Z&query.searchDepth=1",
		"/api/v3/traces?query.start_time_min=2026-01-01T00:00:00Z&query.start_time_max=2026-01-02T00:00:00Z&query.search_depth=1",
		"/api/v3/traces?query.start_time_min=1735689600&query.start_time_max=1735776000&query.num_traces=1&query.search_depth=1",
		"/api/traces?service=x",
	} {
		r := httptest.NewRequest(http.MethodGet, bad, nil)
		if err := jaegerV2Accepts(r); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
