package xray_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/platform/xray"
	"github.com/mitosis-dev/mitosis/platform/xray/xraytest"
)

// The validator is not vacuous: each of these breaks one rule of the schema.
func TestTheSchemaRejectsBadDocuments(t *testing.T) {
	const good = `{"name":"orders","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.271,"end_time":1478293361.449}`
	if errs := xraytest.Validate([]byte(good)); len(errs) != 0 {
		t.Fatalf("a good document: %v", errs)
	}
	for name, doc := range map[string]string{
		"no name":              `{"id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}`,
		"braces in the name":   `{"name":"GET /v1/products/{id}","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}`,
		"name too long":        `{"name":"` + strings.Repeat("a", 201) + `","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}`,
		"W3C trace ID":         `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"581cf771a006649127e371903a2de979","start_time":1,"end_time":2}`,
		"short id":             `{"name":"a","id":"70de5b6f","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}`,
		"neither end":          `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1}`,
		"string time":          `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":"1","end_time":2}`,
		"subsegment no parent": `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2,"type":"subsegment"}`,
		"bad annotation key":   `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2,"annotations":{"rpc.method":"x"}}`,
		"object annotation":    `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2,"annotations":{"k":{"a":1}}}`,
		"metadata not object":  `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2,"metadata":{"default":3}}`,
		"bad namespace":        `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2,"namespace":"local"}`,
		"exception without id": `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2,"cause":{"exceptions":[{"message":"x"}]}}`,
		"long url":             `{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2,"http":{"request":{"url":"` + strings.Repeat("u", 251) + `"}}}`,
		"not JSON":             `{"name":`,
	} {
		if errs := xraytest.Validate([]byte(doc)); len(errs) == 0 {
			t.Errorf("%s: no violation for %s", name, doc)
		}
	}
}

func TestDaemonUDPAddress(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "127.0.0.1:2000",
		"127.0.0.1:2001":                        "127.0.0.1:2001",
		"tcp:127.0.0.1:2000 udp:127.0.0.2:2003": "127.0.0.2:2003",
		"udp:10.0.0.1:2000 tcp:10.0.0.1:2001":   "10.0.0.1:2000",
	} {
		if got, err := xray.DaemonUDPAddress(in); err != nil || got != want {
			t.Errorf("DaemonUDPAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := xray.DaemonUDPAddress("tcp:127.0.0.1:2000"); err == nil {
		t.Error("an address without UDP was accepted")
	}
}

// Spans of every kind the shop makes become valid segment documents, related as X-Ray
// relates them.
func TestSpansBecomeValidSegments(t *testing.T) {
	daemon := xraytest.NewDaemon(t)
	exp, err := xray.New(daemon.Addr())
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "gateway"), attribute.String("service.version", "1.0"),
		attribute.String("mitosis.architecture", "services"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithIDGenerator(xray.NewIDGenerator()),
		sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(exp)))
	tr := tp.Tracer("test")
	ctx := context.Background()

	ctx, server := tr.Start(ctx, "GET /v1/products/{id}", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", "GET"), attribute.String("url.path", "/v1/products/p-1"), attribute.String("url.scheme", "http"),
		attribute.String("server.address", "127.0.0.1"), attribute.String("client.address", "127.0.0.1"),
		attribute.String("user_agent.original", strings.Repeat("agent ", 100)), attribute.Int("http.response.status_code", 404),
		attribute.String("http.route", "/v1/products/{id}")))
	cctx, client := tr.Start(ctx, "mitosis.catalog.v1.CatalogService/Get", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("rpc.method", "mitosis.catalog.v1.CatalogService/Get")))
	client.SetStatus(codes.Error, "catalog: product not found")
	client.End()
	_, internal := tr.Start(cctx, "ünïcode: "+strings.Repeat("x", 300), trace.WithAttributes(attribute.String("big", strings.Repeat("b", 70_000)),
		attribute.StringSlice("list", []string{"a", "b"}), attribute.Float64("f", 1.5), attribute.Bool("ok", true)))
	internal.RecordError(errors.New("boom"))
	internal.SetStatus(codes.Error, "boom")
	internal.End()
	_, store := tr.Start(ctx, "Get catalog_products", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", "nats_kv"), attribute.String("db.collection.name", "catalog_products")))
	store.End()
	pctx, producer := tr.Start(ctx, "publish shop.events.order-paid", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.destination.name", "shop.events.order-paid")))
	producer.End()
	_, consumer := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(pctx)),
		"process shop.events.order-paid", trace.WithSpanKind(trace.SpanKindConsumer))
	consumer.End()
	for _, status := range []int{500, 429} {
		_, s := tr.Start(context.Background(), "POST /v1/checkout", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.Int("http.response.status_code", status)))
		s.End()
	}
	server.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	docs := daemon.WaitFor(t, 8, 5*time.Second)
	if err := xraytest.Violations(docs); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	var order []map[string]any
	for _, d := range docs {
		byID[d.Fields["id"].(string)] = d.Fields
		order = append(order, d.Fields)
	}
	// SimpleSpanProcessor exports in the order spans end.
	cl, in, st, pr, co, e500, e429, srv := order[0], order[1], order[2], order[3], order[4], order[5], order[6], order[7]
	if srv["name"] != "gateway" || srv["type"] != nil || srv["parent_id"] != nil || srv["error"] != true || srv["fault"] != nil {
		t.Errorf("server span: %v", srv)
	}
	if srv["trace_id"] != "1-"+server.SpanContext().TraceID().String()[:8]+"-"+server.SpanContext().TraceID().String()[8:] {
		t.Errorf("trace_id %v", srv["trace_id"])
	}
	if cl["type"] != "subsegment" || cl["namespace"] != "remote" || cl["name"] != "mitosis.catalog.v1.CatalogService" ||
		cl["parent_id"] != srv["id"] || cl["fault"] != true || cl["cause"] == nil {
		t.Errorf("client span: %v", cl)
	}
	if in["namespace"] != nil || in["parent_id"] != cl["id"] || in["metadata"] != nil || len([]rune(in["name"].(string))) != 200 {
		t.Errorf("internal span (its big metadata dropped, its name cut): %v", in)
	}
	if st["name"] != "nats_kv:catalog_products" || st["namespace"] != "remote" {
		t.Errorf("store span: %v", st)
	}
	if pr["name"] != "shop.events.order-paid" || pr["namespace"] != "remote" {
		t.Errorf("producer span: %v", pr)
	}
	if co["type"] != nil || co["name"] != "gateway" || co["parent_id"] != pr["id"] {
		t.Errorf("consumer span: %v", co)
	}
	if e500["fault"] != true || e429["throttle"] != true || e429["error"] != true {
		t.Errorf("500: %v; 429: %v", e500, e429)
	}
}
