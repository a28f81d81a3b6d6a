package orders_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// A crash between steps: the monolith's contexts wired in process, as the monolith wires
// them, over one backend's stores; the process that checks out dies at a point between two
// steps of the saga (or inside a group of steps that run together, after some of them), and
// a new process recovers as the monolith does at start (Recover with nothing younger than
// its start).

// The saga's writes that are no step: the pivot and the record marked done.
const (
	pivotStep  = "(pivot)"
	finishStep = "(finish)"
)

// stepOps names, for each step, the operation its first call makes, which crashBucket and
// the crash* peers below report: the point where a process dies before the step.
var stepOps = map[string]string{
	"ReadCart":         "cart.Get",
	"Price":            "catalog.Get",
	"Reserve":          "inventory.Reserve",
	"Charge":           "payments.Charge",
	"AddToHistory":     "user_orders.write",
	pivotStep:          "sagas.charged",
	"Commit":           "inventory.Commit",
	"RecordOrder":      "orders.write",
	"RemoveBought":     "cart.RemoveBought",
	"PublishOrderPaid": "events.Publish",
	finishStep:         "sagas.done",
}

// crashPoint is where a checkout dies: once every step of done has returned, the first call
// of a step of next kills the process instead of going out.
type crashPoint struct {
	done, next   []string
	rollsForward bool // the charge was recorded: recovery finishes the checkout
}

func (c crashPoint) String() string {
	s := "before " + strings.Join(c.next, "+")
	if len(c.done) > 0 {
		s = "after " + strings.Join(c.done, "+") + " " + s
	}
	return s
}

// crashPoints are every gap between consecutive groups of steps of orders.Steps (the pivot
// and the record's finish among them), and inside each group of steps that run together,
// every way some of them can be done and the others not.
func crashPoints(t *testing.T) []crashPoint {
	t.Helper()
	var groups [][]string
	var phases []orders.Phase
	add := func(name string, phase orders.Phase, with bool) {
		if with {
			groups[len(groups)-1] = append(groups[len(groups)-1], name)
			return
		}
		groups, phases = append(groups, []string{name}), append(phases, phase)
	}
	for _, s := range orders.Steps() {
		if s.Phase == orders.RollForward && phases[len(phases)-1] == orders.Compensate {
			add(pivotStep, orders.Compensate, false) // a failure of the pivot compensates
		}
		add(s.Name, s.Phase, s.WithPrevious)
	}
	add(finishStep, orders.RollForward, false)
	for _, g := range groups {
		for _, name := range g {
			if _, ok := stepOps[name]; !ok {
				t.Fatalf("step %s: the test does not know its first call (stepOps)", name)
			}
		}
	}
	var points []crashPoint
	for i := 1; i < len(groups); i++ {
		g, fwd := groups[i], phases[i] == orders.RollForward
		points = append(points, crashPoint{next: g, rollsForward: fwd})
		for mask := 1; mask < 1<<len(g)-1; mask++ { // every non-empty proper subset done
			var p crashPoint
			for j, name := range g {
				if mask&(1<<j) != 0 {
					p.done = append(p.done, name)
				} else {
					p.next = append(p.next, name)
				}
			}
			p.rollsForward = fwd
			points = append(points, p)
		}
	}
	return points
}

// errCrashed is what every call of a dead process gets: nothing it asks for happens.
var errCrashed = errors.New("the process died")

// crashProcess is one process of orders that dies at a crash point.
type crashProcess struct {
	ctx      context.Context
	ops      map[string]string // op → step, for the steps of the point
	point    crashPoint
	mu       sync.Mutex
	returned map[string]chan struct{} // by step: closed when its first call returned without error
	dead     chan struct{}
	die      sync.Once
	orderID  string // the checkout's, from the record it created
}

func newCrashProcess(ctx context.Context, p crashPoint) *crashProcess {
	ops := map[string]string{}
	for _, s := range append(slices.Clone(p.done), p.next...) {
		ops[stepOps[s]] = s
	}
	return newProcessDyingAt(ctx, p, ops)
}

