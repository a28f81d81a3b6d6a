package host_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/traced"
	"github.com/mitosis-dev/mitosis/shop/traced/tracedtest"
)

// whole runs every context in one process on an embedded store, traced into tp, and
// returns its generation.
func whole(t *testing.T, tp trace.TracerProvider) *host.Generation {
	t.Helper()
	cfg, err := host.ConfigFrom(func(k string) string {
		return map[string]string{"SHOP_DATA_DIR": t.TempDir()}[k]
	}, bounded.Group{Contexts: bounded.Names()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TracerProvider = tp
	return hosttest.StartConfig(t, cfg).Next(t)
}

// Every method of every context called in process is one INTERNAL span named exactly like
// the gRPC method that carries it between processes, and every gRPC method of every context
// is one of them: the two architectures' traces have the same shape.
func TestInProcessSpansAreNamedLikeTheGRPCMethods(t *testing.T) {
	rec := tracedtest.New()
	g := whole(t, rec)
	ctx := t.Context()
	cat := g.Port("catalog").(catalog.Service)
	crt := g.Port("cart").(cart.Service)
	inv := g.Port("inventory").(inventory.Service)
	pay := g.Port("payments").(payments.Service)
	ord := g.Port("orders").(orders.Service)
	shp := g.Port("shipping").(shipping.Service)
	ntf := g.Port("notify").(notify.Service)
	calls := []func(){
		func() { _, _ = cat.Get(ctx, "nope") },
		func() { _, _ = cat.List(ctx, catalog.ListRequest{}) },
		func() { _, _ = cat.Upsert(ctx, catalog.Product{}) },
		func() { _, _ = crt.Get(ctx, "u") },
		func() { _, _ = crt.Add(ctx, "u", cart.Item{ProductID: "p", Quantity: 1}) },
		func() { _ = crt.Clear(ctx, "u") },
		func() { _, _ = crt.RemoveBought(ctx, "u", "o", []cart.Item{{ProductID: "p", Quantity: 1}}) },
		func() { _, _ = inv.Get(ctx, "p") },
		func() { _, _ = inv.Add(ctx, "p", 1) },
		func() { _, _ = inv.Reserve(ctx, "r", []inventory.Line{{ProductID: "p", Quantity: 1}}) },
		func() { _ = inv.Commit(ctx, "r") },
		func() { _ = inv.Release(ctx, "r") },
		func() { _, _ = inv.ReleaseExpired(ctx) },
		func() { _, _ = pay.Charge(ctx, payments.ChargeRequest{}) },
		func() { _, _ = pay.Refund(ctx, "k") },
		func() { _, _ = pay.Get(ctx, "k") },
		func() { _, _ = ord.Checkout(ctx, "k", orders.CheckoutRequest{}) },
		func() { _, _ = ord.Get(ctx, "o") },
		func() { _, _ = ord.ListByUser(ctx, orders.ListRequest{UserID: "u"}) },
		func() { _, _ = ord.MarkShipped(ctx, "o", "t") },
		func() { _, _ = shp.Ship(ctx, events.OrderPaid{}) },
		func() { _, _ = shp.Get(ctx, "o") },
		func() { _, _ = ntf.Notify(ctx, "u", "order-paid", "o") },
		func() { _, _ = ntf.List(ctx, notify.ListRequest{UserID: "u"}) },
	}
	var names []string
	for _, call := range calls {
		rec.Reset()
		call()
		var internal []tracedtest.Span
		for _, s := range rec.Ended() {
			if s.Kind == trace.SpanKindInternal {
				internal = append(internal, s)
			}
		}
		if len(internal) != 1 {
			t.Fatalf("one call made %d INTERNAL spans: %+v", len(internal), internal)
		}
		s := internal[0]
		if got := s.Attr(traced.RPCMethod); got != s.Name {
			t.Errorf("span %s has rpc.method %q", s.Name, got)
		}
		names = append(names, s.Name)
	}
	var methods []string
	for _, c := range bounded.Table() {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(c.Service))
		if err != nil {
			t.Fatalf("%s: %v", c.Service, err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for j := range sd.Methods().Len() {
			methods = append(methods, c.Service+"/"+string(sd.Methods().Get(j).Name()))
		}
	}
	slices.Sort(names)
	slices.Sort(methods)
	if !slices.Equal(names, methods) {
		t.Fatalf("in-process span names\n%v\ngRPC methods\n%v", names, methods)
	}
}

// A failed call is an error span, and the calls a checkout makes to the colocated contexts
// are children of its span.
func TestAFailedCallIsAnErrorSpanAndNestedCallsAreChildren(t *testing.T) {
	rec := tracedtest.New()
	g := whole(t, rec)
	ctx := t.Context()
	cat := g.Port("catalog").(catalog.Service)
	if _, err := cat.Get(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound through the decorator", err)
	}
	catalogCtx, _ := bounded.Lookup("catalog")
	got := rec.Named(catalogCtx.Service + "/Get")
	if len(got) != 1 || got[0].Status != codes.Error {
		t.Fatalf("spans %+v, want one with status Error", got)
	}

	page, err := cat.List(ctx, catalog.ListRequest{PageSize: 1})
	if err != nil || len(page.Products) == 0 {
		t.Fatalf("catalog: %v %v", page, err)
	}
	pid := page.Products[0].ID
	if _, err := g.Port("inventory").(inventory.Service).Add(ctx, pid, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Port("cart").(cart.Service).Add(ctx, "u-1", cart.Item{ProductID: pid, Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	if _, err := g.Port("orders").(orders.Service).Checkout(ctx, "key-1", orderstest.Request("u-1")); err != nil {
		t.Fatal(err)
	}
	service := func(name string) string { c, _ := bounded.Lookup(name); return c.Service }
	checkout := rec.Named(service("orders") + "/Checkout")
	if len(checkout) != 1 {
		t.Fatalf("spans %+v", rec.Ended())
	}
	children := map[string]bool{}
	for _, s := range rec.Ended() {
		if s.Kind != trace.SpanKindInternal || s.Name == checkout[0].Name {
			continue
		}
		if s.Parent.SpanID() != checkout[0].SpanContext.SpanID() || s.SpanContext.TraceID() != checkout[0].SpanContext.TraceID() {
			t.Errorf("%s is not a child of Checkout", s.Name)
		}
		children[s.Name] = true
	}
	for _, want := range []string{service("cart") + "/Get", service("catalog") + "/Get", service("inventory") + "/Reserve",
		service("payments") + "/Charge", service("inventory") + "/Commit", service("cart") + "/RemoveBought"} {
		if !children[want] {
			t.Errorf("checkout made no %s call; it made %v", want, children)
		}
	}
}

// A call between two processes is a CLIENT span in the caller and a SERVER span in the
// callee, one trace, with the callee's store operations under it; health checks make no
// spans.
func TestACallIsAClientAndAServerSpanOfOneTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	})

	r := hosttest.Start(t, "cart", map[string]string{"SHOP_NATS_URL": hosttest.StartNATS(t).URL()})
	cartCtx, _ := bounded.Lookup("cart")
	waitHealth(t, r.GRPCAddr, cartCtx.Service, 1)
	conn, err := host.Dial(r.GRPCAddr, cartCtx.ClientConfig(), 0, hosttest.Security(t, "orders").ClientCredentials("cart"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := cartCtx.Client(conn).(cart.Service).Get(ctx, "u-1"); err != nil {
		t.Fatal(err)
	}
	request.End()

	// The server ends its span after it has sent the response, so the client can be back
	// before that span has ended: wait for it (with a deadline).
	method := cartCtx.Service + "/Get"
	ended := rec.Ended()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); ended = rec.Ended() {
		n := 0
		for _, s := range ended {
			if s.Name() == method {
				n++
			}
		}
		if n >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range ended {
		byName[s.Name()] = append(byName[s.Name()], s)
		if s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("span %s (%v) is outside the request's trace: health checks must make no spans", s.Name(), s.SpanKind())
		}
	}
	calls := byName[method]
	if len(calls) != 2 {
		t.Fatalf("spans %v", byName)
	}
	client, server := calls[0], calls[1]
	if client.SpanKind() != trace.SpanKindClient {
		client, server = server, client
	}
	if client.SpanKind() != trace.SpanKindClient || server.SpanKind() != trace.SpanKindServer ||
		client.Parent().SpanID() != request.SpanContext().SpanID() || server.Parent().SpanID() != client.SpanContext().SpanID() {
		t.Fatalf("client %v parent %v, server %v parent %v", client.SpanKind(), client.Parent().SpanID(), server.SpanKind(), server.Parent().SpanID())
	}
	store := byName["Get "+cart.CartsBucket]
	if len(store) != 1 || store[0].Parent().SpanID() != server.SpanContext().SpanID() {
		t.Fatalf("store spans %v, want one under the server span", store)
	}
	// Both spans carry the call's message sizes, the same on both sides: the request "u-1"
	// is a few bytes of protobuf, the response the cart.
	sizes := func(s sdktrace.ReadOnlySpan) (req, resp int64, ok bool) {
		n := 0
		for _, a := range s.Attributes() {
			switch a.Key {
			case host.RPCRequestBytes:
				req, n = a.Value.AsInt64(), n+1
			case host.RPCResponseBytes:
				resp, n = a.Value.AsInt64(), n+1
			}
		}
		return req, resp, n == 2
	}
	creq, cresp, cok := sizes(client)
	sreq, sresp, sok := sizes(server)
	if !cok || !sok || creq != sreq || cresp != sresp || creq < int64(len("u-1")) || cresp <= 0 {
		t.Fatalf("message sizes: client %d/%d (%v), server %d/%d (%v)", creq, cresp, cok, sreq, sresp, sok)
	}
}
