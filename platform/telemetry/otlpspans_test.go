package telemetry

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// bodySink is an OTLP/HTTP endpoint that keeps the body of every export.
func bodySink(t *testing.T) (url string, bodies func() [][]byte) {
	t.Helper()
	var mu sync.Mutex
	var got [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// testSpans are spans using every field OTLP carries and every attribute type, from two
// scopes (one with attributes and a schema URL) of res, interleaved.
func testSpans(t *testing.T, res *resource.Resource) []sdktrace.ReadOnlySpan {
	t.Helper()
	ts, err := trace.ParseTraceState("vendor=value,other=1")
	if err != nil {
		t.Fatal(err)
	}
	tid := trace.TraceID{0x5f, 0x00, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	sc := func(sid byte, remote bool) trace.SpanContext {
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{sid, 1, 2, 3, 4, 5, 6, 7},
			TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: remote})
	}
	every := []attribute.KeyValue{
		attribute.String("s", "text"), attribute.String("empty", ""), attribute.Bool("t", true), attribute.Bool("f", false),
		attribute.Int64("i", -42), attribute.Int64("zero", 0), attribute.Float64("pi", 3.14159), attribute.Float64("fzero", 0),
		attribute.StringSlice("ss", []string{"a", "", "c"}), attribute.BoolSlice("bs", []bool{true, false}),
		attribute.Int64Slice("is", []int64{1, -2, 0}), attribute.Float64Slice("fs", []float64{0.5, 0}),
		attribute.StringSlice("none", nil), attribute.ByteSlice("bytes", []byte{0, 1, 255}), attribute.ByteSlice("nobytes", nil),
		attribute.Slice("mixed", attribute.StringValue("x"), attribute.IntValue(7), attribute.SliceValue(attribute.BoolValue(true))),
		attribute.Map("map", attribute.String("k", "v"), attribute.Map("inner", attribute.Int("n", 1))),
		{Key: "nothing"}, // an EMPTY value
	}
	start := time.Unix(1_700_000_000, 123_456_789)
	app := instrumentation.Scope{Name: "app", Version: "1.0", SchemaURL: "https://opentelemetry.io/schemas/1.26.0",
		Attributes: attribute.NewSet(attribute.String("scope.attr", "x"))}
	lib := instrumentation.Scope{Name: "lib"}
	stubs := tracetest.SpanStubs{
		{ // a root, remote parent, every attribute type, events, links, an error, drops
			Name: "GET /v1/products/{id}", SpanContext: sc(1, false), Parent: sc(9, true), SpanKind: trace.SpanKindServer,
			StartTime: start, EndTime: start.Add(1500 * time.Microsecond), Attributes: every,
			Events: []sdktrace.Event{
				{Name: "exception", Time: start.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.String("exception.message", "boom")}, DroppedAttributeCount: 2},
				{Name: "bare", Time: start},
			},
			Links: []sdktrace.Link{
				{SpanContext: sc(7, true), Attributes: []attribute.KeyValue{attribute.Int("n", 3)}, DroppedAttributeCount: 1},
				{SpanContext: trace.SpanContext{}},
			},
			Status: sdktrace.Status{Code: codes.Error, Description: "it failed"}, DroppedAttributes: 3, DroppedEvents: 4, DroppedLinks: 5,
			Resource: res, InstrumentationScope: app,
		},
		{Name: "Get orders", SpanContext: sc(2, false), Parent: sc(1, false), SpanKind: trace.SpanKindClient, StartTime: start, EndTime: start.Add(time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.String("db.system.name", "nats_kv")}, Resource: res, InstrumentationScope: lib},
		{Name: "ok", SpanContext: sc(3, false), Parent: sc(1, false), SpanKind: trace.SpanKindInternal, StartTime: start, EndTime: start,
			Status: sdktrace.Status{Code: codes.Ok}, Resource: res, InstrumentationScope: app},
		{Name: "", SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{4}, TraceFlags: trace.FlagsSampled}), Resource: res, InstrumentationScope: lib},
		{Name: "no scope", SpanContext: sc(5, false), SpanKind: trace.SpanKindProducer, StartTime: start, EndTime: start.Add(time.Second), Resource: res},
		{Name: "consumer", SpanContext: sc(6, false), Parent: sc(5, true), SpanKind: trace.SpanKindConsumer, StartTime: start, EndTime: start.Add(time.Second),
			Resource: res, InstrumentationScope: app},
	}
	return stubs.Snapshots()
}

