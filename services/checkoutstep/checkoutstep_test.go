package checkoutstep_test

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

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
