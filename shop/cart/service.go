//go:build !mitosis_group || mitosis_cart

// Part of the implementation: only the binaries that run cart link it (bounded.Group.BuildTags).

package cart

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// service keeps one bucket key per user, the cart as JSON. Adds and removals are
// read-decide-write through kv.Mutate, so concurrent changes of one cart (two browser tabs,
// a retried request, a checkout finishing) merge instead of overwriting each other.
type service struct {
	carts kv.Bucket
}

// stored is a cart as the bucket holds it: the cart, and the orders whose items were taken
// out of it, oldest first, at most RemovalsRemembered of them. A removal and the note that
// it was made are one write, so a repeat of it finds the note and changes nothing, whenever
// it comes. For that the notes outlive the items: a cart emptied by a checkout, or by Clear,
// stays in the bucket as long as it has notes (a few dozen bytes per buyer, where a deleted
// cart leaves JetStream's delete marker of much the same size).
type stored struct {
	Cart
	Removed []string `json:"removed_orders,omitempty"`
}

// cachedCarts is how many carts the service remembers the revision of (kv.Cached), so that
// a checkout's RemoveBought, which follows its read of the cart, writes in one round trip:
// the carts of the users checking out at once, with plenty to spare.
const cachedCarts = 8192

// New returns the cart service over the carts bucket.
func New(carts kv.Bucket) Service {
	return &service{carts: kv.Cached(carts, cachedCarts)}
}

// Get returns the user's cart, or an empty one.
func (s *service) Get(ctx context.Context, userID string) (Cart, error) {
	if err := ids.Check("user_id", userID); err != nil {
		return Cart{}, err
	}
	c, _, err := kv.Get[stored](ctx, s.carts, userID)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return empty(userID), nil
	case err != nil:
		return Cart{}, fmt.Errorf("get cart of %s: %w", userID, err)
	}
	return normalize(c.Cart, userID), nil
}

// Add merges item into the user's cart.
func (s *service) Add(ctx context.Context, userID string, item Item) (Cart, error) {
	if err := ids.Check("user_id", userID); err != nil {
		return Cart{}, err
	}
	if err := ids.Check("product_id", item.ProductID); err != nil {
		return Cart{}, err
	}
	if item.Quantity < 1 || item.Quantity > MaxQuantity {
		return Cart{}, validation.Errorf("quantity", "must be 1 to %d", MaxQuantity)
	}
	if c, created, err := s.create(ctx, userID, item); created || err != nil {
		return c, err
	}
	c, err := kv.Mutate(ctx, s.carts, userID, func(c *stored, _ bool) error {
		c.UserID = userID
		for i := range c.Items {
			if c.Items[i].ProductID != item.ProductID {
				continue
			}
			if total := c.Items[i].Quantity + item.Quantity; total > MaxQuantity {
				// Returning an error writes nothing: the cart stays as it was.
				return validation.Errorf("quantity", "%s would have %d units in the cart; a line holds at most %d",
					item.ProductID, total, MaxQuantity)
			}
			c.Items[i].Quantity += item.Quantity
			return nil
		}
		c.Items = append(c.Items, item) // new lines go last: items keep first-added order
		return nil
	})
	if err != nil {
		if errors.Is(err, validation.ErrInvalid) {
			return Cart{}, err
		}
		return Cart{}, fmt.Errorf("add %s to cart of %s: %w", item.ProductID, userID, err)
	}
	return normalize(c.Cart, userID), nil
}

