package orders_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/shipping"
)

// broker is what the tests need of a bus: publishing for orders, subscribing to observe.
type broker interface {
	events.Publisher
	events.Subscriber
}

// world is a whole shop minus orders: the real contexts over one backend's stores. Tests
// build one or more *orders.Orders over its order stores, as restarted processes would.
type world struct {
	stores    orders.Stores
	catalog   catalog.Service
	carts     cart.Service
	inventory inventory.Service
	payments  payments.Service
	bus       broker
	// invClock shifts the inventory's clock, to expire reservations on demand.
	invClock *offsetClock
	// invStock and invReservations are the inventory's buckets, for another process of it.
	invStock, invReservations kv.Bucket
}

// backend opens the buckets of one test.
type backend struct {
	name   string
	bucket func(t testing.TB, name string) kv.Bucket
	bus    func(t testing.TB) broker
}

func memoryBackend() backend {
	return backend{
		name:   "Memory",
		bucket: func(testing.TB, string) kv.Bucket { return kv.NewMemory() },
		bus:    func(testing.TB) broker { return events.NewMemory(slog.New(slog.DiscardHandler)) },
	}
}

func jetStreamBackend(t testing.TB) backend {
	srv := natsjstest.New(t)
	return backend{
		name:   "JetStream",
		bucket: func(t testing.TB, name string) kv.Bucket { return srv.Bucket(t, name) },
		bus:    func(t testing.TB) broker { return srv.Bus(t) },
	}
}

func newWorld(t testing.TB, be backend) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cat, err := catalog.New(ctx, be.bucket(t, "products"), nil)
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	clock := &offsetClock{}
	stock, reservations := be.bucket(t, "stock"), be.bucket(t, "reservations")
	return &world{
		stores: orders.Stores{
			Orders:     be.bucket(t, "orders"),
			Sagas:      be.bucket(t, "sagas"),
			UserOrders: be.bucket(t, "user_orders"),
		},
		catalog:   cat,
		carts:     cart.New(be.bucket(t, "carts")),
		inventory: inventory.New(stock, reservations, clock.Now, 5*time.Minute),
		payments:  payments.New(be.bucket(t, "charges"), time.Now),
		bus:       be.bus(t),
		invClock:  clock,
		invStock:  stock, invReservations: reservations,
	}
}

func (w *world) deps() orders.Deps {
	return orders.Deps{
		Catalog: w.catalog, Carts: w.carts, Inventory: w.inventory, Payments: w.payments,
		Events: w.bus, Now: time.Now, Logger: slog.New(slog.DiscardHandler), RequestKey: []byte("orders-test-request-key"),
	}
}

func (w *world) orders(deps orders.Deps) *orders.Orders { return orders.New(w.stores, deps) }

func (w *world) env() orderstest.Env {
	return orderstest.Env{
		Orders: w.orders(w.deps()), Catalog: w.catalog, Carts: w.carts,
		Inventory: w.inventory, Payments: w.payments, Events: w.bus,
	}
}

func TestConformanceMemory(t *testing.T) {
	orderstest.Run(t, func(t *testing.T) orderstest.Env { return newWorld(t, memoryBackend()).env() })
}

func TestConformanceJetStream(t *testing.T) {
	be := jetStreamBackend(t)
	orderstest.Run(t, func(t *testing.T) orderstest.Env { return newWorld(t, be).env() })
}

// offsetClock is time.Now moved forward by an adjustable offset.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func forEachBackend(t *testing.T, f func(t *testing.T, be backend)) {
	t.Run("Memory", func(t *testing.T) { f(t, memoryBackend()) })
	t.Run("JetStream", func(t *testing.T) { f(t, jetStreamBackend(t)) })
}

// gate stops the first call through it until opened, as a process that froze (or died)
// at that point would; later calls pass straight through.
type gate struct {
	entered chan string // receives the first call's reservation or idempotency key
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan string, 1), open: make(chan struct{})} }

func (g *gate) pass(ctx context.Context, id string) error {
	first := false
	g.once.Do(func() { first = true })
	if !first {
		return nil
	}
	g.entered <- id
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedPayments is the real payments service with a gate before its first charge.
type gatedPayments struct {
	payments.Service
	g *gate
}

func (p gatedPayments) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	if err := p.g.pass(ctx, req.IdempotencyKey); err != nil {
		return payments.Charge{}, err
	}
	return p.Service.Charge(ctx, req)
}

// gatedInventory is the real inventory with a gate before its first commit.
type gatedInventory struct {
	inventory.Service
	g *gate
}

