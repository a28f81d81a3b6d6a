package tracecollect_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// checkout is what exportCheckout sent.
type checkout struct {
	traceID, other string    // the checkout's trace, and a product page's
	rootSpan       string    // the checkout's root span ID
	start          time.Time // the checkout's root span's start
	spans          int       // spans of the checkout
}

// exportCheckout sends two traces through the OpenTelemetry SDK's OTLP exporters (gRPC for
// the gateway, HTTP with gzip for the rest): a checkout that crosses gateway, orders,
// payments and notify (a declined charge, an event, a producer and its consumer, which
// links back to the root), 80 ms long, and a product page on catalog, 2 ms long.
func exportCheckout(t *testing.T, c *tracecollect.Collector) checkout {
	t.Helper()
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
	providers := map[string]*sdktrace.TracerProvider{}
	tracer := func(service string) trace.Tracer {
		tp := providers[service]
		if tp == nil {
			exp := sdktrace.SpanExporter(httpExp)
			if service == "gateway" {
				exp = grpcExp
			}
			res := resource.NewSchemaless(attribute.String("service.name", service), attribute.String("host.name", "box-"+service))
			tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp))
			providers[service] = tp
		}
		return tp.Tracer("mitosis.test", trace.WithInstrumentationVersion("1.2.3"))
	}
	at := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	ms := func(n int) time.Time { return at.Add(time.Duration(n) * time.Millisecond) }
	remote := func(ctx context.Context) context.Context {
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
	}

	rctx, root := tracer("gateway").Start(ctx, "POST /v1/checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(ms(0)),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.Int("http.response.status_code", 201)))
	cctx, call := tracer("gateway").Start(rctx, "mitosis.orders.v1.OrdersService/Checkout", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(ms(2)))
	octx, served := tracer("orders").Start(remote(cctx), "mitosis.orders.v1.OrdersService/Checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(ms(3)))
	served.AddEvent("cart read", trace.WithTimestamp(ms(5)), trace.WithAttributes(attribute.Int("items", 2)))
	pctx, charge := tracer("orders").Start(octx, "mitosis.payments.v1.PaymentsService/Charge", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(ms(10)))
	_, pay := tracer("payments").Start(remote(pctx), "mitosis.payments.v1.PaymentsService/Charge", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(ms(11)),
		trace.WithAttributes(attribute.Float64("amount", 25.5), attribute.Bool("retried", false)))
	pay.SetStatus(codes.Error, "card declined")
	pay.End(trace.WithTimestamp(ms(40)))
	charge.End(trace.WithTimestamp(ms(41)))
	qctx, publish := tracer("orders").Start(octx, "publish order-paid", trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(ms(50)))
	publish.End(trace.WithTimestamp(ms(52)))
	served.End(trace.WithTimestamp(ms(60)))
	call.End(trace.WithTimestamp(ms(61)))
	root.End(trace.WithTimestamp(ms(62)))
	_, consume := tracer("notify").Start(remote(qctx), "process order-paid", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(ms(70)),
		trace.WithLinks(trace.Link{SpanContext: root.SpanContext()}))
	consume.End(trace.WithTimestamp(ms(80)))

	_, page := tracer("catalog").Start(ctx, "GET /v1/products/{id}", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(ms(100)))
	page.End(trace.WithTimestamp(ms(102)))
	for _, tp := range providers {
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return checkout{traceID: root.SpanContext().TraceID().String(), other: page.SpanContext().TraceID().String(),
		rootSpan: root.SpanContext().SpanID().String(), start: at, spans: 7}
}

// uiGet GETs path from the collector's query server and decodes the Jaeger UI API's
// envelope, checking that it has exactly Jaeger's fields.
func uiGet(t *testing.T, c *tracecollect.Collector, path string, status int, data any) []map[string]any {
	t.Helper()
	body := get(t, "http://"+c.QueryAddr()+path, status)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &fields); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, []string{"data", "errors", "limit", "offset", "total"}) {
		t.Fatalf("GET %s: envelope fields %v: %s", path, got, body)
	}
	if data != nil {
		if err := json.Unmarshal(fields["data"], data); err != nil {
			t.Fatalf("GET %s: data: %v: %s", path, err, body)
		}
	}
	var errs []map[string]any
	if err := json.Unmarshal(fields["errors"], &errs); err != nil {
		t.Fatalf("GET %s: errors: %v", path, err)
	}
	return errs
}

