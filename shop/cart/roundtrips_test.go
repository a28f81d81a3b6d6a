package cart_test

import (
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestRemoveBoughtInOneRoundTrip: checkout reads the cart and then removes what it bought;
// the removal is one write, at the revision the read saw. When another process changed the
// cart in between, the write is refused and made again after a read: the user's change stays.
func TestRemoveBoughtInOneRoundTrip(t *testing.T) {
	ctx := t.Context()
	svc, other, rec := countedCarts(t)
	if _, err := other.Add(ctx, "alice", cart.Item{ProductID: "p1", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	c, err := svc.RemoveBought(ctx, "alice", "ord-1", []cart.Item{{ProductID: "p1", Quantity: 1}})
	if err != nil || len(c.Items) != 1 || c.Items[0].Quantity != 1 {
		t.Fatalf("RemoveBought = %+v, %v", c, err)
	}
	if ops := rec.Reset(); len(ops) != 1 {
		t.Fatalf("RemoveBought after a Get made %d requests, want 1:\n%s", len(ops), kvtest.Names(ops))
	}

	// Another process adds to the cart: this one's memory is stale.
	if _, err := other.Add(ctx, "alice", cart.Item{ProductID: "p2", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	c, err = svc.RemoveBought(ctx, "alice", "ord-2", []cart.Item{{ProductID: "p1", Quantity: 1}})
	if err != nil || len(c.Items) != 1 || c.Items[0] != (cart.Item{ProductID: "p2", Quantity: 1}) {
		t.Fatalf("RemoveBought over a stale memory = %+v, %v; want p2 alone", c, err)
	}
	if ops := rec.Reset(); len(ops) != 3 {
		t.Fatalf("RemoveBought over a stale memory made %d requests, want 3 (refused write, read, write):\n%s", len(ops), kvtest.Names(ops))
	}
	// A repeat is decided on the store's value, not the remembered one: nothing more goes.
	c, err = svc.RemoveBought(ctx, "alice", "ord-2", []cart.Item{{ProductID: "p1", Quantity: 1}})
	if err != nil || len(c.Items) != 1 {
		t.Fatalf("repeated RemoveBought = %+v, %v", c, err)
	}
}

// TestAddForNewUserInOneRoundTrip: the first add of a user this process knows nothing of is
// one create-if-absent, not a read of the missing cart and then a write. When the cart
// exists after all (another process made it), the create is refused and the add merges: the
// other process's line stays.
func TestAddForNewUserInOneRoundTrip(t *testing.T) {
	ctx := t.Context()
	svc, other, rec := countedCarts(t)

	c, err := svc.Add(ctx, "bob", cart.Item{ProductID: "p1", Quantity: 2})
	if err != nil || len(c.Items) != 1 || c.Items[0] != (cart.Item{ProductID: "p1", Quantity: 2}) || c.UserID != "bob" {
		t.Fatalf("Add = %+v, %v", c, err)
	}
	if ops := rec.Reset(); len(ops) != 1 {
		t.Fatalf("Add for a new user made %d requests, want 1:\n%s", len(ops), kvtest.Names(ops))
	}

	if _, err := other.Add(ctx, "carol", cart.Item{ProductID: "p1", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	c, err = svc.Add(ctx, "carol", cart.Item{ProductID: "p2", Quantity: 3})
	want := []cart.Item{{ProductID: "p1", Quantity: 1}, {ProductID: "p2", Quantity: 3}}
	if err != nil || !slices.Equal(c.Items, want) {
		t.Fatalf("Add to a cart another process made = %+v, %v; want %v", c, err, want)
	}
	if ops := rec.Reset(); len(ops) != 3 {
		t.Fatalf("Add to a cart another process made made %d requests, want 3 (refused create, read, write):\n%s", len(ops), kvtest.Names(ops))
	}
	if got, err := other.Get(ctx, "carol"); err != nil || !slices.Equal(got.Items, want) {
		t.Fatalf("stored cart = %+v, %v; want %v", got, err, want)
	}
}

// countedCarts returns two cart services over one JetStream bucket, as two processes would
// have: svc's requests counted by rec, other's not.
func countedCarts(t *testing.T) (svc, other cart.Service, rec *kvtest.Recorder) {
	t.Helper()
	store := natsjstest.New(t).Bucket(t, "carts")
	rec = kvtest.NewRecorder(0)
	return cart.New(rec.Bucket("carts", store)), cart.New(store), rec
}
