//go:build !mitosis_group || mitosis_shipping

// Part of the implementation: only the binaries that run shipping link it (bounded.Group.BuildTags).

package shipping

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

// service is the Service over a bucket of shipments keyed by order ID.
type service struct {
	shipments kv.Bucket
	pub       events.Publisher
	now       func() time.Time
}

// New returns the shipping service. shipments holds one Shipment per order, keyed by order
// ID; pub carries the order-shipped events; now stamps shipments and tracking IDs.
func New(shipments kv.Bucket, pub events.Publisher, now func() time.Time) Service {
	return &service{shipments: shipments, pub: pub, now: now}
}

// shippedEventID is the de-duplication ID of an order's order-shipped event: one fact per
// order, so every publish of it (first try, retry after a crash) carries the same ID.
func shippedEventID(orderID string) string { return "order-shipped." + orderID }

func (s *service) Ship(ctx context.Context, paid events.OrderPaid) (Shipment, error) {
	if err := ids.Check("order_id", paid.OrderID); err != nil {
		return Shipment{}, err
	}
	if err := ids.Check("user_id", paid.UserID); err != nil {
		return Shipment{}, err
	}
	now := s.now()
	shipment := Shipment{
		OrderID:     paid.OrderID,
		UserID:      paid.UserID,
		TrackingID:  ids.New("trk", now),
		Address:     paid.Address,
		WeightGrams: paid.WeightGrams,
		CreatedAt:   now.UTC(),
	}
	_, err := kv.Create(ctx, s.shipments, paid.OrderID, shipment)
	switch {
	case errors.Is(err, kv.ErrExists):
		// Shipped before (a redelivery, or a concurrent duplicate): the first shipment and
		// its tracking ID stand.
		shipment, _, err = kv.Get[Shipment](ctx, s.shipments, paid.OrderID)
		if err != nil {
			return Shipment{}, fmt.Errorf("ship %s: read existing shipment: %w", paid.OrderID, err)
		}
	case err != nil:
		return Shipment{}, fmt.Errorf("ship %s: create shipment: %w", paid.OrderID, err)
	}
	// Publish also when the shipment already existed: a crash between the create above and
	// this publish must not lose the event. The payload is built from the stored shipment and
	// the ID is fixed per order, so a repeat is the same fact and the broker drops it.
	shipped := events.OrderShipped{
		OrderID:    shipment.OrderID,
		UserID:     shipment.UserID,
		TrackingID: shipment.TrackingID,
		ShippedAt:  shipment.CreatedAt,
	}
	if err := s.pub.Publish(ctx, events.OrderShippedSubject, shippedEventID(shipment.OrderID), shipped); err != nil {
		return Shipment{}, fmt.Errorf("ship %s: %w", paid.OrderID, err)
	}
	return shipment, nil
}

func (s *service) Get(ctx context.Context, orderID string) (Shipment, error) {
	if !ids.Valid(orderID) {
		return Shipment{}, fmt.Errorf("shipment of order %.20q: %w", orderID, ErrNotFound)
	}
	shipment, _, err := kv.Get[Shipment](ctx, s.shipments, orderID)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		return Shipment{}, fmt.Errorf("shipment of order %s: %w", orderID, ErrNotFound)
	case err != nil:
		return Shipment{}, fmt.Errorf("shipment of order %s: %w", orderID, err)
	}
	return shipment, nil
}

// HandleOrderPaid ships each paid order. Undecodable or invalid order-paid events are poison:
// they would fail on every delivery. Any other failure (store or broker down) is returned so
// that the event is redelivered; Ship is idempotent, so a redelivery is harmless.
func HandleOrderPaid(svc Service) events.Handler {
	return func(ctx context.Context, m events.Message) error {
		paid, err := events.Decode[events.OrderPaid](m)
		if err != nil {
			return err
		}
		if _, err := svc.Ship(ctx, paid); err != nil {
			if errors.Is(err, validation.ErrInvalid) {
				return fmt.Errorf("%s %s: %w: %w", m.Subject, m.ID, events.ErrPoison, err)
			}
			return fmt.Errorf("%s %s: %w", m.Subject, m.ID, err)
		}
		return nil
	}
}