// The Jaeger UI's model of a trace, as the UI reads it.
type uiTrace struct {
	TraceID   string `json:"traceID"`
	Spans     []uiSpan
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
		Tags        []uiKV `json:"tags"`
	} `json:"processes"`
	Warnings []string `json:"warnings"`
}

type uiSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64  `json:"startTime"`
	Duration  int64  `json:"duration"`
	Tags      []uiKV `json:"tags"`
	Logs      []struct {
		Timestamp int64  `json:"timestamp"`
		Fields    []uiKV `json:"fields"`
	} `json:"logs"`
	ProcessID string   `json:"processID"`
	Warnings  []string `json:"warnings"`
}

type uiKV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

func (s uiSpan) tag(key string) (uiKV, bool) {
	for _, kv := range s.Tags {
		if kv.Key == key {
			return kv, true
		}
	}
	return uiKV{}, false
}

// The requests the Jaeger UI makes (jaegertracing/jaeger-ui, packages/jaeger-ui/src/api:
// jaeger.ts, and v3/client.ts since v2.19), in the order it makes them when a user lists the
// services, picks one and its operation, finds traces and opens one, answered from spans
// that arrived over OTLP. First as every UI release up to v2.18 asks (and Grafana's Jaeger
// data source: the same endpoints), then as v2.19 and later ask.
func TestTheJaegerUIsRequestsFindAndOpenATrace(t *testing.T) {
	c := startCollector(t, 0)
	co := exportCheckout(t, c)

	// The search page: the services, then the chosen service's operations.
	var services []string
	uiGet(t, c, "/api/services", 200, &services)
	if !slices.Equal(services, []string{"catalog", "gateway", "notify", "orders", "payments"}) {
		t.Errorf("services %v", services)
	}
	var ops []string
	uiGet(t, c, "/api/services/orders/operations", 200, &ops)
	if !slices.Equal(ops, []string{"mitosis.orders.v1.OrdersService/Checkout", "mitosis.payments.v1.PaymentsService/Charge", "publish order-paid"}) {
		t.Errorf("operations of orders %v", ops)
	}
	var kinds []struct{ Name, SpanKind string }
	uiGet(t, c, "/api/operations?service=orders&spanKind=server", 200, &kinds) // the deep-dependency page's
	if len(kinds) != 1 || kinds[0].Name != "mitosis.orders.v1.OrdersService/Checkout" || kinds[0].SpanKind != "server" {
		t.Errorf("server operations of orders %+v", kinds)
	}

	// Find traces: the query the UI's search form submits (query-string writes an empty
	// duration as a bare key), start and end in microseconds, the lookback beside them.
	now := time.Now()
	var found []uiTrace
	uiGet(t, c, fmt.Sprintf("/api/traces?end=%d&limit=20&lookback=1h&maxDuration&minDuration&service=gateway&start=%d",
		now.UnixMicro(), now.Add(-time.Hour).UnixMicro()), 200, &found)
	if len(found) != 1 || found[0].TraceID != co.traceID || len(found[0].Spans) != co.spans {
		t.Fatalf("search by service: %d traces", len(found))
	}
	window := fmt.Sprintf("start=%d&end=%d", now.Add(-time.Hour).UnixMicro(), now.UnixMicro())
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"&service=orders&operation=" + url.QueryEscape("publish order-paid"), []string{co.traceID}},
		{"&service=payments&tags=" + url.QueryEscape(`{"error":"true"}`), []string{co.traceID}},
		{"&tags=" + url.QueryEscape(`{"http.response.status_code":"201","host.name":"box-gateway"}`), []string{co.traceID}},
		{"&tag=" + url.QueryEscape("amount:25.5"), []string{co.traceID}},
		{"&service=gateway&minDuration=50ms", []string{co.traceID}},
		{"&service=gateway&minDuration=100ms", nil},
		{"&service=catalog&maxDuration=5ms", []string{co.other}},
		{"", []string{co.other, co.traceID}}, // every service, newest first
		{"&limit=1", []string{co.other}},
	} {
		var got []uiTrace
		uiGet(t, c, "/api/traces?"+window+tc.query, 200, &got)
		var ids []string
		for _, tr := range got {
			ids = append(ids, tr.TraceID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("search %s: %v, want %v", tc.query, ids, tc.want)
		}
	}
	// Outside the window, nothing: the window is the search's.
	var none []uiTrace
	uiGet(t, c, fmt.Sprintf("/api/traces?service=gateway&start=%d&end=%d", now.Add(-3*time.Hour).UnixMicro(), now.Add(-2*time.Hour).UnixMicro()), 200, &none)
	if len(none) != 0 {
		t.Errorf("a search before the traces found %d", len(none))
	}

	// Open the trace: the trace page asks for it alone.
	var opened []uiTrace
	uiGet(t, c, "/api/traces/"+co.traceID, 200, &opened)
	if len(opened) != 1 {
		t.Fatalf("trace: %d", len(opened))
	}
	checkCheckoutModel(t, opened[0], co)

	// Several by ID (the UI's comparison, and a link to two traces), one missing.
	var two []uiTrace
	missing := "00000000000000000000000000000abc"
	errs := uiGet(t, c, "/api/traces?traceID="+co.traceID+"&traceID="+co.other+"&traceID="+missing, 200, &two)
	if len(two) != 2 || len(errs) != 1 || errs[0]["traceID"] != "0000000000000abc" || errs[0]["msg"] != "trace not found" {
		t.Errorf("by IDs: %d traces, errors %v", len(two), errs)
	}

	// The dependency graph: every call from a span of one service to one of another's.
	var deps []struct {
		Parent, Child string
		CallCount     int
	}
	uiGet(t, c, fmt.Sprintf("/api/dependencies?endTs=%d&lookback=%d", now.UnixMilli(), (7*24*time.Hour).Milliseconds()), 200, &deps)
	want := map[string]int{"gateway>gateway": 1, "gateway>orders": 1, "orders>orders": 2, "orders>payments": 1, "orders>notify": 1}
	got := map[string]int{}
	for _, d := range deps {
		got[d.Parent+">"+d.Child] = d.CallCount
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dependencies %v, want %v", got, want)
	}
	uiGet(t, c, fmt.Sprintf("/api/dependencies?endTs=%d&lookback=60000", now.Add(-time.Hour).UnixMilli()), 200, &deps)
	if len(deps) != 0 {
		t.Errorf("dependencies of an hour ago: %v", deps)
	}

	// Grafana's Jaeger data source (pkg/tsdb/jaeger/client.go) asks the same endpoints: its
	// search written by url.Values (its tags from logfmt to JSON), a trace with the query's
	// time range (its "time range for trace ID queries"), the service graph as above.
	gq := url.Values{"service": {"payments"}, "tags": {`{"retried":"false"}`}, "minDuration": {"1ms"}, "limit": {"20"},
		"start": {fmt.Sprint(now.Add(-time.Hour).UnixMicro())}, "end": {fmt.Sprint(now.UnixMicro())}}
	var grafana []uiTrace
	uiGet(t, c, "/api/traces?"+gq.Encode(), 200, &grafana)
	if len(grafana) != 1 || grafana[0].TraceID != co.traceID {
		t.Errorf("Grafana's search: %d traces", len(grafana))
	}
	uiGet(t, c, "/api/traces/"+url.QueryEscape(co.traceID)+"?"+url.Values{"start": gq["start"], "end": gq["end"]}.Encode(), 200, &grafana)
	if len(grafana) != 1 || len(grafana[0].Spans) != co.spans {
		t.Errorf("Grafana's trace by ID: %d traces", len(grafana))
	}

	// The UI since v2.19: services and span names from api_v3, the search from
	// /api/v3/trace-summaries (ISO times from JavaScript's toISOString), the trace from
	// /api/traces/{id} as before.
	var v3services struct{ Services []string }
	if err := json.Unmarshal([]byte(get(t, "http://"+c.QueryAddr()+"/api/v3/services", 200)), &v3services); err != nil || len(v3services.Services) != 5 {
		t.Errorf("v3 services %v %v", v3services, err)
	}
	var v3ops struct {
		Operations []struct{ Name, SpanKind string }
	}
	if err := json.Unmarshal([]byte(get(t, "http://"+c.QueryAddr()+"/api/v3/operations?service=payments", 200)), &v3ops); err != nil ||
		len(v3ops.Operations) != 1 || v3ops.Operations[0].SpanKind != "server" {
		t.Errorf("v3 operations %+v %v", v3ops, err)
	}
	iso := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	var sums struct {
		Summaries []map[string]any `json:"summaries"`
	}
	body := get(t, "http://"+c.QueryAddr()+"/api/v3/trace-summaries?query.serviceName=orders&query.startTimeMin="+iso(now.Add(-time.Hour))+
		"&query.startTimeMax="+iso(now)+"&query.searchDepth=20", 200)
	if err := json.Unmarshal([]byte(body), &sums); err != nil || len(sums.Summaries) != 1 {
		t.Fatalf("trace summaries: %v %s", err, body)
	}
	s := sums.Summaries[0]
	if s["traceId"] != co.traceID || s["rootServiceName"] != "gateway" || s["rootOperationName"] != "POST /v1/checkout" ||
		s["spanCount"] != float64(co.spans) || s["errorSpanCount"] != float64(1) || s["orphanSpanCount"] != nil ||
		s["minStartTimeUnixNano"] != fmt.Sprint(co.start.UnixNano()) || s["maxEndTimeUnixNano"] != fmt.Sprint(co.start.Add(80*time.Millisecond).UnixNano()) {
		t.Errorf("summary %v", s)
	}
	if svcs, _ := s["services"].([]any); len(svcs) != 4 || svcs[2].(map[string]any)["name"] != "orders" || svcs[2].(map[string]any)["spanCount"] != float64(3) ||
		svcs[3].(map[string]any)["errorSpanCount"] != float64(1) {
		t.Errorf("summary's services %v", s["services"])
	}
	if body := get(t, "http://"+c.QueryAddr()+"/api/v3/trace-summaries?query.serviceName=nobody&query.startTimeMin="+iso(now.Add(-time.Hour))+
		"&query.startTimeMax="+iso(now), 200); strings.TrimSpace(body) != "{}" {
		t.Errorf("no summaries: %s", body)
	}
}

