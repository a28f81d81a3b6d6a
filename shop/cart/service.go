package cart

import (
	"context"
	"errors"
	"fmt"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// service keeps one bucket key per user, the cart as JSON. Adds are read-decide-write through
// kv.Mutate, so concurrent adds to one cart (two browser tabs, a retried request) merge
// instead of overwriting each other.
type service struct {
	carts kv.Bucket
}

// New returns the cart service over the carts bucket.
func New(carts kv.Bucket) Service {
	return &service{carts: carts}
}

// Get returns the user's cart, or an empty one.
func (s *service) Get(ctx context.Context, userID string) (Cart, error) {
	if err := ids.Check("user_id", userID); err != nil {
		return Cart{}, err
	}
	c, _, err := kv.Get[Cart](ctx, s.carts, userID)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return empty(userID), nil
	case err != nil:
		return Cart{}, fmt.Errorf("get cart of %s: %w", userID, err)
	}
	return normalize(c, userID), nil
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
	c, err := kv.Mutate(ctx, s.carts, userID, func(c *Cart, _ bool) error {
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
	return normalize(c, userID), nil
}

// Clear deletes the user's cart; clearing an empty cart is not an error.
func (s *service) Clear(ctx context.Context, userID string) error {
	if err := ids.Check("user_id", userID); err != nil {
		return err
	}
	if err := s.carts.Delete(ctx, userID, 0); err != nil {
		return fmt.Errorf("clear cart of %s: %w", userID, err)
	}
	return nil
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
