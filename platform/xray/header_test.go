package xray_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/platform/xray"
)

// The examples of AWS's documentation of the header, and what load balancers add to it.
const (
	docHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	docTrace  = "5759e988bd862e3fe1be46a994272793"
	docParent = "53995c3f42cd8ad8"
	albHeader = "Self=1-67891234-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;Lineage=a87bd80c:1"
)

func TestParseTraceHeader(t *testing.T) {
	for _, tc := range []struct {
		in                     string
		trace, parent, sampled string
		canonical              string // what String writes back
	}{
		{docHeader, docTrace, docParent, "1", docHeader},
		{albHeader, "67891233abcdef012345678912345678", "", "", "Root=1-67891233-abcdef012345678912345678"},
		{"Root=1-5759e988-bd862e3fe1be46a994272793", docTrace, "", "", "Root=1-5759e988-bd862e3fe1be46a994272793"},
		{" Sampled=0 ; Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793; ", docTrace, docParent, "0",
			"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?;Custom=x=y", docTrace, docParent, "?",
			"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?"},
	} {
		h, err := xray.ParseTraceHeader(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		parent := ""
		if h.Parent.IsValid() {
			parent = h.Parent.String()
		}
		if h.TraceID.String() != tc.trace || parent != tc.parent || h.Sampled != tc.sampled {
			t.Errorf("%q: %s %q %q, want %s %q %q", tc.in, h.TraceID, parent, h.Sampled, tc.trace, tc.parent, tc.sampled)
		}
		if got := h.String(); got != tc.canonical {
			t.Errorf("%q written back as %q, want %q", tc.in, got, tc.canonical)
		}
	}
	for _, in := range []string{
		"",
		"Parent=53995c3f42cd8ad8;Sampled=1", // no Root
		"Root=1-5759e988-bd862e3fe1be46a99427279",                  // short
		"Root=1-5759e988-bd862e3fe1be46a9942727931",                // long
		"Root=1-5759e988-bd862e3fe1be46a99427279z",                 // not hex
		"Root=1-5759E988-bd862e3fe1be46a994272793",                 // upper case
		"Root=2-5759e988-bd862e3fe1be46a994272793",                 // another version
		"Root=1-5759e98-8bd862e3fe1be46a994272793",                 // misplaced dash
		"Root=1-00000000-000000000000000000000000",                 // zeros
		"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f", // short parent
		"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000",
		"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled",                                  // field without a value
		"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=yes",                              // not 1, 0 or ?
		"Root=1-5759e988-bd862e3fe1be46a994272793;Root=1-5759e988-bd862e3fe1be46a994272794", // twice
		"RootX=1-5759e988-bd862e3fe1be46a994272793",                                         // another key
	} {
		if h, err := xray.ParseTraceHeader(in); err == nil {
			t.Errorf("%q parsed as %+v", in, h)
		}
	}
}

// Extract continues the caller's decision, or leaves it to the root sampler (no span ID)
// when there is none; Inject writes what X-Ray writes.
func TestPropagator(t *testing.T) {
	p := xray.Propagator{}
	extract := func(v string) trace.SpanContext {
		return trace.SpanContextFromContext(p.Extract(context.Background(), propagation.MapCarrier{"X-Amzn-Trace-Id": v}))
	}
	for _, tc := range []struct {
		in               string
		trace, span      string // "" for none
		sampled, invalid bool
	}{
		{docHeader, docTrace, docParent, true, false},
		{strings.Replace(docHeader, "Sampled=1", "Sampled=0", 1), docTrace, docParent, false, false},
		{strings.Replace(docHeader, "Sampled=1", "Sampled=?", 1), docTrace, "", false, true},
		{strings.Replace(docHeader, ";Sampled=1", "", 1), docTrace, "", false, true},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", docTrace, "", true, true},
		{albHeader, "67891233abcdef012345678912345678", "", false, true},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f", "", "", false, true},
	} {
		sc := extract(tc.in)
		gotTrace, gotSpan := "", ""
		if sc.TraceID().IsValid() {
			gotTrace = sc.TraceID().String()
		}
		if sc.SpanID().IsValid() {
			gotSpan = sc.SpanID().String()
		}
		if gotTrace != tc.trace || gotSpan != tc.span || sc.IsSampled() != tc.sampled || sc.IsValid() == tc.invalid ||
			(gotTrace != "" && !sc.IsRemote()) {
			t.Errorf("%q: %s/%s sampled %v valid %v remote %v", tc.in, gotTrace, gotSpan, sc.IsSampled(), sc.IsValid(), sc.IsRemote())
		}
	}

	tid, _ := trace.TraceIDFromHex(docTrace)
	sid, _ := trace.SpanIDFromHex(docParent)
	for _, sampled := range []bool{true, false} {
		flags := trace.TraceFlags(0).WithSampled(sampled)
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags}))
		c := propagation.MapCarrier{}
		p.Inject(ctx, c)
		want := strings.Replace(docHeader, "Sampled=1", map[bool]string{true: "Sampled=1", false: "Sampled=0"}[sampled], 1)
		if c["X-Amzn-Trace-Id"] != want {
			t.Errorf("Inject (sampled %v): %q, want %q", sampled, c["X-Amzn-Trace-Id"], want)
		}
		if back := extract(c["X-Amzn-Trace-Id"]); back.TraceID() != tid || back.SpanID() != sid || back.IsSampled() != sampled {
			t.Errorf("Inject then Extract (sampled %v): %v", sampled, back)
		}
	}
	c := propagation.MapCarrier{}
	p.Inject(context.Background(), c)
	if len(c) != 0 {
		t.Errorf("Inject without a span: %v", c)
	}
	if f := p.Fields(); len(f) != 1 || f[0] != "X-Amzn-Trace-Id" {
		t.Errorf("Fields: %v", f)
	}
}