// newProcessDyingAt is a process that dies at p, whose steps are the ops (op → step) it
// names: those of another context's process too.
func newProcessDyingAt(ctx context.Context, p crashPoint, ops map[string]string) *crashProcess {
	c := &crashProcess{ctx: ctx, ops: ops, point: p, returned: map[string]chan struct{}{}, dead: make(chan struct{})}
	for _, s := range ops {
		c.returned[s] = make(chan struct{})
	}
	return c
}

func (c *crashProcess) crashed() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// enter is called before op goes out: it fails once the process is dead, and kills it at
// the first call of a step of point.next, once every step of point.done has returned.
func (c *crashProcess) enter(op string) error {
	if c.crashed() {
		return errCrashed
	}
	step, ok := c.ops[op]
	if !ok || !slices.Contains(c.point.next, step) {
		return nil
	}
	for _, d := range c.point.done {
		select {
		case <-c.returned[d]:
		case <-c.dead:
		case <-c.ctx.Done():
			return c.ctx.Err()
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s: step %s did not return within 10s", c.point, d)
		}
	}
	c.die.Do(func() { close(c.dead) })
	return errCrashed
}

// leave is called once op returned err.
func (c *crashProcess) leave(op string, err error) error {
	if step, ok := c.ops[op]; ok && err == nil {
		c.mu.Lock()
		select {
		case <-c.returned[step]:
		default:
			close(c.returned[step])
		}
		c.mu.Unlock()
	}
	return err
}

// call runs fn as op of the process.
func call[T any](c *crashProcess, op string, fn func() (T, error)) (T, error) {
	if err := c.enter(op); err != nil {
		var zero T
		return zero, err
	}
	v, err := fn()
	return v, c.leave(op, err)
}

// crashBucket is a bucket of orders' own as the process sees it. Writes are named
// "<name>.write", but the saga record's updates, named by the state they write.
type crashBucket struct {
	kv.Bucket
	name string
	c    *crashProcess
}

func (b crashBucket) Get(ctx context.Context, key string) (kv.Entry, error) {
	return call(b.c, b.name+".Get", func() (kv.Entry, error) { return b.Bucket.Get(ctx, key) })
}

func (b crashBucket) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	op := b.name + ".write"
	if b.name == "sagas" {
		op = "sagas.Create"
		var rec struct {
			OrderID string `json:"order_id"`
		}
		if json.Unmarshal(value, &rec) == nil {
			b.c.mu.Lock()
			b.c.orderID = rec.OrderID
			b.c.mu.Unlock()
		}
	}
	return call(b.c, op, func() (uint64, error) { return b.Bucket.Create(ctx, key, value, opts...) })
}

func (b crashBucket) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	op := b.name + ".write"
	if b.name == "sagas" {
		var rec struct {
			State string `json:"state"`
		}
		_ = json.Unmarshal(value, &rec)
		op = "sagas." + rec.State
	}
	return call(b.c, op, func() (uint64, error) { return b.Bucket.Update(ctx, key, value, rev, opts...) })
}

func (b crashBucket) Delete(ctx context.Context, key string, rev uint64) error {
	_, err := call(b.c, b.name+".Delete", func() (struct{}, error) { return struct{}{}, b.Bucket.Delete(ctx, key, rev) })
	return err
}

type crashCatalog struct {
	catalog.Service
	c *crashProcess
}

func (s crashCatalog) Get(ctx context.Context, id string) (catalog.Product, error) {
	return call(s.c, "catalog.Get", func() (catalog.Product, error) { return s.Service.Get(ctx, id) })
}

type crashCart struct {
	cart.Service
	c *crashProcess
}

func (s crashCart) Get(ctx context.Context, user string) (cart.Cart, error) {
	return call(s.c, "cart.Get", func() (cart.Cart, error) { return s.Service.Get(ctx, user) })
}

