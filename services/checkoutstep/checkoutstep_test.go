package checkoutstep_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/mitosis-dev/mitosis/platform/stepfunctions"
	"github.com/mitosis-dev/mitosis/services/checkoutstep"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/orders"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/traced"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// The errors a Catch turns on carry the names orders.Steps gives them, whatever wraps them;
// the rest are named for the Fail state or are plain failures.
func TestErrorName(t *testing.T) {
	for _, s := range orders.Steps() {
		for _, e := range append(append([]orders.Error{}, s.NothingDone...), s.Abort...) {
			if got := checkoutstep.ErrorName(fmt.Errorf("step %s: %w", s.Name, e.Err)); got != e.Name {
				t.Errorf("%v is named %q, want %q", e.Err, got, e.Name)
			}
		}
	}
	for err, want := range map[error]string{
		payments.ErrCardDeclined:                   "payments.ErrDeclined",
		&inventory.OutOfStockError{ProductID: "p"}: "inventory.ErrOutOfStock",
		validation.Errorf("cart", "cart is empty"): checkoutstep.Invalid,
		fmt.Errorf("x: %w", catalog.ErrNotFound):   "catalog.ErrNotFound",
		errors.New("nats: timeout"):                checkoutstep.StepFailed,
	} {
		if got := checkoutstep.ErrorName(err); got != want {
			t.Errorf("%v is named %q, want %q", err, got, want)
		}
	}
}

// A function serves its own context's calls of the checkout and nothing else, and refuses a
// payload that breaks the contract with a validation error, before any store is touched.
func TestInvokeRefusesWhatIsNotItsCall(t *testing.T) {
	ns := natsjstest.New(t)
	h, err := checkoutstep.New(t.Context(), t.Context(), checkoutstep.Config{Context: "inventory", JS: ns.JetStream(),
		Store: natsjs.StoreConfig{}, Bus: ns.Bus(t), Getenv: func(string) string { return "" },
		Logger: slog.New(slog.DiscardHandler), Tracing: traced.New(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	good := stepfunctions.Execution{Execution: orders.Execution{OrderID: "ord-1", UserID: "u-1", Email: "a@example.com",
		Address: orders.Address{Street: "1 Loop Rd", City: "Springfield", PostalCode: "12345", Country: "US"}}}
	bad := good
	bad.Email = "nobody"
	for name, p := range map[string]checkoutstep.Payload{
		"another context's call": {Invocation: stepfunctions.Invocation{Call: "payments.Charge", Checkout: good}},
		"no call of checkout":    {Invocation: stepfunctions.Invocation{Call: "inventory.Add", Checkout: good}},
		"a card to hold":         {Invocation: stepfunctions.Invocation{Call: checkoutstep.HoldCard}, OrderID: "ord-1"},
		"a bad input":            {Invocation: stepfunctions.Invocation{Call: "inventory.Release", Checkout: bad}},
		"Reserve before Price":   {Invocation: stepfunctions.Invocation{Call: "inventory.Reserve", Checkout: good}},
	} {
		_, err := h.Invoke(t.Context(), p)
		var ie messages.InvokeResponse_Error
		if !errors.As(err, &ie) || ie.Type != checkoutstep.Invalid {
			t.Errorf("%s: %v, want an error of type %s", name, err, checkoutstep.Invalid)
		}
	}
	// Release of a reservation never made: a no-op, safe to repeat.
	for range 2 {
		if _, err := h.Invoke(t.Context(), checkoutstep.Payload{Invocation: stepfunctions.Invocation{Call: "inventory.Release", Checkout: good}}); err != nil {
			t.Errorf("Release: %v", err)
		}
	}
	if _, err := checkoutstep.New(t.Context(), t.Context(), checkoutstep.Config{Context: "shipping"}); err == nil {
		t.Error("a function of shipping, which checkout does not call")
	}
}

// A Charge repeated once its card is dropped (Lambda retried a call whose answer was lost)
// answers from the charge's record (orders.ChargedFrom): charged again, charging nothing
// more, for a charge made; the decline again for one declined.
func TestRepeatedChargeAnswersFromItsRecord(t *testing.T) {
	ns := natsjstest.New(t)
	h, err := checkoutstep.New(t.Context(), t.Context(), checkoutstep.Config{Context: "payments", JS: ns.JetStream(),
		Store: natsjs.StoreConfig{}, Bus: ns.Bus(t), Logger: slog.New(slog.DiscardHandler), Tracing: traced.New(nil, nil),
		Getenv: func(k string) string {
			if k == checkoutstep.CardKeyEnv {
				return "repeated-charge-test-key"
			}
			return ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		orderID, number string
		declined        bool
	}{
		{"ord-approved", "4242424242424242", false},
		{"ord-declined", "4000000000000002", true},
	} {
		card := payments.Card{Number: c.number, ExpMonth: 12, ExpYear: 2099, CVV: "123"}
		if _, err := h.Invoke(t.Context(), checkoutstep.Payload{Invocation: stepfunctions.Invocation{Call: checkoutstep.HoldCard},
			OrderID: c.orderID, Card: &card}); err != nil {
			t.Fatalf("%s: hold: %v", c.orderID, err)
		}
		var p checkoutstep.Payload
		if err := json.Unmarshal(fmt.Appendf(nil, `{"call": "payments.Charge", "checkout": {"order_id": %q, "user_id": "u-1",
			"email": "a@example.com", "address": {"street": "1 Loop Rd", "city": "Springfield", "postal_code": "12345", "country": "US"},
			"results": {"Price": {"value": {"total": {"currency": "USD", "units": 3000}}}}}}`, c.orderID), &p); err != nil {
			t.Fatal(err)
		}
		var answers []orders.Charged
		for i := range 2 {
			out, err := h.Invoke(t.Context(), p)
			var ie messages.InvokeResponse_Error
			switch {
			case c.declined && (!errors.As(err, &ie) || ie.Type != "payments.ErrDeclined"):
				t.Fatalf("%s: charge %d: %v, want payments.ErrDeclined", c.orderID, i+1, err)
			case c.declined:
				continue
			case err != nil:
				t.Fatalf("%s: charge %d: %v", c.orderID, i+1, err)
			}
			ch, ok := out.(orders.Charged)
			if !ok || ch.ChargedAt.IsZero() {
				t.Fatalf("%s: charge %d answered %#v", c.orderID, i+1, out)
			}
			answers = append(answers, ch)
		}
		if len(answers) == 2 && answers[1].ChargedAt.Sub(answers[0].ChargedAt).Abs() > time.Second {
			t.Errorf("%s: charged at %s, then at %s", c.orderID, answers[0].ChargedAt, answers[1].ChargedAt)
		}
	}
}
