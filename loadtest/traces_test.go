package loadtest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// The trace breakdown never fails a run: each way of not having traces becomes the section's
// reason, in words a reader can act on. (The comparison itself is platform/tracecompare's,
// tested there; a real run against a live collector is in the report of `make load`.)
func TestCollectTracesSaysWhyNot(t *testing.T) {
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
	}))
	t.Cleanup(empty.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	sides := []TraceSideSource{{Label: "monolith", Service: "monolith"}, {Label: "services", Service: "gateway"}}
	for _, tc := range []struct {
		collector string
		noneSent  bool // a mix without checkouts
		want      string
	}{
		{"", false, "no trace collector was given"},
		{goneURL, false, "no trace collector answered"},
		{empty.URL, false, `holds no trace of "POST /v1/checkout" from service monolith`},
		{empty.URL, true, "the run sent no POST /v1/checkout (-mix): nothing to break down"},
	} {
		got := CollectTraces(context.Background(), TraceSource{Collector: tc.collector, Sides: sides, NoneSent: tc.noneSent}, t.TempDir())
		if got.Collected || !strings.Contains(got.Reason, tc.want) {
			t.Errorf("collector %q: collected %v, reason %q; want %q", tc.collector, got.Collected, got.Reason, tc.want)
		}
	}
}

// edgeTrace is a trace of a request at service's edge in architecture arch: its root span
// and a gRPC call, with the call's server span unless lacksServer (as when that span is
// still on its way).
func edgeTrace(id byte, arch, service string, start time.Time, lacksServer bool) []*tracepb.ResourceSpans {
	tid := bytes.Repeat([]byte{id}, 16)
	at := func(ms int) uint64 { return uint64(start.Add(time.Duration(ms) * time.Millisecond).UnixNano()) }
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	res := func(name string, spans ...*tracepb.Span) *tracepb.ResourceSpans {
		return &tracepb.ResourceSpans{
			Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", name), str("mitosis.architecture", arch)}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}
	}
	grpc := []*commonpb.KeyValue{str("rpc.system.name", "grpc")}
	out := []*tracepb.ResourceSpans{res(service,
		&tracepb.Span{TraceId: tid, SpanId: []byte{id, 1, 0, 0, 0, 0, 0, 0}, Name: "POST /v1/checkout", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: at(0), EndTimeUnixNano: at(10)},
		&tracepb.Span{TraceId: tid, SpanId: []byte{id, 2, 0, 0, 0, 0, 0, 0}, ParentSpanId: []byte{id, 1, 0, 0, 0, 0, 0, 0}, Name: "Checkout",
			Kind: tracepb.Span_SPAN_KIND_CLIENT, StartTimeUnixNano: at(1), EndTimeUnixNano: at(9), Attributes: grpc})}
	if !lacksServer {
		out = append(out, res("orders", &tracepb.Span{TraceId: tid, SpanId: []byte{id, 3, 0, 0, 0, 0, 0, 0}, ParentSpanId: []byte{id, 2, 0, 0, 0, 0, 0, 0},
			Name: "Checkout", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: at(2), EndTimeUnixNano: at(8)}))
	}
	return out
}

func startCollector(t *testing.T) *tracecollect.Collector {
	t.Helper()
	return startCollectorWith(t, tracecollect.Config{})
}

// startCollectorWith starts a collector bounded as cfg says, on free ports of 127.0.0.1.
func startCollectorWith(t *testing.T, cfg tracecollect.Config) *tracecollect.Collector {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.QueryAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	col, err := tracecollect.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = col.Close(context.Background()) })
	return col
}

