// Package notify tells customers what happened to their orders: exactly one notification
// per order and kind, however often the event that causes it is delivered.
package notify

import (
	"context"
	"time"
)

// Buckets this context owns; no other context reads them.
const (
	NotificationsBucket = "notify_notifications" // notifications per user
)

// Notification kinds.
const (
	KindOrderPaid    = "order-paid"
	KindOrderShipped = "order-shipped"
)

// Notification is one message sent to a user.
type Notification struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	OrderID   string    `json:"order_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Service is the notify port.
type Service interface {
	// Notify records (and would send) the notification of kind for an order, once: a second
	// call for the same user, kind and order returns the first notification.
	Notify(ctx context.Context, userID, kind, orderID string) (Notification, error)
	// List returns a user's notifications oldest first; none for an unknown user.
	List(ctx context.Context, userID string) ([]Notification, error)
}
