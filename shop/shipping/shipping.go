// Package shipping quotes shipping costs and, when an order is paid, creates its shipment
// and announces it with an order-shipped event.
package shipping

import (
	"context"
	"errors"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/money"
)

// Buckets this context owns; no other context reads them.
const (
	ShipmentsBucket = "shipping_shipments" // one shipment per order
)

// Shipment is an order on its way.
type Shipment struct {
	OrderID     string         `json:"order_id"`
	UserID      string         `json:"user_id"`
	TrackingID  string         `json:"tracking_id"`
	Address     events.Address `json:"address"`
	WeightGrams int64          `json:"weight_grams"`
	CreatedAt   time.Time      `json:"created_at"`
}

// ErrNotFound: no shipment exists for that order.
var ErrNotFound = errors.New("shipping: shipment not found")

// Quote is the shipping cost of an order: 500 cents plus 1 cent per 10 grams of total
// weight, rounded up.
func Quote(weightGrams int64) money.Money {
	return money.Cents(500 + (max(weightGrams, 0)+9)/10)
}

// Service is the shipping port.
type Service interface {
	// Ship creates the shipment of a paid order and publishes order-shipped. It is
	// idempotent: shipping an order again returns its shipment and publishes no new fact.
	Ship(ctx context.Context, paid events.OrderPaid) (Shipment, error)
	// Get returns an order's shipment, or ErrNotFound.
	Get(ctx context.Context, orderID string) (Shipment, error)
}