// Trace IDs carry their start in epoch seconds in the first 8 hex digits, as X-Ray requires;
// no ID is invalid or repeated.
func TestIDGenerator(t *testing.T) {
	g := xray.NewIDGenerator()
	traces, spans := map[trace.TraceID]bool{}, map[trace.SpanID]bool{}
	const n = 10000
	before := time.Now().Unix()
	for range n {
		tid, sid := g.NewIDs(context.Background())
		child := g.NewSpanID(context.Background(), tid)
		if !tid.IsValid() || !sid.IsValid() || !child.IsValid() {
			t.Fatalf("invalid IDs %s %s %s", tid, sid, child)
		}
		traces[tid], spans[sid], spans[child] = true, true, true
		h, err := xray.ParseTraceHeader(xray.TraceHeader{TraceID: tid, Parent: sid}.String())
		if err != nil || h.TraceID != tid {
			t.Fatalf("trace %s as a header: %+v, %v", tid, h, err)
		}
		secs := int64(tid[0])<<24 | int64(tid[1])<<16 | int64(tid[2])<<8 | int64(tid[3])
		if after := time.Now().Unix(); secs < before || secs > after {
			t.Fatalf("trace %s starts at %d, want within [%d, %d]", tid, secs, before, after)
		}
	}
	if len(traces) != n || len(spans) != 2*n {
		t.Errorf("%d trace IDs and %d span IDs of %d and %d: repeats", len(traces), len(spans), n, 2*n)
	}
}

// Whatever the header, parsing never panics, and what parses writes back to a header that
// parses to the same.
func FuzzParseTraceHeader(f *testing.F) {
	for _, s := range []string{docHeader, albHeader, "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?", ";;", "Root="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := xray.ParseTraceHeader(in)
		if err != nil {
			return
		}
		back, err := xray.ParseTraceHeader(h.String())
		if err != nil || back != h {
			t.Fatalf("%q -> %q -> %+v, %v", in, h.String(), back, err)
		}
	})
}
