// Package sagatest runs the real checkout saga (package orders, over memory stores and the
// real catalog, cart, inventory and payments contexts) with one failure injected at a named
// step, and records what the saga called after it: the compensations it made, in order.
//
// It is how renderings of the saga for other orchestrators are held to what orders does
// (platform/stepfunctions runs its Amazon States Language through the same cases): the
// expected compensations come from running the code, not from the list of steps, so a
// rendering that drops or reorders one is caught.
package sagatest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// Case is one failure of one checkout step.
type Case struct {
	Step string // the step that fails, as orders.Steps names it
	// Name is the domain error's name ("payments.ErrDeclined", as orders.Error names them),
	// or "" when the step fails because its peer (or store) does not answer.
	Name string

	want   error // what the checkout's error must be (errors.Is)
	inject func(w *world)
}

func (c Case) String() string {
	if c.Name == "" {
		return c.Step + "/unavailable"
	}
	return c.Step + "/" + c.Name
}

// errDown is what a peer that does not answer gives.
var errDown = fmt.Errorf("peer unreachable: %w", context.DeadlineExceeded)

// Cases are the failures Run knows: every step failing because its peer (or store) does not
// answer, and every domain error that changes what a failure leads to: a product out of
// stock, a declined card, a reservation that lapsed before its commit.
func Cases() []Case {
	down := func(step, method string) Case {
		return Case{Step: step, want: errDown, inject: func(w *world) { w.down = method }}
	}
	return []Case{
		down("ReadCart", "cart.Get"),
		down("Price", "catalog.Get"),
		{Step: "Reserve", Name: "inventory.ErrOutOfStock", want: inventory.ErrOutOfStock, inject: func(w *world) { w.stock = 1 }},
		down("Reserve", "inventory.Reserve"),
		{Step: "Charge", Name: "payments.ErrDeclined", want: payments.ErrDeclined, inject: func(w *world) { w.card = orderstest.CardDeclined }},
		down("Charge", "payments.Charge"),
		down("AddToHistory", "orders.AddToHistory"),
		{Step: "Commit", Name: "inventory.ErrReservationNotFound", want: inventory.ErrReservationNotFound, inject: func(w *world) { w.lapse = true }},
		down("Commit", "inventory.Commit"),
		down("RecordOrder", "orders.RecordOrder"),
		down("RemoveBought", "cart.RemoveBought"),
		down("PublishOrderPaid", "orders.PublishOrderPaid"),
	}
}

// Pivot is the failure of the pivot, which is no step: the saga record cannot be marked
// charged (the store does not answer that write, which did not land, and answers the next
// one, which marks the record compensating before the undo), after every Compensate step
// succeeded. Its Step is "".
func Pivot() Case {
	return Case{want: errDown, inject: func(w *world) { w.down = pivotWrite }}
}

// pivotWrite is the write of the saga record that marks it charged.
const pivotWrite = "orders.MarkCharged"

// Result is what one checkout with a failure did.
type Result struct {
	Err error // the checkout's error
	// Calls are the calls the saga made to the other contexts, in order; Calls[FailedAt] is
	// the first one after the failure (a failed call, or a failed write of orders' own).
	Calls    []orders.Call
	FailedAt int

	compensations []orders.Call
}

// Compensations are the calls after the failure but those of the steps that ran at the
// same time as the failed one (orders.Step.WithPrevious), which may end after it: what
// compensated it.
func (r Result) Compensations() []orders.Call { return r.compensations }

// groupCalls are the calls of the steps that run at the same time as the step named step,
// itself left out.
func groupCalls(step string) []orders.Call {
	steps := orders.Steps()
	i := slices.IndexFunc(steps, func(s orders.Step) bool { return s.Name == step })
	if i < 0 {
		return nil
	}
	lo, hi := i, i+1
	for lo > 0 && steps[lo].WithPrevious {
		lo--
	}
	for hi < len(steps) && steps[hi].WithPrevious {
		hi++
	}
	var out []orders.Call
	for j := lo; j < hi; j++ {
		if j != i {
			out = append(out, steps[j].Call)
		}
	}
	return out
}

