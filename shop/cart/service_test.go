package cart_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/cart/carttest"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

func TestMemory(t *testing.T) {
	carttest.Run(t, func(t *testing.T) cart.Service { return cart.New(kv.NewMemory()) })
}

func TestJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	carttest.Run(t, func(t *testing.T) cart.Service { return cart.New(srv.Bucket(t, "carts")) })
}

// TestRemovalNotesAreBounded reads the raw record: a cart remembers its latest
// RemovalsRemembered removals and no more, however many orders its user makes.
func TestRemovalNotesAreBounded(t *testing.T) {
	ctx := t.Context()
	b := kv.NewMemory()
	svc := cart.New(b)
	const orders = 3 * cart.RemovalsRemembered
	for i := range orders {
		if _, err := svc.Add(ctx, "alice", cart.Item{ProductID: "a", Quantity: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.RemoveBought(ctx, "alice", fmt.Sprintf("ord-%03d", i), []cart.Item{{ProductID: "a", Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	var rec struct {
		Removed []string `json:"removed_orders"`
	}
	e, err := b.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := orders - cart.RemovalsRemembered; i < orders; i++ {
		want = append(want, fmt.Sprintf("ord-%03d", i))
	}
	if !slices.Equal(rec.Removed, want) {
		t.Fatalf("the cart remembers %q, want the latest %d: %q", rec.Removed, cart.RemovalsRemembered, want)
	}
}
