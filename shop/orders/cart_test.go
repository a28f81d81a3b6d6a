package orders_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
)

// These tests change the cart while a checkout runs (paused between two of its steps, as a
// slow peer or a frozen process would leave it) and check that the checkout takes out of
// the cart exactly what it bought: the added lines stay, and so does what was added to a
// line it bought, whoever finishes the checkout (the checkout itself, recovery, a repeat of
// the last steps by the checkout that recovery overtook).

// product adds a product of its own with stock units available.
func (w *world) product(t *testing.T, stock int64) string {
	t.Helper()
	id := ids.New("p", time.Now())
	if _, err := w.catalog.Upsert(t.Context(), catalog.Product{ID: id, Name: "Lamp", Price: money.Cents(300), WeightGrams: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.inventory.Add(t.Context(), id, stock); err != nil {
		t.Fatal(err)
	}
	return id
}

func (w *world) add(t *testing.T, user, product string, n int) {
	t.Helper()
	if _, err := w.carts.Add(t.Context(), user, cart.Item{ProductID: product, Quantity: n}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) expectCart(t *testing.T, user string, want ...cart.Item) {
	t.Helper()
	if want == nil {
		want = []cart.Item{}
	}
	if got := w.cartItems(t, user); !slices.Equal(got, want) {
		t.Errorf("cart: %+v, want %+v", got, want)
	}
}

// expectBought checks that orderID is recorded with the 2 units of product the checkout
// read from the cart, and that those are sold.
func (w *world) expectBought(t *testing.T, o *orders.Orders, orderID, product string) {
	t.Helper()
	ord, err := o.Get(t.Context(), orderID)
	if err != nil {
		t.Fatalf("order %s: %v", orderID, err)
	}
	if len(ord.Items) != 1 || ord.Items[0].ProductID != product || ord.Items[0].Quantity != 2 {
		t.Errorf("order items %+v, want the 2 of %s the cart held at checkout", ord.Items, product)
	}
	if s := w.stock(t, product); s.Sold != 2 || s.Reserved != 0 {
		t.Errorf("stock of %s: %+v, want 2 sold, none reserved", product, s)
	}
}

// TestAddDuringCheckoutStays: while a checkout charges the card, the user adds a product and
// one more of the product being bought; the checkout takes only the 2 units it bought.
func TestAddDuringCheckoutStays(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		w := newWorld(t, be)
		product, user := w.shop(t)
		other := w.product(t, 5)
		g := newGate()
		deps := w.deps()
		deps.Payments = gatedPayments{w.payments, g}
		o := w.orders(deps)
		res := checkoutAsync(t.Context(), o, "key-1", orderstest.Request(user))
		orderID := <-g.entered // the cart is read and priced, the stock reserved

		w.add(t, user, other, 1)
		w.add(t, user, product, 1)
		close(g.open)
		r := <-res
		if r.err != nil || r.ord.ID != orderID {
			t.Fatalf("Checkout: %+v %v, want order %s", r.ord, r.err, orderID)
		}
		w.expectBought(t, o, orderID, product)
		w.expectCart(t, user, cart.Item{ProductID: product, Quantity: 1}, cart.Item{ProductID: other, Quantity: 1})

		// The replay answers from the key and takes nothing more.
		if again, err := o.Checkout(t.Context(), "key-1", orderstest.Request(user)); err != nil || again.ID != orderID {
			t.Fatalf("replay: %+v %v, want order %s", again, err, orderID)
		}
		w.expectCart(t, user, cart.Item{ProductID: product, Quantity: 1}, cart.Item{ProductID: other, Quantity: 1})
	})
}

// TestRecoveryKeepsWhatWasAddedDuringCheckout: a checkout freezes after its charge; the user
// adds to the cart; recovery finishes the checkout; the user adds more; then the frozen
// checkout wakes up and repeats its last steps. Only the 2 units bought ever leave the cart.
func TestRecoveryKeepsWhatWasAddedDuringCheckout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		other := w.product(t, 5)
		g := newGate()
		deps := w.deps()
		deps.Inventory = gatedInventory{w.inventory, g}
		frozen := checkoutAsync(ctx, w.orders(deps), "key-1", orderstest.Request(user))
		orderID := <-g.entered // charged; stopped before its commit
		w.add(t, user, product, 3)
		w.add(t, user, other, 1)

		restarted := w.orders(w.deps())
		if n, err := restarted.Recover(ctx, 0); n != 1 || err != nil {
			t.Fatalf("Recover: %d %v, want 1 handled", n, err)
		}
		w.expectBought(t, restarted, orderID, product)
		w.expectCart(t, user, cart.Item{ProductID: product, Quantity: 3}, cart.Item{ProductID: other, Quantity: 1})

		w.add(t, user, product, 2)
		close(g.open) // the frozen checkout repeats commit, record, removal: all no-ops
		if r := <-frozen; r.err != nil || r.ord.ID != orderID {
			t.Fatalf("frozen checkout resumed: %+v %v, want order %s", r.ord, r.err, orderID)
		}
		w.expectBought(t, restarted, orderID, product)
		w.expectCart(t, user, cart.Item{ProductID: product, Quantity: 5}, cart.Item{ProductID: other, Quantity: 1})
	})
}

// TestRunRecoveryAfterRemovalKeepsLaterAdds: a checkout took its items out of the cart and
// stopped before announcing the order (its publish failed, as a crash there would leave
// it). The user fills the cart again; the background recovery repeats the removal along with
// the rest and takes nothing of the new items.
func TestRunRecoveryAfterRemovalKeepsLaterAdds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		w, paid, product, user, orderID := failPublish(t, be)
		w.expectCart(t, user)
		w.add(t, user, product, 2)

		o := w.orders(w.deps())
		loopCtx, stop := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			o.RunRecovery(loopCtx, 5*time.Millisecond, 0)
		}()
		paid.waitOne(t, orderID)    // published by recovery, after its removal
		waitSagaDone(t, o, "key-1") // the event goes before the record says done
		stop()
		<-done
		if n, err := o.Recover(t.Context(), 0); n != 0 || err != nil {
			t.Errorf("Recover: %d %v, want nothing left", n, err)
		}
		w.expectBought(t, o, orderID, product)
		w.expectCart(t, user, cart.Item{ProductID: product, Quantity: 2})
	})
}

// waitSagaDone waits, bounded, for the saga record of key to say the checkout is done.
func waitSagaDone(t *testing.T, o *orders.Orders, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, err := o.SagaState(t.Context(), key)
		if err == nil && state == orders.StateDone {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("saga %s after 10s: %q %v, want done", key, state, err)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline
	}
}
