//go:build !mitosis_group || mitosis_orders

// Part of the implementation: only the binaries that run orders link it (bounded.Group.BuildTags).

package orders

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// The checkout saga as data: its steps in order, what each calls, what undoes it, and
// which errors change what a failure leads to. run and rollForward walk this list, and
// compensate and undo run the Undo calls it gives, so that the list is what checkout does;
// renderings of the saga for other orchestrators (Amazon States Language, in
// platform/stepfunctions) read the same list through Steps.
//
// Between the two phases sits the pivot, which is not a step: the saga record says charged
// (before it a failure compensates, from it on the checkout is rolled forward, see saga.go).
// The record itself, created first and deleted last by a compensation, is the saga's log
// and idempotency record, not a step either.
//
// Steps may run at the same time (Step.WithPrevious): a group of steps starts together and
// the saga moves on once every one of them has returned, which saves the latency of all but
// the slowest. The steps of a group are independent of each other (none reads what another
// does) and share a phase. A failure in a Compensate group is compensated once the whole
// group has returned, as for one step: by the undo of every step done before the group and
// of every step of the group but those known to have done nothing (Compensations); a
// failure in a RollForward group leaves the checkout to be rolled forward again, all its
// steps repeated, unless it is an Abort.
//
// Compensations run in reverse order of their steps: the charge is refunded (or voided)
// before the stock is released. So a charge whose outcome is unknown is settled before its
// units go back on sale; the price is that while payments does not answer, a failed
// checkout's units stay reserved until payments is back (the retry or RunRecovery finishes
// the undo) or the reservation expires, at a time when no checkout can be paid anyway.

// Call names a method of a context's port: what a step, or its compensation, calls.
// Context "orders" is this context's own work on its own stores and events.
type Call struct {
	Context string `json:"context"` // a context's name, as services/bounded names it: "inventory"
	Method  string `json:"method"`  // the method of its port: "Reserve"
}

// IsZero tells whether c names no call (a step with nothing to undo).
func (c Call) IsZero() bool { return c == Call{} }

func (c Call) String() string { return c.Context + "." + c.Method }

// Error is a domain error a step's outcome turns on. Go code matches Err (errors.Is);
// renderings of the saga match Name, which a step's endpoint reports as its error's name.
type Error struct {
	Name string // "payments.ErrDeclined": the package and identifier of Err
	Err  error
}

// Phase says what a step's failure leads to.
type Phase string

const (
	// Compensate: before the pivot. A failure undoes the steps done, in reverse order, and
	// the checkout fails.
	Compensate Phase = "compensate"
	// RollForward: after the pivot. The customer has paid: a failure leaves the checkout to
	// be finished by the customer's retry or recovery, which repeat the step until it
	// succeeds (every such step is safe to repeat), unless the error is one of the step's
	// Abort errors.
	RollForward Phase = "roll-forward"
)

// Step is one step of checkout, as Steps lists them.
type Step struct {
	Name  string `json:"name"` // "Reserve": unique, a Go-style identifier
	Phase Phase  `json:"phase"`
	Call  Call   `json:"call"`
	// Undo is what compensates the step; zero when there is nothing to undo (a read, or a
	// write that nobody reads without the rest of the saga). Every Undo is a no-op when the
	// step did nothing, so a step whose outcome is unknown is undone all the same.
	Undo Call `json:"undo,omitzero"`
	// NothingDone are the errors after which the step is known to have done nothing: its own
	// Undo is not run then (a declined charge charged nothing). After any other error the
	// failed step is undone too.
	NothingDone []Error `json:"nothing_done,omitempty"`
	// Abort are the errors after which a RollForward step can never succeed: the checkout is
	// compensated in full instead (every Undo of the Compensate steps). Commit's lapsed
	// reservation: its units may be sold to someone else by now.
	Abort []Error `json:"abort,omitempty"`
	// WithPrevious runs the step at the same time as the one before it: they (and any more
	// steps after them that say WithPrevious) are one group, which the saga waits for
	// whole before it goes on. Only a step of the same phase may run with the previous.
	WithPrevious bool `json:"with_previous,omitempty"`
}

// Steps returns checkout's steps, in the order it runs them: the Compensate ones, then
// (after the pivot) the RollForward ones.
func Steps() []Step {
	var out []Step
	for _, s := range checkoutSteps() {
		out = append(out, s.Step)
	}
	return out
}

// Compensations returns what checkout runs, in order, to compensate a failure of the step
// at index failed of Steps with err (the other steps of its group, if it runs with others,
// having succeeded): for a Compensate step, the Undo of every step done before it or with
// it, last first, the failed step's own among them unless err is one of its NothingDone;
// for a RollForward step, nil (it is retried), unless err is one of its Abort: then, as for
// failed == len(Steps()), the pivot's failure, the Undo of every Compensate step, last
// first.
func Compensations(failed int, err error) []Call {
	var out []Call
	for _, s := range compensations(checkoutSteps(), failed, err) {
		out = append(out, s.Undo)
	}
	return out
}