func (s crashCart) RemoveBought(ctx context.Context, user, orderID string, items []cart.Item) (cart.Cart, error) {
	return call(s.c, "cart.RemoveBought", func() (cart.Cart, error) { return s.Service.RemoveBought(ctx, user, orderID, items) })
}

type crashInventory struct {
	inventory.Service
	c *crashProcess
}

func (s crashInventory) Reserve(ctx context.Context, id string, lines []inventory.Line) (inventory.Reservation, error) {
	return call(s.c, "inventory.Reserve", func() (inventory.Reservation, error) { return s.Service.Reserve(ctx, id, lines) })
}

func (s crashInventory) Commit(ctx context.Context, id string) error {
	_, err := call(s.c, "inventory.Commit", func() (struct{}, error) { return struct{}{}, s.Service.Commit(ctx, id) })
	return err
}

func (s crashInventory) Release(ctx context.Context, id string) error {
	_, err := call(s.c, "inventory.Release", func() (struct{}, error) { return struct{}{}, s.Service.Release(ctx, id) })
	return err
}

type crashPayments struct {
	payments.Service
	c *crashProcess
}

func (s crashPayments) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	return call(s.c, "payments.Charge", func() (payments.Charge, error) { return s.Service.Charge(ctx, req) })
}

func (s crashPayments) Refund(ctx context.Context, key string) (payments.Charge, error) {
	return call(s.c, "payments.Refund", func() (payments.Charge, error) { return s.Service.Refund(ctx, key) })
}

type crashPublisher struct {
	events.Publisher
	c *crashProcess
}

func (p crashPublisher) Publish(ctx context.Context, subject, id string, payload any) error {
	_, err := call(p.c, "events.Publish", func() (struct{}, error) { return struct{}{}, p.Publisher.Publish(ctx, subject, id, payload) })
	return err
}

// TestCrashBetweenEveryPairOfSteps: a checkout whose process dies at any point between two
// steps, also inside a group of steps that run together, is finished or compensated by the
// next process's recovery at start: stock adds up and nothing stays reserved, the card is
// charged once and the order exists (and is announced once) exactly when the charge was
// recorded before the crash, otherwise no order and the charge, if any, refunded; the cart
// keeps what the user added meanwhile; the key then answers as it should.
func TestCrashBetweenEveryPairOfSteps(t *testing.T) {
	points := crashPoints(t)
	forEachBackend(t, func(t *testing.T, be backend) {
		for _, p := range points {
			t.Run(p.String(), func(t *testing.T) { crashAndRecover(t, be, p) })
		}
	})
}

