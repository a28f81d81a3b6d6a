package tracecompare

import (
	"errors"
	"fmt"
)

// Span names of a checkout, the same in both architectures.
const (
	CheckoutRoot     = "POST /v1/checkout"
	OrderPaidPublish = "publish shop.events.order-paid"
	OrderPaidProcess = "process shop.events.order-paid"
	ShippedPublish   = "publish shop.events.order-shipped"
	ShippedProcess   = "process shop.events.order-shipped"
)

// checkoutCalls are the calls a checkout makes from one context to another, with the
// context (the service, in the microservices) that serves each.
var checkoutCalls = []struct{ method, context string }{
	{"mitosis.orders.v1.OrdersService/Checkout", "orders"},
	{"mitosis.cart.v1.CartService/Get", "cart"},
	{"mitosis.catalog.v1.CatalogService/Get", "catalog"},
	{"mitosis.inventory.v1.InventoryService/Reserve", "inventory"},
	{"mitosis.payments.v1.PaymentsService/Charge", "payments"},
	{"mitosis.inventory.v1.InventoryService/Commit", "inventory"},
	{"mitosis.cart.v1.CartService/RemoveBought", "cart"},
}

// CheckCheckout reports what t lacks to be the one connected trace of a successful
// checkout: the HTTP edge, every call between contexts (an INTERNAL span in the monolith; a
// CLIENT span and the SERVER span of the right service in the microservices), the
// order-paid publish and both its consumers (shipping, notify), the order-shipped publish
// and its consumers (notify, orders), every one a descendant of the root, no orphan. arch is
// "monolith" or "services".
func CheckCheckout(t *Trace, arch string) error {
	var errs []error
	if t.Root.Name != CheckoutRoot || t.Root.Kind != "server" {
		errs = append(errs, fmt.Errorf("root is %s %q, want the SERVER span %q", t.Root.Kind, t.Root.Name, CheckoutRoot))
	}
	if t.Orphans > 0 {
		errs = append(errs, fmt.Errorf("%d spans are not connected to the root", t.Orphans))
	}
	has := func(name, kind, service, group string) *Span {
		for _, s := range t.Spans {
			if s.Name == name && s.Kind == kind && (service == "" || s.Service == service) && (group == "" || s.Attrs[attrMsgGroup] == group) {
				return s
			}
		}
		what := kind + " " + name
		if service != "" {
			what += " in " + service
		}
		if group != "" {
			what += " by consumer " + group
		}
		errs = append(errs, fmt.Errorf("no %s", what))
		return nil
	}
	for _, c := range checkoutCalls {
		if arch == "monolith" {
			if s := has(c.method, "internal", "", ""); s != nil && s.Service != t.Root.Service {
				errs = append(errs, fmt.Errorf("%s is in service %s, not the monolith's %s", c.method, s.Service, t.Root.Service))
			}
			continue
		}
		client := has(c.method, "client", "", "")
		server := has(c.method, "server", c.context, "")
		if client != nil && server != nil && server.Parent != client {
			errs = append(errs, fmt.Errorf("the SERVER span of %s is not the child of its CLIENT span", c.method))
		}
	}
	ctx := func(name string) string {
		if arch == "monolith" {
			return ""
		}
		return name
	}
	paid := has(OrderPaidPublish, "producer", ctx("orders"), "")
	for _, g := range []string{"shipping", "notify"} {
		if s := has(OrderPaidProcess, "consumer", ctx(g), g); s != nil && paid != nil && s.Parent != paid {
			errs = append(errs, fmt.Errorf("the %s consumer of order-paid is not the child of its publish", g))
		}
	}
	shipped := has(ShippedPublish, "producer", ctx("shipping"), "")
	for _, g := range []string{"notify", "orders"} {
		if s := has(ShippedProcess, "consumer", ctx(g), g); s != nil && shipped != nil && s.Parent != shipped {
			errs = append(errs, fmt.Errorf("the %s consumer of order-shipped is not the child of its publish", g))
		}
	}
	return errors.Join(errs...)
}
