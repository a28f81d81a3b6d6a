package orders_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// lostPivotSagas is the sagas bucket whose first write of a record marked charged (the
// pivot) is stored but answered with a timeout, as when the store's acknowledgement comes
// too late: the checkout cannot tell whether its record says charged. With stayDown, every
// update and delete after it times out too, without being stored, until down is cleared.
type lostPivotSagas struct {
	kv.Bucket
	stayDown bool
	lost     atomic.Bool
	down     atomic.Bool
}

func (b *lostPivotSagas) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	timeout := fmt.Errorf("update %s: no acknowledgement: %w", key, context.DeadlineExceeded)
	if b.down.Load() {
		return 0, timeout
	}
	newRev, err := b.Bucket.Update(ctx, key, value, rev, opts...)
	var rec struct {
		State string `json:"state"`
	}
	if err == nil && json.Unmarshal(value, &rec) == nil && rec.State == "charged" && b.lost.CompareAndSwap(false, true) {
		b.down.Store(b.stayDown)
		return 0, timeout
	}
	return newRev, err
}

func (b *lostPivotSagas) Delete(ctx context.Context, key string, rev uint64) error {
	if b.down.Load() {
		return fmt.Errorf("delete %s: no acknowledgement: %w", key, context.DeadlineExceeded)
	}
	return b.Bucket.Delete(ctx, key, rev)
}

// sagaOrderID returns the order ID of the saga record of key.
func sagaOrderID(t *testing.T, sagas kv.Bucket, key string) string {
	t.Helper()
	rec, _, err := kv.Get[struct {
		OrderID string `json:"order_id"`
	}](t.Context(), sagas, key)
	if err != nil {
		t.Fatalf("saga record %s: %v", key, err)
	}
	return rec.OrderID
}

// TestPivotOutcomeUnknownNeverShipsARefundedOrder: the pivot's write lands but its answer
// is lost, so the checkout compensates: it refunds the charge, and the release of the stock
// fails (inventory unreachable). The record says charged all the same; whoever finishes the
// checkout next (recovery, or the customer's retry) must not roll it forward to a paid
// order whose charge was refunded: every order recorded has its charge captured, and a
// checkout whose charge was refunded ends with its stock back on sale.
func TestPivotOutcomeUnknownNeverShipsARefundedOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		out := &outage{}
		out.down.Store(true) // releases fail; reserving and committing work
		deps := w.deps()
		deps.Inventory = unreachableInventory{w.inventory, out}
		stores := w.stores
		stores.Sagas = &lostPivotSagas{Bucket: w.stores.Sagas}
		o := orders.New(stores, deps)
		if _, err := o.Checkout(ctx, "key-1", orderstest.Request(user)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Checkout: %v, want the pivot's timeout", err)
		}
		orderID := sagaOrderID(t, w.stores.Sagas, "key-1")
		out.down.Store(false)

		// The monolith restarted: it takes over every checkout left unfinished.
		restarted := w.orders(w.deps())
		if _, err := restarted.Recover(ctx, 0); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		ch, err := w.payments.Get(ctx, orderID)
		if err != nil {
			t.Fatalf("charge of %s: %v", orderID, err)
		}
		ord, oerr := restarted.Get(ctx, orderID)
		switch {
		case oerr == nil && ch.Status != payments.StatusCaptured:
			t.Errorf("order %s recorded %s with its charge %s: the shop ships what nobody paid for", orderID, ord.Status, ch.Status)
		case oerr != nil && !errors.Is(oerr, orders.ErrNotFound):
			t.Fatalf("order %s: %v", orderID, oerr)
		case oerr != nil && ch.Status == payments.StatusCaptured:
			t.Errorf("charge of %s captured, but no order was recorded", orderID)
		}
		if s := w.stock(t, product); s.Reserved != 0 || s.Available+s.Sold != 5 || (oerr != nil && s.Sold != 0) {
			t.Errorf("stock: %+v, want nothing reserved, and sold only for a recorded order", s)
		}
		if n, err := restarted.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover again: %d %v, want nothing left", n, err)
		}
	})
}

// TestPivotOutcomeUnknownLeavesTheCheckoutToRecovery: the pivot's write lands but answers a
// timeout, and the store answers no write after it, so the checkout cannot mark its record
// compensating: it undoes nothing (the record says charged). Once the store is back,
// recovery rolls the checkout forward to a paid order, its charge captured, its stock sold.
func TestPivotOutcomeUnknownLeavesTheCheckoutToRecovery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		sagas := &lostPivotSagas{Bucket: w.stores.Sagas, stayDown: true}
		stores := w.stores
		stores.Sagas = sagas
		o := orders.New(stores, w.deps())
		if _, err := o.Checkout(ctx, "key-1", orderstest.Request(user)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Checkout: %v, want the pivot's timeout", err)
		}
		orderID := sagaOrderID(t, w.stores.Sagas, "key-1")
		if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusCaptured {
			t.Errorf("charge after the pivot's timeout: %+v %v, want captured, not undone", ch, err)
		}
		if s := w.stock(t, product); s.Reserved != 2 {
			t.Errorf("stock after the pivot's timeout: %+v, want 2 still reserved", s)
		}
		sagas.down.Store(false)

		restarted := w.orders(w.deps())
		if n, err := restarted.Recover(ctx, 0); n != 1 || err != nil {
			t.Fatalf("Recover: %d %v, want 1 handled", n, err)
		}
		if ord, err := restarted.Get(ctx, orderID); err != nil || ord.Status != orders.StatusPaid {
			t.Errorf("order %s: %+v %v, want paid", orderID, ord, err)
		}
		if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusCaptured {
			t.Errorf("charge: %+v %v, want captured", ch, err)
		}
		if s := w.stock(t, product); s.Available != 3 || s.Reserved != 0 || s.Sold != 2 {
			t.Errorf("stock: %+v, want 2 sold", s)
		}
		if state, err := restarted.SagaState(ctx, "key-1"); err != nil || state != orders.StateDone {
			t.Errorf("saga record: %q %v, want done", state, err)
		}
	})
}
