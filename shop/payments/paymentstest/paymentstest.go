// Package paymentstest is the conformance suite of payments.Service, written once against
// the interface and run against every way of getting one: the implementation over memory
// and over JetStream, and (in services/) a gRPC client talking to it over a real socket.
package paymentstest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/clocktest"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Test cards of API.md, and other Luhn-valid numbers (approved).
const (
	cardOK           = "4242424242424242"
	cardDeclined     = "4000000000000002"
	cardInsufficient = "4000000000009995"
)

// Run runs the suite. newService returns a service with an empty store for each test,
// reading the time from now, which decides whether a card has expired.
func Run(t *testing.T, newService func(t *testing.T, now func() time.Time) payments.Service) {
	setup := func(t *testing.T) (payments.Service, *clocktest.Clock) {
		t.Helper()
		c := clocktest.New(time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC))
		return newService(t, c.Now), c
	}
	card := func(number string) payments.Card {
		return payments.Card{Number: number, ExpMonth: 12, ExpYear: 2031, CVV: "123"}
	}

	t.Run("CardOutcomes", func(t *testing.T) {
		svc, clock := setup(t)
		approved := []payments.Card{
			card(cardOK),
			card("5555555555554444"),
			{Number: "378282246310005", ExpMonth: 1, ExpYear: 2032, CVV: "1234"}, // 15 digits, 4-digit CVV
			card("123456789015"),         // 12 digits
			card("1234567890123456785"),  // 19 digits
			card("79927398713"),          // 11 digits, Luhn's own example
			card("42424242424242424242"), // 20 digits
			card("18"),                   // 2 digits: the charge keeps both
		}
		for i, c := range approved {
			key := fmt.Sprintf("ok-%d", i)
			amount := money.Cents(int64(1000 + i))
			got, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: key, Amount: amount, Card: c})
			if err != nil {
				t.Fatalf("Charge %s: %v", c.Number, err)
			}
			want := payments.Charge{ID: got.ID, IdempotencyKey: key, Amount: amount, Last4: c.Number[max(0, len(c.Number)-4):],
				Status: payments.StatusCaptured, CreatedAt: clock.Now()}
			if got.ID == "" || !sameCharge(got, want) {
				t.Fatalf("Charge %s = %+v, want %+v", c.Number, got, want)
			}
			stored, err := svc.Get(t.Context(), key)
			if err != nil || !sameCharge(stored, got) {
				t.Fatalf("Get %s = %+v, %v; want %+v", key, stored, err, got)
			}
		}

		declined := []struct {
			number string
			want   error
		}{
			{cardDeclined, payments.ErrCardDeclined},
			{cardInsufficient, payments.ErrInsufficientFunds},
		}
		for _, d := range declined {
			key := "declined-" + d.number
			_, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(500), Card: card(d.number)})
			if !errors.Is(err, d.want) || !errors.Is(err, payments.ErrDeclined) {
				t.Fatalf("Charge %s: %v, want %v", d.number, err, d.want)
			}
			for _, other := range []error{payments.ErrCardDeclined, payments.ErrInsufficientFunds, payments.ErrCardExpired} {
				if other != d.want && errors.Is(err, other) {
					t.Fatalf("Charge %s: %v also matches %v", d.number, err, other)
				}
			}
			got, err := svc.Get(t.Context(), key)
			if err != nil || got.Status != payments.StatusDeclined || got.Last4 != d.number[12:] {
				t.Fatalf("Get of a declined key = %+v, %v; want status declined", got, err)
			}
		}
	})

	t.Run("Validation", func(t *testing.T) {
		svc, _ := setup(t)
		good := payments.ChargeRequest{IdempotencyKey: "k", Amount: money.Cents(100), Card: card(cardOK)}
		cases := []struct {
			name  string
			edit  func(r *payments.ChargeRequest)
			field string
		}{
			{"Luhn-invalid", func(r *payments.ChargeRequest) { r.Card.Number = "4242424242424241" }, "card.number"},
			{"spaces", func(r *payments.ChargeRequest) { r.Card.Number = "4242 4242 4242 4242" }, "card.number"},
			{"11 digits, Luhn-invalid", func(r *payments.ChargeRequest) { r.Card.Number = "42424242424" }, "card.number"},
			{"20 digits, Luhn-invalid", func(r *payments.ChargeRequest) { r.Card.Number = "12345678901234567890" }, "card.number"},
			{"sign", func(r *payments.ChargeRequest) { r.Card.Number = "+4242424242424242" }, "card.number"},
			{"letters", func(r *payments.ChargeRequest) { r.Card.Number = "42424242424242AB" }, "card.number"},
			{"empty number", func(r *payments.ChargeRequest) { r.Card.Number = "" }, "card.number"},
			{"month 0", func(r *payments.ChargeRequest) { r.Card.ExpMonth = 0 }, "card.exp_month"},
			{"month 13", func(r *payments.ChargeRequest) { r.Card.ExpMonth = 13 }, "card.exp_month"},
			{"two-digit year", func(r *payments.ChargeRequest) { r.Card.ExpYear = 31 }, "card.exp_year"},
			{"five-digit year", func(r *payments.ChargeRequest) { r.Card.ExpYear = 10000 }, "card.exp_year"},
			{"short cvv", func(r *payments.ChargeRequest) { r.Card.CVV = "12" }, "card.cvv"},
			{"long cvv", func(r *payments.ChargeRequest) { r.Card.CVV = "12345" }, "card.cvv"},
			{"cvv letters", func(r *payments.ChargeRequest) { r.Card.CVV = "12a" }, "card.cvv"},
			{"empty key", func(r *payments.ChargeRequest) { r.IdempotencyKey = "" }, "idempotency_key"},
			{"long key", func(r *payments.ChargeRequest) { r.IdempotencyKey = strings.Repeat("k", 129) }, "idempotency_key"},
			{"zero amount", func(r *payments.ChargeRequest) { r.Amount = money.Cents(0) }, "amount"},
			{"negative amount", func(r *payments.ChargeRequest) { r.Amount = money.Cents(-100) }, "amount"},
			{"other currency", func(r *payments.ChargeRequest) { r.Amount = money.Money{Currency: "EUR", Units: 100} }, "amount"},
			{"no currency", func(r *payments.ChargeRequest) { r.Amount = money.Money{Units: 100} }, "amount"},
		}
		for _, c := range cases {
			req := good
			c.edit(&req)
			_, err := svc.Charge(t.Context(), req)
			expectInvalid(t, c.name, err, c.field)
		}
		// Nothing was recorded: the key still charges.
		if _, err := svc.Get(t.Context(), "k"); !errors.Is(err, payments.ErrNotFound) {
			t.Fatalf("Get after rejected requests: %v, want ErrNotFound", err)
		}
		if _, err := svc.Charge(t.Context(), good); err != nil {
			t.Fatalf("Charge after rejected requests: %v", err)
		}
		_, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: strings.Repeat("k", 128), Amount: money.Cents(1), Card: card(cardOK)})
		if err != nil {
			t.Fatalf("Charge with a 128-byte key: %v", err)
		}
		_, err = svc.Get(t.Context(), "")
		expectInvalid(t, "Get empty key", err, "idempotency_key")
		_, err = svc.Refund(t.Context(), "")
		expectInvalid(t, "Refund empty key", err, "idempotency_key")
	})

	t.Run("Expiry", func(t *testing.T) {
		svc, clock := setup(t) // 2030-06-15
		cases := []struct {
			year, month int
			expired     bool
		}{
			{2030, 6, false}, // the current month: good through its last day
			{2030, 7, false},
			{2031, 1, false}, // next year, earlier month
			{2030, 5, true},
			{2029, 12, true},
			{2029, 7, true}, // last year, later month
		}
		for _, c := range cases {
			key := fmt.Sprintf("exp-%d-%02d", c.year, c.month)
			_, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(100),
				Card: payments.Card{Number: cardOK, ExpMonth: c.month, ExpYear: c.year, CVV: "123"}})
			if c.expired && !(errors.Is(err, payments.ErrCardExpired) && errors.Is(err, payments.ErrDeclined)) {
				t.Errorf("card %d/%02d: %v, want ErrCardExpired", c.year, c.month, err)
			}
			if !c.expired && err != nil {
				t.Errorf("card %d/%02d: %v, want approved", c.year, c.month, err)
			}
		}

		// Months turn in UTC, whatever the clock's zone.
		june := payments.Card{Number: cardOK, ExpMonth: 6, ExpYear: 2030, CVV: "123"}
		clock.Set(time.Date(2030, 6, 30, 22, 0, 0, 0, time.FixedZone("UTC-4", -4*3600))) // July 1st, 02:00 UTC
		_, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "utc-july", Amount: money.Cents(100), Card: june})
		if !errors.Is(err, payments.ErrCardExpired) {
			t.Errorf("June card on July 1st UTC: %v, want ErrCardExpired", err)
		}
		clock.Set(time.Date(2030, 7, 1, 1, 0, 0, 0, time.FixedZone("UTC+3", 3*3600))) // June 30th, 22:00 UTC
		if _, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "utc-june", Amount: money.Cents(100), Card: june}); err != nil {
			t.Errorf("June card on June 30th UTC: %v, want approved", err)
		}
	})

	t.Run("RepeatedKeyRepeatsTheOutcome", func(t *testing.T) {
		svc, clock := setup(t)
		first, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "k1", Amount: money.Cents(700), Card: card(cardOK)})
		if err != nil {
			t.Fatalf("Charge: %v", err)
		}
		clock.Set(clock.Now().Add(time.Hour))
		// The key decides, not the body: a repeat with another amount or card gets the first
		// charge and charges nothing more.
		for _, req := range []payments.ChargeRequest{
			{IdempotencyKey: "k1", Amount: money.Cents(700), Card: card(cardOK)},
			{IdempotencyKey: "k1", Amount: money.Cents(999), Card: card(cardDeclined)},
		} {
			again, err := svc.Charge(t.Context(), req)
			if err != nil || !sameCharge(again, first) {
				t.Fatalf("repeated Charge = %+v, %v; want %+v", again, err, first)
			}
		}

		if _, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "k2", Amount: money.Cents(700), Card: card(cardInsufficient)}); !errors.Is(err, payments.ErrInsufficientFunds) {
			t.Fatalf("Charge: %v, want ErrInsufficientFunds", err)
		}
		_, err = svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "k2", Amount: money.Cents(700), Card: card(cardOK)})
		if !errors.Is(err, payments.ErrInsufficientFunds) {
			t.Fatalf("repeat of a declined key with a good card: %v, want the first decline", err)
		}
	})

	t.Run("ConcurrentChargesOfOneKey", func(t *testing.T) {
		svc, _ := setup(t)
		const callers = 20
		for _, c := range []struct {
			number string
			want   error
		}{{cardOK, nil}, {cardDeclined, payments.ErrCardDeclined}} {
			key := "concurrent-" + c.number
			got := make([]payments.Charge, callers)
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					got[i], errs[i] = svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(1234), Card: card(c.number)})
				})
			}
			wg.Wait()
			for i := range callers {
				if c.want == nil && (errs[i] != nil || got[i].ID == "" || !sameCharge(got[i], got[0])) {
					t.Fatalf("Charge #%d = %+v, %v; #0 = %+v", i, got[i], errs[i], got[0])
				}
				if c.want != nil && !errors.Is(errs[i], c.want) {
					t.Fatalf("Charge #%d: %v, want %v", i, errs[i], c.want)
				}
			}
			stored, err := svc.Get(t.Context(), key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if c.want == nil && !sameCharge(stored, got[0]) {
				t.Fatalf("stored %+v, returned %+v", stored, got[0])
			}
		}
	})

	t.Run("RefundCapturedCharge", func(t *testing.T) {
		svc, _ := setup(t)
		charged, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "k", Amount: money.Cents(2500), Card: card(cardOK)})
		if err != nil {
			t.Fatalf("Charge: %v", err)
		}
		want := charged
		want.Status = payments.StatusRefunded
		for i := range 2 { // the second is a no-op
			got, err := svc.Refund(t.Context(), "k")
			if err != nil || !sameCharge(got, want) {
				t.Fatalf("Refund #%d = %+v, %v; want %+v", i+1, got, err, want)
			}
		}
		if got, err := svc.Get(t.Context(), "k"); err != nil || !sameCharge(got, want) {
			t.Fatalf("Get after Refund = %+v, %v; want %+v", got, err, want)
		}
		// The key's outcome was a charge, since refunded: a repeat reports that, charging nothing.
		if got, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "k", Amount: money.Cents(2500), Card: card(cardOK)}); err != nil || !sameCharge(got, want) {
			t.Fatalf("Charge after Refund = %+v, %v; want %+v", got, err, want)
		}
	})

	t.Run("RefundBeforeChargeVoidsTheKey", func(t *testing.T) {
		svc, _ := setup(t)
		voided, err := svc.Refund(t.Context(), "late")
		if err != nil || voided.Status != payments.StatusVoided || voided.IdempotencyKey != "late" || voided.Amount.Units != 0 {
			t.Fatalf("Refund of an unknown key = %+v, %v; want it voided", voided, err)
		}
		again, err := svc.Refund(t.Context(), "late")
		if err != nil || !sameCharge(again, voided) {
			t.Fatalf("Refund again = %+v, %v; want %+v", again, err, voided)
		}
		_, err = svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "late", Amount: money.Cents(100), Card: card(cardOK)})
		if !errors.Is(err, payments.ErrVoided) || errors.Is(err, payments.ErrDeclined) {
			t.Fatalf("Charge of a voided key: %v, want ErrVoided", err)
		}
		if got, err := svc.Get(t.Context(), "late"); err != nil || !sameCharge(got, voided) {
			t.Fatalf("Get of a voided key = %+v, %v; want %+v", got, err, voided)
		}
	})

	t.Run("RefundDeclinedIsNoop", func(t *testing.T) {
		svc, _ := setup(t)
		req := payments.ChargeRequest{IdempotencyKey: "k", Amount: money.Cents(100), Card: card(cardDeclined)}
		if _, err := svc.Charge(t.Context(), req); !errors.Is(err, payments.ErrCardDeclined) {
			t.Fatalf("Charge: %v, want ErrCardDeclined", err)
		}
		got, err := svc.Refund(t.Context(), "k")
		if err != nil || got.Status != payments.StatusDeclined {
			t.Fatalf("Refund of a declined key = %+v, %v; want it left declined", got, err)
		}
		if _, err := svc.Charge(t.Context(), req); !errors.Is(err, payments.ErrCardDeclined) {
			t.Fatalf("Charge after Refund of a declined key: %v, want ErrCardDeclined", err)
		}
	})

	t.Run("GetUnknown", func(t *testing.T) {
		svc, _ := setup(t)
		if _, err := svc.Get(t.Context(), "nope"); !errors.Is(err, payments.ErrNotFound) {
			t.Fatalf("Get unknown: %v, want ErrNotFound", err)
		}
	})
}

func expectInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != field {
		t.Errorf("%s: got %v (field %q), want a validation error on %q", what, err, validation.FieldOf(err), field)
	}
}

// sameCharge compares charges field by field, times by instant: a charge that crossed a
// store or a wire may carry another representation of the same time.
func sameCharge(a, b payments.Charge) bool {
	return a.ID == b.ID && a.IdempotencyKey == b.IdempotencyKey && a.Amount == b.Amount &&
		a.Last4 == b.Last4 && a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt)
}