func (i gatedInventory) Commit(ctx context.Context, id string) error {
	if err := i.g.pass(ctx, id); err != nil {
		return err
	}
	return i.Service.Commit(ctx, id)
}

// failingPublisher is the real bus whose first publish fails, as a crash right before it
// would leave things.
type failingPublisher struct {
	events.Publisher
	failed atomic.Bool
}

func (p *failingPublisher) Publish(ctx context.Context, subject, id string, payload any) error {
	if p.failed.CompareAndSwap(false, true) {
		return errors.New("publish: connection lost")
	}
	return p.Publisher.Publish(ctx, subject, id, payload)
}

// shop sets up a product with stock 5 and a user with 2 of it in the cart.
func (w *world) shop(t *testing.T) (product, user string) {
	t.Helper()
	product = ids.New("p", time.Now())
	if _, err := w.catalog.Upsert(t.Context(), catalog.Product{ID: product, Name: "Tent", Price: money.Cents(1000), WeightGrams: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.inventory.Add(t.Context(), product, 5); err != nil {
		t.Fatal(err)
	}
	user = ids.New("u", time.Now())
	if _, err := w.carts.Add(t.Context(), user, cart.Item{ProductID: product, Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	return product, user
}

func (w *world) stock(t *testing.T, product string) inventory.Stock {
	t.Helper()
	s, err := w.inventory.Get(t.Context(), product)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *world) cartItems(t *testing.T, user string) []cart.Item {
	t.Helper()
	c, err := w.carts.Get(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return c.Items
}

type result struct {
	ord orders.Order
	err error
}

func checkoutAsync(ctx context.Context, o *orders.Orders, key string, req orders.CheckoutRequest) <-chan result {
	ch := make(chan result, 1)
	go func() {
		ord, err := o.Checkout(ctx, key, req)
		ch <- result{ord, err}
	}()
	return ch
}

// TestRecoverCompensatesCrashBeforeCharge: a checkout stops after reserving (its process
// froze before the charge); a new process recovers: stock released, no charge, key free.
// When the frozen one wakes up, it cannot charge any more and gives up cleanly.
func TestRecoverCompensatesCrashBeforeCharge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		g := newGate()
		deps := w.deps()
		deps.Payments = gatedPayments{w.payments, g}
		key, req := "key-1", orderstest.Request(user)
		frozen := checkoutAsync(ctx, w.orders(deps), key, req)
		orderID := <-g.entered
		if s := w.stock(t, product); s.Reserved != 2 {
			t.Fatalf("stock while charging: %+v, want 2 reserved", s)
		}

		// A replica keeps its hands off a checkout that is younger than olderThan.
		restarted := w.orders(w.deps())
		if n, err := restarted.Recover(ctx, time.Minute); n != 0 || err != nil {
			t.Fatalf("Recover(1m) of a live checkout: %d %v, want 0 handled", n, err)
		}
		if n, err := restarted.Recover(ctx, 0); n != 1 || err != nil {
			t.Fatalf("Recover(0): %d %v, want 1 handled", n, err)
		}
		if s := w.stock(t, product); s.Available != 5 || s.Reserved != 0 || s.Sold != 0 {
			t.Errorf("stock after recovery: %+v, want all 5 available", s)
		}
		if ch, err := w.payments.Get(ctx, orderID); err == nil && ch.Status == payments.StatusCaptured {
			t.Errorf("charge after recovery: %+v, want none captured", ch)
		}
		if _, err := restarted.Get(ctx, orderID); !errors.Is(err, orders.ErrNotFound) {
			t.Errorf("order after recovery: %v, want ErrNotFound", err)
		}
		if n, err := restarted.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover again: %d %v, want nothing left", n, err)
		}

		close(g.open) // the frozen checkout resumes: its charge is refused, it compensates
		if r := <-frozen; r.err == nil {
			t.Errorf("frozen checkout resumed: got order %+v, want an error", r.ord)
		}
		if ch, err := w.payments.Get(ctx, orderID); err == nil && ch.Status == payments.StatusCaptured {
			t.Errorf("charge after the frozen checkout resumed: %+v, want none captured", ch)
		}
		if s := w.stock(t, product); s.Available != 5 || s.Reserved != 0 {
			t.Errorf("stock after the frozen checkout resumed: %+v, want all 5 available", s)
		}
		if items := w.cartItems(t, user); len(items) != 1 {
			t.Errorf("cart: %+v, want unchanged", items)
		}
		// The key is free again: the customer's retry goes through.
		ord, err := restarted.Checkout(ctx, key, req)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if ord.ID == orderID {
			t.Errorf("retry reused the compensated order ID %s", orderID)
		}
		if s := w.stock(t, product); s.Available != 3 || s.Sold != 2 {
			t.Errorf("stock after retry: %+v, want 2 sold", s)
		}
	})
}

// TestRecoverRollsForwardCrashAfterCharge: a checkout stops right after its charge (before
// the stock is committed); a new process recovers it to a paid order, once.
func TestRecoverRollsForwardCrashAfterCharge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		paid := countPaid(t, w.bus)
		g := newGate()
		deps := w.deps()
		deps.Inventory = gatedInventory{w.inventory, g}
		key, req := "key-1", orderstest.Request(user)
		frozen := checkoutAsync(ctx, w.orders(deps), key, req)
		orderID := <-g.entered
		if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusCaptured {
			t.Fatalf("charge while frozen: %+v %v, want captured", ch, err)
		}

		restarted := w.orders(w.deps())
		if n, err := restarted.Recover(ctx, 0); n != 1 || err != nil {
			t.Fatalf("Recover: %d %v, want 1 handled", n, err)
		}
		assertRolledForward(t, w, restarted, paid, product, user, orderID)
		// The customer's retry gets the same order.
		if ord, err := restarted.Checkout(ctx, key, req); err != nil || ord.ID != orderID {
			t.Errorf("retry: %+v %v, want order %s", ord, err, orderID)
		}

		close(g.open) // the frozen checkout resumes; every step it repeats is a no-op
		if r := <-frozen; r.err != nil || r.ord.ID != orderID {
			t.Errorf("frozen checkout resumed: %+v %v, want order %s", r.ord, r.err, orderID)
		}
		assertRolledForward(t, w, restarted, paid, product, user, orderID)
	})
}

