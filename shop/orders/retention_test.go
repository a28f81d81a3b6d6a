package orders_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// waitGone polls b until key has no value.
func waitGone(t *testing.T, b kv.Bucket, key string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := b.Get(t.Context(), key)
		if errors.Is(err, kv.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after 15s", key)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// TestFinishedCheckoutsAreKeptForTheRetention: the record of a finished checkout answers
// replays of its key for the retention and then goes; the order stays; a replay past the
// retention is a new checkout. A checkout that has not finished keeps its record, however
// long it stays unfinished.
func TestFinishedCheckoutsAreKeptForTheRetention(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		deps := w.deps()
		deps.Retention = 2 * time.Second // short, and still ample for the replay within it
		o := w.orders(deps)

		// Another user's checkout freezes after its charge, before key-1 even starts.
		other := "other-" + user
		w.add(t, other, product, 1)
		g := newGate()
		frozenDeps := deps
		frozenDeps.Inventory = gatedInventory{w.inventory, g}
		frozen := checkoutAsync(ctx, w.orders(frozenDeps), "key-frozen", orderstest.Request(other))
		frozenID := <-g.entered

		req := orderstest.Request(user)
		ord, err := o.Checkout(ctx, "key-1", req)
		if err != nil {
			t.Fatalf("Checkout: %v", err)
		}
		if again, err := o.Checkout(ctx, "key-1", req); err != nil || again.ID != ord.ID {
			t.Fatalf("replay within the retention: %+v %v, want order %s", again, err, ord.ID)
		}
		waitGone(t, w.stores.Sagas, "key-1")

		if got, err := o.Get(ctx, ord.ID); err != nil || got.ID != ord.ID {
			t.Errorf("the order after its key's retention: %+v %v, want it kept", got, err)
		}
		if _, err := w.stores.Sagas.Get(ctx, "key-frozen"); err != nil {
			t.Errorf("the unfinished checkout's record after the retention: %v, want it kept", err)
		}
		// Past the retention the key is new: a checkout of the cart, empty since the order.
		if _, err := o.Checkout(ctx, "key-1", req); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "cart" {
			t.Errorf("replay past the retention with an empty cart: %v, want a validation error on cart", err)
		}
		w.add(t, user, product, 1)
		next, err := o.Checkout(ctx, "key-1", req)
		if err != nil || next.ID == ord.ID {
			t.Errorf("replay past the retention with a full cart: %+v %v, want a new order", next, err)
		}

		close(g.open)
		if r := <-frozen; r.err != nil || r.ord.ID != frozenID {
			t.Errorf("the frozen checkout: %+v %v, want order %s", r.ord, r.err, frozenID)
		}
	})
}

// TestDefaultRetentionIsOverADay reads the TTL that JetStream holds for a finished
// checkout's record written with the default retention: idempotency keys keep working for
// at least 24 hours.
func TestDefaultRetentionIsOverADay(t *testing.T) {
	srv := natsjstest.New(t)
	ctx := t.Context()
	const name = "retained_sagas"
	sagas, err := natsjs.OpenBucket(ctx, srv.JetStream(), natsjs.StoreConfig{}, name)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, backend{
		name: "JetStream",
		bucket: func(t testing.TB, b string) kv.Bucket {
			if b == "sagas" {
				return sagas
			}
			return srv.Bucket(t, b)
		},
		bus: func(t testing.TB) broker { return srv.Bus(t) },
	})
	_, user := w.shop(t)
	deps := w.deps()
	deps.Retention = 0
	if _, err := w.orders(deps).Checkout(ctx, "key-1", orderstest.Request(user)); err != nil {
		t.Fatalf("Checkout: %v", err)
	}
	got := srv.TTL(t, name, "key-1")
	if ttl, err := time.ParseDuration(got); err != nil || ttl < 24*time.Hour || ttl != orders.DefaultRetention {
		t.Fatalf("the finished record's TTL: %q (%v), want orders.DefaultRetention, at least 24h", got, err)
	}
}
