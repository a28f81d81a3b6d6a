package checkouttrace

import (
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// The calls read from the saga and the table are those a checkout makes, in its order.
func TestCallsAreTheSagasCallsToOtherContexts(t *testing.T) {
	cs, err := calls()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.method+" in "+c.context)
	}
	want := []string{
		"mitosis.orders.v1.OrdersService/Checkout in orders",
		"mitosis.cart.v1.CartService/Get in cart",
		"mitosis.catalog.v1.CatalogService/Get in catalog",
		"mitosis.inventory.v1.InventoryService/Reserve in inventory",
		"mitosis.payments.v1.PaymentsService/Charge in payments",
		"mitosis.inventory.v1.InventoryService/Commit in inventory",
		"mitosis.cart.v1.CartService/RemoveBought in cart",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// hybrid is a split of three groups with the edge alone: calls inside a group and across.
const hybrid = "catalog+inventory,cart+orders+payments,shipping+notify"

// checkoutTrace is the trace of a checkout placed as placement says, as Check wants it, but
// for the spans named in leave, which it does not hold.
func checkoutTrace(t *testing.T, placement string, leave ...string) *tracecompare.Trace {
	t.Helper()
	split, err := splitOf(placement)
	if err != nil {
		t.Fatal(err)
	}
	service := func(name string) string {
		g, ok := split.Holder(name)
		if !ok {
			t.Fatalf("%s holds no %s", placement, name)
		}
		return g.Name()
	}
	root := &tracecompare.Span{Name: tracecompare.CheckoutRoot, Kind: "server", Service: service(bounded.EdgeName)}
	tr := &tracecompare.Trace{Root: root, Spans: []*tracecompare.Span{root}}
	add := func(parent *tracecompare.Span, name, kind, svc, group string) *tracecompare.Span {
		s := &tracecompare.Span{Name: name, Kind: kind, Service: svc, Parent: parent, Attrs: map[string]string{}}
		if group != "" {
			s.Attrs[tracecompare.AttrConsumerGroup] = group
		}
		for _, l := range leave {
			if l == kind+" "+name {
				return s // not in the trace
			}
		}
		tr.Spans = append(tr.Spans, s)
		return s
	}
	cs, err := calls()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if from, to := service(c.caller), service(c.context); from == to {
			add(root, c.method, "internal", to, "")
		} else {
			add(add(root, c.method, "client", from, ""), c.method, "server", to, "")
		}
	}
	paid := add(root, tracecompare.OrderPaidPublish, "producer", service("orders"), "")
	add(paid, tracecompare.OrderPaidProcess, "consumer", service("shipping"), "shipping")
	add(paid, tracecompare.OrderPaidProcess, "consumer", service("notify"), "notify")
	shipped := add(root, tracecompare.ShippedPublish, "producer", service("shipping"), "")
	add(shipped, tracecompare.ShippedProcess, "consumer", service("notify"), "notify")
	add(shipped, tracecompare.ShippedProcess, "consumer", service("orders"), "orders")
	return tr
}

func TestCheckFindsWhatACheckoutsTraceLacks(t *testing.T) {
	for _, placement := range []string{"monolith", "services", hybrid} {
		if err := Check(checkoutTrace(t, placement), placement); err != nil {
			t.Errorf("%s: a whole checkout's trace: %v", placement, err)
		}
	}
	for _, tc := range []struct{ placement, leave, want string }{
		{"monolith", "internal mitosis.payments.v1.PaymentsService/Charge", "no internal mitosis.payments.v1.PaymentsService/Charge in monolith"},
		{"services", "server mitosis.inventory.v1.InventoryService/Commit", "no server mitosis.inventory.v1.InventoryService/Commit in inventory"},
		{"services", "consumer " + tracecompare.ShippedProcess, "no consumer process shop.events.order-shipped in notify by consumer notify"},
		{"monolith", "producer " + tracecompare.OrderPaidPublish, "no producer publish shop.events.order-paid in monolith"},
		// In the hybrid, orders charges in its own process and reserves in another's.
		{hybrid, "internal mitosis.payments.v1.PaymentsService/Charge", "no internal mitosis.payments.v1.PaymentsService/Charge in cart-payments-orders"},
		{hybrid, "client mitosis.inventory.v1.InventoryService/Reserve", "no client mitosis.inventory.v1.InventoryService/Reserve in cart-payments-orders"},
		{hybrid, "server mitosis.orders.v1.OrdersService/Checkout", "no server mitosis.orders.v1.OrdersService/Checkout in cart-payments-orders"},
	} {
		err := Check(checkoutTrace(t, tc.placement, tc.leave), tc.placement)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s without %s: %v, want %q", tc.placement, tc.leave, err, tc.want)
		}
	}
	// A trace of one placement is not that of another: the monolith's is no hybrid's.
	if err := Check(checkoutTrace(t, "monolith"), hybrid); err == nil {
		t.Error("the monolith's trace passes as the hybrid's")
	}
	if err := Check(checkoutTrace(t, "monolith"), "catalog+nosuch"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("a placement naming no context: %v", err)
	}
}
