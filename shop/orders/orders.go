// Package orders runs checkout, the saga that turns a cart into a paid order, and keeps
// order history. Checkout is all or nothing: price (catalog), reserve (inventory), charge
// (payments), record, take what the order bought out of the cart, publish order-paid; a
// failure compensates what was done, and a saga record lets a restarted process finish or
// compensate a checkout that was interrupted. Idempotency keys are global and bound to a
// hash of the request.
//
// Checkout takes out of the cart exactly what it bought (cart.Service.RemoveBought, once
// per order): what the user adds to the cart while a checkout runs stays there, as does the
// part of a line added after the checkout read it, also when recovery finishes the checkout
// later.
//
// Retention. An idempotency key keeps working for at least 24 hours after its checkout
// finished: the saga record that binds the key to its request and its order is kept for
// Deps.Retention (DefaultRetention, 25 hours, unless set where the context is built), then
// the store drops it. The order itself stays for good. A key replayed after that is a key
// never seen: it starts a new checkout of the cart as it is then, which, the order having
// taken its items, is usually empty (a validation error on "cart"), and otherwise makes a
// new order. A checkout that has not finished keeps its record however long it takes.
package orders

import (
	"context"
	"errors"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// Buckets this context owns; no other context reads them.
const (
	OrdersBucket     = "orders_orders"  // the orders
	SagasBucket      = "orders_sagas"   // checkout sagas, by idempotency key
	UserOrdersBucket = "orders_by_user" // each user's order history (see history.go)
)

// DefaultRetention is how long a finished checkout's idempotency record is kept: the day
// that API clients may count on, and an hour more for clocks and rounding.
const DefaultRetention = 25 * time.Hour

// Order statuses.
const (
	StatusPaid    = "paid"
	StatusShipped = "shipped"
)

// Item is a line of an order at the price it was sold.
type Item struct {
	ProductID string      `json:"product_id"`
	Quantity  int         `json:"quantity"`
	UnitPrice money.Money `json:"unit_price"`
}

// Order is a paid order.
type Order struct {
	ID         string      `json:"id"`
	UserID     string      `json:"user_id"`
	Status     string      `json:"status"`
	Items      []Item      `json:"items"`
	Subtotal   money.Money `json:"subtotal"`
	Shipping   money.Money `json:"shipping"`
	Total      money.Money `json:"total"`
	TrackingID string      `json:"tracking_id"` // "" until shipped
	CreatedAt  time.Time   `json:"created_at"`
}

// Address is where an order is shipped.
type Address = events.Address

// CheckoutRequest is what the customer submits at checkout.
type CheckoutRequest struct {
	UserID  string        `json:"user_id"`
	Email   string        `json:"email"`
	Address Address       `json:"address"`
	Card    payments.Card `json:"card"`
}

// ListRequest asks for one page of a user's orders.
type ListRequest struct {
	UserID    string
	PageSize  int    // 1..paging.MaxSize; 0 means DefaultPageSize
	PageToken string // "" for the first page, else a Page's NextPageToken
}

// Page is one page of a user's orders, newest first.
type Page struct {
	Orders        []Order `json:"orders"`
	NextPageToken string  `json:"next_page_token"` // "" on the last page
}

// DefaultPageSize is the page size of a ListRequest that gives none.
const DefaultPageSize = 20

var (
	// ErrNotFound: no order has that ID.
	ErrNotFound = errors.New("orders: order not found")
	// ErrIdempotencyConflict: the idempotency key was used with a different request.
	ErrIdempotencyConflict = errors.New("orders: idempotency key reused with a different request")
)

// Service is the orders port.
type Service interface {
	// Checkout turns the user's cart into a paid order, or changes nothing. The same key with
	// an equal request returns the same order, also concurrently; with a different request it
	// is ErrIdempotencyConflict. An empty cart or a bad request is a validation error.
	Checkout(ctx context.Context, idempotencyKey string, req CheckoutRequest) (Order, error)
	// Get returns an order, or ErrNotFound.
	Get(ctx context.Context, id string) (Order, error)
	// ListByUser returns a page of a user's orders, newest first: every page but the last
	// is full, and an unknown user has one empty page. A bad user ID, page size or page
	// token is a validation error.
	ListByUser(ctx context.Context, req ListRequest) (Page, error)
	// MarkShipped records an order's tracking ID and status shipped; idempotent.
	MarkShipped(ctx context.Context, orderID, trackingID string) (Order, error)
}
