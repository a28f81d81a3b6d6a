package tracecollect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

func startCollector(t *testing.T, maxSpans int) *tracecollect.Collector {
	t.Helper()
	c, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0", MaxSpans: maxSpans})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// spansOf flattens a TracesData into span name → span, with each span's service.
func spansOf(td *tracepb.TracesData) map[string]*tracepb.Span {
	out := map[string]*tracepb.Span{}
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				out[tracecollect.ServiceName(rs.GetResource())+" "+sp.GetName()] = sp
			}
		}
	}
	return out
}

// Spans exported by the real OTLP exporters, over gRPC and over HTTP, come back through
// /api/v3 as one trace, with their parents, kinds, attributes and resources.
func TestSpansFromTheOTLPExportersComeBackThroughTheQueryAPI(t *testing.T) {
	c := startCollector(t, 0)
	ctx := context.Background()

	grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(c.GRPCAddr()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(c.HTTPAddr()), otlptracehttp.WithInsecure(),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	newTP := func(service string, exp sdktrace.SpanExporter) *sdktrace.TracerProvider {
		res := resource.NewSchemaless(attribute.String("service.name", service))
		return sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
	}
	gateway, orders := newTP("gateway", grpcExp), newTP("orders", httpExp)

	// gateway: SERVER POST /v1/checkout → CLIENT Checkout; orders: SERVER Checkout.
	ctx, root := gateway.Tracer("t").Start(ctx, "POST /v1/checkout", trace.WithSpanKind(trace.SpanKindServer))
	cctx, client := gateway.Tracer("t").Start(ctx, "mitosis.orders.v1.OrdersService/Checkout", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.method", "mitosis.orders.v1.OrdersService/Checkout"), attribute.Int("n", 7)))
	_, server := orders.Tracer("t").Start(trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(cctx)),
		"mitosis.orders.v1.OrdersService/Checkout", trace.WithSpanKind(trace.SpanKindServer))
	server.End()
	client.End()
	root.End()
	// ForceFlush answers with the export's error, which Shutdown leaves to otel's handler.
	for _, tp := range []*sdktrace.TracerProvider{gateway, orders} {
		if err := tp.ForceFlush(context.Background()); err != nil {
			t.Fatalf("export: %v", err)
		}
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	api := tracecollect.Client{BaseURL: "http://" + c.QueryAddr()}
	tid := root.SpanContext().TraceID().String()
	td, err := api.Trace(context.Background(), tid)
	if err != nil {
		t.Fatal(err)
	}
	got := spansOf(td)
	if len(got) != 3 {
		t.Fatalf("trace has %d spans, want 3 (the store: %+v): %v", len(got), c.Store().Stats(), got)
	}
	gs, gc, os := got["gateway POST /v1/checkout"], got["gateway mitosis.orders.v1.OrdersService/Checkout"], got["orders mitosis.orders.v1.OrdersService/Checkout"]
	if gs == nil || gc == nil || os == nil {
		t.Fatalf("spans %v", got)
	}
	if !bytes.Equal(gc.GetParentSpanId(), gs.GetSpanId()) || !bytes.Equal(os.GetParentSpanId(), gc.GetSpanId()) {
		t.Error("parents lost on the way")
	}
	if gc.GetKind() != tracepb.Span_SPAN_KIND_CLIENT || os.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("kinds %v %v", gc.GetKind(), os.GetKind())
	}
	if len(gc.GetAttributes()) != 2 {
		t.Errorf("attributes %v", gc.GetAttributes())
	}

	// The raw answer is Jaeger's: {"result": OTLP/JSON} with hex IDs and numeric kinds.
	raw := get(t, "http://"+c.QueryAddr()+"/api/v3/traces/"+tid, http.StatusOK)
	for _, want := range []string{`{"result":{"resourceSpans":[`, `"traceId":"` + tid + `"`, `"spanId":"` + root.SpanContext().SpanID().String() + `"`, `"kind":2`} {
		if !strings.Contains(raw, want) {
			t.Errorf("answer lacks %s: %s", want, raw)
		}
	}

	// Finding by service, by operation, and the lists.
	found, err := api.Find(context.Background(), tracecollect.Query{ServiceName: "orders"})
	if err != nil || len(found) != 1 || len(spansOf(found[0])) != 3 {
		t.Fatalf("find by service: %d traces, %v", len(found), err)
	}
	if _, err := api.Find(context.Background(), tracecollect.Query{ServiceName: "gateway", OperationName: "nope"}); err != tracecollect.ErrNotFound {
		t.Errorf("find with no match: %v, want ErrNotFound", err)
	}
	if s := get(t, "http://"+c.QueryAddr()+"/api/v3/services", http.StatusOK); !strings.Contains(s, `"gateway"`) || !strings.Contains(s, `"orders"`) {
		t.Errorf("services %s", s)
	}
	if s := get(t, "http://"+c.QueryAddr()+"/api/v3/operations?service=gateway&span_kind=client", http.StatusOK); !strings.Contains(s, `{"name":"mitosis.orders.v1.OrdersService/Checkout","spanKind":"client"}`) || strings.Contains(s, "POST") {
		t.Errorf("operations %s", s)
	}
}

func get(t *testing.T, url string, status int) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Fatalf("GET %s: %s, want %d: %s", url, res.Status, status, b)
	}
	return string(b)
}

