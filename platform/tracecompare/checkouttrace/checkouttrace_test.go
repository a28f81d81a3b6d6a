package checkouttrace

import (
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/tracecompare"
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

// checkoutTrace is the trace of a checkout in arch as Check wants it, but for the spans
// named in leave, which it does not hold.
func checkoutTrace(t *testing.T, arch string, leave ...string) *tracecompare.Trace {
	t.Helper()
	service := func(context string) string {
		if arch == "monolith" {
			return "monolith"
		}
		return context
	}
	root := &tracecompare.Span{Name: tracecompare.CheckoutRoot, Kind: "server", Service: service("gateway")}
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
		if arch == "monolith" {
			add(root, c.method, "internal", "monolith", "")
			continue
		}
		add(add(root, c.method, "client", "caller", ""), c.method, "server", c.context, "")
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
	for _, arch := range []string{"monolith", "services"} {
		if err := Check(checkoutTrace(t, arch), arch); err != nil {
			t.Errorf("%s: a whole checkout's trace: %v", arch, err)
		}
	}
	for _, tc := range []struct{ arch, leave, want string }{
		{"monolith", "internal mitosis.payments.v1.PaymentsService/Charge", "no internal mitosis.payments.v1.PaymentsService/Charge"},
		{"services", "server mitosis.inventory.v1.InventoryService/Commit", "no server mitosis.inventory.v1.InventoryService/Commit in inventory"},
		{"services", "consumer " + tracecompare.ShippedProcess, "no consumer process shop.events.order-shipped in notify by consumer notify"},
		{"monolith", "producer " + tracecompare.OrderPaidPublish, "no producer publish shop.events.order-paid"},
	} {
		err := Check(checkoutTrace(t, tc.arch, tc.leave), tc.arch)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s without %s: %v, want %q", tc.arch, tc.leave, err, tc.want)
		}
	}
}