// TestRecoverRefundsWhenReservationLapsed: a process died after the charge and came back
// after its reservation expired; the stock may be gone, so recovery refunds instead, and
// counts the checkout as handled (a restart must not fail on it).
func TestRecoverRefundsWhenReservationLapsed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		g := newGate()
		deps := w.deps()
		deps.Inventory = gatedInventory{w.inventory, g}
		frozen := checkoutAsync(ctx, w.orders(deps), "key-1", orderstest.Request(user))
		orderID := <-g.entered
		w.invClock.Advance(time.Hour)

		restarted := w.orders(w.deps())
		if n, err := restarted.Recover(ctx, 0); n != 1 || err != nil {
			t.Fatalf("Recover: %d %v, want 1 handled", n, err)
		}
		close(g.open)
		if r := <-frozen; !errors.Is(r.err, inventory.ErrReservationNotFound) {
			t.Errorf("frozen checkout resumed: %+v %v, want ErrReservationNotFound", r.ord, r.err)
		}
		if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusRefunded {
			t.Errorf("charge: %+v %v, want refunded", ch, err)
		}
		if s := w.stock(t, product); s.Available != 5 || s.Reserved != 0 || s.Sold != 0 {
			t.Errorf("stock: %+v, want all 5 available", s)
		}
		assertNoOrders(t, restarted, user)
		if items := w.cartItems(t, user); len(items) != 1 {
			t.Errorf("cart: %+v, want unchanged", items)
		}
		if n, err := restarted.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover again: %d %v, want nothing left", n, err)
		}
	})
}

// TestRecoverRollsForwardFailedPublish: the order is recorded and taken out of the cart,
// but the process dies before order-paid goes out; recovery publishes it.
func TestRecoverRollsForwardFailedPublish(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		w, paid, product, user, orderID := failPublish(t, be)
		restarted := w.orders(w.deps())
		if n, err := restarted.Recover(t.Context(), 0); n != 1 || err != nil {
			t.Fatalf("Recover: %d %v, want 1 handled", n, err)
		}
		assertRolledForward(t, w, restarted, paid, product, user, orderID)
		if ord, err := restarted.Checkout(t.Context(), "key-1", orderstest.Request(user)); err != nil || ord.ID != orderID {
			t.Errorf("replay: %+v %v, want order %s", ord, err, orderID)
		}
	})
}

// TestReplayRollsForwardFailedPublish: the same, but the customer's retry comes first: it
// finishes the paid checkout itself, at once, rather than wait for recovery to find it stale.
func TestReplayRollsForwardFailedPublish(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		w, paid, product, user, orderID := failPublish(t, be)
		o := w.orders(w.deps())
		if ord, err := o.Checkout(t.Context(), "key-1", orderstest.Request(user)); err != nil || ord.ID != orderID {
			t.Fatalf("replay: %+v %v, want order %s", ord, err, orderID)
		}
		assertRolledForward(t, w, o, paid, product, user, orderID)
		if n, err := o.Recover(t.Context(), 0); n != 0 || err != nil {
			t.Errorf("Recover: %d %v, want nothing left", n, err)
		}
	})
}

