//go:build !mitosis_group || mitosis_orders

// Part of the implementation: only the binaries that run orders link it (bounded.Group.BuildTags).

package orders

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

// notYetWait is the longest of the waits before HandleOrderShipped looks for an order again
// itself; with the shorter ones before it, some 150 ms in all.
const notYetWait = 80 * time.Millisecond

// HandleOrderShipped returns the consumer of order-shipped events: it marks the order
// shipped. Redeliveries are harmless (MarkShipped is idempotent).
//
// An event for an order that is not there yet is looked for again for a moment
// (notYetWait), then redelivered (events.RetryDelay), not given up: checkout publishes
// order-paid at the same time as it records the order (see the package doc), so shipping
// may ship an order, and announce it, before the order is visible; and a checkout that
// stopped between the two is finished by recovery, which records the order, within a
// minute or so (orders.StaleSaga), long before the deliveries run out (events.RetryBudget,
// some 11 minutes). One that never becomes valid goes to the dead letters once they have. An ID that can name no order is poison at once.
func HandleOrderShipped(svc Service) events.Handler {
	return func(ctx context.Context, m events.Message) error {
		if m.Subject != events.OrderShippedSubject {
			return fmt.Errorf("orders: unexpected subject %s: %w", m.Subject, events.ErrPoison)
		}
		e, err := events.Decode[events.OrderShipped](m)
		if err != nil {
			return err
		}
		if !ids.Valid(e.OrderID) || e.TrackingID == "" {
			return fmt.Errorf("order-shipped %s without a valid order ID or a tracking ID: %w", m.ID, events.ErrPoison)
		}
		_, err = svc.MarkShipped(ctx, e.OrderID, e.TrackingID)
		// The order's write went out with order-paid and lands within a store round trip
		// or so: look again a few times before giving the message back for a redelivery,
		// which would come a good deal later and log a failure each time.
		for wait := 5 * time.Millisecond; errors.Is(err, ErrNotFound) && wait <= notYetWait; wait *= 2 {
			if err := kv.Sleep(ctx, wait); err != nil {
				return err
			}
			_, err = svc.MarkShipped(ctx, e.OrderID, e.TrackingID)
		}
		switch {
		case errors.Is(err, validation.ErrInvalid):
			return fmt.Errorf("order-shipped %s: %w: %w", m.ID, events.ErrPoison, err)
		case errors.Is(err, ErrNotFound):
			return fmt.Errorf("order-shipped %s: order not recorded yet, retried: %w", m.ID, err)
		}
		return err
	}
}
