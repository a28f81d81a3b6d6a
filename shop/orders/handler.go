package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// HandleOrderShipped returns the consumer of order-shipped events: it marks the order
// shipped. Redeliveries are harmless (MarkShipped is idempotent). An event for an order that
// does not exist is poison: orders are recorded before order-paid is published, so it can
// never become valid.
func HandleOrderShipped(svc Service) events.Handler {
	return func(ctx context.Context, m events.Message) error {
		if m.Subject != events.OrderShippedSubject {
			return fmt.Errorf("orders: unexpected subject %s: %w", m.Subject, events.ErrPoison)
		}
		e, err := events.Decode[events.OrderShipped](m)
		if err != nil {
			return err
		}
		if e.OrderID == "" || e.TrackingID == "" {
			return fmt.Errorf("order-shipped %s without order or tracking ID: %w", m.ID, events.ErrPoison)
		}
		_, err = svc.MarkShipped(ctx, e.OrderID, e.TrackingID)
		if errors.Is(err, ErrNotFound) || errors.Is(err, validation.ErrInvalid) {
			return fmt.Errorf("order-shipped %s: %w: %w", m.ID, events.ErrPoison, err)
		}
		return err
	}
}
