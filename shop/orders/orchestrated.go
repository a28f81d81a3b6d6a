//go:build !mitosis_group || mitosis_orders

// Part of the implementation: only the binaries that run orders link it (bounded.Group.BuildTags).

package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Checkout orchestrated elsewhere: an orchestrator outside this context (an AWS Step
// Functions state machine rendered from Steps, platform/stepfunctions) runs the saga one
// call at a time, each call in a process that may hold one context only, and carries the
// checkout's data from step to step itself. RunCall runs one such call with the very code
// the saga runs (checkoutSteps): what a step reads and decides stays here, in one place,
// whoever orchestrates it.
//
// What the orchestrator carries is an Execution: who orders what and where (its input) and
// the answer of each step done so far, which the later steps read (the lines ReadCart read,
// the prices Price set, when Charge charged). The saga record, the pivot and recovery are
// this context's own orchestration and play no part: the orchestrator keeps its own log,
// retries and compensates as Steps says, and every call is safe to repeat by the order ID,
// which the orchestrator's input gives.
//
// One exception to "the same code": Commit's Abort check reads the orders bucket (an order
// that exists means its commit happened long ago), which a process of inventory does not
// hold. An orchestrator following Steps runs Commit before RecordOrder and repeats it only
// right after it failed, well within inventory's memory of committed reservations, so a
// lapsed reservation there is the Abort itself.

// Execution is a checkout as an orchestrator outside this context carries it.
type Execution struct {
	OrderID string  `json:"order_id"` // the ID every step works under ("ord-...", ids.New)
	UserID  string  `json:"user_id"`
	Email   string  `json:"email"`
	Address Address `json:"address"`
	// Answers are the answers of the steps done, by step name (Step.Name), as RunCall gave
	// them.
	Answers map[string]json.RawMessage `json:"-"`
}

// Answers of the steps that later steps read. Every other step answers an empty object, but
// RecordOrder, which answers the Order.
type (
	// CartRead is ReadCart's answer.
	CartRead struct {
		Lines []cart.Item `json:"lines"`
	}
	// Priced is Price's answer: the order's lines at their prices and its amounts.
	Priced struct {
		Items       []Item      `json:"items"`
		WeightGrams int64       `json:"weight_grams"`
		Subtotal    money.Money `json:"subtotal"`
		Shipping    money.Money `json:"shipping"`
		Total       money.Money `json:"total"`
		CreatedAt   time.Time   `json:"created_at"` // the order's created_at: when it was priced
	}
	// Charged is Charge's answer.
	Charged struct {
		ChargedAt time.Time `json:"charged_at"` // order-paid's paid_at
	}
)

// ErrNotHere: the call is made to a process that does not hold the context it calls.
var ErrNotHere = errors.New("orders: the context this call needs does not run here")

// Check returns a validation error naming the first bad field of the execution's input.
func (x Execution) Check() error {
	if err := ids.Check("order_id", x.OrderID); err != nil {
		return err
	}
	return validateOrderer(x.UserID, x.Email, x.Address)
}

// RunCall runs the call c of a checkout orchestrated elsewhere (a step's Call or its Undo,
// as Steps lists them) for x, with the contexts this Orders was built with (Deps; those a
// process does not hold left nil, ErrNotHere when called) and, for payments.Charge, card.
// It returns the step's answer, which the orchestrator keeps under the step's name for the
// steps after it, or the step's error: the domain's, for NameOf to name.
func (o *Orders) RunCall(ctx context.Context, c Call, x Execution, card payments.Card) (any, error) {
	if err := x.Check(); err != nil {
		return nil, err
	}
	var st *step
	for i := range o.steps {
		if o.steps[i].Call == c || (!o.steps[i].Undo.IsZero() && o.steps[i].Undo == c) {
			st = &o.steps[i]
		}
	}
	if st == nil {
		return nil, validation.Errorf("call", "%.40q is no call of checkout", c.String())
	}
	if !o.holds(c.Context) {
		return nil, fmt.Errorf("%s: %w", c, ErrNotHere)
	}
	if st.Undo == c {
		return struct{}{}, st.undo(o, ctx, x.OrderID)
	}
	for _, need := range st.reads {
		if _, ok := x.Answers[need]; !ok {
			return nil, validation.Errorf("results."+need, "is required by %s: %s comes first", st.Name, need)
		}
	}
	a, err := x.attempt(card)
	if err != nil {
		return nil, err
	}
	do := st.do
	if st.alone != nil {
		do = st.alone
	}
	if err := do(o, ctx, a); err != nil {
		return nil, err
	}
	if st.answer == nil {
		return struct{}{}, nil
	}
	return st.answer(o, a), nil
}

// The answers of the steps that have one (step.answer).
func answerCart(_ *Orders, a *attempt) any { return CartRead{Lines: a.lines} }

func (o *Orders) answerPrice(a *attempt) any {
	r := a.rec
	return Priced{Items: r.Items, WeightGrams: r.WeightGrams, Subtotal: r.Subtotal, Shipping: r.Shipping, Total: r.Total,
		CreatedAt: o.now().UTC().Truncate(time.Millisecond)}
}

func (o *Orders) answerCharge(*attempt) any {
	return Charged{ChargedAt: o.now().UTC().Truncate(time.Millisecond)}
}

// ChargedFrom is Charge's answer to a repeat that has no card to charge with (an
// orchestrator retried a call whose answer was lost after the card was dropped), decided
// by the record of the order's charge alone: Charged, at the time the charge was made, for
// a captured charge; an error wrapping payments.ErrDeclined (the step's NothingDone) for a
// declined one; and payments.ErrVoided for one refunded or voided: the checkout was
// compensated meanwhile, so the charge must not count as made. Unlike payments.Charge,
// which answers a refunded key with its charge, the step fails then: its answer would
// carry the checkout past its pivot.
func ChargedFrom(ch payments.Charge) (Charged, error) {
	switch ch.Status {
	case payments.StatusCaptured:
		return Charged{ChargedAt: ch.CreatedAt.UTC().Truncate(time.Millisecond)}, nil
	case payments.StatusDeclined:
		return Charged{}, fmt.Errorf("charge %s (repeated): %w", ch.IdempotencyKey, payments.ErrDeclined)
	}
	return Charged{}, fmt.Errorf("charge %s (repeated): %s: %w", ch.IdempotencyKey, ch.Status, payments.ErrVoided)
}

func answerOrder(_ *Orders, a *attempt) any { return a.ord }

// holds tells whether this Orders can make calls of the context name.
func (o *Orders) holds(name string) bool {
	switch name {
	case "cart":
		return o.deps.Carts != nil
	case "catalog":
		return o.deps.Catalog != nil
	case "inventory":
		return o.deps.Inventory != nil
	case "payments":
		return o.deps.Payments != nil
	case "orders":
		return o.stores.Orders != nil && o.stores.UserOrders != nil && o.deps.Events != nil
	}
	return false
}

// attempt rebuilds what the saga's steps read from the execution: the record's fields from
// its input and the answers of ReadCart, Price and Charge, where given.
func (x Execution) attempt(card payments.Card) (*attempt, error) {
	a := &attempt{card: card, rec: saga{OrderID: x.OrderID, UserID: x.UserID, Email: x.Email, Address: x.Address}}
	var read CartRead
	var priced Priced
	var charged Charged
	for name, v := range map[string]any{"ReadCart": &read, "Price": &priced, "Charge": &charged} {
		raw, ok := x.Answers[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, validation.Errorf("results."+name, "is not %s's answer: %v", name, err)
		}
	}
	a.lines = read.Lines
	a.rec.Items, a.rec.WeightGrams = priced.Items, priced.WeightGrams
	a.rec.Subtotal, a.rec.Shipping, a.rec.Total = priced.Subtotal, priced.Shipping, priced.Total
	a.rec.CreatedAt, a.rec.ChargedAt = priced.CreatedAt, charged.ChargedAt
	return a, nil
}

// commitAlone is Commit without the Abort check on the orders bucket, for a process of
// inventory alone (see the comment at the top of this file).
func commitAlone(o *Orders, ctx context.Context, a *attempt) error {
	if err := o.deps.Inventory.Commit(ctx, a.rec.OrderID); err != nil {
		return fmt.Errorf("checkout: commit stock of order %s: %w", a.rec.OrderID, err)
	}
	return nil
}

// NameOf returns the name Steps gives err (a step's NothingDone or Abort error: what an
// orchestrator's compensations turn on), and whether it has one.
func NameOf(err error) (string, bool) {
	for _, s := range checkoutSteps() { // errors only: not worth an Orders to hold it
		for _, e := range slices.Concat(s.NothingDone, s.Abort) {
			if errors.Is(err, e.Err) {
				return e.Name, true
			}
		}
	}
	return "", false
}
