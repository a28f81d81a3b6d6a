package tracecollect_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// storeTraces adds n one-span traces of service "svc" (trace IDs 1..n), the i-th starting
// i milliseconds after base and lasting i milliseconds, with attribute n=i; the 3rd has no
// kind.
func storeTraces(c *tracecollect.Collector, base time.Time, n int) {
	res := &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "svc")}}
	ss := &tracepb.ScopeSpans{}
	for i := 1; i <= n; i++ {
		start := base.Add(time.Duration(i) * time.Millisecond)
		kind := tracepb.Span_SPAN_KIND_SERVER
		if i == 3 {
			kind = tracepb.Span_SPAN_KIND_UNSPECIFIED
		}
		ss.Spans = append(ss.Spans, &tracepb.Span{TraceId: traceIDOf(i), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i)},
			Name: fmt.Sprint("op", i%2), Kind: kind, StartTimeUnixNano: uint64(start.UnixNano()),
			EndTimeUnixNano: uint64(start.Add(time.Duration(i) * time.Millisecond).UnixNano()),
			Attributes:      []*commonpb.KeyValue{{Key: "n", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(i)}}}}})
	}
	c.Store().Add([]*tracepb.ResourceSpans{{Resource: res, ScopeSpans: []*tracepb.ScopeSpans{ss}}})
}

func traceIDOf(i int) []byte {
	id := make([]byte, 16)
	id[0], id[14], id[15] = 0x6b, byte(i>>8), byte(i)
	return id
}

