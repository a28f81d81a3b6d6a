//go:build !mitosis_group || mitosis_payments

// Part of the implementation: only the binaries that run payments link it (bounded.Group.BuildTags).

package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// How a key charges at most once: the charges bucket holds one record per idempotency key,
// and the charge happens by creating that record (kv.Create), which only one caller can do.
// Every other caller with the key reads the record and answers with its outcome. Declines are
// recorded too, so a repeated key repeats its decline rather than trying again, for the
// declined retention: the record is written with it as its TTL, and nothing writes a
// declined record again (Refund leaves it be), so the store drops it then.

// maxKey bounds idempotency keys (the HTTP edge allows 64; orders may prefix them).
const maxKey = 128

// The test card numbers of API.md with a fixed outcome.
const (
	cardDeclined          = "4000000000000002"
	cardInsufficientFunds = "4000000000009995"
)

// Decline codes stored in a declined record; each maps back to its sentinel error.
const (
	declineCard    = "card_declined"
	declineFunds   = "insufficient_funds"
	declineExpired = "card_expired"
)

const chargeIDPrefix = "ch"

// record is the charges bucket's document for one idempotency key. It holds the last four
// digits of the card and nothing else of it: never the full number, never the CVV.
type record struct {
	Charge
	Decline string `json:"decline,omitempty"` // declined records only: a decline code
}

type service struct {
	charges  kv.Bucket
	now      func() time.Time
	declined kv.WriteOption // how a declined record is written: with its retention
}

// Option configures the service New returns.
type Option func(*options)

type options struct {
	declinedRetention time.Duration
}

// WithDeclinedRetention keeps the records of declined charges for d instead of
// DefaultDeclinedRetention (d <= 0 keeps the default). JetStream counts whole seconds.
func WithDeclinedRetention(d time.Duration) Option {
	return func(o *options) { o.declinedRetention = d }
}

// New returns the payments service over its charges bucket; now is the clock that decides
// whether a card has expired.
func New(charges kv.Bucket, now func() time.Time, opts ...Option) Service {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.declinedRetention <= 0 {
		o.declinedRetention = DefaultDeclinedRetention
	}
	return &service{charges: charges, now: now, declined: kv.TTL(o.declinedRetention)}
}

// Charge validates the request, decides its outcome from the card (see API.md's test cards;
// an expired card is declined first, whatever its number) and records it under the key. A key
// already used answers with its recorded outcome whatever this request asks: the charge (also
// once refunded), its decline, or ErrVoided. That holds even for a different amount or card;
// orders, the one caller, derives the key from a request whose body it already compared.
func (s *service) Charge(ctx context.Context, req ChargeRequest) (Charge, error) {
	if err := validateKey(req.IdempotencyKey); err != nil {
		return Charge{}, err
	}
	if req.Amount.Currency != money.USD || req.Amount.Units <= 0 {
		return Charge{}, validation.Errorf("amount", "must be a positive amount of %s, got %s", money.USD, req.Amount)
	}
	if err := ValidateCard(req.Card); err != nil {
		return Charge{}, err
	}
	now := s.now().UTC()
	rec := record{Charge: Charge{
		ID:             ids.New(chargeIDPrefix, now),
		IdempotencyKey: req.IdempotencyKey,
		Amount:         req.Amount,
		Last4:          last4(req.Card.Number),
		Status:         StatusCaptured,
		CreatedAt:      now,
	}}
	var opts []kv.WriteOption
	if code := decide(req.Card, now); code != "" {
		rec.Status, rec.Decline = StatusDeclined, code
		opts = append(opts, s.declined)
	}
	_, err := kv.Create(ctx, s.charges, req.IdempotencyKey, rec, opts...)
	if errors.Is(err, kv.ErrExists) {
		rec, _, err = kv.Get[record](ctx, s.charges, req.IdempotencyKey)
	}
	if err != nil {
		return Charge{}, fmt.Errorf("charge %s: %w", req.IdempotencyKey, err)
	}
	return rec.outcome()
}

// decide returns the decline code for card at now, or "" to approve it.
func decide(card Card, now time.Time) string {
	switch {
	case expired(card.ExpYear, card.ExpMonth, now):
		return declineExpired
	case card.Number == cardDeclined:
		return declineCard
	case card.Number == cardInsufficientFunds:
		return declineFunds
	}
	return ""
}

// outcome is what Charge answers for a key with this record.
func (r record) outcome() (Charge, error) {
	switch r.Status {
	case StatusCaptured, StatusRefunded:
		return r.Charge, nil
	case StatusVoided:
		return Charge{}, fmt.Errorf("charge %s: %w", r.IdempotencyKey, ErrVoided)
	}
	var err error
	switch r.Decline {
	case declineCard:
		err = ErrCardDeclined
	case declineFunds:
		err = ErrInsufficientFunds
	case declineExpired:
		err = ErrCardExpired
	default:
		err = ErrDeclined
	}
	return Charge{}, fmt.Errorf("charge %s: %w", r.IdempotencyKey, err)
}

// Refund refunds a captured charge. A refunded, voided or declined key is left as it is and
// returned (nothing to give back); a key with no charge is voided, so that a Charge arriving
// late under it fails with ErrVoided instead of charging an order that was abandoned.
func (s *service) Refund(ctx context.Context, idempotencyKey string) (Charge, error) {
	if err := validateKey(idempotencyKey); err != nil {
		return Charge{}, err
	}
	now := s.now().UTC()
	void := record{Charge: Charge{
		ID:             ids.New(chargeIDPrefix, now),
		IdempotencyKey: idempotencyKey,
		Amount:         money.Cents(0),
		Status:         StatusVoided,
		CreatedAt:      now,
	}}
	rec, err := kv.Mutate(ctx, s.charges, idempotencyKey, func(r *record, exists bool) error {
		switch {
		case !exists:
			*r = void
			return nil
		case r.Status == StatusCaptured:
			r.Status = StatusRefunded
			return nil
		}
		return kv.ErrSkip
	})
	if err != nil {
		return Charge{}, fmt.Errorf("refund %s: %w", idempotencyKey, err)
	}
	return rec.Charge, nil
}

// Get returns the key's record whatever its status, declined included.
func (s *service) Get(ctx context.Context, idempotencyKey string) (Charge, error) {
	if err := validateKey(idempotencyKey); err != nil {
		return Charge{}, err
	}
	rec, _, err := kv.Get[record](ctx, s.charges, idempotencyKey)
	if errors.Is(err, kv.ErrNotFound) {
		return Charge{}, fmt.Errorf("charge %s: %w", idempotencyKey, ErrNotFound)
	}
	if err != nil {
		return Charge{}, fmt.Errorf("get charge %s: %w", idempotencyKey, err)
	}
	return rec.Charge, nil
}

func validateKey(key string) error {
	if key == "" || len(key) > maxKey {
		return validation.Errorf("idempotency_key", "must be 1 to %d bytes long", maxKey)
	}
	return nil
}
