//go:build !mitosis_group || mitosis_orders

// Part of the implementation: it runs orders' saga (orders.RunCall), so only the binaries
// that run orders link it (bounded.Group.BuildTags): the monolith's image serves every
// context's function.

package checkoutstep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/platform/stepfunctions"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/traced"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// CardKeyEnv is the secret that seals the cards payments holds (payments.NewHolds): the
// payments function's only.
const CardKeyEnv = "SHOP_CARD_KEY"

// HoldCard is the call that hands a checkout's card to payments before its execution starts.
const HoldCard = "payments.HoldCard"

// Error types a function reports besides the names of orders.Steps.
const (
	// StepFailed: the call failed for a reason that is not the domain's (a store that did
	// not answer): the machine retries or compensates it as any failure.
	StepFailed = "checkout.StepFailed"
	// Invalid: the payload or the execution's input is not what the contract says.
	Invalid = "validation.Error"
)

// Contexts are the contexts the checkout calls, each a function: those of orders.Steps'
// calls and undos, in the table's order.
func Contexts() []string {
	var out []string
	for _, s := range orders.Steps() {
		for _, c := range []orders.Call{s.Call, s.Undo} {
			if !c.IsZero() && !slices.Contains(out, c.Context) {
				out = append(out, c.Context)
			}
		}
	}
	return slices.SortedFunc(slices.Values(out), func(a, b string) int {
		return slices.Index(bounded.Names(), a) - slices.Index(bounded.Names(), b)
	})
}

// Handler serves one context's calls of the checkout.
type Handler struct {
	context string
	run     *orders.Orders // the saga's steps, over this context alone
	pay     payments.Service
	holds   *payments.Holds // payments only
	log     *slog.Logger
	loops   sync.WaitGroup // the context's loops, until life ends
}

// Config is what a Handler is built from.
type Config struct {
	Context string // the context it serves: one of Contexts
	JS      jetstream.JetStream
	Store   natsjs.StoreConfig
	Bus     events.Publisher // the event stream (orders publishes order-paid)
	Getenv  func(string) string
	Logger  *slog.Logger
	Tracing *traced.Tracing
}

// New builds the context cfg names over its buckets, and a Handler of its calls. ctx bounds
// the building; life is how long what it builds lives (the catalog's view follows its bucket
// that long, its loops run that long: Wait waits for them).
func New(ctx, life context.Context, cfg Config) (*Handler, error) {
	if !slices.Contains(Contexts(), cfg.Context) {
		return nil, fmt.Errorf("%s is no context the checkout calls (%s)", cfg.Context, strings.Join(Contexts(), ", "))
	}
	c, _ := bounded.Lookup(cfg.Context)
	buckets := map[string]kv.Bucket{}
	for _, name := range c.Buckets {
		b, err := natsjs.OpenBucket(ctx, cfg.JS, cfg.Store, name)
		if err != nil {
			return nil, err
		}
		buckets[name] = cfg.Tracing.Bucket(name, b)
	}
	h := &Handler{context: cfg.Context, log: cfg.Logger}
	deps := orders.Deps{Logger: cfg.Logger}
	var stores orders.Stores
	if cfg.Context == "orders" {
		// Orders' own steps need its stores and the stream; its build in the table needs its
		// peers too, which these steps never call.
		stores = orders.Stores{Orders: buckets[orders.OrdersBucket], Sagas: buckets[orders.SagasBucket], UserOrders: buckets[orders.UserOrdersBucket]}
		deps.Events = cfg.Bus
	} else {
		d := bounded.Deps{Buckets: buckets, Bus: cfg.Bus, Logger: cfg.Logger, Now: time.Now, Getenv: cfg.Getenv, Started: time.Now()}
		impl, err := c.Build(life, d)
		if err != nil {
			return nil, err
		}
		switch s := c.Trace(cfg.Tracing, impl).(type) {
		case catalog.Service:
			deps.Catalog = s
		case cart.Service:
			deps.Carts = s
		case inventory.Service:
			deps.Inventory = s
		case payments.Service:
			deps.Payments, h.pay = s, s
			key := cfg.Getenv(CardKeyEnv)
			if key == "" {
				return nil, fmt.Errorf("%s is required: the secret that seals the cards held for charges", CardKeyEnv)
			}
			if h.holds, err = payments.NewHolds(buckets[payments.CardsBucket], []byte(key)); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s: no checkout call takes a %T", cfg.Context, s)
		}
		// Its loops too (inventory's sweep of lapsed reservations), as any replica of the
		// context runs them: while Lambda keeps the copy thawed, that is.
		for _, l := range c.Loops {
			h.loops.Go(func() { l.Run(life, impl, d) })
		}
	}
	h.run = orders.New(stores, deps)
	return h, nil
}

// Wait waits for the context's loops, which end with the life given to New.
func (h *Handler) Wait() { h.loops.Wait() }