// failPublish runs a checkout whose order-paid publish fails after the order is recorded.
func failPublish(t *testing.T, be backend) (w *world, paid *paidCounter, product, user, orderID string) {
	t.Helper()
	w = newWorld(t, be)
	product, user = w.shop(t)
	paid = countPaid(t, w.bus)
	deps := w.deps()
	deps.Events = &failingPublisher{Publisher: w.bus}
	if _, err := w.orders(deps).Checkout(t.Context(), "key-1", orderstest.Request(user)); err == nil {
		t.Fatal("Checkout with a failing publish: no error")
	}
	list, err := orderstest.ListAll(t.Context(), w.orders(w.deps()), user)
	if err != nil || len(list) != 1 {
		t.Fatalf("orders before recovery: %+v %v, want 1", list, err)
	}
	return w, paid, product, user, list[0].ID
}

func assertRolledForward(t *testing.T, w *world, o *orders.Orders, paid *paidCounter, product, user, orderID string) {
	t.Helper()
	ctx := t.Context()
	ord, err := o.Get(ctx, orderID)
	if err != nil || ord.Status != orders.StatusPaid || ord.Total != money.Cents(2000+500+200) {
		t.Errorf("order: %+v %v, want paid, total USD 27.00", ord, err)
	}
	if s := w.stock(t, product); s.Available != 3 || s.Reserved != 0 || s.Sold != 2 {
		t.Errorf("stock: %+v, want 2 sold", s)
	}
	if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusCaptured || ch.Amount != ord.Total {
		t.Errorf("charge: %+v %v, want captured %v", ch, err, ord.Total)
	}
	if items := w.cartItems(t, user); len(items) != 0 {
		t.Errorf("cart: %+v, want empty", items)
	}
	if list, err := orderstest.ListAll(ctx, o, user); err != nil || len(list) != 1 || list[0].ID != orderID {
		t.Errorf("orders of the user: %+v %v, want only %s", list, err, orderID)
	}
	paid.waitOne(t, orderID)
	if n, err := o.Recover(ctx, 0); n != 0 || err != nil {
		t.Errorf("Recover again: %d %v, want nothing left", n, err)
	}
}

// TestReservationExpiredDuringCharge: the card is charged after the reservation lapsed and
// its units went back on sale; the charge is refunded, nothing is sold.
func TestReservationExpiredDuringCharge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		g := newGate()
		deps := w.deps()
		deps.Payments = gatedPayments{w.payments, g}
		o := w.orders(deps)
		res := checkoutAsync(ctx, o, "key-1", orderstest.Request(user))
		orderID := <-g.entered
		w.invClock.Advance(time.Hour)
		if n, err := w.inventory.ReleaseExpired(ctx); n != 1 || err != nil {
			t.Fatalf("ReleaseExpired: %d %v, want 1", n, err)
		}
		close(g.open)
		r := <-res
		if !errors.Is(r.err, inventory.ErrReservationNotFound) {
			t.Fatalf("Checkout: %+v %v, want ErrReservationNotFound", r.ord, r.err)
		}
		if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusRefunded {
			t.Errorf("charge: %+v %v, want refunded", ch, err)
		}
		if s := w.stock(t, product); s.Available != 5 || s.Reserved != 0 || s.Sold != 0 {
			t.Errorf("stock: %+v, want all 5 available", s)
		}
		if _, err := o.Get(ctx, orderID); !errors.Is(err, orders.ErrNotFound) {
			t.Errorf("order: %v, want ErrNotFound", err)
		}
		if items := w.cartItems(t, user); len(items) != 1 {
			t.Errorf("cart: %+v, want unchanged", items)
		}
		if n, err := o.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover: %d %v, want nothing left", n, err)
		}
	})
}

// lostReplyPayments is the real payments service whose first charge goes through but whose
// reply is lost, as when the call times out after the charge was made.
type lostReplyPayments struct {
	payments.Service
	lost    atomic.Bool
	lostKey atomic.Pointer[string]
}

func (p *lostReplyPayments) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	ch, err := p.Service.Charge(ctx, req)
	if err == nil && p.lost.CompareAndSwap(false, true) {
		p.lostKey.Store(&req.IdempotencyKey)
		return payments.Charge{}, fmt.Errorf("charge %s: %w", req.IdempotencyKey, context.DeadlineExceeded)
	}
	return ch, err
}