// apiV3Traces GETs /api/v3/traces with the parameters given and returns how many traces
// came back, or the error message.
func apiV3Traces(t *testing.T, c *tracecollect.Collector, params string, status int) (int, string) {
	t.Helper()
	body := get(t, "http://"+c.QueryAddr()+"/api/v3/traces?"+params, status)
	if status != 200 {
		var e struct {
			Error struct {
				HTTPCode int    `json:"httpCode"`
				Message  string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.HTTPCode != status {
			t.Fatalf("%s: error body %s", params, body)
		}
		return 0, e.Error.Message
	}
	td, err := tracecollect.UnmarshalTraces([]byte(body))
	if err != nil {
		t.Fatalf("%s: %v", params, err)
	}
	return len(tracecollect.SplitTraces(td)), ""
}

// /api/v3/traces reads its parameters as Jaeger v2 does: under their camelCase names or
// their snake_case aliases, the depth also as query.num_traces; the time window is required;
// the depth defaults to Jaeger's 100 and is bounded.
func TestAPIv3SearchAsJaegerV2(t *testing.T) {
	c := startCollector(t, 0)
	base := time.Now().Add(-time.Minute).UTC()
	storeTraces(c, base, 120)
	ts := func(d time.Duration) string { return base.Add(d).Format(time.RFC3339Nano) }
	snake := "query.start_time_min=" + ts(0) + "&query.start_time_max=" + ts(time.Second)
	camel := "query.startTimeMin=" + ts(0) + "&query.startTimeMax=" + ts(time.Second)
	for _, tc := range []struct {
		params string
		want   int
	}{
		{snake, tracecollect.DefaultSearchDepth},
		{camel, tracecollect.DefaultSearchDepth},
		{snake + "&query.search_depth=7", 7},
		{camel + "&query.searchDepth=8", 8},
		{snake + "&query.num_traces=9", 9},
		{snake + "&query.search_depth=5&query.num_traces=9", 5},          // search_depth first, as Jaeger
		{snake + "&query.searchDepth=4&query.search_depth=5", 4},         // then the canonical name before the alias
		{snake + "&query.search_depth=1500&query.service_name=svc", 120}, // the bound itself
		{snake + "&query.operation_name=op1&query.search_depth=200", 60},
		{camel + "&query.operationName=op0&query.searchDepth=200", 60},
		{snake + "&query.duration_min=100ms&query.search_depth=200", 21},
		{camel + "&query.durationMax=10ms&query.searchDepth=200", 10},
		{"query.start_time_min=" + ts(0) + "&query.start_time_max=" + ts(50*time.Millisecond) + "&query.search_depth=200", 50},
		{snake + "&query.attributes=" + url.QueryEscape(`{"n":"42"}`), 1},
		{snake + "&query.attributes=" + url.QueryEscape(`{"span.kind":"server","n":"3"}`), 0},
		{snake + "&query.raw_traces=true&query.search_depth=2", 2},
	} {
		status := 200
		if tc.want == 0 {
			status = 404
		}
		if got, msg := apiV3Traces(t, c, tc.params, status); got != tc.want || (status == 404 && msg != "No traces found") {
			t.Errorf("%s: %d traces (%s), want %d", tc.params, got, msg, tc.want)
		}
	}
	for _, tc := range []struct{ params, msg string }{
		{"", "query.startTimeMin and query.startTimeMax are required"},
		{"query.start_time_min=" + ts(0), "query.startTimeMin and query.startTimeMax are required"},
		{"query.startTimeMax=" + ts(0), "query.startTimeMin and query.startTimeMax are required"},
		{"query.start_time_min=" + ts(time.Second) + "&query.start_time_max=" + ts(0), "query.startTimeMin must be before query.startTimeMax"},
		{"query.start_time_min=" + ts(0) + "&query.start_time_max=" + ts(0), "query.startTimeMin must be before query.startTimeMax"},
		{"query.start_time_min=yesterday&query.start_time_max=" + ts(0), "malformed parameter query.start_time_min"},
		{"query.startTimeMin=" + ts(0) + "&query.startTimeMax=" + url.QueryEscape(base.Format(time.DateTime)), "malformed parameter query.startTimeMax"},
		{snake + "&query.search_depth=x", "malformed parameter query.search_depth"},
		{snake + "&query.num_traces=-1", "malformed parameter query.num_traces"},
		{snake + "&query.searchDepth=0", "malformed parameter query.searchDepth"},
		{snake + "&query.search_depth=1501", "want 1 to 1500"},
		{snake + "&query.duration_min=long", "malformed parameter query.duration_min"},
		{camel + "&query.durationMax=long", "malformed parameter query.durationMax"},
		{snake + "&query.raw_traces=maybe", "malformed parameter query.raw_traces"},
		{snake + "&query.attributes=nope", "malformed parameter query.attributes"},
		{snake + "&query.filter=" + url.QueryEscape(`{"name":"and"}`), "query.filter is not supported"},
	} {
		if _, msg := apiV3Traces(t, c, tc.params, 400); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %q, want %q", tc.params, msg, tc.msg)
		}
	}

	// A trace by ID: its time hints are checked; hex of up to 32 digits or base64.
	id := fmt.Sprintf("%x", traceIDOf(7))
	for _, tc := range []struct {
		path   string
		status int
	}{
		{id, 200},
		{id + "?start_time=" + ts(0) + "&end_time=" + ts(time.Second) + "&raw_traces=true", 200},
		{id + "?startTime=" + ts(0), 200},
		{id + "?start_time=soon", 400},
		{id + "?rawTraces=maybe", 400},
		{url.PathEscape("awAAAAAAAAAAAAAAAAAABw=="), 200}, // base64
		{"7", 404},
		{strings.Repeat("0", 33), 400},
	} {
		body := get(t, "http://"+c.QueryAddr()+"/api/v3/traces/"+tc.path, tc.status)
		if tc.status == 200 && !strings.Contains(body, `"traceId":"`+id+`"`) {
			t.Errorf("trace %s: %.200s", tc.path, body)
		}
		if tc.status == 404 && !strings.Contains(body, "No traces found") {
			t.Errorf("trace %s: %s", tc.path, body)
		}
	}

	// The operations: span_kind or spanKind; a span of no kind answered as internal.
	for _, q := range []string{"service=svc&span_kind=server", "service=svc&spanKind=server"} {
		if body := get(t, "http://"+c.QueryAddr()+"/api/v3/operations?"+q, 200); body != `{"operations":[{"name":"op0","spanKind":"server"},{"name":"op1","spanKind":"server"}]}`+"\n" {
			t.Errorf("operations %s: %s", q, body)
		}
	}
	if body := get(t, "http://"+c.QueryAddr()+"/api/v3/operations?service=svc", 200); !strings.Contains(body, `{"name":"op1","spanKind":"internal"}`) {
		t.Errorf("operations: %s", body)
	}
}

// A large answer is written as it is encoded, one resource at a time: its JSON is whole and
// holds every trace.
func TestAPIv3AnswersALargeSearchWhole(t *testing.T) {
	c := startCollector(t, 0)
	base := time.Now().Add(-time.Minute).UTC()
	for range 3 { // three resources per trace ID range: 1,500 traces of 3 spans
		storeTraces(c, base, tracecollect.MaxSearchDepth)
	}
	body := get(t, "http://"+c.QueryAddr()+"/api/v3/traces?query.start_time_min="+base.Format(time.RFC3339Nano)+
		"&query.start_time_max="+base.Add(time.Minute).Format(time.RFC3339Nano)+"&query.search_depth=1500", 200)
	if !json.Valid([]byte(body)) {
		t.Fatalf("answer is not JSON: ...%s", body[max(0, len(body)-200):])
	}
	td, err := tracecollect.UnmarshalTraces([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	traces := tracecollect.SplitTraces(td)
	spans := 0
	for _, tr := range traces {
		for _, rs := range tr.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				spans += len(ss.GetSpans())
			}
		}
	}
	if len(traces) != tracecollect.MaxSearchDepth || spans != 3*tracecollect.MaxSearchDepth {
		t.Errorf("%d traces, %d spans", len(traces), spans)
	}
	if !bytes.HasPrefix([]byte(body), []byte(`{"result":{"resourceSpans":[{`)) {
		t.Errorf("answer starts %.60s", body)
	}
	// The client asks for no more than the collector answers.
	api := tracecollect.Client{BaseURL: "http://" + c.QueryAddr()}
	found, err := api.Find(t.Context(), tracecollect.Query{ServiceName: "svc", NumTraces: 5000, StartMin: base, StartMax: base.Add(time.Minute)})
	if err != nil || len(found) != tracecollect.MaxSearchDepth {
		t.Errorf("a client's search for 5,000: %d traces, %v", len(found), err)
	}
}