func TestOTLPHTTPAcceptsJSONAndAnswersBadRequests(t *testing.T) {
	c := startCollector(t, 0)
	base := "http://" + c.HTTPAddr()
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
		"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"op","kind":2,
		"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"},
		{"traceId":"","spanId":"","name":"bad"}]}]}]}`
	res, err := http.Post(base+"/v1/traces", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), `"rejectedSpans":"1"`) {
		t.Fatalf("export: %s %s", res.Status, b)
	}
	if s := get(t, "http://"+c.QueryAddr()+"/api/v3/traces/5b8efff798038103d269b633813fc60c", 200); !strings.Contains(s, `"spanId":"eee19b7ec3c1b174"`) {
		t.Errorf("trace %s", s)
	}

	for _, tc := range []struct {
		ct, body string
		status   int
	}{
		{"text/plain", "x", http.StatusUnsupportedMediaType},
		{"application/x-protobuf", "\xff\xff\xff", http.StatusBadRequest},
		{"application/json", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`, http.StatusBadRequest},
	} {
		res, err := http.Post(base+"/v1/traces", tc.ct, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Errorf("%s %q: %s, want %d", tc.ct, tc.body, res.Status, tc.status)
		}
	}
	// Headers are bounded (64 KiB), on the OTLP and the query servers alike.
	for _, addr := range []string{c.HTTPAddr(), c.QueryAddr()} {
		req, err := http.NewRequest("POST", "http://"+addr+"/v1/traces", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Padding", strings.Repeat("x", 128<<10))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: 128 KiB of headers: %s, want 431", addr, res.Status)
		}
	}
	// Metrics and logs are accepted (exporters of every signal can point here).
	for _, path := range []string{"/v1/metrics", "/v1/logs"} {
		res, err := http.Post(base+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: %s", path, res.Status)
		}
	}

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/api/v3/traces/00000000000000000000000000000001", 404},
		{"/api/v3/traces/xyz", 400},
		{"/api/v3/traces?query.num_traces=-1", 400},
		{"/api/v3/traces?query.start_time_min=yesterday", 400},
	} {
		s := get(t, "http://"+c.QueryAddr()+tc.path, tc.status)
		var e struct {
			Error struct {
				HTTPCode int    `json:"httpCode"`
				Message  string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(s), &e); err != nil || e.Error.HTTPCode != tc.status || e.Error.Message == "" {
			t.Errorf("%s: error body %q", tc.path, s)
		}
	}
}

// The store keeps at most MaxSpans spans, dropping the oldest traces whole.
func TestStoreDropsTheOldestTracesWhenFull(t *testing.T) {
	s := tracecollect.NewStore(10, 0)
	span := func(trace byte, n int) *tracepb.ResourceSpans {
		ss := &tracepb.ScopeSpans{}
		for i := range n {
			ss.Spans = append(ss.Spans, &tracepb.Span{TraceId: bytes.Repeat([]byte{trace}, 16), SpanId: []byte{trace, byte(i), 1, 1, 1, 1, 1, 1},
				Name: fmt.Sprint("s", i), StartTimeUnixNano: uint64(trace) * 1000, EndTimeUnixNano: uint64(trace)*1000 + 10})
		}
		return &tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{ss}}
	}
	for tr := byte(1); tr <= 4; tr++ {
		s.Add([]*tracepb.ResourceSpans{span(tr, 4)})
	}
	st := s.Stats()
	if st.Spans > 10 || st.Traces != 2 || st.Evicted != 2 || st.Received != 16 {
		t.Fatalf("stats %+v, want traces 3 and 4 kept", st)
	}
	for tr := byte(1); tr <= 4; tr++ {
		var id tracecollect.TraceID
		copy(id[:], bytes.Repeat([]byte{tr}, 16))
		if kept := s.Trace(id) != nil; kept != (tr >= 3) {
			t.Errorf("trace %d kept: %v", tr, kept)
		}
	}
	found := s.Find(tracecollect.Query{})
	if len(found) != 2 || found[0].ResourceSpans[0].ScopeSpans[0].Spans[0].TraceId[0] != 4 {
		t.Errorf("find: newest first, got %d traces", len(found))
	}
	// A trace alone over the bound is kept: a query right after must find it.
	s.Add([]*tracepb.ResourceSpans{span(9, 12)})
	if st := s.Stats(); st.Traces != 1 || st.Spans != 12 {
		t.Errorf("after a large trace: %+v", st)
	}
}

func TestSplitTracesKeepsResourcesAndOrdersNewestFirst(t *testing.T) {
	td := &tracepb.TracesData{}
	raw := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"spans":[
		{"traceId":"00000000000000000000000000000001","spanId":"0000000000000001","name":"x","startTimeUnixNano":"100"},
		{"traceId":"00000000000000000000000000000002","spanId":"0000000000000002","name":"y","startTimeUnixNano":"200"}]}]}]}`
	if err := tracecollect.UnmarshalJSON([]byte(raw), td); err != nil {
		t.Fatal(err)
	}
	got := tracecollect.SplitTraces(td)
	if len(got) != 2 || spansOf(got[0])["a y"] == nil || spansOf(got[1])["a x"] == nil {
		b, _ := json.Marshal(got)
		t.Fatalf("split %s", b)
	}
}