// TestChargeOutcomeUnknownIsRefunded: a charge whose outcome is unknown is refunded along
// with the release, so that no customer pays for an order that was not recorded.
func TestChargeOutcomeUnknownIsRefunded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		deps := w.deps()
		lossy := &lostReplyPayments{Service: w.payments}
		deps.Payments = lossy
		o := w.orders(deps)
		if _, err := o.Checkout(ctx, "key-1", orderstest.Request(user)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Checkout: %v, want the charge's timeout", err)
		}
		if ch, err := w.payments.Get(ctx, *lossy.lostKey.Load()); err != nil || ch.Status != payments.StatusRefunded {
			t.Errorf("the charge whose reply was lost: %+v %v, want refunded", ch, err)
		}
		if s := w.stock(t, product); s.Available != 5 || s.Reserved != 0 || s.Sold != 0 {
			t.Errorf("stock: %+v, want all 5 available", s)
		}
		assertNoOrders(t, o, user)
		if items := w.cartItems(t, user); len(items) != 1 {
			t.Errorf("cart: %+v, want unchanged", items)
		}
		// The retry charges under a new order ID; the first one's charge stays refunded.
		ord, err := o.Checkout(ctx, "key-1", orderstest.Request(user))
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if n, err := o.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover: %d %v, want nothing left", n, err)
		}
		list, _ := orderstest.ListAll(ctx, o, user)
		if len(list) != 1 || list[0].ID != ord.ID {
			t.Errorf("orders: %+v, want only %s", list, ord.ID)
		}
	})
}

// outage cuts the peers wrapped with it off while down is set: charges, refunds and releases
// fail. Reserving still works, so that the checkout holds stock when the outage starts.
type outage struct{ down atomic.Bool }

var errUnreachable = errors.New("peer unreachable")

func (o *outage) check() error {
	if o.down.Load() {
		return errUnreachable
	}
	return nil
}

type unreachablePayments struct {
	payments.Service
	*outage
	charged atomic.Pointer[string] // the idempotency key of the last charge attempt
}

func (p *unreachablePayments) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	p.charged.Store(&req.IdempotencyKey)
	if err := p.check(); err != nil {
		return payments.Charge{}, err
	}
	return p.Service.Charge(ctx, req)
}

func (p *unreachablePayments) Refund(ctx context.Context, key string) (payments.Charge, error) {
	if err := p.check(); err != nil {
		return payments.Charge{}, err
	}
	return p.Service.Refund(ctx, key)
}

type unreachableInventory struct {
	inventory.Service
	*outage
}

func (i unreachableInventory) Release(ctx context.Context, id string) error {
	if err := i.check(); err != nil {
		return err
	}
	return i.Service.Release(ctx, id)
}

// failCompensation runs a checkout whose charge and compensation both fail: it leaves the
// stock reserved and the record to whoever comes next. It returns orders wired to the peers,
// the outage (still on) and the first attempt's order ID.
func failCompensation(t *testing.T, w *world, user string) (*orders.Orders, *outage, string) {
	t.Helper()
	out := &outage{}
	out.down.Store(true)
	pay := &unreachablePayments{Service: w.payments, outage: out}
	deps := w.deps()
	deps.Payments, deps.Inventory = pay, unreachableInventory{w.inventory, out}
	o := w.orders(deps)
	if _, err := o.Checkout(t.Context(), "key-1", orderstest.Request(user)); !errors.Is(err, errUnreachable) {
		t.Fatalf("Checkout with its peers down: %v", err)
	}
	return o, out, *pay.charged.Load()
}