// Run checks out a cart of two units of one product with c's failure, and returns what the
// saga did. It fails t when the checkout does not fail as c says.
func Run(t testing.TB, c Case) Result {
	t.Helper()
	ctx := t.Context()
	w := &world{stock: 5, card: orderstest.CardApproved, failedAt: -1}
	c.inject(w)
	w.build(t)
	product, user := "p-tent", "u-ada"
	if _, err := w.catalog.Upsert(ctx, catalog.Product{ID: product, Name: "Tent", Price: money.Cents(1000), WeightGrams: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.inventory.Add(ctx, product, w.stock); err != nil {
		t.Fatal(err)
	}
	if _, err := w.carts.Add(ctx, user, cart.Item{ProductID: product, Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	req := orderstest.Request(user)
	req.Card.Number = w.card
	w.calls, w.failedAt = nil, -1 // the setup's calls are not the saga's
	_, err := w.orders.Checkout(ctx, "key-1", req)
	if !errors.Is(err, c.want) {
		t.Fatalf("%s: checkout: %v, want %v", c, err, c.want)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failedAt < 0 {
		t.Fatalf("%s: the checkout failed (%v) but no call failed", c, err)
	}
	// A step of the failed one's group calls its peer once, before or after the failure;
	// no compensation makes a step's own call.
	after := slices.Clone(w.calls[w.failedAt:])
	for _, call := range groupCalls(c.Step) {
		if i := slices.Index(after, call); i >= 0 {
			after = slices.Delete(after, i, i+1)
		}
	}
	return Result{Err: err, Calls: w.calls, FailedAt: w.failedAt, compensations: after}
}

// world is the shop around one orders context, every peer recording its calls.
type world struct {
	stock int64  // units of the product
	card  string // the card's number
	down  string // the "context.Method" that does not answer
	lapse bool   // the reservation lapses before its commit

	mu       sync.Mutex
	calls    []orders.Call
	failedAt int // index in calls of the first failure; -1 for none yet

	catalog   catalog.Service
	carts     cart.Service
	inventory inventory.Service
	orders    *orders.Orders
}

// call records a call to context.method and says whether it is to fail (the peer is down).
func (w *world) call(context, method string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, orders.Call{Context: context, Method: method})
	if w.down == context+"."+method {
		w.failLocked(len(w.calls))
		return errDown
	}
	return nil
}

// failed notes a failure, if err is one, after which the next call is the one at index next.
func (w *world) failed(err error, next int) error {
	if err != nil {
		w.mu.Lock()
		w.failLocked(next)
		w.mu.Unlock()
	}
	return err
}

// failLocked notes the first failure, after which the next call is the one at index next.
func (w *world) failLocked(next int) {
	if w.failedAt < 0 {
		w.failedAt = next
	}
}

// record is call and then the real call, noting its failure.
func record[T any](w *world, context, method string, do func() (T, error)) (T, error) {
	if err := w.call(context, method); err != nil {
		var zero T
		return zero, err
	}
	w.mu.Lock()
	next := len(w.calls)
	w.mu.Unlock()
	v, err := do()
	return v, w.failed(err, next)
}

// store is a memory bucket whose writes fail while the orders step owning it is down.
type store struct {
	*kv.Memory
	w    *world
	step string // "orders.AddToHistory"
}

func (s store) write() error {
	if s.w.down != s.step {
		return nil
	}
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.failLocked(len(s.w.calls))
	return errDown
}

func (s store) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	if err := s.write(); err != nil {
		return 0, err
	}
	return s.Memory.Create(ctx, key, value, opts...)
}

func (s store) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	if err := s.write(); err != nil {
		return 0, err
	}
	return s.Memory.Update(ctx, key, value, rev, opts...)
}

// sagaStore fails only the update of a saga record that marks it charged (the pivot).
type sagaStore struct{ store }

func (s sagaStore) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	var rec struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(value, &rec); err != nil || rec.State != "charged" {
		return s.Memory.Update(ctx, key, value, rev, opts...)
	}
	return s.store.Update(ctx, key, value, rev, opts...)
}

func (s sagaStore) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	return s.Memory.Create(ctx, key, value, opts...)
}

