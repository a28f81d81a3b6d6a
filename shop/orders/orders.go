// Package orders runs checkout, the saga that turns a cart into a paid order, and keeps
// order history. Checkout is all or nothing: price (catalog), reserve (inventory), charge
// (payments), record, take what the order bought out of the cart, publish order-paid; a
// failure compensates what was done, and a saga record lets a restarted process finish or
// compensate a checkout that was interrupted. Idempotency keys are global and bound to a
// hash of the request.
//
// # The critical path
//
// A checkout's latency is the store round trips it waits for one after another; steps that
// need nothing of each other run together (Step.WithPrevious; steps.go). For a one-line
// cart (TestCheckoutCriticalPath counts them over a real JetStream), each level waits for
// the one before:
//
//   - L1: the saga record is created (the key claimed), while the cart and the user's
//     history head are read. Pricing reads the catalog's in-memory view: no round trip.
//   - L2: Reserve: inventory holds the units (its own round trips: package inventory).
//   - L3: Charge: payments records the charge.
//   - L4: the pivot: the record says charged, written at the revision of its creation.
//   - L5, L6: Commit: inventory sells the units it held (its own round trips), while the
//     order's ID is written to the head of its user's history, at the revision read in L1.
//   - L7: the order is recorded, the cart gives up what the order bought, and order-paid
//     is published (the stream's acknowledgement is the round trip), all three at once.
//   - L8: the record says done, kept for the retention.
//
// That is 8 round trips: inventory reserves in one and commits in two, and the cart
// removes in one, because their buckets remember the revisions this process last saw
// (kv.Cached), so that a compare-and-set needs no read first. A process that has not seen
// the keys yet (just started, or another replica) reads first: a cold Reserve takes two
// and a cold Commit four (package inventory). Before the steps ran together and the cache
// existed, it was 19.
//
// Orderings. What runs together above used to run one after another; each relaxed order
// is safe for the reason given, and the orders that stay are kept on purpose:
//
//   - Cart and history are read before the key is claimed: reads change nothing, the
//     request that reads the cart is the one that checks it out, and when the key turns
//     out to be taken, the reads are dropped.
//   - The history write runs after the pivot, with the commit, instead of before the pivot
//     after the charge: it is a roll-forward step, safe to repeat (history.go), and a
//     checkout that fails before its pivot adds nothing to the history. Running it with
//     the charge would save nothing more (the pivot waits for the charge either way) and
//     would let any client fill a user's history with IDs that name no order, one per
//     declined card, which every list of that user's orders then reads past.
//   - Order-paid is published with the order's write instead of after it: shipping may
//     ship, and announce, an order not visible yet, so orders redelivers an order-shipped
//     for an order it does not have (HandleOrderShipped); the order is written by the same
//     roll-forward, or by recovery after a crash, well within the redeliveries. Nothing
//     else reads the order on order-paid (notify takes what it needs from the event).
//   - The cart's removal runs with the order's write: it removes what that order ID bought,
//     once, whatever the user added meanwhile, and reads nothing of the order.
//   - Kept: the order is written only after its commit, which Commit's Abort check relies
//     on (an existing order means the commit happened, however long ago; inventory forgets
//     committed reservations). So is the publish: past the commit no step can abort, so an
//     order-paid never goes out for an order that is then compensated.
//   - Kept: the charge before the pivot and the card never stored (a checkout interrupted
//     before the pivot is compensated, never retried); the record's writes one at a time,
//     each by its owner at the revision it last wrote (saga.go, Ownership), none of them
//     inside a group; done only once every step of the last group has returned, so a
//     record done means every effect is there. A process that takes a checkout over rolls
//     it forward in the same groups; every step is safe to repeat, also at the same time as
//     a frozen former owner repeats it (see rollForward). TestCrashBetweenEveryPairOfSteps
//     stops a checkout between every two steps, and inside every group after some of its
//     steps, and checks what recovery makes of it.
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
