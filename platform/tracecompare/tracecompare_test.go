package tracecompare_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// span is a test span: times in milliseconds from the trace's start.
type span struct {
	id, parent, service, name string
	kind                      tracepb.Span_SpanKind
	start, end                float64
	attrs                     map[string]string
}

const (
	server   = tracepb.Span_SPAN_KIND_SERVER
	client   = tracepb.Span_SPAN_KIND_CLIENT
	internal = tracepb.Span_SPAN_KIND_INTERNAL
	producer = tracepb.Span_SPAN_KIND_PRODUCER
	consumer = tracepb.Span_SPAN_KIND_CONSUMER
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func otlp(traceID string, spans []span) *tracepb.TracesData { return otlpAt(t0, traceID, spans) }

// otlpAt is otlp with the trace starting at base.
func otlpAt(base time.Time, traceID string, spans []span) *tracepb.TracesData {
	tid, _ := hex.DecodeString(traceID)
	td := &tracepb.TracesData{}
	byService := map[string]*tracepb.ScopeSpans{}
	for _, s := range spans {
		ss := byService[s.service]
		if ss == nil {
			ss = &tracepb.ScopeSpans{}
			byService[s.service] = ss
			td.ResourceSpans = append(td.ResourceSpans, &tracepb.ResourceSpans{
				Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
					Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s.service}}}}},
				ScopeSpans: []*tracepb.ScopeSpans{ss}})
		}
		sp := &tracepb.Span{TraceId: tid, SpanId: spanID(s.id), Name: s.name, Kind: s.kind,
			StartTimeUnixNano: uint64(base.Add(time.Duration(s.start * float64(time.Millisecond))).UnixNano()),
			EndTimeUnixNano:   uint64(base.Add(time.Duration(s.end * float64(time.Millisecond))).UnixNano())}
		if s.parent != "" {
			sp.ParentSpanId = spanID(s.parent)
		}
		for k, v := range s.attrs {
			sp.Attributes = append(sp.Attributes, &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}})
		}
		ss.Spans = append(ss.Spans, sp)
	}
	return td
}

func spanID(s string) []byte {
	b := make([]byte, 8)
	copy(b, s)
	return b
}

var (
	grpcAttrs  = map[string]string{"rpc.system.name": "grpc"}
	localAttrs = map[string]string{"rpc.system.name": "inprocess"}
	storeAttrs = map[string]string{"db.system.name": "nats_kv"}
	notify     = map[string]string{"messaging.consumer.group.name": "notify"}
)

// A checkout in the services: edge → orders (gRPC) → cart (gRPC) and a store write, a
// publish, and a consumer in another service.
func servicesCheckout() []span {
	return []span{
		{"edge", "", "gateway", "POST /v1/checkout", server, 0, 20, nil},
		{"c-ord", "edge", "gateway", "Checkout", client, 1, 19, grpcAttrs},
		{"s-ord", "c-ord", "orders", "Checkout", server, 2, 18, nil},
		{"c-cart", "s-ord", "orders", "cart/Get", client, 3, 9, grpcAttrs},
		{"s-cart", "c-cart", "cart", "cart/Get", server, 4, 8, nil},
		{"kv-cart", "s-cart", "cart", "Get carts", client, 5, 7, storeAttrs},
		{"kv-ord", "s-ord", "orders", "Create orders", client, 10, 14, storeAttrs},
		{"pub", "s-ord", "orders", "publish paid", producer, 15, 17, nil},
		{"con", "pub", "notify", "process paid", consumer, 22, 30, notify},
		{"kv-not", "con", "notify", "Create notifications", client, 23, 29, storeAttrs},
	}
}

// The same checkout in the monolith: in-process calls, no server spans.
func monolithCheckout() []span {
	return []span{
		{"edge", "", "monolith", "POST /v1/checkout", server, 0, 10, nil},
		{"ord", "edge", "monolith", "Checkout", internal, 1, 9, localAttrs},
		{"cart", "ord", "monolith", "cart/Get", internal, 2, 4, localAttrs},
		{"kv-cart", "cart", "monolith", "Get carts", client, 2.5, 3.5, storeAttrs},
		{"kv-ord", "ord", "monolith", "Create orders", client, 5, 7, storeAttrs},
		{"pub", "ord", "monolith", "publish paid", producer, 7.5, 8.5, nil},
		{"con", "pub", "monolith", "process paid", consumer, 12, 15, notify},
	}
}