func crashAndRecover(t *testing.T, be backend, p crashPoint) {
	ctx := t.Context()
	w := newWorld(t, be)
	product, user := w.shop(t) // 5 in stock, 2 in the cart
	other := ids.New("p", time.Now())
	if _, err := w.catalog.Upsert(ctx, catalog.Product{ID: other, Name: "Mug", Price: money.Cents(700), WeightGrams: 300}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.inventory.Add(ctx, other, 5); err != nil {
		t.Fatal(err)
	}
	paid := countPaid(t, w.bus)

	c := newCrashProcess(ctx, p)
	deps := w.deps()
	deps.Catalog, deps.Carts = crashCatalog{w.catalog, c}, crashCart{w.carts, c}
	deps.Inventory, deps.Payments = crashInventory{w.inventory, c}, crashPayments{w.payments, c}
	deps.Events = crashPublisher{w.bus, c}
	dying := orders.New(orders.Stores{
		Orders:     crashBucket{w.stores.Orders, "orders", c},
		Sagas:      crashBucket{w.stores.Sagas, "sagas", c},
		UserOrders: crashBucket{w.stores.UserOrders, "user_orders", c},
	}, deps)
	key, req := "key-1", orderstest.Request(user)
	if ord, err := dying.Checkout(ctx, key, req); err == nil {
		t.Fatalf("the dying process made order %+v", ord)
	}
	if !c.crashed() {
		t.Fatalf("the checkout failed without reaching the crash point")
	}
	c.mu.Lock()
	orderID := c.orderID
	c.mu.Unlock()

	// Meanwhile the user adds to the cart: one more of the line being checked out, and a
	// new line.
	for _, it := range []cart.Item{{ProductID: product, Quantity: 1}, {ProductID: other, Quantity: 1}} {
		if _, err := w.carts.Add(ctx, user, it); err != nil {
			t.Fatal(err)
		}
	}

	restarted := w.orders(w.deps())
	if n, err := restarted.Recover(ctx, 0); n != 1 || err != nil {
		t.Fatalf("Recover: %d %v, want the checkout handled", n, err)
	}
	if n, err := restarted.Recover(ctx, 0); n != 0 || err != nil {
		t.Errorf("Recover again: %d %v, want nothing left", n, err)
	}

	s := w.stock(t, product)
	if s.Available+s.Reserved+s.Sold != 5 || s.Reserved != 0 {
		t.Errorf("stock %+v: want 5 in all, nothing reserved", s)
	}
	ch, chErr := w.payments.Get(ctx, orderID)
	ord, ordErr := restarted.Get(ctx, orderID)
	list, err := orderstest.ListAll(ctx, restarted, user)
	if err != nil {
		t.Fatal(err)
	}
	cartNow := map[string]int{}
	for _, it := range w.cartItems(t, user) {
		cartNow[it.ProductID] = it.Quantity
	}

	if p.rollsForward {
		if ordErr != nil || ord.Status != orders.StatusPaid {
			t.Errorf("order %s: %+v %v, want paid", orderID, ord, ordErr)
		}
		if s.Sold != 2 {
			t.Errorf("stock %+v: want 2 sold", s)
		}
		if chErr != nil || ch.Status != payments.StatusCaptured || ch.Amount != ord.Total {
			t.Errorf("charge: %+v %v, want %v captured", ch, chErr, ord.Total)
		}
		if len(list) != 1 || list[0].ID != orderID {
			t.Errorf("orders of the user: %+v, want only %s", list, orderID)
		}
		if want := map[string]int{product: 1, other: 1}; !maps.Equal(cartNow, want) {
			t.Errorf("cart %v, want %v: the order's 2 out, what was added meanwhile in", cartNow, want)
		}
		paid.waitOne(t, orderID)
		if again, err := restarted.Checkout(ctx, key, req); err != nil || again.ID != orderID {
			t.Errorf("replay: %+v %v, want order %s", again, err, orderID)
		}
	} else {
		if !errors.Is(ordErr, orders.ErrNotFound) || len(list) != 0 {
			t.Errorf("order %s: %+v %v, orders of the user %+v; want none", orderID, ord, ordErr, list)
		}
		if s.Sold != 0 {
			t.Errorf("stock %+v: want nothing sold", s)
		}
		if chErr == nil && ch.Status == payments.StatusCaptured {
			t.Errorf("charge: %+v, want none captured", ch)
		}
		if want := map[string]int{product: 3, other: 1}; !maps.Equal(cartNow, want) {
			t.Errorf("cart %v, want %v: untouched, what was added meanwhile in", cartNow, want)
		}
		// The key is free again: the retry checks out the cart as it is now.
		again, err := restarted.Checkout(ctx, key, req)
		if err != nil || again.ID == orderID {
			t.Fatalf("retry: %+v %v, want a new order", again, err)
		}
		paid.waitOne(t, again.ID)
	}
	paid.settle(t, w.bus)
	paid.mu.Lock()
	defer paid.mu.Unlock()
	if n := paid.n[orderID]; n != map[bool]int{true: 1, false: 0}[p.rollsForward] {
		t.Errorf("%d order-paid for %s", n, orderID)
	}
}
