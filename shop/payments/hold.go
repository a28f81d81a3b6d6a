package payments

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Card holds. A checkout orchestrated outside orders (the Step Functions state machine,
// platform/stepfunctions) cannot carry the card from its start to its Charge: the
// orchestrator keeps its executions' data in their history, for 90 days. So whoever starts
// the execution first hands the card to payments, which holds it under the checkout's order
// ID for a few minutes, encrypted (AES-GCM, with a key only payments has, the order ID as
// associated data, so that a hold cannot be moved to another order), and the charge takes it
// from there. A hold nobody takes expires with its key in the store; the charge drops it once
// the charge is decided (made or declined), so a card stays no longer than its checkout needs.
// Nothing here logs a card, and the hold is the only place a card is ever written.

// CardsBucket holds the cards held for charges to come, by order ID.
const CardsBucket = "payments_cards"

// CardHoldTTL is how long a held card waits for its charge: an execution reaches Charge
// within seconds, or after retries of its first steps within minutes.
const CardHoldTTL = 15 * time.Minute

// ErrNoCard: no card is held for the order (never handed over, or expired).
var ErrNoCard = errors.New("payments: no card held for the order")

// ErrCardHeld: another card is held for the order already.
var ErrCardHeld = errors.New("payments: another card is held for the order")

// Holds are the cards held for charges to come. It is safe for concurrent use.
type Holds struct {
	b    kv.Bucket
	aead cipher.AEAD
}

// NewHolds returns the holds over b (CardsBucket), their cards sealed with a key derived
// from secret, which every process that holds or takes cards must share.
func NewHolds(b kv.Bucket, secret []byte) (*Holds, error) {
	if len(secret) == 0 {
		return nil, errors.New("payments: no secret to seal held cards with")
	}
	key := sha256.Sum256(secret)
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("card holds: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("card holds: %w", err)
	}
	return &Holds{b: b, aead: aead}, nil
}

// Hold validates c and holds it for orderID for CardHoldTTL. Holding the same card again
// is a no-op; another card for the same order is ErrCardHeld.
func (h *Holds) Hold(ctx context.Context, orderID string, c Card) error {
	if err := ids.Check("order_id", orderID); err != nil {
		return err
	}
	if err := ValidateCard(c); err != nil {
		return err
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("hold a card for order %s: %w", orderID, err)
	}
	nonce := make([]byte, h.aead.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand never fails (Go 1.24)
	sealed := h.aead.Seal(nonce, nonce, plain, []byte(orderID))
	_, err = h.b.Create(ctx, orderID, sealed, kv.TTL(CardHoldTTL))
	if errors.Is(err, kv.ErrExists) {
		held, gerr := h.Card(ctx, orderID)
		switch {
		case errors.Is(gerr, ErrNoCard): // expired meanwhile: hold it anew
			_, err = h.b.Create(ctx, orderID, sealed, kv.TTL(CardHoldTTL))
		case gerr != nil:
			return gerr
		case held == c:
			return nil
		default:
			return fmt.Errorf("order %s: %w", orderID, ErrCardHeld)
		}
	}
	if err != nil {
		return fmt.Errorf("hold a card for order %s: %w", orderID, err)
	}
	return nil
}

// Card returns the card held for orderID, or ErrNoCard.
func (h *Holds) Card(ctx context.Context, orderID string) (Card, error) {
	if !ids.Valid(orderID) {
		return Card{}, fmt.Errorf("order %.20q: %w", orderID, ErrNoCard)
	}
	e, err := h.b.Get(ctx, orderID)
	if errors.Is(err, kv.ErrNotFound) {
		return Card{}, fmt.Errorf("order %s: %w", orderID, ErrNoCard)
	}
	if err != nil {
		return Card{}, fmt.Errorf("read the card held for order %s: %w", orderID, err)
	}
	n := h.aead.NonceSize()
	if len(e.Value) < n {
		return Card{}, fmt.Errorf("the card held for order %s is not sealed", orderID)
	}
	plain, err := h.aead.Open(nil, e.Value[:n], e.Value[n:], []byte(orderID))
	if err != nil {
		// Sealed with another secret, or not for this order: unusable, as if none.
		return Card{}, fmt.Errorf("the card held for order %s does not open (another secret?): %w", orderID, ErrNoCard)
	}
	var c Card
	if err := json.Unmarshal(plain, &c); err != nil {
		return Card{}, fmt.Errorf("the card held for order %s: %w", orderID, ErrNoCard)
	}
	return c, nil
}

// Drop removes the card held for orderID, if any.
func (h *Holds) Drop(ctx context.Context, orderID string) error {
	if !ids.Valid(orderID) {
		return nil
	}
	if err := h.b.Delete(ctx, orderID, 0); err != nil {
		return fmt.Errorf("drop the card held for order %s: %w", orderID, err)
	}
	return nil
}