func build(t *testing.T, id string, spans []span) *tracecompare.Trace {
	t.Helper()
	ts, err := tracecompare.FromOTLP(otlp(id, spans))
	if err != nil || len(ts) != 1 {
		t.Fatalf("FromOTLP: %d traces, %v", len(ts), err)
	}
	return ts[0]
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func TestAnalyzeSplitsTheCriticalPath(t *testing.T) {
	a := tracecompare.Analyze(build(t, "0000000000000000000000000000000a", servicesCheckout()))

	if msOf(a.RootLatency) != 20 || msOf(a.EndToEnd) != 30 || msOf(a.EventLag) != 10 {
		t.Errorf("latency %v, end to end %v, event lag %v", a.RootLatency, a.EndToEnd, a.EventLag)
	}
	// Request path, by hand, walking back from 20: edge 19-20 (domain), c-ord 18-19
	// (transport), s-ord 17-18 (domain), pub 15-17 (queueing), s-ord 14-15, kv-ord 10-14
	// (store), s-ord 9-10, c-cart 8-9 (transport), s-cart 7-8, kv-cart 5-7 (store), s-cart 4-5,
	// c-cart 3-4 (transport), s-ord 2-3, c-ord 1-2 (transport), edge 0-1.
	want := map[tracecompare.Category]float64{tracecompare.Domain: 8, tracecompare.Store: 6, tracecompare.Transport: 4, tracecompare.Queueing: 2}
	for cat, w := range want {
		if got := msOf(a.Request.Breakdown[cat]); got != w {
			t.Errorf("request path %s = %v ms, want %v", cat, got, w)
		}
	}
	if msOf(a.Request.Total) != 20 {
		t.Errorf("request path total %v", a.Request.Total)
	}
	// End to end: the path leaves the edge at 19..., follows the publish to its consumer:
	// 17-22 waiting for delivery (queueing), then the consumer 22-30 (kv 23-29 store).
	if got := msOf(a.Full.Total); got != 30 {
		t.Errorf("end-to-end path total %v ms", got)
	}
	if got := msOf(a.Full.Breakdown[tracecompare.Queueing]); got != 2+5 {
		t.Errorf("end-to-end queueing %v ms, want the publish (2) and the delivery wait (5)", got)
	}
	if got := msOf(a.Full.Breakdown[tracecompare.Store]); got != 6+6 {
		t.Errorf("end-to-end store %v ms", got)
	}
	if a.Spans != 10 || len(a.Services) != 4 || a.RemoteHops != 3 || a.ContextCalls != 2 || a.Depth != 6 || a.FanOut != 3 {
		t.Errorf("shape: spans %d services %v hops %d calls %d depth %d fan-out %d", a.Spans, a.Services, a.RemoteHops, a.ContextCalls, a.Depth, a.FanOut)
	}
}

func TestOrphansHangUnderTheRoot(t *testing.T) {
	spans := append(servicesCheckout(), span{"lost", "missing", "x", "orphan", internal, 3, 4, nil})
	tr := build(t, "0000000000000000000000000000000b", spans)
	if tr.Orphans != 1 || tr.Root.Name != "POST /v1/checkout" {
		t.Fatalf("orphans %d, root %s", tr.Orphans, tr.Root.Name)
	}
}

// without drops the spans with the given IDs, as an exporter's batch still on its way would.
func without(spans []span, ids ...string) []span {
	var out []span
	for _, s := range spans {
		if !slices.Contains(ids, s.id) {
			out = append(out, s)
		}
	}
	return out
}

// A trace missing spans says so, in every format: its figures are wrong where they lack.
func TestIncompleteTracesAreSaid(t *testing.T) {
	whole := build(t, "000000000000000000000000000000a1", servicesCheckout())
	if gaps := tracecompare.Analyze(whole).Gaps; gaps != nil {
		t.Errorf("a whole trace has gaps: %v", gaps)
	}
	// cart's server span and its store call have not arrived, and notify's store call came
	// without its consumer.
	part := build(t, "000000000000000000000000000000a2", without(servicesCheckout(), "s-cart", "kv-cart", "con"))
	gaps := tracecompare.Analyze(part).Gaps
	if len(gaps) != 2 || gaps[0] != "gRPC call cart/Get without its server span" || gaps[1] != "1 span(s) whose parent is missing" {
		t.Errorf("gaps %q", gaps)
	}
	mono := build(t, "000000000000000000000000000000a3", monolithCheckout())
	c, err := tracecompare.Compare("monolith", []*tracecompare.Trace{mono}, "services", []*tracecompare.Trace{whole, part})
	if err != nil {
		t.Fatal(err)
	}
	if c.A.Summary.Incomplete != 0 || c.B.Summary.Incomplete != 1 {
		t.Errorf("incomplete: %d and %d, want 0 and 1", c.A.Summary.Incomplete, c.B.Summary.Incomplete)
	}
	var table, js, page bytes.Buffer
	if err := c.Table(&table); err != nil {
		t.Fatal(err)
	}
	if err := c.JSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := c.HTML(&page); err != nil {
		t.Fatal(err)
	}
	for format, out := range map[string]string{"table": table.String(), "html": page.String()} {
		for _, want := range []string{"incomplete traces", "services 000000000000000000000000000000a2: gRPC call cart/Get without its server span; 1 span(s) whose parent is missing"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s lacks %q:\n%s", format, want, out)
			}
		}
	}
	if !strings.Contains(js.String(), `"incomplete_traces": 1`) || !strings.Contains(js.String(), `"000000000000000000000000000000a2": [`) {
		t.Errorf("json lacks the gaps:\n%s", js.String())
	}

	var clean bytes.Buffer
	c, err = tracecompare.Compare("monolith", []*tracecompare.Trace{mono}, "services", []*tracecompare.Trace{whole})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Table(&clean); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(clean.String(), "incomplete") {
		t.Errorf("whole traces reported incomplete:\n%s", clean.String())
	}
}