// checkCheckoutModel checks the checkout in the UI's model: IDs, processes, the parent of
// every span as its CHILD_OF reference, the consumer's link as FOLLOWS_FROM, tags with
// their types, the event as a log, and times in microseconds.
func checkCheckoutModel(t *testing.T, tr uiTrace, co checkout) {
	t.Helper()
	if tr.TraceID != co.traceID || len(tr.Spans) != co.spans || tr.Warnings != nil {
		t.Fatalf("trace %s: %d spans, warnings %v", tr.TraceID, len(tr.Spans), tr.Warnings)
	}
	byName := map[string]uiSpan{}
	services := map[string]string{} // span ID → service
	for _, s := range tr.Spans {
		p, ok := tr.Processes[s.ProcessID]
		if !ok || !strings.HasPrefix(s.ProcessID, "p") {
			t.Fatalf("span %s: process %q not among %v", s.OperationName, s.ProcessID, tr.Processes)
		}
		byName[p.ServiceName+" "+s.OperationName] = s
		services[s.SpanID] = p.ServiceName
		if s.TraceID != co.traceID || len(s.SpanID) != 16 || s.Warnings != nil {
			t.Errorf("span %s: %+v", s.OperationName, s)
		}
	}
	if len(tr.Processes) != 4 {
		t.Errorf("processes %v, want one per service", tr.Processes)
	}
	for _, p := range tr.Processes {
		if len(p.Tags) != 1 || p.Tags[0] != (uiKV{Key: "host.name", Type: "string", Value: "box-" + p.ServiceName}) {
			t.Errorf("process %s: tags %v", p.ServiceName, p.Tags)
		}
	}
	root := byName["gateway POST /v1/checkout"]
	if root.SpanID != co.rootSpan || len(root.References) != 0 || root.StartTime != co.start.UnixMicro() || root.Duration != 62_000 {
		t.Errorf("root %+v", root)
	}
	parents := map[string]string{
		"gateway mitosis.orders.v1.OrdersService/Checkout":    "gateway POST /v1/checkout",
		"orders mitosis.orders.v1.OrdersService/Checkout":     "gateway mitosis.orders.v1.OrdersService/Checkout",
		"orders mitosis.payments.v1.PaymentsService/Charge":   "orders mitosis.orders.v1.OrdersService/Checkout",
		"payments mitosis.payments.v1.PaymentsService/Charge": "orders mitosis.payments.v1.PaymentsService/Charge",
		"orders publish order-paid":                           "orders mitosis.orders.v1.OrdersService/Checkout",
		"notify process order-paid":                           "orders publish order-paid",
	}
	for child, parent := range parents {
		s := byName[child]
		if len(s.References) == 0 || s.References[0].RefType != "CHILD_OF" || s.References[0].SpanID != byName[parent].SpanID ||
			s.References[0].TraceID != co.traceID {
			t.Errorf("%s: references %+v, want CHILD_OF %s", child, s.References, parent)
		}
	}
	consumer := byName["notify process order-paid"]
	if len(consumer.References) != 2 || consumer.References[1].RefType != "FOLLOWS_FROM" || consumer.References[1].SpanID != co.rootSpan {
		t.Errorf("consumer's references %+v: want its link to the root as FOLLOWS_FROM", consumer.References)
	}
	want := []uiKV{
		{"otel.scope.name", "string", "mitosis.test"}, {"otel.scope.version", "string", "1.2.3"},
		{"http.request.method", "string", "POST"}, {"http.response.status_code", "int64", float64(201)},
		{"span.kind", "string", "server"},
	}
	if !reflect.DeepEqual(root.Tags, want) {
		t.Errorf("root's tags %v\nwant %v", root.Tags, want)
	}
	pay := byName["payments mitosis.payments.v1.PaymentsService/Charge"]
	for _, kv := range []uiKV{{"amount", "float64", 25.5}, {"retried", "bool", false}, {"error", "bool", true},
		{"otel.status_code", "string", "ERROR"}, {"otel.status_description", "string", "card declined"}} {
		if got, ok := pay.tag(kv.Key); !ok || got != kv {
			t.Errorf("payments span's %s: %v, want %v", kv.Key, got, kv)
		}
	}
	served := byName["orders mitosis.orders.v1.OrdersService/Checkout"]
	if len(served.Logs) != 1 || served.Logs[0].Timestamp != co.start.Add(5*time.Millisecond).UnixMicro() ||
		!reflect.DeepEqual(served.Logs[0].Fields, []uiKV{{"event", "string", "cart read"}, {"items", "int64", float64(2)}}) {
		t.Errorf("orders' event as a log: %+v", served.Logs)
	}
}

