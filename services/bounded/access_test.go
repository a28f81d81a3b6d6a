package bounded_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc"

	cartv1 "github.com/mitosis-dev/mitosis/services/gen/cart/v1"
	catalogv1 "github.com/mitosis-dev/mitosis/services/gen/catalog/v1"
	inventoryv1 "github.com/mitosis-dev/mitosis/services/gen/inventory/v1"
	notifyv1 "github.com/mitosis-dev/mitosis/services/gen/notify/v1"
	ordersv1 "github.com/mitosis-dev/mitosis/services/gen/orders/v1"
	paymentsv1 "github.com/mitosis-dev/mitosis/services/gen/payments/v1"
	shippingv1 "github.com/mitosis-dev/mitosis/services/gen/shipping/v1"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

var descs = []grpc.ServiceDesc{cartv1.CartService_ServiceDesc, catalogv1.CatalogService_ServiceDesc,
	inventoryv1.InventoryService_ServiceDesc, notifyv1.NotifyService_ServiceDesc, ordersv1.OrdersService_ServiceDesc,
	paymentsv1.PaymentsService_ServiceDesc, shippingv1.ShippingService_ServiceDesc}

// The access table says which methods each call of the table uses: its pairs are exactly the
// table's calls, and its methods are the callee's.
func TestAccessFollowsTheCalls(t *testing.T) {
	methods := map[string][]string{} // gRPC service → its methods
	for _, d := range descs {
		for _, m := range d.Methods {
			methods[d.ServiceName] = append(methods[d.ServiceName], m.MethodName)
		}
	}
	calls := map[[2]string]bool{}
	for _, c := range bounded.Table() {
		for _, callee := range c.Calls {
			calls[[2]string{c.Name, callee}] = true
		}
	}
	for _, callee := range (bounded.Edge{}).Calls() {
		calls[[2]string{bounded.EdgeName, callee}] = true
	}
	access := bounded.Access()
	for pair := range calls {
		if len(access[pair]) == 0 {
			t.Errorf("%s calls %s, but the access table lets it call none of its methods", pair[0], pair[1])
		}
	}
	for pair, ms := range access {
		if !calls[pair] {
			t.Errorf("the access table lets %s call %s, which its Calls do not list", pair[0], pair[1])
		}
		c, _ := bounded.Lookup(pair[1])
		for _, m := range ms {
			if !slices.Contains(methods[c.Service], m) {
				t.Errorf("%s → %s: %s has no method %s", pair[0], pair[1], c.Service, m)
			}
		}
	}
}

func TestAllowed(t *testing.T) {
	group := func(s string) bounded.Group {
		g, err := bounded.ParseGroup(s)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	for _, c := range []struct {
		caller, method string
		want           bool
	}{
		{"orders", "/mitosis.payments.v1.PaymentsService/Charge", true},
		{"orders", "/mitosis.payments.v1.PaymentsService/Refund", true},
		{"cart", "/mitosis.payments.v1.PaymentsService/Charge", false},
		{"edge", "/mitosis.payments.v1.PaymentsService/Charge", false},
		{"edge", "/mitosis.catalog.v1.CatalogService/Upsert", true},
		{"orders", "/mitosis.catalog.v1.CatalogService/Upsert", false},
		{"orders", "/mitosis.catalog.v1.CatalogService/Get", true},
		{"cart+orders+payments", "/mitosis.inventory.v1.InventoryService/Reserve", true},
		{"cart+payments", "/mitosis.inventory.v1.InventoryService/Reserve", false},
		{"edge+catalog", "/mitosis.orders.v1.OrdersService/Checkout", true},
		{"shipping", "/mitosis.orders.v1.OrdersService/MarkShipped", false},
		{"edge", "/mitosis.inventory.v1.InventoryService/ReleaseExpired", false},
		{"orders", "/grpc.health.v1.Health/Check", false}, // not the shop's: host decides
		{"orders", "/mitosis.payments.v1.PaymentsService", false},
		{"orders", "/mitosis.payments.v1.PaymentsService/Nope", false},
	} {
		if got := bounded.Allowed(group(c.caller), c.method); got != c.want {
			t.Errorf("Allowed(%s, %s) = %v, want %v", c.caller, c.method, got, c.want)
		}
	}
}

func TestParseName(t *testing.T) {
	for _, s := range []string{"edge", "catalog", "catalog+inventory", "edge+cart+orders+payments", "shipping+notify"} {
		g, err := bounded.ParseGroup(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := bounded.ParseName(g.Name())
		if err != nil || back.String() != g.String() {
			t.Errorf("ParseName(%q) = %v, %v; want %s", g.Name(), back, err, g)
		}
	}
	if g, err := bounded.ParseName("monolith"); err != nil || !g.Whole() || !g.Edge {
		t.Errorf("monolith: %v, %v", g, err)
	}
	for _, bad := range []string{"tooling", "", "catalog-catalog", "x"} {
		if _, err := bounded.ParseName(bad); err == nil {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

// Every event a consumer takes is published by a context of the table (Publishes), which
// its NATS user may publish (platform/natsauth), and nothing is published that nobody takes.
func TestPublishesFeedTheConsumers(t *testing.T) {
	published, consumed := map[string]bool{}, map[string]bool{}
	for _, c := range bounded.Table() {
		for _, s := range c.Publishes {
			published[s] = true
		}
		for _, k := range c.Consumers {
			for _, s := range k.Subjects {
				consumed[s] = true
			}
		}
	}
	for s := range consumed {
		if !published[s] {
			t.Errorf("%s is consumed but no context publishes it", s)
		}
	}
	for s := range published {
		if !consumed[s] {
			t.Errorf("%s is published but no context consumes it", s)
		}
	}
}