// Traces still arriving: with windows, the breakdown waits until the windows ended Settle
// ago; without, it takes only traces that old. Traces lacking spans are counted.
func TestCollectTracesLetsTracesArrive(t *testing.T) {
	col := startCollector(t)
	now := time.Now()
	col.Store().Add(edgeTrace(1, "monolith", "monolith", now.Add(-3*time.Second), false))
	col.Store().Add(edgeTrace(2, "services", "gateway", now.Add(-3*time.Second), false))
	col.Store().Add(edgeTrace(3, "services", "gateway", now.Add(-2*time.Second), true))
	col.Store().Add(edgeTrace(4, "services", "gateway", now, false)) // too young to be taken without a window

	const settle = 500 * time.Millisecond
	src := TraceSource{Collector: "http://" + col.QueryAddr(), Settle: settle,
		Sides: []TraceSideSource{{Label: "monolith", Service: "monolith"}, {Label: "services", Service: "gateway"}}}
	got := CollectTraces(context.Background(), src, "")
	if !got.Collected || len(got.Sides) != 2 {
		t.Fatalf("not collected: %+v", got)
	}
	if s := got.Sides[1]; s.Traces != 2 || s.Incomplete != 1 {
		t.Errorf("services without a window: %d traces, %d incomplete; want the 2 older ones, 1 incomplete", s.Traces, s.Incomplete)
	}

	to := time.Now()
	for i := range src.Sides {
		src.Sides[i].From, src.Sides[i].To = now.Add(-4*time.Second), to
	}
	got = CollectTraces(context.Background(), src, "")
	if waited := time.Since(to); waited < settle {
		t.Errorf("collected %s after the window's end, want at least %s", waited, settle)
	}
	if s := got.Sides[1]; !got.Collected || s.Traces != 3 || s.Incomplete != 1 {
		t.Errorf("services in the window: %+v", got)
	}
}

// Three architectures, two of whose edges are both called gateway: each side gets its own
// architecture's traces (the resource attribute mitosis.architecture), each side after the
// first is compared with the first, with its page beside the report; a side without traces
// says why and leaves the others be.
func TestCollectTracesPerArchitecture(t *testing.T) {
	col := startCollector(t)
	old := time.Now().Add(-5 * time.Second)
	col.Store().Add(edgeTrace(1, "monolith", "monolith", old, false))
	col.Store().Add(edgeTrace(2, "monolith", "monolith", old.Add(time.Millisecond), false))
	col.Store().Add(edgeTrace(3, "services", "gateway", old, false))
	col.Store().Add(edgeTrace(4, "hybrid", "gateway", old, true))
	col.Store().Add(edgeTrace(5, "hybrid", "gateway", old.Add(time.Millisecond), true))
	col.Store().Add(edgeTrace(6, "hybrid", "gateway", old.Add(2*time.Millisecond), true))

	dir := t.TempDir()
	src := TraceSource{Collector: "http://" + col.QueryAddr(), Settle: 100 * time.Millisecond, Sides: []TraceSideSource{
		{Label: "monolith", Service: "monolith"}, {Label: "services", Service: "gateway"}, {Label: "hybrid", Service: ""}, {Label: "split", Service: "gateway"}}}
	got := CollectTraces(context.Background(), src, dir)
	if !got.Collected || len(got.Sides) != 4 {
		t.Fatalf("collected %v, %d sides: %+v", got.Collected, len(got.Sides), got)
	}
	for i, want := range []struct {
		label              string
		traces, incomplete int
	}{{"monolith", 2, 0}, {"services", 1, 0}, {"hybrid", 3, 3}} {
		s := got.Sides[i]
		if s.Label != want.label || s.Traces != want.traces || s.Incomplete != want.incomplete || s.Missing != "" {
			t.Errorf("side %d: %+v, want %s with %d traces, %d incomplete", i, s, want.label, want.traces, want.incomplete)
		}
	}
	if s := got.Sides[3]; s.Traces != 0 || !strings.Contains(s.Missing, "are of architecture hybrid, services, none of split") {
		t.Errorf("split: %+v, want no traces and why", s)
	}
	if len(got.Comparisons) != 2 {
		t.Fatalf("comparisons %+v, want services and hybrid against the monolith", got.Comparisons)
	}
	for i, other := range []string{"services", "hybrid"} {
		c := got.Comparisons[i]
		if c.Baseline != "monolith" || c.Other != other || c.File != "traces-monolith-vs-"+other+".html" || len(c.Differences) == 0 {
			t.Errorf("comparison %d: %+v", i, c)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, c.File)); err != nil {
			t.Errorf("%s: %v", c.File, err)
		}
	}
}
