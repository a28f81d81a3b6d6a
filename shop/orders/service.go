//go:build !mitosis_group || mitosis_orders

// Part of the implementation: only the binaries that run orders link it (bounded.Group.BuildTags).

package orders

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Stores are the buckets the orders context owns.
type Stores struct {
	Orders     kv.Bucket // order ID → Order
	Sagas      kv.Bucket // idempotency key → checkout saga record (see saga)
	UserOrders kv.Bucket // each user's order history (see historyHead)
}

// Deps are the other contexts checkout calls, and the clock.
type Deps struct {
	Catalog   catalog.Service
	Carts     cart.Service
	Inventory inventory.Service
	Payments  payments.Service
	Events    events.Publisher
	Now       func() time.Time // nil means time.Now
	Logger    *slog.Logger     // nil means slog.Default(); compensation failures and recovery are logged
	// Retention is how long the saga record of a finished checkout, its key's idempotency
	// record, is kept once the checkout is done; 0 means DefaultRetention. JetStream
	// counts whole seconds.
	Retention time.Duration
	// StaleAfter is how long a checkout may stay untouched before another process takes it
	// over (see Ownership in saga.go); 0 means StaleSaga. It must be far beyond any step's
	// deadline (the peers' calls, 10 s by default): a live checkout overtaken fails.
	StaleAfter time.Duration
	// RequestKey keys the hash that binds an idempotency key to its request (HMAC-SHA256):
	// the record keeps that hash for the retention, and a plain hash of a request that holds
	// a card number and a CVV is no secret (the digits are few enough to try them all).
	// Required: without it Checkout fails (ErrNoRequestKey). Every process of the orders
	// context must have the same one, kept across restarts, or a key's replay is a conflict.
	RequestKey []byte
}

// ErrNoRequestKey: the orders context was built without Deps.RequestKey.
var ErrNoRequestKey = errors.New("orders: no request key (Deps.RequestKey) to hash checkout requests with")

// Orders is the orders context: checkout, order history and shipping status. It is safe for
// concurrent use, also by several processes over the same stores.
type Orders struct {
	stores    Stores
	deps      Deps
	now       func() time.Time
	log       *slog.Logger
	retention time.Duration
	stale     time.Duration // Deps.StaleAfter, or StaleSaga
	steps     []step        // checkoutSteps(), built once: a checkout reads them, never changes them
	// recorded is stores.Orders remembering the orders this process recorded (kv.Cached),
	// for RecordOrder to write and MarkShipped to change: shipping's event comes
	// milliseconds after the order is written, and MarkShipped then writes at the
	// revision RecordOrder wrote, without reading the order first. Reads go to
	// stores.Orders: a page of a history would push the orders still to ship out.
	recorded kv.Bucket
	macs     sync.Pool // of hash.Hash: HMAC-SHA256 keyed by deps.RequestKey (requestHash)
}

// cachedOrders is how many orders a process remembers for MarkShipped: those whose
// shipment is on its way, with plenty to spare (at a thousand checkouts a second, four
// seconds' worth).
const cachedOrders = 4096

var _ Service = (*Orders)(nil)

// StaleAfter is how long a checkout may stay untouched before another process takes it over
// (Deps.StaleAfter): what replicas pass to Recover and RunRecovery.
func (o *Orders) StaleAfter() time.Duration { return o.stale }

