package orders_test

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// maxStoreRoundTrips is the most store round trips a checkout of a one-line cart may wait
// for one after another (the package doc lists them).
const maxStoreRoundTrips = 8

// roundTripDelay is what the recorder holds each store operation for before it goes out:
// well above an embedded JetStream's own round trip, so that operations issued together
// overlap and operations issued one after another do not, also on a busy machine.
const roundTripDelay = 2 * time.Millisecond

// critPath is the shop of the monolith, over a real embedded JetStream, every bucket and
// the events publisher recording its round trips.
type critPath struct {
	rec     *kvtest.Recorder
	orders  *orders.Orders
	carts   cart.Service
	product string
}

func newCritPath(tb testing.TB) *critPath {
	tb.Helper()
	ctx := tb.Context()
	srv := natsjstest.New(tb)
	rec := kvtest.NewRecorder(roundTripDelay)
	bucket := func(name string) *kvtest.RecordingBucket {
		return rec.Bucket(name, srv.Bucket(tb, name)).(*kvtest.RecordingBucket)
	}
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.New(ctx, bucket("catalog_products"), log)
	if err != nil {
		tb.Fatal(err)
	}
	inv := inventory.New(bucket("inventory_stock"), bucket("inventory_reservations"), time.Now, 5*time.Minute)
	carts := cart.New(bucket("cart_carts"))
	o := orders.New(orders.Stores{
		Orders: bucket(orders.OrdersBucket), Sagas: bucket(orders.SagasBucket), UserOrders: bucket(orders.UserOrdersBucket),
	}, orders.Deps{
		Catalog: cat, Carts: carts, Inventory: inv, Payments: payments.New(bucket("payments_charges"), time.Now),
		Events: rec.Publisher("events", srv.Bus(tb)), Logger: log, RequestKey: []byte("critpath-request-key"),
	})
	c := &critPath{rec: rec, orders: o, carts: carts, product: "p-lamp"}
	if _, err := cat.Upsert(ctx, catalog.Product{ID: c.product, Name: "Lamp", Price: money.Cents(2500), WeightGrams: 800}); err != nil {
		tb.Fatal(err)
	}
	if _, err := inv.Add(ctx, c.product, inventory.MaxAdd); err != nil {
		tb.Fatal(err)
	}
	// A first checkout of the product, as a shop that has sold it before: caches warm.
	c.checkout(tb, "warm-up")
	return c
}

// checkout puts one unit in user's cart and checks it out, returning the round trips of
// the checkout alone (not of the cart add).
func (c *critPath) checkout(tb testing.TB, user string) []kvtest.Op {
	tb.Helper()
	ctx := tb.Context()
	if _, err := c.carts.Add(ctx, user, cart.Item{ProductID: c.product, Quantity: 1}); err != nil {
		tb.Fatal(err)
	}
	c.rec.Reset()
	if _, err := c.orders.Checkout(ctx, "key-"+user, orderstest.Request(user)); err != nil {
		tb.Fatal(err)
	}
	return c.rec.Reset()
}

// TestCheckoutCriticalPath counts the store round trips a checkout of a one-line cart makes
// one after another (kvtest.Chain over the recorded operations): its latency is that many
// round trips, whatever it issues concurrently. A busy machine can only lengthen a chain
// (operations issued together that start late no longer overlap), never shorten it, so
// the shortest of five checkouts is the one held to the bound.
func TestCheckoutCriticalPath(t *testing.T) {
	c := newCritPath(t)
	var best, bestOps []kvtest.Op
	for i := range 5 {
		ops := c.checkout(t, fmt.Sprintf("u-%d", i))
		chain := kvtest.Chain(ops)
		t.Logf("checkout %d: %d round trips, %d one after another:\n%s", i, len(ops), len(chain), kvtest.Names(chain))
		if best == nil || len(chain) < len(best) {
			best, bestOps = chain, ops
		}
	}
	if len(best) > maxStoreRoundTrips {
		t.Fatalf("checkout waits for %d store round trips one after another, want at most %d; the chain:\n%s\nevery operation:\n%s",
			len(best), maxStoreRoundTrips, kvtest.Names(best), kvtest.Names(bestOps))
	}
}

// BenchmarkCheckoutStoreRoundTrips reports store-rt/checkout: the store round trips a
// checkout of a one-line cart waits for one after another (see TestCheckoutCriticalPath),
// and store-ops/checkout, all it makes.
func BenchmarkCheckoutStoreRoundTrips(b *testing.B) {
	c := newCritPath(b)
	chain, all := 0, 0
	i := 0
	for b.Loop() {
		ops := c.checkout(b, fmt.Sprintf("bench-%d", i))
		chain += len(kvtest.Chain(ops))
		all += len(ops)
		i++
	}
	b.ReportMetric(float64(chain)/float64(i), "store-rt/checkout")
	b.ReportMetric(float64(all)/float64(i), "store-ops/checkout")
}

// MarkShipped of an order this process recorded writes at the revision it recorded the
// order at: one round trip, no read first. A repeat, which changes nothing, is decided on a
// read of the store, never on what the process remembers.
func TestMarkShippedWritesWithoutReading(t *testing.T) {
	c := newCritPath(t)
	ctx := t.Context()
	if _, err := c.carts.Add(ctx, "shipper", cart.Item{ProductID: c.product, Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	ord, err := c.orders.Checkout(ctx, "key-shipper", orderstest.Request("shipper"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		ops    []string
		status string
	}{
		{[]string{"orders_orders.Update"}, orders.StatusShipped},
		{[]string{"orders_orders.Get"}, orders.StatusShipped},
	} {
		c.rec.Reset()
		shipped, err := c.orders.MarkShipped(ctx, ord.ID, "trk-1")
		if err != nil || shipped.Status != want.status || shipped.TrackingID != "trk-1" {
			t.Fatalf("MarkShipped = %+v, %v", shipped, err)
		}
		ops := c.rec.Reset()
		var names []string
		for _, op := range ops {
			names = append(names, op.Name)
		}
		if !slices.Equal(names, want.ops) {
			t.Errorf("MarkShipped made\n%s\nwant %v", kvtest.Names(ops), want.ops)
		}
	}
	if got, err := c.orders.Get(ctx, ord.ID); err != nil || got.Status != orders.StatusShipped || got.TrackingID != "trk-1" {
		t.Fatalf("the order in the store: %+v, %v", got, err)
	}
}
