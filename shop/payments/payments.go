// Package payments validates cards and charges and refunds them, each charge under an
// idempotency key so that a repeated request never charges twice. The shop has no real
// acquirer: the test cards of API.md decide the outcome, every other valid card is approved.
//
// Retention. The records of charges made, refunded or voided are kept for good. The record
// of a declined charge, which charged nothing, is kept for the declined retention
// (DefaultDeclinedRetention, 25 hours, unless New is given WithDeclinedRetention), so that a
// repeat of its key within a day repeats the decline; then the store drops it, and the key
// is one never seen: Get says ErrNotFound, Refund voids it, and Charge decides anew. Orders,
// the one caller, never charges a key again once its charge was declined (a new attempt
// gets a new order ID), so the record serves only to answer a late repeat.
package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mitosis-dev/mitosis/shop/money"
)

// Buckets this context owns; no other context reads them.
const (
	ChargesBucket = "payments_charges" // one charge per idempotency key
)

// Card is a payment card as the customer typed it.
type Card struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVV      string `json:"cvv"`
}

// ChargeRequest asks to charge amount to card, once per idempotency key.
type ChargeRequest struct {
	IdempotencyKey string
	Amount         money.Money
	Card           Card
}

// Charge states.
const (
	StatusCaptured = "captured"
	StatusRefunded = "refunded"
	StatusVoided   = "voided" // refunded before any charge arrived: the key can never charge
	// StatusDeclined is the record of a declined charge: nothing was charged, and a repeat
	// of its key repeats the decline. Get and Refund return it; Charge returns the decline.
	StatusDeclined = "declined"
)

// DefaultDeclinedRetention is how long a declined charge's record is kept: a day, and an
// hour more for clocks and rounding.
const DefaultDeclinedRetention = 25 * time.Hour

// Charge is the record of one idempotency key's charge.
type Charge struct {
	ID             string      `json:"id"`
	IdempotencyKey string      `json:"idempotency_key"`
	Amount         money.Money `json:"amount"`
	Last4          string      `json:"last4"`
	Status         string      `json:"status"`
	CreatedAt      time.Time   `json:"created_at"`
}

var (
	// ErrDeclined matches every declined charge; nothing was charged.
	ErrDeclined = errors.New("payment declined")
	// ErrCardDeclined: the issuer declined the card.
	ErrCardDeclined = fmt.Errorf("%w: card declined", ErrDeclined)
	// ErrInsufficientFunds: the card has too little money.
	ErrInsufficientFunds = fmt.Errorf("%w: insufficient funds", ErrDeclined)
	// ErrCardExpired: the card's expiry month is before the current month.
	ErrCardExpired = fmt.Errorf("%w: card expired", ErrDeclined)
	// ErrNotFound: no charge has that idempotency key.
	ErrNotFound = errors.New("payments: charge not found")
	// ErrVoided: the key was refunded before any charge arrived under it (a saga gave up on
	// it), so a charge under that key, arriving late, is refused and charges nothing.
	ErrVoided = errors.New("payments: charge voided before it was made")
)

// Service is the payments port.
type Service interface {
	// Charge validates the card (a validation error for a malformed or Luhn-invalid number),
	// then charges it, or fails with an error wrapping ErrDeclined. A key already used returns
	// the first outcome, charging nothing more (a decline for the declined retention: see the
	// package doc).
	Charge(ctx context.Context, req ChargeRequest) (Charge, error)
	// Refund refunds the key's charge. Refunding twice is a no-op; refunding a key that never
	// charged voids it, so that a charge arriving late under that key cannot go through.
	Refund(ctx context.Context, idempotencyKey string) (Charge, error)
	// Get returns the key's charge, or ErrNotFound.
	Get(ctx context.Context, idempotencyKey string) (Charge, error)
}
