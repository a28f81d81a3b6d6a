// Package notify tells customers what happened to their orders: exactly one notification
// per order and kind, however often the event that causes it is delivered.
package notify

import (
	"context"
	"time"
)

// Buckets this context owns; no other context reads them.
const (
	NotificationsBucket = "notify_notifications" // each user's notifications (see service.go)
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

// ListRequest asks for one page of a user's notifications.
type ListRequest struct {
	UserID    string
	PageSize  int    // 1..paging.MaxSize; 0 means DefaultPageSize
	PageToken string // "" for the first page, else a Page's NextPageToken
}

// Page is one page of a user's notifications, oldest first.
type Page struct {
	Notifications []Notification `json:"notifications"`
	NextPageToken string         `json:"next_page_token"` // "" on the last page
}

// DefaultPageSize is the page size of a ListRequest that gives none.
const DefaultPageSize = 100

// Service is the notify port.
type Service interface {
	// Notify records (and would send) the notification of kind for an order, once: a second
	// call for the same user, kind and order returns the first notification.
	Notify(ctx context.Context, userID, kind, orderID string) (Notification, error)
	// List returns a page of a user's notifications, oldest first (in the order they were
	// recorded, which is that of created_at): every page but the last is full, and an
	// unknown user has one empty page. A bad user ID, page size or page token is a
	// validation error.
	List(ctx context.Context, req ListRequest) (Page, error)
}