// TestRetryFinishesAFailedCompensation: a checkout whose undo failed (its peers went down)
// leaves its record to the next comer. Once the peers are back, the customer's retry with the
// same key undoes the first attempt and checks out at once: it does not wait for the record
// to go stale (a minute in the services), answering 503 all that while.
func TestRetryFinishesAFailedCompensation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		o, out, first := failCompensation(t, w, user)
		if s := w.stock(t, product); s.Reserved != 2 {
			t.Fatalf("stock after the failed undo: %+v, want 2 still reserved", s)
		}
		// While the peers are down, the retry fails fast, and so does recovery, which takes
		// the record on although it is not stale.
		if _, err := o.Checkout(ctx, "key-1", orderstest.Request(user)); !errors.Is(err, errUnreachable) {
			t.Fatalf("retry with the peers down: %v, want their error", err)
		}
		if _, err := o.Recover(ctx, time.Hour); !errors.Is(err, errUnreachable) {
			t.Fatalf("Recover with the peers down: %v, want their error", err)
		}

		out.down.Store(false)
		ord, err := o.Checkout(ctx, "key-1", orderstest.Request(user))
		if err != nil {
			t.Fatalf("retry with the peers back: %v", err)
		}
		if ord.ID == first {
			t.Errorf("the retry reused the undone attempt's order ID %s", first)
		}
		if s := w.stock(t, product); s.Available != 3 || s.Reserved != 0 || s.Sold != 2 {
			t.Errorf("stock: %+v, want 3 available, 2 sold", s)
		}
		if ch, err := w.payments.Get(ctx, first); err != nil || ch.Status != payments.StatusVoided {
			t.Errorf("the first attempt's charge: %+v %v, want voided", ch, err)
		}
		if n, err := o.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover: %d %v, want nothing left", n, err)
		}
		if again, err := o.Checkout(ctx, "key-1", orderstest.Request(user)); err != nil || again.ID != ord.ID {
			t.Errorf("replay: %+v %v, want order %s", again, err, ord.ID)
		}
	})
}

// dyingInventory is an inventory process over the world's buckets that dies in the middle of
// its first Reserve: its hold reaches the store, its record's Create does not, and nothing it
// sends after that does either.
func dyingInventory(ctx context.Context, w *world) inventory.Service {
	c := newProcessDyingAt(ctx, crashPoint{done: []string{"hold"}, next: []string{"record"}},
		map[string]string{"stock.write": "hold", "reservations.write": "record"})
	return inventory.New(crashBucket{Bucket: w.invStock, name: "stock", c: c}, crashBucket{Bucket: w.invReservations, name: "reservations", c: c},
		w.invClock.Now, 5*time.Minute)
}

// TestUnitsADeadReserveHeldComeBackAtTheNextSweep: the inventory dies in the middle of a
// checkout's Reserve, with the units held and no reservation record. The checkout is
// compensated by the customer's retry once the inventory is back (its Release finds no
// record), and the retry's own checkout goes through; the dead call's units are available
// again at the first sweep once they are a few seconds old, not after the reservation's
// TTL and the sweeper's grace.
func TestUnitsADeadReserveHeldComeBackAtTheNextSweep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		deps := w.deps()
		deps.Inventory = dyingInventory(ctx, w)
		if _, err := w.orders(deps).Checkout(ctx, "key-1", orderstest.Request(user)); !errors.Is(err, errCrashed) {
			t.Fatalf("Checkout while the inventory dies: %v, want its death", err)
		}
		if s := w.stock(t, product); s.Reserved != 2 {
			t.Fatalf("stock after the death: %+v, want the dead call's 2 units held", s)
		}

		o := w.orders(w.deps()) // the inventory back, a new process
		ord, err := o.Checkout(ctx, "key-1", orderstest.Request(user))
		if err != nil {
			t.Fatalf("retry with the inventory back: %v", err)
		}
		if s := w.stock(t, product); s.Sold != 2 || s.Reserved != 2 {
			t.Fatalf("stock after the retry: %+v, want 2 sold and the dead call's 2 still held", s)
		}
		w.invClock.Advance(10 * time.Second)
		if _, err := w.inventory.ReleaseExpired(ctx); err != nil {
			t.Fatalf("ReleaseExpired: %v", err)
		}
		if s := w.stock(t, product); s.Available != 3 || s.Reserved != 0 || s.Sold != 2 {
			t.Errorf("stock after a sweep 10s on: %+v, want 3 available, 2 sold", s)
		}
		if again, err := o.Checkout(ctx, "key-1", orderstest.Request(user)); err != nil || again.ID != ord.ID {
			t.Errorf("replay: %+v %v, want order %s", again, err, ord.ID)
		}
	})
}

// TestRunRecoveryFinishesAFailedCompensation: with no retry, the background loop finishes
// the undo on its next run once the peers are back, however young the record.
func TestRunRecoveryFinishesAFailedCompensation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		product, user := w.shop(t)
		o, out, _ := failCompensation(t, w, user)
		out.down.Store(false)

		loopCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			o.RunRecovery(loopCtx, 5*time.Millisecond, time.Hour)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := w.stores.Sagas.Get(ctx, "key-1")
			if errors.Is(err, kv.ErrNotFound) {
				break // undone: the record goes last
			}
			if time.Now().After(deadline) {
				t.Fatalf("the record is still there after 10s of RunRecovery (%v); stock %+v", err, w.stock(t, product))
			}
			time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline
		}
		stop()
		<-done
		if s := w.stock(t, product); s.Available != 5 || s.Reserved != 0 {
			t.Errorf("stock: %+v, want all 5 available", s)
		}
		if n, err := o.Recover(ctx, 0); n != 0 || err != nil {
			t.Errorf("Recover: %d %v, want nothing left", n, err)
		}
		assertNoOrders(t, o, user)
		if items := w.cartItems(t, user); len(items) != 1 {
			t.Errorf("cart: %+v, want unchanged", items)
		}
	})
}