// create writes the cart of a user this process knows nothing of (most often a new buyer)
// with item as its one line, in one round trip: a create-if-absent, where kv.Mutate would
// read the missing key first. When the user has a cart after all (ErrExists), or the cache
// remembers one, it writes nothing and says so: Add merges through kv.Mutate as for any
// cart, at the cost of the read this skipped.
func (s *service) create(ctx context.Context, userID string, item Item) (Cart, bool, error) {
	if _, _, known := kv.Peek[struct{}](s.carts, userID); known {
		return Cart{}, false, nil
	}
	c := stored{Cart: Cart{UserID: userID, Items: []Item{item}}}
	data, err := kv.EncodeBuffer(&c)
	if err != nil {
		return Cart{}, false, fmt.Errorf("add %s to cart of %s: encode: %w", item.ProductID, userID, err)
	}
	_, err = s.carts.Create(ctx, userID, data.Bytes())
	data.Free()
	switch {
	case err == nil:
		return c.Cart, true, nil
	case errors.Is(err, kv.ErrExists):
		return Cart{}, false, nil
	default:
		return Cart{}, false, fmt.Errorf("add %s to cart of %s: %w", item.ProductID, userID, err)
	}
}

// Clear empties the user's cart; clearing an empty cart is not an error. A cart with notes
// of removals keeps them (see stored); any other is deleted.
func (s *service) Clear(ctx context.Context, userID string) error {
	if err := ids.Check("user_id", userID); err != nil {
		return err
	}
	// Few writers ever touch one cart at once, so a handful of attempts is plenty.
	for range 10 {
		c, rev, err := kv.Get[stored](ctx, s.carts, userID)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("clear cart of %s: %w", userID, err)
		case len(c.Removed) == 0:
			err = s.carts.Delete(ctx, userID, rev)
		case len(c.Items) == 0:
			return nil
		default:
			c.Items = nil
			var data []byte
			if data, err = kv.Encode(c); err != nil {
				return fmt.Errorf("clear cart of %s: encode: %w", userID, err)
			}
			_, err = s.carts.Update(ctx, userID, data, rev)
		}
		if !errors.Is(err, kv.ErrConflict) {
			if err != nil {
				return fmt.Errorf("clear cart of %s: %w", userID, err)
			}
			return nil
		}
	}
	return fmt.Errorf("clear cart of %s: %w", userID, kv.ErrConflict)
}

// RemoveBought subtracts the order's items from the cart and notes the order, in one write.
func (s *service) RemoveBought(ctx context.Context, userID, orderID string, items []Item) (Cart, error) {
	if err := ids.Check("user_id", userID); err != nil {
		return Cart{}, err
	}
	if err := ids.Check("order_id", orderID); err != nil {
		return Cart{}, err
	}
	if len(items) == 0 {
		return Cart{}, validation.Errorf("items", "an order buys at least one item")
	}
	for _, it := range items {
		if err := ids.Check("product_id", it.ProductID); err != nil {
			return Cart{}, err
		}
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			return Cart{}, validation.Errorf("quantity", "must be 1 to %d", MaxQuantity)
		}
	}
	c, err := kv.Mutate(ctx, s.carts, userID, func(c *stored, _ bool) error {
		if slices.Contains(c.Removed, orderID) {
			return kv.ErrSkip // removed already: a repeat takes nothing more
		}
		c.UserID = userID
		for _, it := range items {
			i := slices.IndexFunc(c.Items, func(l Item) bool { return l.ProductID == it.ProductID })
			if i < 0 {
				continue // gone from the cart meanwhile: nothing to take
			}
			if c.Items[i].Quantity -= it.Quantity; c.Items[i].Quantity <= 0 {
				c.Items = slices.Delete(c.Items, i, i+1)
			}
		}
		// Noted even when there was nothing to take (the user cleared the cart meanwhile), so
		// that a repeat does not take what the user adds afterwards.
		c.Removed = append(c.Removed, orderID)
		if extra := len(c.Removed) - RemovalsRemembered; extra > 0 {
			c.Removed = slices.Delete(c.Removed, 0, extra)
		}
		return nil
	})
	if err != nil {
		return Cart{}, fmt.Errorf("remove order %s from cart of %s: %w", orderID, userID, err)
	}
	return normalize(c.Cart, userID), nil
}

func empty(userID string) Cart { return Cart{UserID: userID, Items: []Item{}} }

// normalize makes a stored cart what callers are promised: its user's ID and a non-nil list.
func normalize(c Cart, userID string) Cart {
	c.UserID = userID
	if c.Items == nil {
		c.Items = []Item{}
	}
	return c
}
