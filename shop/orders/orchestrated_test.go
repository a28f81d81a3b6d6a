package orders_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
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

// paidLog records the order-paid events published.
type paidLog struct {
	events.Publisher
	mu   sync.Mutex
	paid map[string]events.OrderPaid
}

func (p *paidLog) Publish(ctx context.Context, subject, id string, payload any) error {
	if ev, ok := payload.(events.OrderPaid); ok {
		p.mu.Lock()
		p.paid[ev.OrderID] = ev
		p.mu.Unlock()
	}
	return p.Publisher.Publish(ctx, subject, id, payload)
}

// A checkout run call by call through RunCall, each call by an Orders that holds one
// context only (as each function of a state machine does), every call made twice and every
// answer passed through JSON, makes the order and the order-paid that Checkout makes of the
// same cart, and sells the stock once.
func TestRunCallMakesWhatCheckoutMakes(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	cat, err := catalog.New(ctx, kv.NewMemory(), log)
	if err != nil {
		t.Fatal(err)
	}
	carts := cart.New(kv.NewMemory())
	inv := inventory.New(kv.NewMemory(), kv.NewMemory(), time.Now, 5*time.Minute)
	pay := payments.New(kv.NewMemory(), time.Now)
	pub := &paidLog{Publisher: events.NewMemory(log), paid: map[string]events.OrderPaid{}}
	stores := orders.Stores{Orders: kv.NewMemory(), Sagas: kv.NewMemory(), UserOrders: kv.NewMemory()}
	whole := orders.New(stores, orders.Deps{Catalog: cat, Carts: carts, Inventory: inv, Payments: pay, Events: pub, Logger: log,
		RequestKey: []byte("k")})
	alone := map[string]*orders.Orders{
		"catalog":   orders.New(orders.Stores{}, orders.Deps{Catalog: cat}),
		"cart":      orders.New(orders.Stores{}, orders.Deps{Carts: carts}),
		"inventory": orders.New(orders.Stores{}, orders.Deps{Inventory: inv}),
		"payments":  orders.New(orders.Stores{}, orders.Deps{Payments: pay}),
		"orders":    orders.New(stores, orders.Deps{Events: pub}),
	}

	p, err := cat.Upsert(ctx, catalog.Product{ID: ids.New("sku", time.Now()), Name: "Lamp", Price: money.Cents(1999), WeightGrams: 700})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Add(ctx, p.ID, 10); err != nil {
		t.Fatal(err)
	}
	a, b := ids.New("u", time.Now()), ids.New("u", time.Now())
	for _, u := range []string{a, b} {
		if _, err := carts.Add(ctx, u, cart.Item{ProductID: p.ID, Quantity: 2}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := whole.Checkout(ctx, "key-a", orderstest.Request(a))
	if err != nil {
		t.Fatal(err)
	}

	req := orderstest.Request(b)
	x := orders.Execution{OrderID: ids.New("ord", time.Now()), UserID: b, Email: req.Email, Address: req.Address,
		Answers: map[string]json.RawMessage{}}
	if _, err := alone["cart"].RunCall(ctx, orders.Call{Context: "inventory", Method: "Reserve"}, x, payments.Card{}); !errors.Is(err, orders.ErrNotHere) {
		t.Errorf("a call of inventory made by cart's: %v, want ErrNotHere", err)
	}
	for _, s := range orders.Steps() {
		for range 2 {
			out, err := alone[s.Call.Context].RunCall(ctx, s.Call, x, req.Card)
			if err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
			raw, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			x.Answers[s.Name] = raw
		}
	}
	got, err := whole.Get(ctx, x.OrderID)
	if err != nil {
		t.Fatalf("the order: %v", err)
	}
	if got.UserID != b || got.Status != orders.StatusPaid || got.Total != want.Total || got.Shipping != want.Shipping ||
		len(got.Items) != 1 || got.Items[0] != want.Items[0] {
		t.Errorf("RunCall made %+v, Checkout %+v", got, want)
	}
	pa, pb := pub.paid[want.ID], pub.paid[x.OrderID]
	pa.OrderID, pa.UserID, pa.Email, pa.PaidAt = pb.OrderID, pb.UserID, pb.Email, pb.PaidAt
	if pb.PaidAt.IsZero() || pa.Total != pb.Total || pa.WeightGrams != pb.WeightGrams || pa.Address != pb.Address || len(pa.Items) != len(pb.Items) {
		t.Errorf("order-paid: RunCall %+v, Checkout %+v", pb, pa)
	}
	if st, err := inv.Get(ctx, p.ID); err != nil || st.Sold != 4 || st.Available != 6 || st.Reserved != 0 {
		t.Errorf("stock %+v, %v: want 4 sold, 6 available", st, err)
	}
	if ch, err := pay.Get(ctx, x.OrderID); err != nil || ch.Amount != want.Total || ch.Status != payments.StatusCaptured {
		t.Errorf("charge %+v, %v", ch, err)
	}
	if page, err := whole.ListByUser(ctx, orders.ListRequest{UserID: b}); err != nil || len(page.Orders) != 1 {
		t.Errorf("history of %s: %+v, %v; want the one order", b, page, err)
	}
	if c, err := carts.Get(ctx, b); err != nil || len(c.Items) != 0 {
		t.Errorf("cart %+v, %v: want empty", c, err)
	}
}

// A repeated Charge answered from the charge's record, for every status a record can have,
// each made by payments itself: only a captured charge counts as made, at its own time.
func TestChargedFrom(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	pay := payments.New(kv.NewMemory(), func() time.Time { return now })
	card := func(number string) payments.Card {
		return payments.Card{Number: number, ExpMonth: 12, ExpYear: 2099, CVV: "123"}
	}
	charge := func(key, number string) {
		t.Helper()
		_, err := pay.Charge(ctx, payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(1000), Card: card(number)})
		if err != nil && !errors.Is(err, payments.ErrDeclined) {
			t.Fatalf("charge %s: %v", key, err)
		}
	}
	refund := func(key string) {
		t.Helper()
		if _, err := pay.Refund(ctx, key); err != nil {
			t.Fatalf("refund %s: %v", key, err)
		}
	}
	charge("ord-captured", "4242424242424242")
	charge("ord-declined", "4000000000000002")
	charge("ord-funds", "4000000000009995")
	charge("ord-refunded", "4242424242424242")
	refund("ord-refunded")
	refund("ord-voided") // never charged: voided
	for _, c := range []struct {
		key, status string
		want        error // nil: Charged
	}{
		{"ord-captured", payments.StatusCaptured, nil},
		{"ord-declined", payments.StatusDeclined, payments.ErrDeclined},
		{"ord-funds", payments.StatusDeclined, payments.ErrDeclined},
		{"ord-refunded", payments.StatusRefunded, payments.ErrVoided},
		{"ord-voided", payments.StatusVoided, payments.ErrVoided},
	} {
		ch, err := pay.Get(ctx, c.key)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Status != c.status {
			t.Fatalf("%s: status %q, want %q", c.key, ch.Status, c.status)
		}
		got, err := orders.ChargedFrom(ch)
		switch {
		case c.want == nil && (err != nil || !got.ChargedAt.Equal(now)):
			t.Errorf("%s: %+v, %v; want charged at %s", c.key, got, err, now)
		case c.want != nil && (!errors.Is(err, c.want) || got != orders.Charged{}):
			t.Errorf("%s: %+v, %v; want nothing and %v", c.key, got, err, c.want)
		}
		// Whatever the record says, a decline is the one outcome that says nothing was done.
		if c.want == payments.ErrVoided && errors.Is(err, payments.ErrDeclined) {
			t.Errorf("%s: %v is a decline", c.key, err)
		}
	}
}