// The model to the letter, against what Jaeger's converter writes for the same data: every
// type of tag (an integer beyond JavaScript's range as a string, bytes in base64, an array as
// JSON), the scope, status and trace state as tags, an event's name as its "event" field, a
// link, the processes p1 and p2, a span whose parent is missing warned about.
func TestTheJaegerUIModelToTheLetter(t *testing.T) {
	c := startCollector(t, 0)
	body := `{"resourceSpans":[
	{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}},{"key":"pid","value":{"intValue":"42"}}]},
	 "scopeSpans":[{"scope":{"name":"sc","version":"1.0"},"spans":[
	  {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"root","kind":2,"traceState":"k=v",
	   "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","status":{"code":1},
	   "attributes":[{"key":"s","value":{"stringValue":"str"}},{"key":"i","value":{"intValue":"7"}},{"key":"b","value":{"boolValue":true}},
	    {"key":"d","value":{"doubleValue":2.5}},{"key":"x","value":{"bytesValue":"AAAwOQ=="}},{"key":"big","value":{"intValue":"9007199254740993"}},
	    {"key":"arr","value":{"arrayValue":{"values":[{"stringValue":"a"},{"intValue":"1"}]}}}]},
	  {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"00000000000000c1","parentSpanId":"eee19b7ec3c1b174","name":"child","kind":3,
	   "startTimeUnixNano":"1544712660100000000","endTimeUnixNano":"1544712660300000000","status":{"code":2,"message":"boom"},
	   "events":[{"timeUnixNano":"1544712660150000000","name":"retry","attributes":[{"key":"n","value":{"intValue":"2"}}]}],
	   "links":[{"traceId":"00000000000000000000000000000001","spanId":"0000000000000001"}]}]}]},
	{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"db"}}]},
	 "scopeSpans":[{"spans":[
	  {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"00000000000000c2","parentSpanId":"00000000000000ff","name":"orphan",
	   "startTimeUnixNano":"1544712660200000000","endTimeUnixNano":"1544712660200500000"}]}]}]}`
	res, err := http.Post("http://"+c.HTTPAddr()+"/v1/traces", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("export: %s", res.Status)
	}
	want := `{"data":[{"traceID":"5b8efff798038103d269b633813fc60c","spans":[
	 {"traceID":"5b8efff798038103d269b633813fc60c","spanID":"eee19b7ec3c1b174","operationName":"root","references":[],
	  "startTime":1544712660000000,"duration":1000000,"tags":[
	   {"key":"otel.scope.name","type":"string","value":"sc"},{"key":"otel.scope.version","type":"string","value":"1.0"},
	   {"key":"arr","type":"string","value":"[\"a\",1]"},{"key":"b","type":"bool","value":true},
	   {"key":"big","type":"int64","value":"9007199254740993"},{"key":"d","type":"float64","value":2.5},
	   {"key":"i","type":"int64","value":7},{"key":"s","type":"string","value":"str"},{"key":"x","type":"binary","value":"AAAwOQ=="},
	   {"key":"span.kind","type":"string","value":"server"},{"key":"otel.status_code","type":"string","value":"OK"},
	   {"key":"w3c.tracestate","type":"string","value":"k=v"}],
	  "logs":[],"processID":"p1","warnings":null},
	 {"traceID":"5b8efff798038103d269b633813fc60c","spanID":"00000000000000c1","operationName":"child",
	  "references":[{"refType":"CHILD_OF","traceID":"5b8efff798038103d269b633813fc60c","spanID":"eee19b7ec3c1b174"},
	   {"refType":"FOLLOWS_FROM","traceID":"0000000000000001","spanID":"0000000000000001"}],
	  "startTime":1544712660100000,"duration":200000,"tags":[
	   {"key":"otel.scope.name","type":"string","value":"sc"},{"key":"otel.scope.version","type":"string","value":"1.0"},
	   {"key":"span.kind","type":"string","value":"client"},{"key":"otel.status_code","type":"string","value":"ERROR"},
	   {"key":"error","type":"bool","value":true},{"key":"otel.status_description","type":"string","value":"boom"}],
	  "logs":[{"timestamp":1544712660150000,"fields":[{"key":"event","type":"string","value":"retry"},{"key":"n","type":"int64","value":2}]}],
	  "processID":"p1","warnings":null},
	 {"traceID":"5b8efff798038103d269b633813fc60c","spanID":"00000000000000c2","operationName":"orphan",
	  "references":[{"refType":"CHILD_OF","traceID":"5b8efff798038103d269b633813fc60c","spanID":"00000000000000ff"}],
	  "startTime":1544712660200000,"duration":500,"tags":[],"logs":[],"processID":"p2",
	  "warnings":["parent span ID=00000000000000ff is not in the trace"]}],
	 "processes":{"p1":{"serviceName":"shop","tags":[{"key":"pid","type":"int64","value":42}]},"p2":{"serviceName":"db","tags":[]}},
	 "warnings":null}],
	 "total":0,"limit":0,"offset":0,"errors":null}`
	var gotJSON, wantJSON any
	raw := get(t, "http://"+c.QueryAddr()+"/api/traces/5b8efff798038103d269b633813fc60c", 200)
	if err := json.Unmarshal([]byte(raw), &gotJSON); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &wantJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotJSON, wantJSON) {
		t.Errorf("GET /api/traces/{id}:\n%s\nwant\n%s", raw, want)
	}
	// The search answers the same trace in the same model (a two-day window by default).
	var viaSearch any
	raw = get(t, "http://"+c.QueryAddr()+"/api/traces?service=db&start=1544712600000000&end=1544712700000000", 200)
	if err := json.Unmarshal([]byte(raw), &viaSearch); err != nil || !reflect.DeepEqual(viaSearch, wantJSON) {
		t.Errorf("GET /api/traces?service=db:\n%s", raw)
	}
}

