package cart_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// requests is a real bucket that counts the requests it passes on.
type requests struct {
	kv.Bucket
	n atomic.Int64
}

func (r *requests) Get(ctx context.Context, key string) (kv.Entry, error) {
	r.n.Add(1)
	return r.Bucket.Get(ctx, key)
}

func (r *requests) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	r.n.Add(1)
	return r.Bucket.Create(ctx, key, value, opts...)
}

func (r *requests) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	r.n.Add(1)
	return r.Bucket.Update(ctx, key, value, rev, opts...)
}

func (r *requests) Delete(ctx context.Context, key string, rev uint64) error {
	r.n.Add(1)
	return r.Bucket.Delete(ctx, key, rev)
}

// TestRemoveBoughtInOneRoundTrip: checkout reads the cart and then removes what it bought;
// the removal is one write, at the revision the read saw. When another process changed the
// cart in between, the write is refused and made again after a read: the user's change stays.
func TestRemoveBoughtInOneRoundTrip(t *testing.T) {
	ctx := t.Context()
	store := natsjstest.New(t).Bucket(t, "carts")
	counted := &requests{Bucket: store}
	svc, other := cart.New(counted), cart.New(store)
	if _, err := other.Add(ctx, "alice", cart.Item{ProductID: "p1", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	counted.n.Store(0)
	c, err := svc.RemoveBought(ctx, "alice", "ord-1", []cart.Item{{ProductID: "p1", Quantity: 1}})
	if err != nil || len(c.Items) != 1 || c.Items[0].Quantity != 1 {
		t.Fatalf("RemoveBought = %+v, %v", c, err)
	}
	if n := counted.n.Load(); n != 1 {
		t.Fatalf("RemoveBought after a Get made %d requests, want 1", n)
	}

	// Another process adds to the cart: this one's memory is stale.
	if _, err := other.Add(ctx, "alice", cart.Item{ProductID: "p2", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	counted.n.Store(0)
	c, err = svc.RemoveBought(ctx, "alice", "ord-2", []cart.Item{{ProductID: "p1", Quantity: 1}})
	if err != nil || len(c.Items) != 1 || c.Items[0] != (cart.Item{ProductID: "p2", Quantity: 1}) {
		t.Fatalf("RemoveBought over a stale memory = %+v, %v; want p2 alone", c, err)
	}
	if n := counted.n.Load(); n != 3 {
		t.Fatalf("RemoveBought over a stale memory made %d requests, want 3 (refused write, read, write)", n)
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
	store := natsjstest.New(t).Bucket(t, "carts")
	counted := &requests{Bucket: store}
	svc, other := cart.New(counted), cart.New(store)

	c, err := svc.Add(ctx, "bob", cart.Item{ProductID: "p1", Quantity: 2})
	if err != nil || len(c.Items) != 1 || c.Items[0] != (cart.Item{ProductID: "p1", Quantity: 2}) || c.UserID != "bob" {
		t.Fatalf("Add = %+v, %v", c, err)
	}
	if n := counted.n.Load(); n != 1 {
		t.Fatalf("Add for a new user made %d requests, want 1", n)
	}

	if _, err := other.Add(ctx, "carol", cart.Item{ProductID: "p1", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	counted.n.Store(0)
	c, err = svc.Add(ctx, "carol", cart.Item{ProductID: "p2", Quantity: 3})
	want := []cart.Item{{ProductID: "p1", Quantity: 1}, {ProductID: "p2", Quantity: 3}}
	if err != nil || !slices.Equal(c.Items, want) {
		t.Fatalf("Add to a cart another process made = %+v, %v; want %v", c, err, want)
	}
	if n := counted.n.Load(); n != 3 {
		t.Fatalf("Add to a cart another process made made %d requests, want 3 (refused create, read, write)", n)
	}
	if got, err := other.Get(ctx, "carol"); err != nil || !slices.Equal(got.Items, want) {
		t.Fatalf("stored cart = %+v, %v; want %v", got, err, want)
	}
}
