package orders_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/orders/orderstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// These tests run several *orders.Orders over one set of stores, as the replicas of the
// orders context do (platform/topology: replicas), and check that the records' ownership
// (saga.go) keeps them from both handling one checkout.

// publishCounter is a real bus that counts what is published through it, by message ID.
type publishCounter struct {
	events.Publisher
	mu sync.Mutex
	n  map[string]int
}

func (p *publishCounter) Publish(ctx context.Context, subject, id string, payload any) error {
	err := p.Publisher.Publish(ctx, subject, id, payload)
	if err == nil {
		p.mu.Lock()
		p.n[id]++
		p.mu.Unlock()
	}
	return err
}

func (p *publishCounter) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[id]
}

// TestReplicasShareDuplicateKeys: each customer's checkout reaches two replicas at once with
// the same Idempotency-Key (a client retrying through a balancer): both answer with one
// order, charged once, announced once, published by one replica only.
func TestReplicasShareDuplicateKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		w := newWorld(t, be)
		paid := countPaid(t, w.bus)
		pub := &publishCounter{Publisher: w.bus, n: map[string]int{}}
		deps := w.deps()
		deps.Events = pub
		replicas := []*orders.Orders{w.orders(deps), w.orders(deps)}
		const customers = 12
		users := make([]string, customers)
		products := make([]string, customers)
		for i := range users {
			products[i], users[i] = w.shop(t)
		}
		got := make([][2]result, customers)
		var wg sync.WaitGroup
		for i, user := range users {
			key, req := "dup-"+user, orderstest.Request(user)
			for r, o := range replicas {
				wg.Go(func() {
					ord, err := o.Checkout(t.Context(), key, req)
					got[i][r] = result{ord, err}
				})
			}
		}
		wg.Wait()
		for i, user := range users {
			a, b := got[i][0], got[i][1]
			if a.err != nil || b.err != nil || a.ord.ID != b.ord.ID {
				t.Errorf("%s: replica answers %+v %v and %+v %v, want one order", user, a.ord, a.err, b.ord, b.err)
				continue
			}
			if list, err := orderstest.ListAll(t.Context(), replicas[0], user); err != nil || len(list) != 1 {
				t.Errorf("%s has %d orders (%v), want 1", user, len(list), err)
			}
			if ch, err := w.payments.Get(t.Context(), a.ord.ID); err != nil || ch.Status != payments.StatusCaptured {
				t.Errorf("charge of %s: %+v %v, want one captured", a.ord.ID, ch, err)
			}
			if s := w.stock(t, products[i]); s.Sold != 2 || s.Reserved != 0 {
				t.Errorf("stock of %s: %+v, want 2 sold", products[i], s)
			}
			if n := pub.count("order-paid." + a.ord.ID); n != 1 {
				t.Errorf("order-paid of %s published %d times, want once", a.ord.ID, n)
			}
			paid.waitOne(t, a.ord.ID)
		}
	})
}

// stuck is a peer whose calls for some orders never come back while the test observes: the
// replica that made them is, for the rest of the shop, dead at that point (it wrote nothing
// more). The calls return errStuck when the test ends.
type stuck struct {
	entered chan string
	dead    chan struct{}
}

var errStuck = errors.New("stuck replica: gone")

func newStuck() *stuck {
	return &stuck{entered: make(chan string, 64), dead: make(chan struct{})}
}

func (s *stuck) hold(ctx context.Context, orderID string) error {
	s.entered <- orderID
	select {
	case <-s.dead:
	case <-ctx.Done():
	}
	return errStuck
}

type stuckPayments struct {
	payments.Service
	s *stuck
}

func (p stuckPayments) Charge(ctx context.Context, req payments.ChargeRequest) (payments.Charge, error) {
	return payments.Charge{}, p.s.hold(ctx, req.IdempotencyKey)
}

type stuckInventory struct {
	inventory.Service
	s *stuck
}

func (i stuckInventory) Commit(ctx context.Context, id string) error { return i.s.hold(ctx, id) }

