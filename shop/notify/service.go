package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// inbox is the stored document of one user: their notifications in creation order. One
// document per user makes "exactly one per kind and order" a check inside one
// compare-and-set write, and List a single read.
type inbox struct {
	Notifications []Notification `json:"notifications"`
}

// service is the Service over a bucket of inboxes keyed by user ID.
type service struct {
	inboxes kv.Bucket
	now     func() time.Time
}

// New returns the notify service. notifications holds one document per user, keyed by user
// ID; now stamps notifications and their IDs.
func New(notifications kv.Bucket, now func() time.Time) Service {
	return &service{inboxes: notifications, now: now}
}

func (s *service) Notify(ctx context.Context, userID, kind, orderID string) (Notification, error) {
	if err := ids.Check("user_id", userID); err != nil {
		return Notification{}, err
	}
	if kind != KindOrderPaid && kind != KindOrderShipped {
		return Notification{}, validation.Errorf("kind", "must be %q or %q, got %q", KindOrderPaid, KindOrderShipped, kind)
	}
	if err := ids.Check("order_id", orderID); err != nil {
		return Notification{}, err
	}
	var result Notification
	_, err := kv.Mutate(ctx, s.inboxes, userID, func(box *inbox, _ bool) error {
		// Runs again after a conflicting write, so it only reads and decides: the duplicate
		// check sees every notification that won the race.
		for _, n := range box.Notifications {
			if n.Kind == kind && n.OrderID == orderID {
				result = n
				return kv.ErrSkip
			}
		}
		now := s.now()
		// Milliseconds, like orders' created_at: one precision across the API.
		created := now.UTC().Truncate(time.Millisecond)
		// The list is in write order; keep created_at in that order too if the clock steps
		// back or a slower writer read it earlier.
		if k := len(box.Notifications); k > 0 && created.Before(box.Notifications[k-1].CreatedAt) {
			created = box.Notifications[k-1].CreatedAt
		}
		result = Notification{ID: ids.New("ntf", now), Kind: kind, OrderID: orderID, CreatedAt: created}
		box.Notifications = append(box.Notifications, result)
		return nil
	})
	if err != nil {
		return Notification{}, fmt.Errorf("notify %s of %s %s: %w", userID, kind, orderID, err)
	}
	return result, nil
}

func (s *service) List(ctx context.Context, userID string) ([]Notification, error) {
	if err := ids.Check("user_id", userID); err != nil {
		return nil, err
	}
	box, _, err := kv.Get[inbox](ctx, s.inboxes, userID)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return []Notification{}, nil
	case err != nil:
		return nil, fmt.Errorf("notifications of %s: %w", userID, err)
	}
	if box.Notifications == nil {
		return []Notification{}, nil
	}
	return box.Notifications, nil
}

// Handler turns order-paid and order-shipped events into notifications. Events are delivered
// at least once and Notify is idempotent, so a redelivery changes nothing. A message that can
// never be handled (another subject, an undecodable or invalid payload) is poison; any other
// failure is returned for redelivery.
func Handler(svc Service) events.Handler {
	return func(ctx context.Context, m events.Message) error {
		var userID, kind, orderID string
		switch m.Subject {
		case events.OrderPaidSubject:
			e, err := events.Decode[events.OrderPaid](m)
			if err != nil {
				return err
			}
			userID, kind, orderID = e.UserID, KindOrderPaid, e.OrderID
		case events.OrderShippedSubject:
			e, err := events.Decode[events.OrderShipped](m)
			if err != nil {
				return err
			}
			userID, kind, orderID = e.UserID, KindOrderShipped, e.OrderID
		default:
			return fmt.Errorf("%s %s: %w: notify does not handle this subject", m.Subject, m.ID, events.ErrPoison)
		}
		if _, err := svc.Notify(ctx, userID, kind, orderID); err != nil {
			if errors.Is(err, validation.ErrInvalid) {
				return fmt.Errorf("%s %s: %w: %w", m.Subject, m.ID, events.ErrPoison, err)
			}
			return fmt.Errorf("%s %s: %w", m.Subject, m.ID, err)
		}
		return nil
	}
}
