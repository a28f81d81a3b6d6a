package payments_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/payments/paymentstest"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

func TestMemory(t *testing.T) {
	paymentstest.Run(t, func(t *testing.T, now func() time.Time) payments.Service {
		return payments.New(kv.NewMemory(), now)
	})
}

func TestJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	paymentstest.Run(t, func(t *testing.T, now func() time.Time) payments.Service {
		return payments.New(srv.Bucket(t, "charges"), now)
	})
}

func fixedClock() time.Time { return time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC) }

// TestStoresOnlyLast4 reads the raw store: neither the full number nor the CVV is ever
// written, whatever the outcome.
func TestStoresOnlyLast4(t *testing.T) {
	ctx := t.Context()
	b := kv.NewMemory()
	svc := payments.New(b, fixedClock)
	for key, number := range map[string]string{"ok": "4242424242424242", "declined": "4000000000000002"} {
		_, _ = svc.Charge(ctx, payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(100),
			Card: payments.Card{Number: number, ExpMonth: 1, ExpYear: 2031, CVV: "987"}})
		e, err := b.Get(ctx, key)
		if err != nil {
			t.Fatalf("no record for %s: %v", key, err)
		}
		if bytes.Contains(e.Value, []byte(number)) || bytes.Contains(e.Value, []byte(number[:12])) || bytes.Contains(e.Value, []byte("987")) {
			t.Fatalf("record %s holds card data: %s", key, e.Value)
		}
		if !bytes.Contains(e.Value, []byte(number[12:])) {
			t.Fatalf("record %s lacks the last four digits: %s", key, e.Value)
		}
	}
}

func TestConcurrentChargesWriteOneRecord(t *testing.T) {
	srv := natsjstest.New(t)
	b := srv.Bucket(t, "charges")
	svc := payments.New(b, fixedClock)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := svc.Charge(t.Context(), payments.ChargeRequest{IdempotencyKey: "one", Amount: money.Cents(100),
				Card: payments.Card{Number: "4242424242424242", ExpMonth: 1, ExpYear: 2031, CVV: "123"}})
			if err != nil {
				t.Errorf("Charge: %v", err)
			}
		})
	}
	wg.Wait()
	keys, err := b.Keys(t.Context())
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys = %v, %v; want one record", keys, err)
	}
	// A JetStream key-value bucket keeps one revision per write: a second write, even of
	// the same charge, would show as a revision after the first one.
	e, err := b.Get(t.Context(), "one")
	if err != nil || e.Revision != 1 {
		t.Fatalf("record revision = %d, %v; want 1 (written once)", e.Revision, err)
	}
}

func TestExpiredWinsOverTestCardOutcome(t *testing.T) {
	svc := payments.New(kv.NewMemory(), fixedClock)
	_, err := svc.Charge(context.Background(), payments.ChargeRequest{IdempotencyKey: "k", Amount: money.Cents(100),
		Card: payments.Card{Number: "4000000000000002", ExpMonth: 5, ExpYear: 2030, CVV: "123"}})
	if !errors.Is(err, payments.ErrCardExpired) {
		t.Fatalf("expired decline card: %v, want ErrCardExpired", err)
	}
}

func TestValidateCard(t *testing.T) {
	cases := []struct {
		card  payments.Card
		field string // "" for valid
	}{
		{payments.Card{Number: "4242424242424242", ExpMonth: 1, ExpYear: 2000, CVV: "123"}, ""}, // expired is still well formed
		{payments.Card{Number: "378282246310005", ExpMonth: 12, ExpYear: 9999, CVV: "1234"}, ""},
		{payments.Card{Number: "4242424242424241", ExpMonth: 1, ExpYear: 2031, CVV: "123"}, "card.number"},
		{payments.Card{Number: "０４２４２４２４２４２４２", ExpMonth: 1, ExpYear: 2031, CVV: "123"}, "card.number"}, // full-width digits
		{payments.Card{Number: "4242424242424242", ExpMonth: -1, ExpYear: 2031, CVV: "123"}, "card.exp_month"},
		{payments.Card{Number: "4242424242424242", ExpMonth: 1, ExpYear: 999, CVV: "123"}, "card.exp_year"},
		{payments.Card{Number: "4242424242424242", ExpMonth: 1, ExpYear: 2031, CVV: ""}, "card.cvv"},
		{payments.Card{Number: "4242424242424242", ExpMonth: 1, ExpYear: 2031, CVV: "١٢٣"}, "card.cvv"}, // Arabic-Indic digits
	}
	for _, c := range cases {
		err := payments.ValidateCard(c.card)
		if c.field == "" && err != nil {
			t.Errorf("ValidateCard(%+v): %v, want valid", c.card, err)
		}
		if c.field != "" && (!errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != c.field) {
			t.Errorf("ValidateCard(%+v): %v, want a validation error on %s", c.card, err, c.field)
		}
	}
}

