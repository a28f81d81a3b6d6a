// Package carttest is the conformance suite of cart.Service, written once against the
// interface and run against every way of getting one: the implementation over the memory
// store and over JetStream, and (in services/) a gRPC client talking to a real server.
package carttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Run runs the suite. newService returns a cart service over an empty store.
func Run(t *testing.T, newService func(t *testing.T) cart.Service) {
	t.Run("UnknownUserHasEmptyCart", func(t *testing.T) {
		svc := newService(t)
		c, err := svc.Get(context.Background(), "nobody")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertCart(t, c, "nobody")
	})

	t.Run("AddMergesAndKeepsFirstAddedOrder", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		steps := []struct {
			add  cart.Item
			want []cart.Item
		}{
			{item("sku-0003", 2), []cart.Item{item("sku-0003", 2)}},
			{item("sku-0001", 1), []cart.Item{item("sku-0003", 2), item("sku-0001", 1)}},
			{item("sku-0003", 5), []cart.Item{item("sku-0003", 7), item("sku-0001", 1)}},
			{item("sku-0002", 99), []cart.Item{item("sku-0003", 7), item("sku-0001", 1), item("sku-0002", 99)}},
		}
		for _, step := range steps {
			c, err := svc.Add(ctx, "alice", step.add)
			if err != nil {
				t.Fatalf("Add %+v: %v", step.add, err)
			}
			assertCart(t, c, "alice", step.want...)
		}
		c, err := svc.Get(ctx, "alice")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertCart(t, c, "alice", steps[len(steps)-1].want...)
	})

	t.Run("CartsAreSeparate", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		mustAdd(t, svc, "alice", cart.Item{ProductID: "sku-0001", Quantity: 1})
		mustAdd(t, svc, "bob", cart.Item{ProductID: "sku-0002", Quantity: 3})
		for user, want := range map[string][]cart.Item{
			"alice": {item("sku-0001", 1)},
			"bob":   {item("sku-0002", 3)},
			"carol": nil,
		} {
			c, err := svc.Get(ctx, user)
			if err != nil {
				t.Fatalf("Get %s: %v", user, err)
			}
			assertCart(t, c, user, want...)
		}
	})

	t.Run("LineOverMaxIsRejectedAndCartUnchanged", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		mustAdd(t, svc, "alice", cart.Item{ProductID: "sku-0001", Quantity: 60})
		mustAdd(t, svc, "alice", cart.Item{ProductID: "sku-0002", Quantity: 1})
		_, err := svc.Add(ctx, "alice", cart.Item{ProductID: "sku-0001", Quantity: 40})
		assertInvalid(t, err, "quantity")
		c, err := svc.Get(ctx, "alice")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertCart(t, c, "alice", cart.Item{ProductID: "sku-0001", Quantity: 60}, cart.Item{ProductID: "sku-0002", Quantity: 1})
		// Up to exactly the max is fine.
		c = mustAdd(t, svc, "alice", cart.Item{ProductID: "sku-0001", Quantity: 39})
		assertCart(t, c, "alice", cart.Item{ProductID: "sku-0001", Quantity: 99}, cart.Item{ProductID: "sku-0002", Quantity: 1})
	})

	t.Run("BadInput", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		good := cart.Item{ProductID: "sku-0001", Quantity: 1}
		for _, tc := range []struct {
			name  string
			user  string
			item  cart.Item
			field string
		}{
			{"empty user", "", good, "user_id"},
			{"user too long", strings.Repeat("u", 129), good, "user_id"},
			{"empty product", "alice", cart.Item{Quantity: 1}, "product_id"},
			{"product too long", "alice", cart.Item{ProductID: strings.Repeat("p", 129), Quantity: 1}, "product_id"},
			// 43 × "用" is 43 characters but 129 bytes: the limit counts bytes, as every
			// context does (ids.Valid), so that a cart never holds what checkout refuses.
			{"user of 129 bytes", strings.Repeat("用", 43), good, "user_id"},
			{"user with a control character", "al\tice", good, "user_id"},
			{"user not UTF-8", "al\xffice", good, "user_id"},
			{"zero quantity", "alice", cart.Item{ProductID: "sku-0001"}, "quantity"},
			{"negative quantity", "alice", cart.Item{ProductID: "sku-0001", Quantity: -3}, "quantity"},
			{"quantity over max", "alice", cart.Item{ProductID: "sku-0001", Quantity: 100}, "quantity"},
		} {
			_, err := svc.Add(ctx, tc.user, tc.item)
			if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != tc.field {
				t.Errorf("%s: Add error = %v (field %q), want a validation error on %q",
					tc.name, err, validation.FieldOf(err), tc.field)
			}
		}
		if _, err := svc.Get(ctx, ""); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "user_id" {
			t.Errorf("Get empty user: %v, want a validation error on user_id", err)
		}
		if err := svc.Clear(ctx, strings.Repeat("u", 129)); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != "user_id" {
			t.Errorf("Clear with a long user id: %v, want a validation error on user_id", err)
		}
		c, err := svc.Get(ctx, "alice")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertCart(t, c, "alice")
	})

	t.Run("LimitsAreAccepted", func(t *testing.T) {
		svc := newService(t)
		user := strings.Repeat("ü", 64) // 128 bytes
		product := strings.Repeat("p", 128)
		c := mustAdd(t, svc, user, cart.Item{ProductID: product, Quantity: cart.MaxQuantity})
		assertCart(t, c, user, cart.Item{ProductID: product, Quantity: cart.MaxQuantity})
		// User IDs are opaque: characters that mean something to a store are just characters.
		odd := "user.with/odd chars*>"
		c = mustAdd(t, svc, odd, cart.Item{ProductID: "sku-0001", Quantity: 1})
		assertCart(t, c, odd, cart.Item{ProductID: "sku-0001", Quantity: 1})
		got, err := svc.Get(context.Background(), odd)
		if err != nil {
			t.Fatalf("Get %q: %v", odd, err)
		}
		assertCart(t, got, odd, cart.Item{ProductID: "sku-0001", Quantity: 1})
	})

	t.Run("ClearEmptiesTheCart", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		mustAdd(t, svc, "alice", cart.Item{ProductID: "sku-0001", Quantity: 2})
		mustAdd(t, svc, "bob", cart.Item{ProductID: "sku-0001", Quantity: 2})
		if err := svc.Clear(ctx, "alice"); err != nil {
			t.Fatalf("Clear: %v", err)
		}
		c, err := svc.Get(ctx, "alice")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertCart(t, c, "alice")
		if err := svc.Clear(ctx, "alice"); err != nil {
			t.Fatalf("Clear of an empty cart: %v", err)
		}
		if err := svc.Clear(ctx, "nobody"); err != nil {
			t.Fatalf("Clear of an unknown user: %v", err)
		}
		// Other carts are untouched, and a cleared cart fills again from scratch.
		b, err := svc.Get(ctx, "bob")
		if err != nil {
			t.Fatalf("Get bob: %v", err)
		}
		assertCart(t, b, "bob", cart.Item{ProductID: "sku-0001", Quantity: 2})
		c = mustAdd(t, svc, "alice", cart.Item{ProductID: "sku-0005", Quantity: 1})
		assertCart(t, c, "alice", cart.Item{ProductID: "sku-0005", Quantity: 1})
	})

	t.Run("RemoveBoughtTakesOnlyWhatWasBought", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		for _, it := range []cart.Item{item("a", 3), item("b", 1), item("c", 2), item("d", 5)} {
			mustAdd(t, svc, "alice", it)
		}
		// The order bought all of a and c, 2 of d (the user has added 3 since), and e, which
		// the cart no longer holds; b was added after the order read the cart.
		bought := []cart.Item{item("a", 3), item("c", 2), item("d", 2), item("e", 1)}
		c, err := svc.RemoveBought(ctx, "alice", "ord-1", bought)
		if err != nil {
			t.Fatalf("RemoveBought: %v", err)
		}
		want := []cart.Item{item("b", 1), item("d", 3)}
		assertCart(t, c, "alice", want...)
		got, err := svc.Get(ctx, "alice")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		assertCart(t, got, "alice", want...)
		// Other carts are untouched.
		mustAdd(t, svc, "bob", item("a", 1))
		if _, err := svc.RemoveBought(ctx, "alice", "ord-2", []cart.Item{item("b", 1)}); err != nil {
			t.Fatalf("RemoveBought: %v", err)
		}
		assertGet(t, svc, "alice", item("d", 3))
		assertGet(t, svc, "bob", item("a", 1))
		// Removing everything leaves an empty cart, which fills again as any other.
		c, err = svc.RemoveBought(ctx, "alice", "ord-3", []cart.Item{item("d", 3)})
		if err != nil {
			t.Fatalf("RemoveBought of the rest: %v", err)
		}
		assertCart(t, c, "alice")
		assertGet(t, svc, "alice")
		mustAdd(t, svc, "alice", item("a", 1))
		assertGet(t, svc, "alice", item("a", 1))
	})

	t.Run("RemoveBoughtTwiceRemovesOnce", func(t *testing.T) {
		// A saga step retried, or a recovery finishing a checkout that did it already before
		// it crashed: the repeat takes nothing, also of what was added in between.
		svc := newService(t)
		ctx := context.Background()
		mustAdd(t, svc, "alice", item("a", 2))
		bought := []cart.Item{item("a", 2)}
		if _, err := svc.RemoveBought(ctx, "alice", "ord-1", bought); err != nil {
			t.Fatalf("RemoveBought: %v", err)
		}
		mustAdd(t, svc, "alice", item("a", 2))
		c, err := svc.RemoveBought(ctx, "alice", "ord-1", bought)
		if err != nil {
			t.Fatalf("RemoveBought repeated: %v", err)
		}
		assertCart(t, c, "alice", item("a", 2))
		// Also when the user cleared the cart and filled it again in between.
		if err := svc.Clear(ctx, "alice"); err != nil {
			t.Fatalf("Clear: %v", err)
		}
		assertGet(t, svc, "alice")
		mustAdd(t, svc, "alice", item("a", 4))
		if _, err := svc.RemoveBought(ctx, "alice", "ord-1", bought); err != nil {
			t.Fatalf("RemoveBought after Clear: %v", err)
		}
		assertGet(t, svc, "alice", item("a", 4))
		// A removal that found an empty cart is remembered all the same.
		if _, err := svc.RemoveBought(ctx, "bob", "ord-2", bought); err != nil {
			t.Fatalf("RemoveBought from an empty cart: %v", err)
		}
		assertGet(t, svc, "bob")
		mustAdd(t, svc, "bob", item("a", 2))
		if _, err := svc.RemoveBought(ctx, "bob", "ord-2", bought); err != nil {
			t.Fatalf("RemoveBought repeated: %v", err)
		}
		assertGet(t, svc, "bob", item("a", 2))
		// Up to RemovalsRemembered later orders, the first one's repeat still takes nothing.
		for i := range cart.RemovalsRemembered - 1 {
			if _, err := svc.RemoveBought(ctx, "alice", fmt.Sprintf("later-%d", i), []cart.Item{item("z", 1)}); err != nil {
				t.Fatalf("RemoveBought of a later order: %v", err)
			}
		}
		if _, err := svc.RemoveBought(ctx, "alice", "ord-1", bought); err != nil {
			t.Fatalf("RemoveBought repeated: %v", err)
		}
		assertGet(t, svc, "alice", item("a", 4))
	})

	t.Run("RemoveBoughtConcurrentWithAdds", func(t *testing.T) {
		// A checkout finishing while the user keeps adding: every add survives, the bought
		// units go once, whichever writer wins each race.
		svc := newService(t)
		ctx := context.Background()
		mustAdd(t, svc, "busy", item("a", 10))
		const adders, removers = 5, 5
		var wg sync.WaitGroup
		errs := make(chan error, adders+removers)
		for i := range adders {
			wg.Go(func() {
				if _, err := svc.Add(ctx, "busy", item("a", 1)); err != nil {
					errs <- fmt.Errorf("adder %d: %w", i, err)
				}
			})
		}
		for i := range removers {
			// Every order twice: the repeat must take nothing.
			wg.Go(func() {
				for range 2 {
					if _, err := svc.RemoveBought(ctx, "busy", fmt.Sprintf("ord-%d", i), []cart.Item{item("a", 2)}); err != nil {
						errs <- fmt.Errorf("remover %d: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		assertGet(t, svc, "busy", item("a", 10+adders-2*removers))
	})

	t.Run("RemoveBoughtBadInput", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		mustAdd(t, svc, "alice", item("a", 2))
		good := []cart.Item{item("a", 1)}
		for _, tc := range []struct {
			name, user, order string
			items             []cart.Item
			field             string
		}{
			{"empty user", "", "ord-1", good, "user_id"},
			{"user too long", strings.Repeat("u", 129), "ord-1", good, "user_id"},
			{"empty order", "alice", "", good, "order_id"},
			{"order too long", "alice", strings.Repeat("o", 129), good, "order_id"},
			{"order with a control character", "alice", "ord\n1", good, "order_id"},
			{"no items", "alice", "ord-1", nil, "items"},
			{"empty product", "alice", "ord-1", []cart.Item{item("a", 1), item("", 1)}, "product_id"},
			{"zero quantity", "alice", "ord-1", []cart.Item{item("a", 0)}, "quantity"},
			{"quantity over max", "alice", "ord-1", []cart.Item{item("a", cart.MaxQuantity+1)}, "quantity"},
		} {
			if _, err := svc.RemoveBought(ctx, tc.user, tc.order, tc.items); !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != tc.field {
				t.Errorf("%s: RemoveBought error = %v (field %q), want a validation error on %q",
					tc.name, err, validation.FieldOf(err), tc.field)
			}
		}
		// Nothing was removed, and ord-1 was not noted: it removes once it comes right.
		assertGet(t, svc, "alice", item("a", 2))
		if _, err := svc.RemoveBought(ctx, "alice", "ord-1", good); err != nil {
			t.Fatalf("RemoveBought: %v", err)
		}
		assertGet(t, svc, "alice", item("a", 1))
	})

	t.Run("ConcurrentAddsLoseNothing", func(t *testing.T) {
		svc := newService(t)
		ctx := context.Background()
		const writers, rounds = 10, 3
		var wg sync.WaitGroup
		errs := make(chan error, writers*rounds*2)
		for w := range writers {
			wg.Go(func() {
				for range rounds {
					// Everyone adds to one shared line, and each writer to its own.
					for _, item := range []cart.Item{
						{ProductID: "shared", Quantity: 1},
						{ProductID: fmt.Sprintf("own-%d", w), Quantity: 2},
					} {
						if _, err := svc.Add(ctx, "busy", item); err != nil {
							errs <- fmt.Errorf("writer %d adds %+v: %w", w, item, err)
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		c, err := svc.Get(ctx, "busy")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		got := map[string]int{}
		for _, it := range c.Items {
			if _, dup := got[it.ProductID]; dup {
				t.Errorf("%s has two lines", it.ProductID)
			}
			got[it.ProductID] = it.Quantity
		}
		want := map[string]int{"shared": writers * rounds}
		for w := range writers {
			want[fmt.Sprintf("own-%d", w)] = 2 * rounds
		}
		if len(got) != len(want) {
			t.Fatalf("cart has lines %v, want %v", got, want)
		}
		for id, q := range want {
			if got[id] != q {
				t.Errorf("%s: quantity %d, want %d (all lines: %v)", id, got[id], q, got)
			}
		}
	})
}

func mustAdd(t *testing.T, svc cart.Service, user string, item cart.Item) cart.Cart {
	t.Helper()
	c, err := svc.Add(context.Background(), user, item)
	if err != nil {
		t.Fatalf("Add %+v for %s: %v", item, user, err)
	}
	return c
}

// assertCart checks that c is user's cart holding exactly items, in order, as a non-nil list.
func assertCart(t *testing.T, c cart.Cart, user string, items ...cart.Item) {
	t.Helper()
	if c.UserID != user {
		t.Errorf("cart user = %q, want %q", c.UserID, user)
	}
	if c.Items == nil {
		t.Errorf("cart of %s has nil items, want a list", user)
	}
	if items == nil {
		items = []cart.Item{}
	}
	if !slices.Equal(c.Items, items) {
		t.Errorf("cart of %s = %+v, want %+v", user, c.Items, items)
	}
}

// assertGet checks that the stored cart of user holds exactly items.
func assertGet(t *testing.T, svc cart.Service, user string, items ...cart.Item) {
	t.Helper()
	c, err := svc.Get(context.Background(), user)
	if err != nil {
		t.Fatalf("Get %s: %v", user, err)
	}
	assertCart(t, c, user, items...)
}

func assertInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != field {
		t.Fatalf("error = %v (field %q), want a validation error on %q", err, validation.FieldOf(err), field)
	}
}

func item(productID string, quantity int) cart.Item {
	return cart.Item{ProductID: productID, Quantity: quantity}
}