func (w *world) build(t testing.TB) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.New(t.Context(), kv.NewMemory(), log)
	if err != nil {
		t.Fatal(err)
	}
	clock := &clock{}
	inv := inventory.New(kv.NewMemory(), kv.NewMemory(), clock.now, 5*time.Minute)
	w.catalog, w.carts, w.inventory = cat, cart.New(kv.NewMemory()), inv
	w.orders = orders.New(orders.Stores{
		Orders: store{kv.NewMemory(), w, "orders.RecordOrder"},
		// The pivot, the update that marks a saga record charged.
		Sagas:      sagaStore{store{kv.NewMemory(), w, pivotWrite}},
		UserOrders: store{kv.NewMemory(), w, "orders.AddToHistory"},
	}, orders.Deps{
		Catalog:    recCatalog{cat, w},
		Carts:      recCart{w.carts, w},
		Inventory:  recInventory{inv, w, clock},
		Payments:   recPayments{payments.New(kv.NewMemory(), time.Now), w},
		Events:     recPublisher{events.NewMemory(log), w},
		Logger:     log,
		RequestKey: []byte("sagatest-request-key"),
	})
}

// clock is the inventory's: moved an hour on when a reservation is to lapse.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

type recCatalog struct {
	catalog.Service
	w *world
}

func (c recCatalog) Get(ctx context.Context, id string) (catalog.Product, error) {
	return record(c.w, "catalog", "Get", func() (catalog.Product, error) { return c.Service.Get(ctx, id) })
}

type recCart struct {
	cart.Service
	w *world
}

func (c recCart) Get(ctx context.Context, user string) (cart.Cart, error) {
	return record(c.w, "cart", "Get", func() (cart.Cart, error) { return c.Service.Get(ctx, user) })
}

func (c recCart) RemoveBought(ctx context.Context, user, orderID string, items []cart.Item) (cart.Cart, error) {
	return record(c.w, "cart", "RemoveBought", func() (cart.Cart, error) { return c.Service.RemoveBought(ctx, user, orderID, items) })
}

type recInventory struct {
	inventory.Service
	w     *world
	clock *clock
}

func (i recInventory) Reserve(ctx context.Context, id string, lines []inventory.Line) (inventory.Reservation, error) {
	return record(i.w, "inventory", "Reserve", func() (inventory.Reservation, error) { return i.Service.Reserve(ctx, id, lines) })
}

func (i recInventory) Release(ctx context.Context, id string) error {
	_, err := record(i.w, "inventory", "Release", func() (struct{}, error) { return struct{}{}, i.Service.Release(ctx, id) })
	return err
}

func (i recInventory) Commit(ctx context.Context, id string) error {
	_, err := record(i.w, "inventory", "Commit", func() (struct{}, error) {
		if i.w.lapse {
			// The reservation expires and the sweep releases it, as while a slow charge ran.
			i.clock.offset.Add(int64(time.Hour))
			if _, err := i.Service.ReleaseExpired(ctx); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, i.Service.Commit(ctx, id)
	})
	return err
}

type recPayments struct {
	payments.Service
	w *world
}

func (p recPayments) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	return record(p.w, "payments", "Charge", func() (payments.Charge, error) { return p.Service.Charge(ctx, req) })
}

func (p recPayments) Refund(ctx context.Context, key string) (payments.Charge, error) {
	return record(p.w, "payments", "Refund", func() (payments.Charge, error) { return p.Service.Refund(ctx, key) })
}

// recPublisher is the bus: orders' own publishing, failing as its step says.
type recPublisher struct {
	events.Publisher
	w *world
}

func (p recPublisher) Publish(ctx context.Context, subject, id string, payload any) error {
	if p.w.down == "orders.PublishOrderPaid" {
		p.w.mu.Lock()
		p.w.failLocked(len(p.w.calls))
		p.w.mu.Unlock()
		return errDown
	}
	return p.Publisher.Publish(ctx, subject, id, payload)
}
