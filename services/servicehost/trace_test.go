package servicehost_test

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	cartv1 "github.com/mitosis-dev/mitosis/services/gen/cart/v1"
	catalogv1 "github.com/mitosis-dev/mitosis/services/gen/catalog/v1"
	inventoryv1 "github.com/mitosis-dev/mitosis/services/gen/inventory/v1"
	notifyv1 "github.com/mitosis-dev/mitosis/services/gen/notify/v1"
	ordersv1 "github.com/mitosis-dev/mitosis/services/gen/orders/v1"
	paymentsv1 "github.com/mitosis-dev/mitosis/services/gen/payments/v1"
	shippingv1 "github.com/mitosis-dev/mitosis/services/gen/shipping/v1"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/traced"
)

// The monolith names its in-process calls (shop/traced) as otelgrpc names the services'
// calls: the full method names of the protos. A method added to a proto and not to traced
// (or the reverse) would give the two architectures traces of different shapes.
func TestMonolithSpanNamesAreTheGRPCMethods(t *testing.T) {
	var methods []string
	for _, fd := range []protoreflect.FileDescriptor{cartv1.File_cart_v1_cart_proto, catalogv1.File_catalog_v1_catalog_proto,
		inventoryv1.File_inventory_v1_inventory_proto, notifyv1.File_notify_v1_notify_proto, ordersv1.File_orders_v1_orders_proto,
		paymentsv1.File_payments_v1_payments_proto, shippingv1.File_shipping_v1_shipping_proto} {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				methods = append(methods, string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name()))
			}
		}
	}
	if n := protoregistry.GlobalFiles.NumFilesByPackage("mitosis.cart.v1"); n == 0 {
		t.Fatal("the generated protos are not registered")
	}
	want := traced.Methods()
	sort.Strings(methods)
	sort.Strings(want)
	if !slices.Equal(methods, want) {
		t.Fatalf("proto methods\n%v\nshop/traced\n%v", methods, want)
	}
}

// A call is a CLIENT span in the caller and a SERVER span in the callee, one trace, with the
// callee's store operations under it; health checks make no spans.
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

	addr, _ := serve(t, startNATS(t), "")
	waitHealth(t, addr, cartrpc.ServiceName, 1)
	conn, err := servicehost.Dial(addr, cartrpc.ServiceConfig, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := cartrpc.NewClient(conn).Get(ctx, "u-1"); err != nil {
		t.Fatal(err)
	}
	request.End()

	// The server ends its span after it has sent the response, so the client can be back
	// before that span has ended: wait for it (with a deadline).
	ended := rec.Ended()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); ended = rec.Ended() {
		n := 0
		for _, s := range ended {
			if s.Name() == "mitosis.cart.v1.CartService/Get" {
				n++
			}
		}
		if n >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range ended {
		byName[s.Name()] = append(byName[s.Name()], s)
		if s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("span %s (%v) is outside the request's trace: health checks must make no spans", s.Name(), s.SpanKind())
		}
	}
	calls := byName["mitosis.cart.v1.CartService/Get"]
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
	store := byName["Get kit_test_carts"]
	if len(store) != 1 || store[0].Parent().SpanID() != server.SpanContext().SpanID() {
		t.Fatalf("store spans %v, want one under the server span", store)
	}
}
