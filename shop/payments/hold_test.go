package payments_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// ttlBucket records the expiry of every write.
type ttlBucket struct {
	kv.Bucket
	ttls []time.Duration
}

func (b *ttlBucket) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	b.ttls = append(b.ttls, kv.TTLOf(opts))
	return b.Bucket.Create(ctx, key, value, opts...)
}

// A held card comes back for its order only, sealed at rest, expiring, and is gone once
// dropped; a bad card is refused before anything is written.
func TestHolds(t *testing.T) {
	ctx := t.Context()
	mem := kv.NewMemory()
	b := &ttlBucket{Bucket: mem}
	h, err := payments.NewHolds(b, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	card := payments.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVV: "123"}
	if err := h.Hold(ctx, "ord-1", card); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Card(ctx, "ord-1"); err != nil || got != card {
		t.Fatalf("Card = %+v, %v; want the held card", got, err)
	}
	if len(b.ttls) != 1 || b.ttls[0] != payments.CardHoldTTL {
		t.Errorf("written with expiries %v, want %v", b.ttls, payments.CardHoldTTL)
	}
	e, err := mem.Get(ctx, "ord-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(e.Value, []byte(card.Number)) || bytes.Contains(e.Value, []byte(`"cvv"`)) {
		t.Errorf("the card is stored in the clear: %q", e.Value)
	}
	if err := h.Hold(ctx, "ord-1", card); err != nil {
		t.Errorf("holding the same card again: %v", err)
	}
	other := card
	other.Number = "4000000000000002"
	if err := h.Hold(ctx, "ord-1", other); !errors.Is(err, payments.ErrCardHeld) {
		t.Errorf("another card for the same order: %v, want ErrCardHeld", err)
	}
	// Moved to another order, or read with another secret, it does not open.
	if _, err := mem.Create(ctx, "ord-2", e.Value); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Card(ctx, "ord-2"); !errors.Is(err, payments.ErrNoCard) {
		t.Errorf("a hold moved to another order: %v, want ErrNoCard", err)
	}
	h2, _ := payments.NewHolds(mem, []byte("another secret"))
	if _, err := h2.Card(ctx, "ord-1"); !errors.Is(err, payments.ErrNoCard) {
		t.Errorf("read with another secret: %v, want ErrNoCard", err)
	}
	if err := h.Drop(ctx, "ord-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Card(ctx, "ord-1"); !errors.Is(err, payments.ErrNoCard) {
		t.Errorf("after Drop: %v, want ErrNoCard", err)
	}
	var verr *validation.Error
	if err := h.Hold(ctx, "ord-3", payments.Card{Number: "4242424242424241", ExpMonth: 1, ExpYear: 2030, CVV: "1"}); !errors.As(err, &verr) {
		t.Errorf("a bad card: %v, want a validation error", err)
	}
	if _, err := mem.Get(ctx, "ord-3"); !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("a bad card was written: %v", err)
	}
	if _, err := payments.NewHolds(mem, nil); err == nil {
		t.Error("NewHolds without a secret")
	}
}