func TestCompareAndRender(t *testing.T) {
	mono := build(t, "0000000000000000000000000000000c", monolithCheckout())
	svc := build(t, "0000000000000000000000000000000d", servicesCheckout())
	c, err := tracecompare.Compare("monolith", []*tracecompare.Trace{mono}, "services", []*tracecompare.Trace{svc})
	if err != nil {
		t.Fatal(err)
	}
	if c.Differences[0].Category != tracecompare.Store && c.Differences[0].Category != tracecompare.Transport {
		t.Errorf("largest difference %+v", c.Differences[0])
	}

	var table bytes.Buffer
	if err := c.Table(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"root latency", "10.00 ms", "20.00 ms", "+10.00 ms (×2.0)", "transport", "event lag", "remote hops", "context calls", "max fan-out", "where the request's critical path differs most"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	var js bytes.Buffer
	if err := c.JSON(&js); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Sides []struct {
			Label   string `json:"label"`
			Summary struct {
				RootLatency struct {
					Median float64 `json:"median"`
				} `json:"root_latency_ms"`
				RemoteHops struct {
					Median float64 `json:"median"`
				} `json:"remote_hops"`
			} `json:"summary"`
			Path []struct {
				Category string `json:"category"`
			} `json:"example_critical_path"`
		} `json:"sides"`
	}
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Sides) != 2 || out.Sides[1].Summary.RootLatency.Median != 20 || out.Sides[1].Summary.RemoteHops.Median != 3 || len(out.Sides[0].Path) == 0 {
		t.Errorf("json %s", js.String())
	}

	var page bytes.Buffer
	if err := c.HTML(&page); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{"<!DOCTYPE html>", "trace 0000000000000000000000000000000c", "trace 0000000000000000000000000000000d",
		"process paid [notify]", "bar store crit", "ZgotmplZ"} {
		if has := strings.Contains(html, want); has != (want != "ZgotmplZ") { // ZgotmplZ: a value html/template refused
			t.Errorf("page has %q: %v", want, has)
		}
	}
	for _, external := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(html, external) {
			t.Errorf("the page is not self-contained: it has %q", external)
		}
	}
}