// TestRunRecovery: the background loop compensates an abandoned checkout by itself.
func TestRunRecovery(t *testing.T) {
	w := newWorld(t, memoryBackend())
	ctx := t.Context()
	product, user := w.shop(t)
	g := newGate()
	deps := w.deps()
	deps.Payments = gatedPayments{w.payments, g}
	frozen := checkoutAsync(ctx, w.orders(deps), "key-1", orderstest.Request(user))
	orderID := <-g.entered

	loopCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.orders(w.deps()).RunRecovery(loopCtx, 5*time.Millisecond, 0)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for w.stock(t, product).Reserved != 0 {
		if time.Now().After(deadline) {
			t.Fatal("reservation still held after 10s of RunRecovery")
		}
		time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline
	}
	stop()
	<-done
	if ch, err := w.payments.Get(ctx, orderID); err != nil || ch.Status != payments.StatusVoided {
		t.Errorf("charge: %+v %v, want voided", ch, err)
	}
	close(g.open)
	if r := <-frozen; !errors.Is(r.err, payments.ErrVoided) {
		t.Errorf("frozen checkout resumed: %+v %v, want ErrVoided", r.ord, r.err)
	}
}

func assertNoOrders(t *testing.T, o *orders.Orders, user string) {
	t.Helper()
	if list, err := orderstest.ListAll(t.Context(), o, user); err != nil || len(list) != 0 {
		t.Errorf("orders of %s: %+v %v, want none", user, list, err)
	}
}

// TestShippedEventMarksOrder runs the order through the real shipping context over the bus.
func TestShippedEventMarksOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		_, user := w.shop(t)
		o := w.orders(w.deps())
		ship := shipping.New(be.bucket(t, "shipments"), w.bus, time.Now)
		for _, c := range []struct {
			name    string
			subject string
			h       events.Handler
		}{
			{"shipping", events.OrderPaidSubject, shipping.HandleOrderPaid(ship)},
			{"orders", events.OrderShippedSubject, orders.HandleOrderShipped(o)},
		} {
			sub, err := w.bus.Subscribe(ctx, c.name+"-"+ids.New("t", time.Now()), []string{c.subject}, c.h)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sub.Stop)
		}
		ord, err := o.Checkout(ctx, "key-1", orderstest.Request(user))
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := o.Get(ctx, ord.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status == orders.StatusShipped {
				s, err := ship.Get(ctx, ord.ID)
				if err != nil || got.TrackingID != s.TrackingID {
					t.Errorf("tracking ID %q, shipment %+v %v", got.TrackingID, s, err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("order still %s after 10s", got.Status)
			}
			time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline
		}
	})
}