// FuzzValidateCard: never panics, and whatever it accepts is a card the rest of the code can
// rely on (digits only, lengths and ranges as documented).
func FuzzValidateCard(f *testing.F) {
	f.Add("4242424242424242", 12, 2031, "123")
	f.Add("4242424242424241", 1, 2030, "1234")
	f.Add("378282246310005", 0, 10000, "12")
	f.Add("", -1, 0, "")
	f.Add("4242 4242 4242 4242", 13, 99, "abc")
	f.Add("1234567890123456785", 6, 1000, "0000")
	f.Fuzz(func(t *testing.T, number string, month, year int, cvv string) {
		err := payments.ValidateCard(payments.Card{Number: number, ExpMonth: month, ExpYear: year, CVV: cvv})
		if err != nil {
			if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) == "" {
				t.Fatalf("ValidateCard error %v is not a validation error naming a field", err)
			}
			return
		}
		// Any length of number: API.md approves every Luhn-valid one (ValidateCard).
		if number == "" || month < 1 || month > 12 || year < 1000 || year > 9999 ||
			len(cvv) < 3 || len(cvv) > 4 {
			t.Fatalf("accepted %q %d/%d %q", number, month, year, cvv)
		}
		for _, s := range []string{number, cvv} {
			for _, r := range s {
				if r < '0' || r > '9' {
					t.Fatalf("accepted non-digit %q in %q", r, s)
				}
			}
		}
	})
}

// TestDeclinedChargesAreKeptForTheRetention: a declined charge's record answers repeats of
// its key for the retention, then goes, and the key is one never seen; captured charges
// stay.
func TestDeclinedChargesAreKeptForTheRetention(t *testing.T) {
	srv := natsjstest.New(t)
	for name, open := range map[string]func() kv.Bucket{
		"Memory":    func() kv.Bucket { return kv.NewMemory() },
		"JetStream": func() kv.Bucket { return srv.Bucket(t, "charges") },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			b := open()
			svc := payments.New(b, fixedClock, payments.WithDeclinedRetention(2*time.Second))
			charge := func(key, number string) (payments.Charge, error) {
				return svc.Charge(ctx, payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(100),
					Card: payments.Card{Number: number, ExpMonth: 1, ExpYear: 2031, CVV: "123"}})
			}
			// Captured first, so that it would be gone first if it expired too.
			if _, err := charge("ok", "4242424242424242"); err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if _, err := charge("no", "4000000000000002"); !errors.Is(err, payments.ErrCardDeclined) {
				t.Fatalf("Charge with the declined card: %v", err)
			}
			// Within the retention a repeat, whatever its card, repeats the decline.
			if _, err := charge("no", "4242424242424242"); !errors.Is(err, payments.ErrCardDeclined) {
				t.Fatalf("repeat within the retention: %v, want the decline", err)
			}
			if ch, err := svc.Get(ctx, "no"); err != nil || ch.Status != payments.StatusDeclined {
				t.Fatalf("Get within the retention: %+v %v, want declined", ch, err)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				_, err := svc.Get(ctx, "no")
				if errors.Is(err, payments.ErrNotFound) {
					break
				}
				if err != nil || time.Now().After(deadline) {
					t.Fatalf("declined record after 15s: %v, want ErrNotFound", err)
				}
				time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
			}
			if ch, err := svc.Get(ctx, "ok"); err != nil || ch.Status != payments.StatusCaptured {
				t.Errorf("captured charge after the retention: %+v %v, want it kept", ch, err)
			}
			// Past the retention the key is new: a charge is decided anew.
			if ch, err := charge("no", "4242424242424242"); err != nil || ch.Status != payments.StatusCaptured {
				t.Errorf("Charge of the key past its retention: %+v %v, want captured", ch, err)
			}
		})
	}
}

// TestDefaultDeclinedRetentionIsOverADay reads the TTL that JetStream holds for a declined
// charge written with the default retention.
func TestDefaultDeclinedRetentionIsOverADay(t *testing.T) {
	srv := natsjstest.New(t)
	ctx := t.Context()
	const name = "retained_charges"
	b, err := natsjs.OpenBucket(ctx, srv.JetStream(), natsjs.StoreConfig{}, name)
	if err != nil {
		t.Fatal(err)
	}
	svc := payments.New(b, fixedClock)
	for key, number := range map[string]string{"no": "4000000000009995", "ok": "4242424242424242"} {
		_, _ = svc.Charge(ctx, payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(100),
			Card: payments.Card{Number: number, ExpMonth: 1, ExpYear: 2031, CVV: "123"}})
	}
	if got := srv.TTL(t, name, "no"); got == "" {
		t.Fatal("the declined record has no TTL")
	} else if ttl, err := time.ParseDuration(got); err != nil || ttl < 24*time.Hour || ttl != payments.DefaultDeclinedRetention {
		t.Fatalf("the declined record's TTL: %q (%v), want payments.DefaultDeclinedRetention, at least 24h", got, err)
	}
	if got := srv.TTL(t, name, "ok"); got != "" {
		t.Fatalf("the captured charge has a TTL of %q, want none", got)
	}
}