func TestSetsReportMedians(t *testing.T) {
	var mono, svc []*tracecompare.Trace
	for i, scale := range []float64{1, 2, 3} {
		m, s := monolithCheckout(), servicesCheckout()
		for j := range m {
			m[j].start, m[j].end = m[j].start*scale, m[j].end*scale
		}
		for j := range s {
			s[j].start, s[j].end = s[j].start*scale, s[j].end*scale
		}
		mono = append(mono, build(t, strings.Repeat("0", 31)+string(rune('1'+i)), m))
		svc = append(svc, build(t, strings.Repeat("1", 31)+string(rune('1'+i)), s))
	}
	c, err := tracecompare.Compare("monolith", mono, "services", svc)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.B.Summary.RootLatency; got.Median != 40 || got.Min != 20 || got.Max != 60 || c.B.Summary.N != 3 {
		t.Errorf("root latency stat %+v", got)
	}
	if c.B.Example.RootLatency != 40*time.Millisecond {
		t.Errorf("the example is not the median trace: %v", c.B.Example.RootLatency)
	}
}

// Run reads from a collector's /api/v3: by default the latest checkout of each edge, or two
// traces by ID, written as a table, JSON or HTML (`mitosis traces compare`, whose flags are
// these Options).
func TestRunReadsTheCollector(t *testing.T) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = col.Close(context.Background()) }()
	// A minute ago: the last-N selection looks for the latest traces in the last day (Lookback).
	ago := time.Now().Add(-time.Minute)
	col.Store().Add(otlpAt(ago, "000000000000000000000000000000e1", monolithCheckout()).ResourceSpans)
	col.Store().Add(otlpAt(ago, "000000000000000000000000000000e2", servicesCheckout()).ResourceSpans)

	// options are the command's defaults, against this collector.
	options := func() tracecompare.Options {
		return tracecompare.Options{Collector: "http://" + col.QueryAddr(), AService: "monolith", BService: "gateway",
			Operation: tracecompare.DefaultOperation, Last: 1, ALabel: "monolith", BLabel: "services", Format: "table",
			Lookback: tracecollect.DefaultLookback, Settle: 50 * time.Millisecond}
	}
	run := func(o tracecompare.Options) string {
		t.Helper()
		var out bytes.Buffer
		if err := tracecompare.Run(t.Context(), o, &out); err != nil {
			t.Fatalf("compare %+v: %v\n%s", o, err, out.String())
		}
		return out.String()
	}
	if out := run(options()); !strings.Contains(out, "000000000000000000000000000000e1") || !strings.Contains(out, "000000000000000000000000000000e2") {
		t.Errorf("default comparison:\n%s", out)
	}
	o := options()
	o.TraceIDs, o.Format = []string{"000000000000000000000000000000e2", "000000000000000000000000000000e1"}, "json"
	if out := run(o); !strings.Contains(out, `"example_trace_id": "000000000000000000000000000000e2"`) {
		t.Errorf("by IDs:\n%s", out)
	}
	o = options()
	o.Format, o.Output = "html", filepath.Join(t.TempDir(), "cmp.html")
	run(o)
	if b, err := os.ReadFile(o.Output); err != nil || !bytes.Contains(b, []byte("<!DOCTYPE html>")) {
		t.Errorf("html file: %v", err)
	}

	for name, change := range map[string]func(*tracecompare.Options){
		"a side with no edge of that name":  func(o *tracecompare.Options) { o.AService = "nobody" },
		"a look back shorter than a minute": func(o *tracecompare.Options) { o.Lookback = 30 * time.Second },
	} {
		o := options()
		o.Settle = 0
		change(&o)
		if err := tracecompare.Run(t.Context(), o, io.Discard); err == nil || !strings.Contains(err.Error(), "no trace") {
			t.Errorf("%s: %v, want no trace", name, err)
		}
	}
}

