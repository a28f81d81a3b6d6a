package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/platform/tracecompare/checkouttrace"
	"github.com/mitosis-dev/mitosis/platform/xray/xraytest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/logtest"
)

// One checkout in the monolith is one connected trace: the HTTP edge, an INTERNAL span for
// every call between contexts, the order-paid publish and both its consumers, the
// order-shipped publish and its consumers. The monolith runs with its real wiring and its
// real telemetry setup, exporting over OTLP to a collector in the test and over UDP to a
// fake X-Ray daemon that checks every segment against AWS's schema; its log lines carry the
// request's trace ID.
func TestCheckoutIsOneConnectedTrace(t *testing.T) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = col.Close(context.Background()) })
	daemon := xraytest.NewDaemon(t)
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+col.HTTPAddr())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp,xray")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.Addr())
	var logs logtest.Buffer
	shutdown, logger, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "monolith",
		Architecture: telemetry.Monolith, LogLevel: -4, LogOutput: &logs}) // debug: the access log
	if err != nil {
		t.Fatal(err)
	}
	flushed := false
	t.Cleanup(func() {
		if !flushed {
			_ = shutdown(context.Background())
		}
	})

	cfg := config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), AdminToken: testToken, DrainTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, logger, func(a net.Addr) { addrs <- a }) }()
	var baseURL string
	select {
	case a := <-addrs:
		baseURL = "http://" + a.String()
	case err := <-done:
		t.Fatalf("monolith did not start: %v", err)
	}

	c := apitest.NewClient(apitest.Target{BaseURL: baseURL, AdminToken: testToken})
	p := c.NewStockedProduct(t, 1250, 300, 10)
	user := apitest.NewID("u")
	c.AddToCart(t, user, p.ID, 2)
	r, err := c.CheckoutResponse(t.Context(), apitest.NewID("k"), apitest.NewCheckout(user, apitest.CardApproved))
	if err != nil || r.Status != 201 {
		t.Fatalf("checkout: %v %v", r, err)
	}
	traceID := traceOf(t, r.Header.Get("traceresponse"), r.Header.Get("X-Amzn-Trace-Id"))
	var order apitest.Order
	if err := json.Unmarshal(r.Body, &order); err != nil {
		t.Fatal(err)
	}
	c.WaitShipped(t, order.ID)
	c.WaitNotifications(t, user, order.ID, apitest.KindOrderPaid, apitest.KindOrderShipped)

	// A caller's X-Ray trace is continued (an AWS load balancer sends only this header).
	const callerTrace = "5759e988bd862e3fe1be46a994272793"
	r, err = c.Do(t.Context(), "GET", "/v1/products/"+p.ID, http.Header{"X-Amzn-Trace-Id": {"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}, nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("get product: %v %v", r, err)
	}
	if got := traceOf(t, r.Header.Get("traceresponse"), r.Header.Get("X-Amzn-Trace-Id")); got != callerTrace {
		t.Errorf("a request carrying X-Amzn-Trace-Id answered trace %s, want the caller's %s", got, callerTrace)
	}

	// Stop as main does: drain, then flush. Every span has ended; the flush loses none.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	flushed = true
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	td, err := (&tracecollect.Client{BaseURL: "http://" + col.QueryAddr()}).Trace(context.Background(), traceID)
	if err != nil {
		t.Fatalf("the checkout's trace %s: %v", traceID, err)
	}
	traces, err := tracecompare.FromOTLP(td)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkouttrace.Check(traces[0], "monolith"); err != nil {
		t.Fatalf("trace %s:\n%v", traceID, err)
	}
	// Exactly one trace: no span of this checkout's events went anywhere else.
	for _, op := range []string{tracecompare.OrderPaidProcess, tracecompare.ShippedProcess, tracecompare.CheckoutRoot} {
		if found := col.Store().Find(tracecollect.Query{OperationName: op, NumTraces: 100}); len(found) != 1 {
			t.Errorf("%d traces have a %q span, want the checkout's only", len(found), op)
		}
	}

	// The same spans reached the X-Ray daemon, each a valid segment document.
	docs := daemon.WaitFor(t, col.Store().Stats().Spans, 10*time.Second)
	if err := xraytest.Violations(docs); err != nil {
		t.Fatalf("%d X-Ray documents, violations:\n%v", len(docs), err)
	}
	xrayTrace := "1-" + traceID[:8] + "-" + traceID[8:]
	n := 0
	for _, d := range docs {
		if d.Fields["trace_id"] == xrayTrace {
			n++
		}
	}
	if a := tracecompare.Analyze(traces[0]); n != a.Spans {
		t.Errorf("the X-Ray daemon got %d documents of the checkout's trace, the collector %d spans", n, a.Spans)
	} else {
		t.Logf("checkout trace %s: %d spans; X-Ray: %d documents in all, none violating the schema", traceID, a.Spans, len(docs))
	}

	// The request's log lines carry its trace ID.
	var access bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"path":"/v1/checkout"`) {
			access = strings.Contains(line, `"trace_id":"`+traceID+`"`)
		}
	}
	if !access {
		t.Errorf("the checkout's access log line lacks trace_id %s:\n%s", traceID, logs.String())
	}
}

// traceOf checks that both response headers name the same trace and returns its ID.
func traceOf(t *testing.T, traceresponse, amzn string) string {
	t.Helper()
	parts := strings.Split(traceresponse, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		t.Fatalf("traceresponse %q", traceresponse)
	}
	id := parts[1]
	if !strings.HasPrefix(amzn, "Root=1-"+id[:8]+"-"+id[8:]+";Parent="+parts[2]) {
		t.Fatalf("X-Amzn-Trace-Id %q does not name trace %s span %s", amzn, id, parts[2])
	}
	return id
}