// TestHandleOrderShippedPoison: what can never be handled is given up at once; an order
// not recorded yet is redelivered (checkout publishes order-paid as it records the order),
// and marked shipped once it is there.
func TestHandleOrderShippedPoison(t *testing.T) {
	w := newWorld(t, memoryBackend())
	o := w.orders(w.deps())
	h := orders.HandleOrderShipped(o)
	for _, m := range []events.Message{
		{Subject: events.OrderShippedSubject, ID: "1", Data: []byte(`{not json`)},
		{Subject: events.OrderShippedSubject, ID: "2", Data: []byte(`{"order_id":"ord\u0000x","tracking_id":"trk-1"}`)},
		{Subject: events.OrderShippedSubject, ID: "3", Data: []byte(`{"order_id":"","tracking_id":"trk-1"}`)},
		{Subject: events.OrderShippedSubject, ID: "4", Data: []byte(`{"order_id":"ord-1","tracking_id":""}`)},
		{Subject: events.OrderPaidSubject, ID: "5", Data: []byte(`{}`)},
	} {
		if err := h(t.Context(), m); !errors.Is(err, events.ErrPoison) {
			t.Errorf("message %s: %v, want poison", m.ID, err)
		}
	}

	_, user := w.shop(t)
	ord, err := o.Checkout(t.Context(), "key-1", orderstest.Request(user))
	if err != nil {
		t.Fatal(err)
	}
	early := events.Message{Subject: events.OrderShippedSubject, ID: "6", Data: []byte(`{"order_id":"ord-not-yet","tracking_id":"trk-1"}`)}
	if err := h(t.Context(), early); err == nil || errors.Is(err, events.ErrPoison) {
		t.Errorf("order not recorded yet: %v, want an error that is not poison (redelivered)", err)
	}
	shipped := events.Message{Subject: events.OrderShippedSubject, ID: "7", Data: []byte(`{"order_id":"` + ord.ID + `","tracking_id":"trk-1"}`)}
	if err := h(t.Context(), shipped); err != nil {
		t.Fatalf("order recorded: %v", err)
	}
	if got, err := o.Get(t.Context(), ord.ID); err != nil || got.Status != orders.StatusShipped || got.TrackingID != "trk-1" {
		t.Errorf("order after order-shipped: %+v %v, want shipped with trk-1", got, err)
	}

	// An order whose write lands a moment after its order-shipped arrives, as when
	// checkout's write of it is slower than shipping: one delivery marks it shipped.
	late := ord
	late.ID, late.Status, late.TrackingID = ids.New("ord", time.Now()), orders.StatusPaid, ""
	done := make(chan error, 1)
	go func() {
		done <- h(t.Context(), events.Message{Subject: events.OrderShippedSubject, ID: "8", Data: []byte(`{"order_id":"` + late.ID + `","tracking_id":"trk-2"}`)})
	}()
	time.Sleep(20 * time.Millisecond) // the order's write comes after the event, on purpose
	if _, err := kv.Create(t.Context(), w.stores.Orders, late.ID, late); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("order recorded 20 ms after its order-shipped: %v, want handled in that delivery", err)
	}
	if got, err := o.Get(t.Context(), late.ID); err != nil || got.Status != orders.StatusShipped || got.TrackingID != "trk-2" {
		t.Errorf("late order after order-shipped: %+v %v, want shipped with trk-2", got, err)
	}
}

// paidCounter counts the order-paid events per order.
type paidCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func countPaid(t *testing.T, sub events.Subscriber) *paidCounter {
	t.Helper()
	c := &paidCounter{n: map[string]int{}}
	s, err := sub.Subscribe(t.Context(), ids.New("count", time.Now()), []string{events.OrderPaidSubject},
		func(_ context.Context, m events.Message) error {
			e, err := events.Decode[events.OrderPaid](m)
			if err != nil {
				return err
			}
			c.mu.Lock()
			c.n[e.OrderID]++
			c.mu.Unlock()
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return c
}

// settle returns once every order-paid published on bus so far has been counted: it
// publishes one more, for an order of its own, and waits for it.
func (c *paidCounter) settle(t *testing.T, bus events.Publisher) {
	t.Helper()
	id := ids.New("settle", time.Now())
	if err := bus.Publish(t.Context(), events.OrderPaidSubject, "order-paid."+id, events.OrderPaid{OrderID: id}); err != nil {
		t.Fatal(err)
	}
	c.waitOne(t, id)
}

func (c *paidCounter) waitOne(t *testing.T, orderID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := c.n[orderID]
		c.mu.Unlock()
		switch {
		case n > 1:
			t.Fatalf("%d order-paid events for %s, want 1", n, orderID)
		case n == 1:
			return
		case time.Now().After(deadline):
			t.Fatalf("no order-paid event for %s within 10s", orderID)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// BenchmarkCheckout measures a whole checkout over JetStream: saga writes, cart read,
// reservation, charge, commit, order, history, cart removal and the order-paid publish.
func BenchmarkCheckout(b *testing.B) {
	w := newWorld(b, jetStreamBackend(b))
	ctx := context.Background()
	o := w.orders(w.deps())
	product := "bench-1"
	if _, err := w.catalog.Upsert(ctx, catalog.Product{ID: product, Name: "Bench", Price: money.Cents(1000), WeightGrams: 500}); err != nil {
		b.Fatal(err)
	}
	for added := 0; added < b.N+1; added += inventory.MaxAdd {
		if _, err := w.inventory.Add(ctx, product, inventory.MaxAdd); err != nil {
			b.Fatal(err)
		}
	}
	users := make([]string, b.N)
	for i := range users {
		users[i] = fmt.Sprintf("bench-user-%d", i)
		if _, err := w.carts.Add(ctx, users[i], cart.Item{ProductID: product, Quantity: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := o.Checkout(ctx, fmt.Sprintf("bench-key-%d", i), orderstest.Request(users[i])); err != nil {
			b.Fatal(err)
		}
	}
}