// sendWithStock sends spans with the stock OTLP/HTTP exporter and returns the request body.
func sendWithStock(t *testing.T, spans []sdktrace.ReadOnlySpan) []byte {
	t.Helper()
	url, bodies := bodySink(t)
	e, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(url))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := bodies()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	return got[0]
}

// sendWithBatcher ends spans in a batcher with the OTLP/HTTP client, flushes it and returns
// the request body.
func sendWithBatcher(t *testing.T, spans []sdktrace.ReadOnlySpan) []byte {
	t.Helper()
	url, bodies := bodySink(t)
	p, err := newBatcher(context.Background(), otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(url)),
		batchConfig{delay: time.Hour, timeout: 10 * time.Second, maxQueue: 4096, maxBatch: 2048})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		p.OnEnd(s)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := bodies()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	return got[0]
}

func decodeRequest(t *testing.T, body []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatalf("request does not decode: %v", err)
	}
	return &req
}

// The batcher sends the very bytes the stock OTLP exporter sends, for spans using every
// field and attribute type.
func TestBatcherSendsWhatTheStockExporterSends(t *testing.T) {
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "orders"), attribute.Int("process.pid", 42), attribute.StringSlice("host.ip", []string{"10.0.0.1"}))
	spans := testSpans(t, res)
	want := sendWithStock(t, spans)
	got := sendWithBatcher(t, spans)
	if !bytes.Equal(got, want) {
		t.Fatalf("requests differ:\n got %v\nwant %v", decodeRequest(t, got), decodeRequest(t, want))
	}
	if n := len(decodeRequest(t, got).ResourceSpans[0].ScopeSpans); n != 3 { // app, lib, and no scope
		t.Errorf("%d scopes, want 3", n)
	}
}

// Spans of several resources each go under their own, as with the stock exporter (whose
// order of resources is a map's: the comparison sorts them).
func TestBatcherGroupsResources(t *testing.T) {
	a := resource.NewSchemaless(attribute.String("service.name", "a"))
	b := resource.NewSchemaless(attribute.String("service.name", "b"))
	sameAsA := resource.NewSchemaless(attribute.String("service.name", "a")) // another pointer, the same resource
	var spans []sdktrace.ReadOnlySpan
	for _, r := range []*resource.Resource{a, b, sameAsA, nil} {
		spans = append(spans, testSpans(t, r)...)
	}
	sorted := func(body []byte) []*tracepb.ResourceSpans {
		rs := decodeRequest(t, body).ResourceSpans
		slices.SortFunc(rs, func(x, y *tracepb.ResourceSpans) int {
			return cmp.Compare(x.GetResource().String(), y.GetResource().String())
		})
		return rs
	}
	want := sorted(sendWithStock(t, spans))
	got := sorted(sendWithBatcher(t, spans))
	if len(got) != 3 {
		t.Errorf("%d resources, want 3 (a, b, none)", len(got))
	}
	if !slices.EqualFunc(got, want, func(x, y *tracepb.ResourceSpans) bool { return proto.Equal(x, y) }) {
		t.Fatalf("requests differ:\n got %v\nwant %v", got, want)
	}
}

// fakeClient is an OTLP client that keeps what it is asked to upload, marshalled as the HTTP
// and gRPC clients marshal it and decoded, and can be made to block or fail.
type fakeClient struct {
	mu       sync.Mutex
	bodies   [][]byte
	requests []*coltracepb.ExportTraceServiceRequest
	started  bool
	stopped  bool
	gate     chan struct{} // when not nil, UploadTraces waits for it to close
	fail     error         // when not nil, what UploadTraces returns
}

func (c *fakeClient) Start(context.Context) error {
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	return nil
}
func (c *fakeClient) Stop(context.Context) error {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	return nil
}

func (c *fakeClient) UploadTraces(ctx context.Context, rss []*tracepb.ResourceSpans) error {
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.fail != nil {
		return c.fail
	}
	body, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	if err != nil {
		return err
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return err
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, body)
	c.requests = append(c.requests, &req)
	c.mu.Unlock()
	return nil
}