// step is a Step with the code that runs it and undoes it.
type step struct {
	Step
	do   func(o *Orders, ctx context.Context, a *attempt) error
	undo func(o *Orders, ctx context.Context, orderID string) error // nil when Undo is zero

	// For a checkout orchestrated elsewhere (RunCall, orchestrated.go): the steps whose
	// answers this one reads; what it answers (nil: an empty object); and, where do reads
	// what a process of the called context alone does not hold, what runs instead.
	reads  []string
	answer func(o *Orders, a *attempt) any
	alone  func(o *Orders, ctx context.Context, a *attempt) error
}

// attempt is what one run of the steps passes from one to the next. The steps of a group
// run at the same time: each writes only fields no other step of its group reads.
type attempt struct {
	rec   saga
	card  payments.Card // Compensate steps only: never stored
	lines []cart.Item   // the cart's, as ReadCart read it
	ord   Order         // what RecordOrder recorded (or found)

	// The reads checkout starts while it creates the saga record (see checkoutOnce), which
	// ReadCart and AddToHistory receive, once each; nil when none was started: the step
	// reads then.
	cart    <-chan cartRead
	history <-chan historyRead

	// What runGroup runs a group with, one group after another, kept here rather than made
	// for each group (they were a sixth of orders' own allocations a checkout).
	wg   sync.WaitGroup
	errs [maxGroup]error
}

// groupErrs returns n cleared errors: a's own when they are enough.
func (a *attempt) groupErrs(n int) []error {
	if n > len(a.errs) {
		return make([]error, n)
	}
	errs := a.errs[:n]
	clear(errs)
	return errs
}

// maxGroup is the size of the largest group of checkoutSteps (RecordOrder, RemoveBought and
// PublishOrderPaid), whose errors an attempt holds; a larger group gets a slice of its own.
const maxGroup = 3

// cartRead is a read of a user's cart.
type cartRead struct {
	cart cart.Cart
	err  error
}

// early starts fn at once and returns where its result comes, once: a result nobody
// receives (the step never ran) is dropped with the channel.
func early[T any](fn func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	return ch
}

// checkoutSteps is the saga. Built on every call rather than held in a package variable:
// its functions refer to the code that reads it.
func checkoutSteps() []step {
	return []step{
		{Step: Step{Name: "ReadCart", Phase: Compensate, Call: Call{"cart", "Get"}}, do: (*Orders).readCart, answer: answerCart},
		{Step: Step{Name: "Price", Phase: Compensate, Call: Call{"catalog", "Get"}}, do: (*Orders).priceCart, reads: []string{"ReadCart"}, answer: (*Orders).answerPrice},
		{
			Step: Step{Name: "Reserve", Phase: Compensate, Call: Call{"inventory", "Reserve"}, Undo: Call{"inventory", "Release"}},
			do:   (*Orders).reserve, undo: (*Orders).releaseStock, reads: []string{"Price"},
		},
		{
			Step: Step{Name: "Charge", Phase: Compensate, Call: Call{"payments", "Charge"}, Undo: Call{"payments", "Refund"},
				NothingDone: []Error{{"payments.ErrDeclined", payments.ErrDeclined}}},
			do: (*Orders).charge, undo: (*Orders).refund, reads: []string{"Price"}, answer: (*Orders).answerCharge,
		},
		{
			Step: Step{Name: "Commit", Phase: RollForward, Call: Call{"inventory", "Commit"},
				Abort: []Error{{"inventory.ErrReservationNotFound", inventory.ErrReservationNotFound}}},
			do: (*Orders).commit, alone: commitAlone,
		},
		{Step: Step{Name: "AddToHistory", Phase: RollForward, Call: Call{"orders", "AddToHistory"}, WithPrevious: true}, do: (*Orders).historyStep},
		{Step: Step{Name: "RecordOrder", Phase: RollForward, Call: Call{"orders", "RecordOrder"}}, do: (*Orders).recordOrder, reads: []string{"Price"}, answer: answerOrder},
		{Step: Step{Name: "RemoveBought", Phase: RollForward, Call: Call{"cart", "RemoveBought"}, WithPrevious: true}, do: (*Orders).removeBought, reads: []string{"Price"}},
		{Step: Step{Name: "PublishOrderPaid", Phase: RollForward, Call: Call{"orders", "PublishOrderPaid"}, WithPrevious: true}, do: (*Orders).publishPaid, reads: []string{"Price", "Charge"}},
	}
}