// TestCrashedReplicaRecoveredOnce: a replica dies in the middle of checkouts, some before
// their charge, some after; two other replicas recover at the same time, once the records
// are stale. Each interrupted checkout is handled by exactly one of them: the ones before
// the charge compensated (nothing charged, stock back), the ones after rolled forward (one
// order, one charge, one order-paid, published once).
func TestCrashedReplicaRecoveredOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		paid := countPaid(t, w.bus)

		// The replica that dies: half its checkouts stop in the charge, half in the commit.
		beforeCharge, afterCharge := newStuck(), newStuck()
		crashed := w.deps()
		crashed.Payments = stuckPayments{w.payments, beforeCharge}
		crashedAfter := w.deps()
		crashedAfter.Inventory = stuckInventory{w.inventory, afterCharge}
		var frozen sync.WaitGroup
		t.Cleanup(func() { close(beforeCharge.dead); close(afterCharge.dead); frozen.Wait() })
		const each = 4
		type interrupted struct{ user, product, key, orderID string }
		var before, after []interrupted
		for i := range 2 * each {
			product, user := w.shop(t)
			deps, stk := crashed, beforeCharge
			if i >= each {
				deps, stk = crashedAfter, afterCharge
			}
			key := fmt.Sprintf("crash-%d-%s", i, user)
			o := w.orders(deps)
			frozen.Go(func() { _, _ = o.Checkout(context.WithoutCancel(ctx), key, orderstest.Request(user)) })
			it := interrupted{user: user, product: product, key: key, orderID: <-stk.entered}
			if i < each {
				before = append(before, it)
			} else {
				after = append(after, it)
			}
		}

		// Two live replicas, whose clocks say a minute and more has passed since.
		clock := &offsetClock{}
		pub := &publishCounter{Publisher: w.bus, n: map[string]int{}}
		live := w.deps()
		live.Events, live.Now = pub, clock.Now
		replicas := []*orders.Orders{w.orders(live), w.orders(live)}
		if n, err := replicas[0].Recover(ctx, orders.StaleSaga); n != 0 || err != nil {
			t.Fatalf("recovery of live checkouts: %d handled (%v), want none", n, err)
		}
		clock.Advance(orders.StaleSaga + time.Second)
		handled := make([]int, len(replicas))
		errs := make([]error, len(replicas))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, o := range replicas {
			wg.Go(func() {
				<-start
				handled[i], errs[i] = o.Recover(ctx, orders.StaleSaga)
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("recover: %v", err)
		}
		if handled[0]+handled[1] != 2*each {
			t.Errorf("the replicas handled %d and %d checkouts, %d in all, want %d: each exactly once", handled[0], handled[1], handled[0]+handled[1], 2*each)
		}
		t.Logf("replica 1 handled %d, replica 2 %d", handled[0], handled[1])
		for _, o := range replicas {
			if n, err := o.Recover(ctx, orders.StaleSaga); n != 0 || err != nil {
				t.Errorf("recover again: %d %v, want nothing left", n, err)
			}
		}

		for _, it := range before {
			if ch, err := w.payments.Get(ctx, it.orderID); err == nil && ch.Status == payments.StatusCaptured {
				t.Errorf("%s: charge %+v after compensation, want none captured", it.orderID, ch)
			}
			if s := w.stock(t, it.product); s.Available != 5 || s.Reserved != 0 || s.Sold != 0 {
				t.Errorf("%s: stock %+v, want all 5 back", it.orderID, s)
			}
			if n := pub.count("order-paid." + it.orderID); n != 0 {
				t.Errorf("%s: order-paid published %d times for a compensated checkout", it.orderID, n)
			}
			// The customer's retry checks out afresh.
			ord, err := replicas[1].Checkout(ctx, it.key, orderstest.Request(it.user))
			if err != nil || ord.ID == it.orderID {
				t.Errorf("%s: retry %+v %v, want a new order", it.key, ord, err)
			}
		}
		for _, it := range after {
			ord, err := replicas[0].Get(ctx, it.orderID)
			if err != nil || ord.Status != orders.StatusPaid {
				t.Errorf("%s: order %+v %v, want paid", it.orderID, ord, err)
			}
			if ch, err := w.payments.Get(ctx, it.orderID); err != nil || ch.Status != payments.StatusCaptured {
				t.Errorf("%s: charge %+v %v, want captured", it.orderID, ch, err)
			}
			if s := w.stock(t, it.product); s.Sold != 2 || s.Reserved != 0 {
				t.Errorf("%s: stock %+v, want 2 sold", it.orderID, s)
			}
			if n := pub.count("order-paid." + it.orderID); n != 1 {
				t.Errorf("%s: order-paid published %d times, want once", it.orderID, n)
			}
			paid.waitOne(t, it.orderID)
			// The customer's retry gets that order.
			if again, err := replicas[1].Checkout(ctx, it.key, orderstest.Request(it.user)); err != nil || again.ID != it.orderID {
				t.Errorf("%s: retry %+v %v, want order %s", it.key, again, err, it.orderID)
			}
		}
	})
}

// TestTakenOverCheckoutStops: a checkout overtaken while it was stalled (its record taken
// over by a replica once stale) cannot write it any more: its own roll-forward ends with the
// takeover's error, and does not finish the record behind the new owner's back.
func TestTakenOverCheckoutStops(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := t.Context()
		w := newWorld(t, be)
		_, user := w.shop(t)
		g := newGate()
		deps := w.deps()
		deps.Inventory = gatedInventory{w.inventory, g}
		frozen := checkoutAsync(ctx, w.orders(deps), "key-1", orderstest.Request(user))
		orderID := <-g.entered
		clock := &offsetClock{}
		clock.Advance(orders.StaleSaga + time.Second)
		live := w.deps()
		live.Now = clock.Now
		if n, err := w.orders(live).Recover(ctx, orders.StaleSaga); n != 1 || err != nil {
			t.Fatalf("recover: %d %v, want 1", n, err)
		}
		close(g.open)
		r := <-frozen
		// Either it found the record done by the new owner (its order), or lost it; never a
		// second, different outcome.
		if r.err != nil && !strings.Contains(r.err.Error(), "taken over") {
			t.Errorf("overtaken checkout: %v, want its order or the takeover's error", r.err)
		}
		if r.err == nil && r.ord.ID != orderID {
			t.Errorf("overtaken checkout returned order %s, want %s", r.ord.ID, orderID)
		}
	})
}
