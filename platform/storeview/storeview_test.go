package storeview_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/storeview"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// TestCharges makes charges through the payments context on a real JetStream and reads them
// back: every key once, at its latest status, and only those since the time asked.
func TestCharges(t *testing.T) {
	srv := natsjstest.New(t)
	ctx := context.Background()
	if got, err := storeview.Charges(ctx, srv.JetStream(), time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("no bucket yet: %v, %v", got, err)
	}
	b, err := natsjs.OpenBucket(ctx, srv.JetStream(), natsjs.StoreConfig{}, payments.ChargesBucket)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	svc := payments.New(b, func() time.Time { return now })
	card := payments.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2031, CVV: "123"}
	charge := func(key string, cents int64) {
		t.Helper()
		if _, err := svc.Charge(ctx, payments.ChargeRequest{IdempotencyKey: key, Amount: money.Cents(cents), Card: card}); err != nil {
			t.Fatal(err)
		}
	}
	charge("ord-old", 100)
	now = now.Add(time.Hour)
	charge("ord-a", 200)
	charge("ord-a", 200) // the same key again: still one charge
	charge("ord-b", 300)
	if _, err := svc.Refund(ctx, "ord-b"); err != nil {
		t.Fatal(err)
	}
	got, err := storeview.Charges(ctx, srv.JetStream(), now)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y payments.Charge) int { return int(x.Amount.Units - y.Amount.Units) })
	if len(got) != 2 || got[0].IdempotencyKey != "ord-a" || got[0].Status != payments.StatusCaptured ||
		got[1].IdempotencyKey != "ord-b" || got[1].Status != payments.StatusRefunded {
		t.Errorf("charges since %s: %+v", now, got)
	}
	if all, err := storeview.Charges(ctx, srv.JetStream(), time.Time{}); err != nil || len(all) != 3 {
		t.Errorf("all charges: %+v, %v", all, err)
	}
}
