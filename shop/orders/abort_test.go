package orders_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// TestAbortedCheckoutIsNeverRolledForward: a charged checkout's Commit finds its reservation
// lapsed (the Abort), refunds the charge, and fails to release the stock (inventory
// unreachable), so it lets the record go still saying charged. The next comer's Commit is
// served by an inventory whose clock is a little behind, to which the reservation has not
// lapsed yet: it must not roll the checkout forward to a paid order whose charge was refunded.
func TestAbortedCheckoutIsNeverRolledForward(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		g := newGate()
		out := &outage{}
		deps := w.deps()
		deps.Payments = gatedPayments{w.payments, g}
		deps.Inventory = unreachableInventory{w.inventory, out}
		res := checkoutAsync(ctx, w.orders(deps), "key-1", orderstest.Request(user))
		orderID := <-g.entered
		skew := 5*time.Minute + time.Second
		w.invClock.Advance(skew) // the reservation lapses, to this inventory
		out.down.Store(true)     // and its release fails
		close(g.open)
		if r := <-res; r.err == nil {
			t.Fatalf("Checkout: %+v, want the lapsed reservation's error", r.ord)
		}
		if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusRefunded {
			t.Fatalf("charge after the Abort: %+v %v, want refunded", ch, err)
		}
		w.invClock.Advance(-skew) // the next Commit is served by a clock behind
		out.down.Store(false)
		restarted := w.orders(w.deps())
		if n, err := restarted.Recover(ctx, time.Hour); n != 1 || err != nil {
			t.Fatalf("Recover: %d %v, want 1 handled", n, err)
		}
		if ord, err := restarted.Get(ctx, orderID); !errors.Is(err, orders.ErrNotFound) {
			ch, _ := w.payments.Get(ctx, orderID)
			t.Errorf("order %s: %+v %v with its charge %s, want none: the shop ships what nobody paid for", orderID, ord, err, ch.Status)
		}
		if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusRefunded {
			t.Errorf("charge: %+v %v, want refunded", ch, err)
		}
		if s := w.stock(t, product); s.Available != 5 || s.Reserved != 0 || s.Sold != 0 {
			t.Errorf("stock: %+v, want all 5 available", s)
		}
		if items := w.cartItems(t, user); len(items) != 1 {
			t.Errorf("cart: %+v, want unchanged", items)
		}
		if n, err := restarted.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover again: %d %v, want nothing left", n, err)
		}
	})
}