// spanIDs returns, request by request, the first byte of the span IDs sent.
func (c *fakeClient) spanIDs() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, req := range c.requests {
		var ids []byte
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					ids = append(ids, s.SpanId[0])
				}
			}
		}
		out = append(out, ids)
	}
	return out
}

// numberedSpans are n sampled spans of one scope whose span IDs start with 1, 2, ... n.
func numberedSpans(n int) []sdktrace.ReadOnlySpan {
	stubs := make(tracetest.SpanStubs, n)
	for i := range stubs {
		stubs[i] = tracetest.SpanStub{Name: "s", Resource: resource.Empty(), InstrumentationScope: instrumentation.Scope{Name: "test"},
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(i + 1)}, TraceFlags: trace.FlagsSampled})}
	}
	return stubs.Snapshots()
}

func startBatcher(t *testing.T, c *fakeClient, cfg batchConfig) *batcher {
	t.Helper()
	p, err := newBatcher(context.Background(), c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A full batch goes at once, without waiting for the schedule delay; a flush sends the
// rest; every span goes once, in order; an unsampled span does not go.
func TestBatcherSendsFullBatchesAndFlushesTheRest(t *testing.T) {
	c := &fakeClient{}
	p := startBatcher(t, c, batchConfig{delay: time.Hour, timeout: time.Second, maxQueue: 100, maxBatch: 3})
	for _, s := range numberedSpans(7) {
		p.OnEnd(s)
	}
	unsampled := tracetest.SpanStubs{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{99}})}}
	p.OnEnd(unsampled.Snapshots()[0])
	waitFor(t, "two full batches", func() bool { return len(c.spanIDs()) == 2 })
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.ForceFlush(context.Background()); err != nil { // nothing left: nothing sent
		t.Fatal(err)
	}
	if got, want := c.spanIDs(), [][]byte{{1, 2, 3}, {4, 5, 6}, {7}}; !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("requests carried spans %v, want %v", got, want)
	}
}

// A partial batch goes after the schedule delay, with no flush.
func TestBatcherSendsAfterTheScheduleDelay(t *testing.T) {
	c := &fakeClient{}
	p := startBatcher(t, c, batchConfig{delay: 10 * time.Millisecond, timeout: time.Second, maxQueue: 100, maxBatch: 50})
	for _, s := range numberedSpans(2) {
		p.OnEnd(s)
	}
	waitFor(t, "the batch", func() bool { return len(c.spanIDs()) == 1 })
	if got := c.spanIDs()[0]; !bytes.Equal(got, []byte{1, 2}) {
		t.Fatalf("sent spans %v", got)
	}
}

// While the collector does not answer, ending spans never blocks: once the queue is full,
// whole batches are dropped; what was queued goes once the collector answers.
func TestBatcherDropsRatherThanBlockWhenTheQueueIsFull(t *testing.T) {
	c := &fakeClient{gate: make(chan struct{})}
	p := startBatcher(t, c, batchConfig{delay: time.Hour, timeout: time.Minute, maxQueue: 6, maxBatch: 2})
	spans := numberedSpans(40)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for _, s := range spans {
			p.OnEnd(s)
		}
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("OnEnd blocked on a full queue")
	}
	if p.dropped.Load() == 0 {
		t.Fatal("nothing dropped")
	}
	var reported []error
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { reported = append(reported, err) }))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	p.reportDrops()
	p.reportDrops() // nothing new: nothing told
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), fmt.Sprintf("dropped %d spans", p.dropped.Load())) {
		t.Errorf("error handler told %v, want one report of the %d spans dropped", reported, p.dropped.Load())
	}
	close(c.gate)
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, ids := range c.spanIDs() {
		sent += len(ids)
	}
	// One batch was being sent, two were queued (6/2 - 1), and the last one is kept.
	if dropped := int(p.dropped.Load()); sent+dropped != len(spans) || sent > 8 {
		t.Fatalf("sent %d and dropped %d of %d spans", sent, dropped, len(spans))
	}
}

