// Package cart holds each user's shopping cart until checkout clears it.
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
}