// matches tells whether err is one of errs.
func matches(errs []Error, err error) bool {
	return slices.ContainsFunc(errs, func(e Error) bool { return errors.Is(err, e.Err) })
}

// groupEnd returns the end of the group that starts at steps[lo]: the index of the first
// step after it.
func groupEnd(steps []step, lo int) int {
	hi := lo + 1
	for hi < len(steps) && steps[hi].WithPrevious {
		hi++
	}
	return hi
}

// groupOf returns the bounds [lo, hi) of the group steps[i] runs in.
func groupOf(steps []step, i int) (lo, hi int) {
	for lo = i; lo > 0 && steps[lo].WithPrevious; lo-- {
	}
	return lo, groupEnd(steps, lo)
}

// compensations returns the steps whose undo compensates a failure of steps[failed] with
// err, the rest of its group having succeeded, in the order to run them (see
// Compensations).
func compensations(steps []step, failed int, err error) []step {
	if failed >= len(steps) {
		return undoFrom(steps, len(steps), nil)
	}
	lo, hi := groupOf(steps, failed)
	errs := make([]error, hi-lo)
	errs[failed-lo] = err
	return groupCompensations(steps, lo, errs)
}

// groupCompensations returns the steps whose undo compensates the group that starts at
// steps[lo] when its steps returned errs (errs[k] is steps[lo+k]'s, nil when it
// succeeded; one at least is not), in the order to run them: for a Compensate group, the
// undo of every step before the group and of every step of it, last first, but for those
// that failed with one of their NothingDone errors; for a RollForward group, none (it is
// rolled forward again) unless a step failed with one of its Abort errors, and then the
// undo of every Compensate step.
func groupCompensations(steps []step, lo int, errs []error) []step {
	if steps[lo].Phase == Compensate {
		return undoFrom(steps, lo+len(errs), func(i int) bool {
			return i >= lo && matches(steps[i].NothingDone, errs[i-lo])
		})
	}
	for k, err := range errs {
		if err != nil && matches(steps[lo+k].Abort, err) {
			return undoFrom(steps, len(steps), nil)
		}
	}
	return nil
}

// undoFrom returns the steps among steps[:done] that have an undo, last first, but for those
// nothingDone (nil: none) says did nothing.
func undoFrom(steps []step, done int, nothingDone func(i int) bool) []step {
	var out []step
	for i := done - 1; i >= 0; i-- {
		if steps[i].Phase == Compensate && steps[i].undo != nil && (nothingDone == nil || !nothingDone(i)) {
			out = append(out, steps[i])
		}
	}
	return out
}

// runGroup runs the steps of a group, at the same time when they are several, and returns
// their errors, in their order, once every one has returned. A failing step does not stop
// the others: each is left to finish what it started, so that what it did is known when
// the group is compensated (or rolled forward again).
// The errors are a's until its next group runs.
func (o *Orders) runGroup(ctx context.Context, a *attempt, group []step) []error {
	errs := a.groupErrs(len(group)) // assigned once, so that the closures below copy it
	if len(group) == 1 {
		errs[0] = group[0].do(o, ctx, a)
		return errs
	}
	// The last step runs on this goroutine, whose stack has grown already (see
	// kv.Concurrently). The others get a pointer to their step: a step is too large for a
	// closure to hold by value, and was copied to the heap for each.
	last := len(group) - 1
	for k := range group[:last] {
		s := &group[k]
		a.wg.Go(func() { errs[k] = s.do(o, ctx, a) })
	}
	errs[last] = group[last].do(o, ctx, a)
	a.wg.Wait()
	return errs
}

// firstError is the first of errs that is not nil: what a group that failed returns.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// undoAll is what undoes a checkout however far it got before the pivot: recovery's and a
// failed pivot's compensation.
func undoAll() []step { return compensations(checkoutSteps(), len(checkoutSteps()), nil) }

func (o *Orders) readCart(ctx context.Context, a *attempt) error {
	var r cartRead
	if a.cart != nil {
		r = <-a.cart
	} else {
		r.cart, r.err = o.deps.Carts.Get(ctx, a.rec.UserID)
	}
	c, err := r.cart, r.err
	if err != nil {
		return fmt.Errorf("checkout: read cart of %s: %w", a.rec.UserID, err)
	}
	if len(c.Items) == 0 {
		return validation.Errorf("cart", "cart is empty")
	}
	a.lines = c.Items
	return nil
}

func (o *Orders) priceCart(ctx context.Context, a *attempt) error {
	return o.price(ctx, &a.rec, a.lines)
}