// Shutdown sends what is left and stops the client; spans ended afterwards are dropped, and
// flushing or shutting down again does nothing.
func TestBatcherShutdown(t *testing.T) {
	c := &fakeClient{}
	p := startBatcher(t, c, batchConfig{delay: time.Hour, timeout: time.Second, maxQueue: 100, maxBatch: 50})
	spans := numberedSpans(3)
	p.OnEnd(spans[0])
	p.OnEnd(spans[1])
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.OnEnd(spans[2])
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.spanIDs(); len(got) != 1 || !bytes.Equal(got[0], []byte{1, 2}) {
		t.Fatalf("sent %v, want spans 1 and 2 in one request", got)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started || !c.stopped {
		t.Fatalf("client started %v, stopped %v", c.started, c.stopped)
	}
}

// A flush reports the collector's refusal.
func TestBatcherFlushReportsTheExportError(t *testing.T) {
	refused := errors.New("refused")
	p := startBatcher(t, &fakeClient{fail: refused}, batchConfig{delay: time.Hour, timeout: time.Second, maxQueue: 100, maxBatch: 50})
	p.OnEnd(numberedSpans(1)[0])
	if err := p.ForceFlush(context.Background()); !errors.Is(err, refused) {
		t.Fatalf("ForceFlush: %v, want the export's error", err)
	}
}

// The batch span processor's variables, with the SDK's meaning.
func TestBatchConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want batchConfig
	}{
		{nil, batchConfig{delay: 5 * time.Second, timeout: 30 * time.Second, maxQueue: defaultQueueSize, maxBatch: 512}},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BSP_EXPORT_TIMEOUT": "1000", "OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10"},
			batchConfig{delay: 200 * time.Millisecond, timeout: time.Second, maxQueue: 100, maxBatch: 10}},
		{map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "100"}, // a batch larger than the queue: the SDK's rule
			batchConfig{delay: 5 * time.Second, timeout: 30 * time.Second, maxQueue: 100, maxBatch: 100}},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "soon", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "-1"},
			batchConfig{delay: 5 * time.Second, timeout: 30 * time.Second, maxQueue: defaultQueueSize, maxBatch: 512}},
	} {
		for _, k := range []string{"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} {
			t.Setenv(k, tc.env[k])
		}
		if got := batchConfigFromEnv(); got != tc.want {
			t.Errorf("%v: %+v, want %+v", tc.env, got, tc.want)
		}
	}
}

// marshalClient is an OTLP client that marshals what it is given, as the HTTP and gRPC
// clients do before they send, and sends nothing.
type marshalClient struct{}

func (marshalClient) Start(context.Context) error { return nil }
func (marshalClient) Stop(context.Context) error  { return nil }
func (marshalClient) UploadTraces(_ context.Context, rss []*tracepb.ResourceSpans) error {
	_, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	return err
}

// processCPU is the CPU time (user and system) the process has used, in nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkExport measures what sending a span costs up to the wire, the SDK's batch span
// processor and OTLP exporter against the batcher, for batches of 512 spans shaped like a
// store call's (three string attributes, a parent, a kind).
func BenchmarkExport(b *testing.B) {
	res := resource.NewSchemaless(attribute.String("service.name", "monolith"), attribute.String("host.name", "bench"))
	tid := trace.TraceID{0x5f, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	start := time.Now()
	stubs := make(tracetest.SpanStubs, 512)
	for i := range stubs {
		stubs[i] = tracetest.SpanStub{Name: "Get orders_orders",
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{byte(i), 1}, TraceFlags: trace.FlagsSampled}),
			Parent:      trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{byte(i), 2}, TraceFlags: trace.FlagsSampled}),
			SpanKind:    trace.SpanKindClient, StartTime: start, EndTime: start.Add(time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.String("db.system.name", "nats_kv"), attribute.String("db.operation.name", "Get"),
				attribute.String("db.collection.name", "orders_orders")},
			Resource: res, InstrumentationScope: instrumentation.Scope{Name: "github.com/mitosis-dev/mitosis/shop/traced"}}
	}
	spans := stubs.Snapshots()
	// The SDK's processor works in a goroutine of its own, woken once per span: what counts is
	// the CPU time of the process, not the time of the loop.
	run := func(b *testing.B, p sdktrace.SpanProcessor) {
		defer func() { _ = p.Shutdown(context.Background()) }()
		b.ReportAllocs()
		c0 := processCPU(b)
		for b.Loop() {
			for _, s := range spans {
				p.OnEnd(s)
			}
			if err := p.ForceFlush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(processCPU(b)-c0)/float64(b.N*len(spans)), "cpu-ns/span")
	}
	b.Run("sdk", func(b *testing.B) {
		e, err := otlptrace.New(context.Background(), marshalClient{})
		if err != nil {
			b.Fatal(err)
		}
		run(b, sdktrace.NewBatchSpanProcessor(e, sdktrace.WithMaxQueueSize(8192), sdktrace.WithMaxExportBatchSize(len(spans))))
	})
	b.Run("batcher", func(b *testing.B) {
		p, err := newBatcher(context.Background(), marshalClient{}, batchConfig{delay: time.Hour, timeout: time.Second, maxQueue: 8192, maxBatch: len(spans)})
		if err != nil {
			b.Fatal(err)
		}
		run(b, p)
	})
}

