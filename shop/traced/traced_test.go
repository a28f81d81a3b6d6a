package traced_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inprocess"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/traced"
	"github.com/mitosis-dev/mitosis/shop/traced/tracedtest"
)

func memoryShop(t *testing.T, rec *tracedtest.Recorder) *inprocess.Shop {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	shop, err := inprocess.New(t.Context(), inprocess.Config{
		Open:           func(context.Context, string) (kv.Bucket, error) { return kv.NewMemory(), nil },
		Bus:            events.NewMemory(logger),
		Logger:         logger,
		TracerProvider: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	return shop
}

// Every method of every port makes one INTERNAL span named like its gRPC method, and the
// names are exactly Methods().
func TestEveryCallIsASpanNamedLikeItsGRPCMethod(t *testing.T) {
	rec := tracedtest.New()
	shop := memoryShop(t, rec)
	c := shop.Calls
	ctx := t.Context()
	calls := []func(){
		func() { _, _ = c.Catalog.Get(ctx, "nope") },
		func() { _, _ = c.Catalog.List(ctx, catalog.ListRequest{}) },
		func() { _, _ = c.Catalog.Upsert(ctx, catalog.Product{}) },
		func() { _, _ = c.Carts.Get(ctx, "u") },
		func() { _, _ = c.Carts.Add(ctx, "u", cart.Item{ProductID: "p", Quantity: 1}) },
		func() { _ = c.Carts.Clear(ctx, "u") },
		func() { _, _ = c.Inventory.Get(ctx, "p") },
		func() { _, _ = c.Inventory.Add(ctx, "p", 1) },
		func() { _, _ = c.Inventory.Reserve(ctx, "r", []inventory.Line{{ProductID: "p", Quantity: 1}}) },
		func() { _ = c.Inventory.Commit(ctx, "r") },
		func() { _ = c.Inventory.Release(ctx, "r") },
		func() { _, _ = c.Inventory.ReleaseExpired(ctx) },
		func() { _, _ = c.Payments.Charge(ctx, payments.ChargeRequest{}) },
		func() { _, _ = c.Payments.Refund(ctx, "k") },
		func() { _, _ = c.Payments.Get(ctx, "k") },
		func() { _, _ = c.Orders.Checkout(ctx, "k", orders.CheckoutRequest{}) },
		func() { _, _ = c.Orders.Get(ctx, "o") },
		func() { _, _ = c.Orders.ListByUser(ctx, "u") },
		func() { _, _ = c.Orders.MarkShipped(ctx, "o", "t") },
		func() { _, _ = c.Shipping.Ship(ctx, events.OrderPaid{}) },
		func() { _, _ = c.Shipping.Get(ctx, "o") },
		func() { _, _ = c.Notify.Notify(ctx, "u", "order-paid", "o") },
		func() { _, _ = c.Notify.List(ctx, "u") },
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
	if want := traced.Methods(); !slices.Equal(names, want) {
		t.Fatalf("span names\n%v\nwant\n%v", names, want)
	}
}

func TestAFailedCallIsAnErrorSpanAndNestedCallsAreChildren(t *testing.T) {
	rec := tracedtest.New()
	shop := memoryShop(t, rec)
	ctx := t.Context()
	if _, err := shop.Calls.Catalog.Get(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound through the decorator", err)
	}
	got := rec.Named(traced.CatalogService + "/Get")
	if len(got) != 1 || got[0].Status != codes.Error {
		t.Fatalf("spans %+v, want one with status Error", got)
	}

	// A checkout: orders calls the other contexts through their decorators, so each call is
	// a child of the Checkout span.
	page, err := shop.Catalog.List(ctx, catalog.ListRequest{PageSize: 1})
	if err != nil || len(page.Products) == 0 {
		t.Fatalf("catalog: %v %v", page, err)
	}
	pid := page.Products[0].ID
	if _, err := shop.Inventory.Add(ctx, pid, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := shop.Carts.Add(ctx, "u-1", cart.Item{ProductID: pid, Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	if _, err := shop.Calls.Orders.Checkout(ctx, "key-1", orderstest.Request("u-1")); err != nil {
		t.Fatal(err)
	}
	checkout := rec.Named(traced.OrdersService + "/Checkout")
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
	for _, want := range []string{traced.CartService + "/Get", traced.CatalogService + "/Get", traced.InventoryService + "/Reserve",
		traced.PaymentsService + "/Charge", traced.InventoryService + "/Commit", traced.CartService + "/Clear"} {
		if !children[want] {
			t.Errorf("checkout made no %s call; it made %v", want, children)
		}
	}
}

func TestStoreSpansOnlyInsideATrace(t *testing.T) {
	rec := tracedtest.New()
	tr := traced.New(rec, nil)
	b := tr.Bucket("things", kv.NewMemory())
	ctx := t.Context()

	if _, err := b.Create(ctx, "a", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans outside any trace, want none", n)
	}

	ctx, parent := rec.Tracer("test").Start(ctx, "request")
	e, err := b.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "a", []byte(`2`), e.Revision+100); !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("Update with a stale revision: %v", err)
	}
	if _, err := b.Get(ctx, "missing"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if _, err := b.Keys(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var names []string
	for _, s := range rec.Ended() {
		if s.Name == "request" {
			continue
		}
		names = append(names, s.Name+"/"+s.Attr(traced.KVOutcome))
		if s.Kind != trace.SpanKindClient || s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %s: kind %v parent %v, want a CLIENT child of the request", s.Name, s.Kind, s.Parent.SpanID())
		}
		if s.Status == codes.Error {
			t.Errorf("span %s is an error: a missing key or a lost race is an answer", s.Name)
		}
		if s.Attr(traced.DBCollection) != "things" || s.Attr(traced.DBSystem) == "" {
			t.Errorf("span %s attributes %v", s.Name, s.Attributes)
		}
	}
	want := []string{"Get things/", "Update things/conflict", "Get things/not_found", "Keys things/", "Delete things/"}
	if !slices.Equal(names, want) {
		t.Fatalf("store spans %v, want %v", names, want)
	}
}
