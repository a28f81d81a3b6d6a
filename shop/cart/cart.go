// Package cart holds each user's shopping cart. Checkout takes out of it what the order
// bought (RemoveBought), and only that: what the user adds while a checkout runs stays.
package cart

import "context"

// Buckets this context owns; no other context reads them.
const (
	CartsBucket = "cart_carts" // one cart per user
)

// Item is a line of a cart.
type Item struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// Cart is a user's cart; items keep the order in which products were first added.
type Cart struct {
	UserID string `json:"user_id"`
	Items  []Item `json:"items"` // never nil
}

// MaxQuantity is the most units of one product a cart line holds.
const MaxQuantity = 99

// Service is the cart's port. Whether a product exists is the caller's concern (the catalog
// knows); the cart checks only what it owns: IDs present and quantities in range.
type Service interface {
	// Get returns the user's cart; a user without one has an empty cart.
	Get(ctx context.Context, userID string) (Cart, error)
	// Add adds quantity (1..MaxQuantity) of a product, merging with an existing line; a line
	// that would exceed MaxQuantity is a validation error and leaves the cart unchanged.
	Add(ctx context.Context, userID string, item Item) (Cart, error)
	// Clear empties the user's cart.
	Clear(ctx context.Context, userID string) error
	// RemoveBought takes out of the user's cart the items that order orderID bought: each
	// line loses the quantity bought, and goes when nothing is left of it; lines the order
	// did not buy, and units added while the order was being made, stay. Every item is a
	// product ID and a quantity of 1..MaxQuantity, and there is at least one. It is
	// idempotent per order: a repeat (a retried saga step, a recovery) removes nothing more
	// and returns the cart as it is, as long as the user has made fewer than
	// RemovalsRemembered other orders since. An order that buys what the cart no longer
	// holds removes what there is.
	RemoveBought(ctx context.Context, userID, orderID string, items []Item) (Cart, error)
}

// RemovalsRemembered is how many of a user's latest orders a cart remembers having
// removed, so that repeating their removal changes nothing. A removal is repeated only while
// its checkout is unfinished (minutes at most), long before the user can complete this many
// other checkouts.
const RemovalsRemembered = 16