func (o *Orders) reserve(ctx context.Context, a *attempt) error {
	lines := make([]inventory.Line, len(a.rec.Items))
	for i, it := range a.rec.Items {
		lines[i] = inventory.Line{ProductID: it.ProductID, Quantity: int64(it.Quantity)}
	}
	_, err := o.deps.Inventory.Reserve(ctx, a.rec.OrderID, lines)
	return err // as it is: an *inventory.OutOfStockError names the product
}

func (o *Orders) releaseStock(ctx context.Context, orderID string) error {
	if err := o.deps.Inventory.Release(ctx, orderID); err != nil {
		return fmt.Errorf("release order %s: %w", orderID, err)
	}
	return nil
}

// charge charges the card under the order ID. A failure other than a decline leaves the
// outcome unknown (a timeout, say): the refund that compensates it voids the key, so that a
// charge still in flight cannot go through.
func (o *Orders) charge(ctx context.Context, a *attempt) error {
	_, err := o.deps.Payments.Charge(ctx, payments.ChargeRequest{IdempotencyKey: a.rec.OrderID, Amount: a.rec.Total, Card: a.card})
	if err != nil {
		return fmt.Errorf("checkout: charge order %s: %w", a.rec.OrderID, err)
	}
	return nil
}

func (o *Orders) refund(ctx context.Context, orderID string) error {
	if _, err := o.deps.Payments.Refund(ctx, orderID); err != nil {
		return fmt.Errorf("refund order %s: %w", orderID, err)
	}
	return nil
}

// historyStep adds the order to its user's history once it is paid, while its stock is
// committed: a checkout that fails before its pivot (a declined card, say) leaves nothing
// in the history, so no request can fill a history with IDs that name no order, which every
// list would read past. Like every roll-forward step it is safe to repeat: addToHistory
// finds the ID in the head and writes nothing (see history.go for the one case it cannot).
// It writes at the head read while the saga record was created, so that adding the order
// costs one write; a head that changed since (the user's other checkout), or a read that
// failed (its request went away), costs a read and a write more.
func (o *Orders) historyStep(ctx context.Context, a *attempt) error {
	var head historyRead
	if a.history != nil {
		head = <-a.history
	}
	if a.history == nil || head.err != nil {
		head = o.readHistory(ctx, a.rec.UserID)
	}
	if err := o.addToHistory(ctx, a.rec.UserID, a.rec.OrderID, head); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	return nil
}

// commit sells the reserved stock. Its Abort, a lapsed reservation, is returned only when
// the order does not exist: the order is written only after its commit, so if it exists the
// commit happened long ago (inventory forgets committed reservations after a while).
func (o *Orders) commit(ctx context.Context, a *attempt) error {
	err := o.deps.Inventory.Commit(ctx, a.rec.OrderID)
	if err == nil {
		return nil
	}
	if !errors.Is(err, inventory.ErrReservationNotFound) {
		return fmt.Errorf("checkout: commit stock of order %s: %w", a.rec.OrderID, err)
	}
	_, gerr := o.Get(ctx, a.rec.OrderID)
	switch {
	case gerr == nil:
		return nil
	case !errors.Is(gerr, ErrNotFound):
		// Not the Abort: whether the order exists is unknown, so the checkout is retried.
		return fmt.Errorf("checkout: commit stock of order %s: %v; reading the order: %w", a.rec.OrderID, err, gerr)
	}
	// The reservation expired while the card was being charged, so its units may be sold to
	// someone else by now.
	return fmt.Errorf("checkout: commit stock of order %s: %w", a.rec.OrderID, err)
}

func (o *Orders) recordOrder(ctx context.Context, a *attempt) error {
	ord := a.rec.order()
	if _, err := kv.Create(ctx, o.recorded, ord.ID, ord); err != nil {
		if !errors.Is(err, kv.ErrExists) {
			return fmt.Errorf("checkout: record order %s: %w", ord.ID, err)
		}
		// Recorded by an earlier run; it may be shipped by now.
		if ord, err = o.Get(ctx, ord.ID); err != nil {
			return err
		}
	}
	a.ord = ord
	return nil
}

func (o *Orders) removeBought(ctx context.Context, a *attempt) error {
	if _, err := o.deps.Carts.RemoveBought(ctx, a.rec.UserID, a.rec.OrderID, a.rec.bought()); err != nil {
		return fmt.Errorf("checkout: remove order %s from the cart of %s: %w", a.rec.OrderID, a.rec.UserID, err)
	}
	return nil
}

func (o *Orders) publishPaid(ctx context.Context, a *attempt) error {
	if err := o.deps.Events.Publish(ctx, events.OrderPaidSubject, "order-paid."+a.rec.OrderID, a.rec.orderPaid()); err != nil {
		return fmt.Errorf("checkout: publish order-paid %s: %w", a.rec.OrderID, err)
	}
	return nil
}