// The batcher writes what the stock exporter writes for any names, attribute values and
// sizes: short strings, strings and spans whose lengths take two and three bytes. Where a
// string is not valid UTF-8 the stock exporter fails the whole batch (protobuf strings must
// be UTF-8); the batcher writes the string with U+FFFD for each bad byte sequence, as the
// stock exporter would write the repaired string, so that one bad header value in one span
// does not lose the spans sent with it.
func FuzzBatcherWritesWhatTheStockExporterWrites(f *testing.F) {
	f.Add("GET /v1/products/{id}", "http.route", "/v1/products/{id}", uint16(0), int64(200), 0.5, true)
	f.Add("", "", "", uint16(0), int64(0), 0.0, false)
	f.Add("Get orders", "db.system.name", "nats_kv", uint16(130), int64(-1), -2.5, true)   // 2-byte lengths
	f.Add("big", "user_agent.original", "curl", uint16(20000), int64(1<<40), 1e300, false) // 3-byte lengths
	f.Add("bad\xff", "k\xc3", "\xed\xa0\x80v", uint16(3), int64(7), 1.0, true)             // invalid UTF-8
	res := resource.NewSchemaless(attribute.String("service.name", "monolith"))
	scope := instrumentation.Scope{Name: "github.com/mitosis-dev/mitosis/shop/traced"}
	f.Fuzz(func(t *testing.T, name, key, value string, pad uint16, n int64, x float64, b bool) {
		spans := func(fix func(string) string) []sdktrace.ReadOnlySpan {
			name, key, value := fix(name), fix(key), fix(value)
			long := value + strings.Repeat("v", int(pad))
			tid, sid := trace.TraceID{1, 2, 3}, trace.SpanID{4, 5, 6}
			return tracetest.SpanStubs{{
				Name: name + strings.Repeat("n", int(pad)%200), SpanKind: trace.SpanKindClient,
				SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
				StartTime:   time.Unix(0, n&(1<<62-1)), EndTime: time.Unix(1, n&(1<<62-1)),
				Attributes: []attribute.KeyValue{attribute.String(key, long), attribute.Int64(key+".n", n), attribute.Float64("x", x),
					attribute.Bool("b", b), attribute.StringSlice("ss", []string{value, long, name})},
				Events: []sdktrace.Event{{Name: value, Attributes: []attribute.KeyValue{attribute.String(key, value)}}},
				Status: sdktrace.Status{Code: codes.Error, Description: long}, Resource: res, InstrumentationScope: scope,
			}}.Snapshots()
		}
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

		stock := &fakeClient{}
		e, err := otlptrace.New(context.Background(), stock)
		if err != nil {
			t.Fatal(err)
		}
		stockErr := e.ExportSpans(context.Background(), spans(valid))
		ours := &fakeClient{}
		p, err := newBatcher(context.Background(), ours, batchConfig{delay: time.Hour, timeout: 10 * time.Second, maxQueue: 16, maxBatch: 8})
		if err != nil {
			t.Fatal(err)
		}
		p.OnEnd(spans(func(s string) string { return s })[0])
		oursErr := p.Shutdown(context.Background())
		if stockErr != nil || oursErr != nil {
			t.Fatalf("stock exporter: %v; batcher: %v", stockErr, oursErr)
		}
		if len(stock.bodies) != 1 || len(ours.bodies) != 1 {
			t.Fatalf("%d and %d requests, want 1 each", len(stock.bodies), len(ours.bodies))
		}
		if !bytes.Equal(ours.bodies[0], stock.bodies[0]) {
			t.Fatalf("requests differ:\n got %v\nwant %v", decodeRequest(t, ours.bodies[0]), decodeRequest(t, stock.bodies[0]))
		}
	})
}