// New returns the orders context over its stores, calling the other contexts in deps.
func New(stores Stores, deps Deps) *Orders {
	o := &Orders{stores: stores, deps: deps, now: deps.Now, log: deps.Logger, retention: deps.Retention, stale: deps.StaleAfter,
		steps: checkoutSteps()}
	if stores.Orders != nil {
		o.recorded = kv.Cached(stores.Orders, cachedOrders)
	}
	if o.stale <= 0 {
		o.stale = StaleSaga
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.retention <= 0 {
		o.retention = DefaultRetention
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	return o
}

// maxCheckoutAttempts bounds how often one Checkout call starts over after the attempt it
// was waiting for (a concurrent request with the same key) failed and was compensated.
const maxCheckoutAttempts = 3

// errStartOver says the saga record a duplicate request waited for is gone: that attempt
// failed and compensated, so this request may try for itself.
var errStartOver = errors.New("orders: earlier attempt with this key was abandoned")

func (o *Orders) Checkout(ctx context.Context, key string, req CheckoutRequest) (Order, error) {
	if err := validateCheckout(key, req); err != nil {
		return Order{}, err
	}
	hash, err := o.requestHash(req)
	if err != nil {
		return Order{}, err
	}
	for attempt := 1; ; attempt++ {
		ord, err := o.checkoutOnce(ctx, key, hash, req)
		if !errors.Is(err, errStartOver) {
			return ord, err
		}
		if attempt == maxCheckoutAttempts {
			return Order{}, fmt.Errorf("checkout %s: %d attempts with this key failed elsewhere; retry: %w", key, attempt, err)
		}
	}
}

// requestHash binds an idempotency key to its request, keyed by Deps.RequestKey.
// json.Marshal of the struct is canonical: fields in declaration order, so requests equal as
// JSON values hash equally. The HMACs are pooled: a new one (its two SHA-256 states and
// pads) was five allocations a checkout.
func (o *Orders) requestHash(req CheckoutRequest) (string, error) {
	if len(o.deps.RequestKey) == 0 {
		return "", ErrNoRequestKey
	}
	data, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("encode checkout request: %w", err)
	}
	mac, _ := o.macs.Get().(hash.Hash)
	if mac == nil {
		mac = hmac.New(sha256.New, o.deps.RequestKey)
	}
	mac.Reset()
	mac.Write(data) // a hash.Hash never fails to write
	var sum [sha256.Size]byte
	s := hex.EncodeToString(mac.Sum(sum[:0]))
	o.macs.Put(mac)
	return s, nil
}

// earlyReads are the reads of the saga's first steps, started at the same time as the
// creation of its record (see checkoutOnce).
type earlyReads struct {
	cart    <-chan cartRead
	history <-chan historyRead
}

// checkoutOnce claims the key with a new saga record and runs the saga, or, when the key is
// taken, answers from (or waits for) the saga that holds it.
//
// The user's cart and history head, which the first steps need, are read while the record
// is created, not after (a round trip less): a read changes nothing, so reading before the
// key is claimed is safe, and the reads of a request whose key turns out to be taken are
// dropped. The cart this request reads is the one it checks out, as before.
func (o *Orders) checkoutOnce(ctx context.Context, key, hash string, req CheckoutRequest) (Order, error) {
	readCtx, cancelReads := context.WithCancel(ctx)
	defer cancelReads()
	reads := earlyReads{
		cart: early(func() cartRead {
			c, err := o.deps.Carts.Get(readCtx, req.UserID)
			return cartRead{c, err}
		}),
		history: early(func() historyRead { return o.readHistory(readCtx, req.UserID) }),
	}
	now := o.now()
	rec := saga{
		Key:         key,
		RequestHash: hash,
		OrderID:     ids.New("ord", now),
		State:       statePending,
		UserID:      req.UserID,
		Email:       req.Email,
		Address:     req.Address,
		CreatedAt:   now.UTC().Truncate(time.Millisecond),
		UpdatedAt:   now,
		Owner:       ids.New("own", now),
	}
	rev, err := kv.Create(ctx, o.stores.Sagas, key, rec)
	switch {
	case errors.Is(err, kv.ErrExists):
		cancelReads() // not this request's checkout: its reads are of no use
		return o.awaitExisting(ctx, key, hash)
	case err != nil:
		return Order{}, fmt.Errorf("checkout %s: record saga: %w", key, err)
	}
	rec.rev = rev
	return o.run(ctx, rec, req.Card, reads)
}

// awaitExisting answers a request whose key another request holds: a different request is a
// conflict; the same one gets that request's order. While another process works on the
// checkout it waits; a checkout nobody works on any more (let go after a failure, or stale)
// it takes over (see Ownership in saga.go): it rolls a charged one forward at once, rather
// than wait for recovery, so an order whose first attempt failed after the charge (a peer
// down) is finished as soon as the peer is back; and it undoes any other, then starts over.
func (o *Orders) awaitExisting(ctx context.Context, key, hash string) (Order, error) {
	delay := 2 * time.Millisecond
	for {
		rec, rev, err := kv.Get[saga](ctx, o.stores.Sagas, key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			return Order{}, errStartOver
		case err != nil:
			return Order{}, fmt.Errorf("checkout %s: read saga: %w", key, err)
		case rec.RequestHash != hash:
			return Order{}, fmt.Errorf("checkout %s: %w", key, ErrIdempotencyConflict)
		case rec.State == stateDone:
			return o.Get(ctx, rec.OrderID)
		case due(rec, o.now(), o.stale):
			rec.rev = rev
			ord, taken, err := o.takeOver(ctx, rec)
			if taken || err != nil {
				return ord, err
			}
			// Another process took it over first: wait for it as for any owner.
		}
		if err := kv.Sleep(ctx, delay); err != nil {
			return Order{}, fmt.Errorf("checkout %s: waiting for the request in progress: %w", key, err)
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// run is the saga, from a freshly created record to a paid order or a full compensation:
// the Compensate steps of checkoutSteps, the pivot, then rollForward. early are the reads
// started with the record's creation.
func (o *Orders) run(ctx context.Context, rec saga, card payments.Card, early earlyReads) (Order, error) {
	a := &attempt{rec: rec, card: card, cart: early.cart, history: early.history}
	steps := o.steps
	for lo := 0; lo < len(steps) && steps[lo].Phase == Compensate; {
		hi := groupEnd(steps, lo)
		errs := o.runGroup(ctx, a, steps[lo:hi])
		if err := firstError(errs); err != nil {
			o.compensate(ctx, a.rec, groupCompensations(steps, lo, errs))
			return Order{}, err
		}
		lo = hi
	}

	// The pivot.
	a.rec.ChargedAt = o.now().UTC().Truncate(time.Millisecond)
	rec, err := o.advance(ctx, a.rec, statePending, stateCharged)
	if err != nil {
		// A write that timed out may have landed (kv.Bucket), and a record that says
		// charged is rolled forward by whoever meets it next: after a refund here, to a
		// paid order nobody paid for. So the record is marked compensating before anything
		// is undone. If that fails too, a pivot the store refused (the record does not say
		// charged) is undone as it is; one that timed out is left, and the next comer finds
		// the record pending (and compensates) or charged (and rolls forward), with the
		// charge and the stock as they are either way.
		abandoned, aerr := o.abandon(ctx, rec, statePending, stateCharged)
		switch {
		case aerr == nil:
			o.compensate(ctx, abandoned, undoAll())
		case !errors.Is(err, context.DeadlineExceeded):
			o.compensate(ctx, rec, undoAll())
		default:
			o.log.Warn("checkout: pivot's outcome unknown; left to the next retry or recovery run", "key", rec.Key, "order_id", rec.OrderID, "err", errors.Join(err, aerr))
		}
		return Order{}, err
	}
	// From here on the saga only rolls forward, and finishes even if the caller goes away.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sideEffectTimeout)
	defer cancel()
	ord, err := o.rollForward(fctx, rec, a.history)
	if err != nil && !errors.Is(err, errRefunded) && !errors.Is(err, errSagaLost) && !errors.Is(err, errCompensating) {
		o.release(ctx, rec, err)
	}
	return ord, err
}

// price fills rec's items and amounts from the catalog, in cart order.
func (o *Orders) price(ctx context.Context, rec *saga, lines []cart.Item) error {
	rec.Items = make([]Item, 0, len(lines))
	rec.Subtotal = money.Cents(0)
	rec.WeightGrams = 0
	for _, l := range lines {
		p, err := o.deps.Catalog.Get(ctx, l.ProductID)
		if err != nil {
			return fmt.Errorf("checkout: price %s: %w", l.ProductID, err)
		}
		rec.Items = append(rec.Items, Item{ProductID: l.ProductID, Quantity: l.Quantity, UnitPrice: p.Price})
		rec.Subtotal = rec.Subtotal.Add(p.Price.Times(int64(l.Quantity)))
		rec.WeightGrams += p.WeightGrams * int64(l.Quantity)
	}
	rec.Shipping = shipping.Quote(rec.WeightGrams)
	rec.Total = rec.Subtotal.Add(rec.Shipping)
	return nil
}

func (o *Orders) Get(ctx context.Context, id string) (Order, error) {
	if !ids.Valid(id) { // names no order, whatever it is
		return Order{}, fmt.Errorf("order %.20q: %w", id, ErrNotFound)
	}
	ord, _, err := kv.Get[Order](ctx, o.stores.Orders, id)
	if errors.Is(err, kv.ErrNotFound) {
		return Order{}, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("read order %s: %w", id, err)
	}
	return ord, nil
}

func (o *Orders) MarkShipped(ctx context.Context, orderID, trackingID string) (Order, error) {
	if !ids.Valid(orderID) {
		return Order{}, fmt.Errorf("order %.20q: %w", orderID, ErrNotFound)
	}
	if trackingID == "" {
		return Order{}, validation.Errorf("tracking_id", "is required")
	}
	ord, err := kv.Mutate(ctx, o.recorded, orderID, func(v *Order, exists bool) error {
		if !exists {
			return fmt.Errorf("order %s: %w", orderID, ErrNotFound)
		}
		// Shipping makes one shipment, hence one tracking ID, per order: a repeat changes
		// nothing.
		if v.Status == StatusShipped {
			return kv.ErrSkip
		}
		v.Status = StatusShipped
		v.TrackingID = trackingID
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Order{}, err
		}
		return Order{}, fmt.Errorf("mark order %s shipped: %w", orderID, err)
	}
	return ord, nil
}