// Bad requests get Jaeger's answers: 400 with the parameter named, 404 for a trace that is
// not there, in the envelope's errors.
func TestTheJaegerUIAPIRefusesBadRequests(t *testing.T) {
	c := startCollector(t, 0)
	for _, tc := range []struct {
		path   string
		status int
		msg    string
	}{
		{"/api/traces/00000000000000000000000000000001", 404, "trace not found"},
		{"/api/traces/xyz", 400, "trace ID"},
		{"/api/traces/00000000000000000000000000000001?start=soon", 400, "unable to parse param 'start'"},
		{"/api/traces?limit=x", 400, "unable to parse param 'limit'"},
		{"/api/traces?limit=0", 400, "want 1 to 1500"},
		{"/api/traces?limit=1501", 400, "want 1 to 1500"},
		{"/api/traces?end=later", 400, "unable to parse param 'end'"},
		{"/api/traces?lookback=1y", 400, "unable to parse param 'lookback'"},
		{"/api/traces?minDuration=long", 400, "unable to parse param 'minDuration'"},
		{"/api/traces?minDuration=2s&maxDuration=1s", 400, "'maxDuration' should be greater than 'minDuration'"},
		{"/api/traces?tags=nope", 400, "malformed 'tags' parameter"},
		{"/api/traces?tag=nope", 400, "malformed 'tag' parameter"},
		{"/api/traces?traceID=zz", 400, "cannot parse traceID param"},
		{"/api/traces?raw=maybe", 400, "unable to parse param 'raw'"},
		{"/api/operations", 400, "parameter 'service' is required"},
		{"/api/dependencies?endTs=x", 400, "unable to parse param 'endTs'"},
		{"/api/dependencies?lookback=-1", 400, "unable to parse param 'lookback'"},
	} {
		errs := uiGet(t, c, tc.path, tc.status, nil)
		if len(errs) != 1 || errs[0]["code"] != float64(tc.status) || !strings.Contains(fmt.Sprint(errs[0]["msg"]), tc.msg) {
			t.Errorf("%s: errors %v, want %d %q", tc.path, errs, tc.status, tc.msg)
		}
	}
	// No trace found is not an error in this API: an empty list.
	var none []uiTrace
	if errs := uiGet(t, c, "/api/traces?service=nobody", 200, &none); len(none) != 0 || errs != nil {
		t.Errorf("a search that finds nothing: %v %v", none, errs)
	}
}
