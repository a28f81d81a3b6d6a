package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/platform/tracecompare/checkouttrace"
	"github.com/mitosis-dev/mitosis/platform/xray/xraytest"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// One checkout through the microservices is one connected trace across eight processes:
// the gateway's HTTP span, a CLIENT and a SERVER span for every gRPC hop, the order-paid
// publish in orders and its consumers in shipping and notify, the order-shipped publish in
// shipping and its consumers in notify and orders. Through the hybrid (topologies/hybrid.yaml)
// it is one trace across its four processes, the calls inside a group INTERNAL spans, as in
// the monolith, and those across groups hops. The processes export over OTLP to a collector
// in the test, and to a fake X-Ray daemon that checks every segment; stopping them flushes
// their spans, and the collector receives their metrics too.
func TestCheckoutIsOneConnectedTraceAcrossServices(t *testing.T) {
	for _, arch := range []string{"services", "hybrid"} {
		t.Run(arch, func(t *testing.T) { checkoutIsOneConnectedTrace(t, arch) })
	}
}

func checkoutIsOneConnectedTrace(t *testing.T, arch string) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = col.Close(context.Background()) })
	daemon := xraytest.NewDaemon(t)
	s := up(t, arch, "", map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + col.GRPCAddr(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_TRACES_EXPORTER":        "otlp,xray",
		"AWS_XRAY_DAEMON_ADDRESS":     daemon.Addr(),
	})

	c := apitest.NewClient(apitest.Target{BaseURL: s.edges[arch], AdminToken: testToken})
	p := c.NewStockedProduct(t, 1250, 300, 10)
	user := apitest.NewID("u")
	c.AddToCart(t, user, p.ID, 2)
	r, err := c.CheckoutResponse(t.Context(), apitest.NewID("k"), apitest.NewCheckout(user, apitest.CardApproved))
	if err != nil || r.Status != 201 {
		t.Fatalf("checkout: %v %v", r, err)
	}
	parts := strings.Split(r.Header.Get("traceresponse"), "-")
	if len(parts) != 4 || !strings.HasPrefix(r.Header.Get("X-Amzn-Trace-Id"), "Root=1-"+parts[1][:8]+"-"+parts[1][8:]) {
		t.Fatalf("trace headers %q, %q", r.Header.Get("traceresponse"), r.Header.Get("X-Amzn-Trace-Id"))
	}
	traceID := parts[1]
	var order apitest.Order
	if err := json.Unmarshal(r.Body, &order); err != nil {
		t.Fatal(err)
	}
	c.WaitShipped(t, order.ID)
	c.WaitNotifications(t, user, order.ID, apitest.KindOrderPaid, apitest.KindOrderShipped)

	// Stopping drains every process and flushes its spans: nothing is lost at shutdown.
	if err := s.stop(); err != nil {
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
	placement := s.topo.Archs[0]
	if err := checkouttrace.Check(traces[0], placement.Split); err != nil {
		t.Fatalf("trace %s of %s (%s):\n%v", traceID, arch, placement.Split, err)
	}
	a := tracecompare.Analyze(traces[0])
	split, err := bounded.ParseSplit(placement.Split)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Services) != len(split) {
		t.Errorf("the trace touches %v, want the %d processes of %s", a.Services, len(split), split)
	}
	for _, op := range []string{tracecompare.OrderPaidProcess, tracecompare.ShippedProcess, tracecompare.CheckoutRoot} {
		if found := col.Store().Find(tracecollect.Query{OperationName: op, NumTraces: 100}); len(found) != 1 {
			t.Errorf("%d traces have a %q span, want the checkout's only", len(found), op)
		}
	}

	docs := daemon.WaitFor(t, col.Store().Stats().Spans, 10*time.Second)
	if err := xraytest.Violations(docs); err != nil {
		t.Fatalf("%d X-Ray documents, violations:\n%v", len(docs), err)
	}
	if col.MetricsReceived() == 0 {
		t.Error("no process exported its metrics (HTTP and RPC durations) at shutdown")
	}
	t.Logf("checkout trace %s: %d spans in %d services, %d remote hops; X-Ray: %d documents, none violating the schema; %d metrics received",
		traceID, a.Spans, len(a.Services), a.RemoteHops, len(docs), col.MetricsReceived())
}