func TestDashboard(t *testing.T) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0",
		Routes: tracecompare.Routes})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = col.Close(context.Background()) }()
	col.Store().Add(otlp("000000000000000000000000000000f1", monolithCheckout()).ResourceSpans)
	col.Store().Add(otlp("000000000000000000000000000000f2", servicesCheckout()).ResourceSpans)
	base := "http://" + col.QueryAddr()
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/", 200, "000000000000000000000000000000f2"},
		{"/", 200, `<a href="/trace/000000000000000000000000000000f1">`}, // each trace's waterfall
		{"/", 200, `<form action="/search" method="get">`},
		{"/search?service=gateway", 200, `id="waterfall"`}, // the collector's page
		{"/compare", 200, "trace 000000000000000000000000000000f1"},
		{"/compare?a=000000000000000000000000000000f2&b=000000000000000000000000000000f1", 200, "trace 000000000000000000000000000000f2"},
		{"/compare?a=zz", 400, "trace ID"},
		{"/compare?a_service=nobody", 404, "no trace"},
		{"/compare?last=0", 400, "last"},
		{"/api/v3/services", 200, "gateway"},
	} {
		res, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("GET %s: %s, want %d with %q:\n%.300s", tc.path, res.Status, tc.status, tc.want, b)
		}
	}
}

// hook is a RoundTripper that calls after once each request it sends has its response.
type hook struct {
	after func(*http.Request)
}

func (h hook) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	h.after(r)
	return resp, err
}

// Right after a request its spans may still be in their exporters' batches: the command
// reads the collector once --settle has passed since it started, and takes only the traces
// that started before it did; a trace asked for by ID that is not there yet is read again
// after that wait.
func TestCommandLetsTheSpansOfRecentRequestsArrive(t *testing.T) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = col.Close(context.Background()) }()
	now := time.Now()
	col.Store().Add(otlpAt(now.Add(-time.Minute), "000000000000000000000000000000f1", monolithCheckout()).ResourceSpans)
	col.Store().Add(otlpAt(now.Add(-100*time.Millisecond), "000000000000000000000000000000f2", servicesCheckout()).ResourceSpans)
	// A request made after the command started is not the one it was asked about.
	col.Store().Add(otlpAt(now.Add(time.Hour), "000000000000000000000000000000f3", servicesCheckout()).ResourceSpans)

	const settle = 500 * time.Millisecond
	var mu sync.Mutex
	var first time.Time
	arrives := "000000000000000000000000000000f4" // not in the collector when first asked for
	client := &tracecollect.Client{BaseURL: "http://" + col.QueryAddr(), HTTP: &http.Client{Transport: hook{func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() {
			first = time.Now()
		}
		if strings.HasSuffix(r.URL.Path, arrives) && col.Store().Trace(mustTraceID(t, arrives)) == nil {
			col.Store().Add(otlpAt(time.Now(), arrives, servicesCheckout()).ResourceSpans)
		}
	}}}}
	opts := tracecompare.Options{Client: client, AService: "monolith", BService: "gateway", Operation: tracecompare.DefaultOperation,
		Last: 1, ALabel: "monolith", BLabel: "services", Format: "table", Settle: settle}

	var out bytes.Buffer
	started := time.Now()
	if err := tracecompare.Run(context.Background(), opts, &out); err != nil {
		t.Fatal(err)
	}
	if waited := first.Sub(started); waited < settle {
		t.Errorf("the collector was read %s after the start, want at least %s", waited, settle)
	}
	if !strings.Contains(out.String(), "000000000000000000000000000000f2") || strings.Contains(out.String(), "000000000000000000000000000000f3") {
		t.Errorf("want the latest checkout that started before the command:\n%s", out.String())
	}

	out.Reset()
	opts.TraceIDs = []string{"000000000000000000000000000000f1", arrives}
	if err := tracecompare.Run(context.Background(), opts, &out); err != nil {
		t.Fatalf("a trace that arrives during the wait: %v", err)
	}
	if !strings.Contains(out.String(), arrives) {
		t.Errorf("by IDs:\n%s", out.String())
	}
}

func mustTraceID(t *testing.T, s string) tracecollect.TraceID {
	t.Helper()
	id, err := tracecollect.ParseTraceID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