// Payload is what a function is invoked with: a Task's (stepfunctions.Invocation), or
// HoldCard's, which its caller sends directly.
type Payload struct {
	stepfunctions.Invocation
	OrderID string         `json:"order_id"` // HoldCard's
	Card    *payments.Card `json:"card"`     // HoldCard's
}

// Invoke answers one invocation: the call's answer, or a messages.InvokeResponse_Error
// whose Type is the error's name (see the package doc).
func (h *Handler) Invoke(ctx context.Context, p Payload) (any, error) {
	start := time.Now()
	out, err := h.invoke(ctx, p)
	orderID := p.Checkout.OrderID
	if p.Call == HoldCard {
		orderID = p.OrderID
	}
	// The payload is the caller's: a log line takes of it only what passes the rules (an ID
	// of shop/ids, a call of the checkout), not whatever length it came with.
	call := p.Call
	if call != HoldCard && !slices.ContainsFunc(orders.Steps(), func(s orders.Step) bool { return s.Call.String() == call || s.Undo.String() == call }) {
		call = "(not a checkout call)"
	}
	if !ids.Valid(orderID) {
		orderID = "(invalid)"
	}
	if err != nil {
		name := ErrorName(err)
		// The message, not the payload: no card reaches a log (errors name no card number).
		h.log.Warn("checkout call failed", "call", call, "order_id", orderID, "error_type", name, "err", err, "took", time.Since(start))
		return nil, messages.InvokeResponse_Error{Type: name, Message: err.Error()}
	}
	h.log.Info("checkout call", "call", call, "order_id", orderID, "took", time.Since(start))
	return out, nil
}

func (h *Handler) invoke(ctx context.Context, p Payload) (any, error) {
	if p.Call == HoldCard {
		if h.holds == nil {
			return nil, validation.Errorf("call", "%s is payments' (mitosis-checkout-payments)", HoldCard)
		}
		if p.Card == nil {
			return nil, validation.Errorf("card", "is required")
		}
		if err := h.holds.Hold(ctx, p.OrderID, *p.Card); err != nil {
			return nil, err
		}
		return struct{}{}, nil
	}
	ctxName, method, ok := strings.Cut(p.Call, ".")
	if !ok || ctxName != h.context {
		return nil, validation.Errorf("call", "%.40q is not a call of %s, which this function serves", p.Call, h.context)
	}
	call := orders.Call{Context: ctxName, Method: method}
	x := p.Checkout.Orders()
	if call != (orders.Call{Context: "payments", Method: "Charge"}) {
		return h.run.RunCall(ctx, call, x, payments.Card{})
	}
	return h.charge(ctx, call, x)
}

// charge takes the card held for the order, charges it, and drops it once the charge is
// decided. A repeat after the drop (Lambda retried an answer that was lost) answers from
// the charge's record (orders.ChargedFrom): the card is needed only to decide.
func (h *Handler) charge(ctx context.Context, call orders.Call, x orders.Execution) (any, error) {
	if err := x.Check(); err != nil {
		return nil, err
	}
	card, err := h.holds.Card(ctx, x.OrderID)
	if errors.Is(err, payments.ErrNoCard) {
		ch, gerr := h.pay.Get(ctx, x.OrderID)
		switch {
		case errors.Is(gerr, payments.ErrNotFound):
			return nil, err
		case gerr != nil:
			return nil, errors.Join(err, gerr)
		}
		charged, err := orders.ChargedFrom(ch)
		if err != nil {
			return nil, err
		}
		return charged, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := h.run.RunCall(ctx, call, x, card)
	if err == nil || errors.Is(err, payments.ErrDeclined) {
		if derr := h.holds.Drop(ctx, x.OrderID); derr != nil {
			// It expires anyway (payments.CardHoldTTL).
			h.log.Warn("drop a held card", "order_id", x.OrderID, "err", derr)
		}
	}
	return out, err
}

// ErrorName is the Lambda error type of err: its name in orders.Steps, a descriptive name
// for a few other domain errors, or StepFailed.
func ErrorName(err error) string {
	if name, ok := orders.NameOf(err); ok {
		return name
	}
	var verr *validation.Error
	switch {
	case errors.As(err, &verr):
		return Invalid
	case errors.Is(err, inventory.ErrOutOfStock):
		return "inventory.ErrOutOfStock"
	case errors.Is(err, catalog.ErrNotFound):
		return "catalog.ErrNotFound"
	case errors.Is(err, payments.ErrNoCard):
		return "payments.ErrNoCard"
	}
	return StepFailed
}

// Serve serves h to the function's invocations until ctx ends (aws-lambda-go runs the
// Runtime API loop; a loop that fails ends the process, as Lambda expects).
func Serve(ctx context.Context, h *Handler, logger *slog.Logger) error {
	logger.Info("serving the checkout's calls as a Lambda function", "context", h.context)
	go lambda.StartWithOptions(h.Invoke, lambda.WithContext(ctx))
	<-ctx.Done()
	h.Wait()
	return nil
}
