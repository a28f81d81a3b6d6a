// Package events is the published language between contexts: the subjects and payloads of the
// events one context announces and others react to, and the small Publisher and Subscriber
// ports that carry them. Delivery is at least once, so every handler is idempotent; a
// message's ID is stable for one fact (e.g. "order-paid.<order id>") so that brokers can drop
// duplicates. This package holds an in-memory bus; package natsjs the JetStream one.
package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
)

// Subjects of the shop's events.
const (
	OrderPaidSubject    = "shop.events.order-paid"
	OrderShippedSubject = "shop.events.order-shipped"
)

// OrderPaid is published by orders once an order is paid and recorded.
type OrderPaid struct {
	OrderID     string      `json:"order_id"`
	UserID      string      `json:"user_id"`
	Email       string      `json:"email"`
	Address     Address     `json:"address"`
	Items       []Item      `json:"items"`
	WeightGrams int64       `json:"weight_grams"`
	Total       money.Money `json:"total"`
	PaidAt      time.Time   `json:"paid_at"`
}

// Item is a line of a paid order.
type Item struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// Address is where an order goes.
type Address struct {
	Street     string `json:"street"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// OrderShipped is published by shipping once a shipment exists for an order.
type OrderShipped struct {
	OrderID    string    `json:"order_id"`
	UserID     string    `json:"user_id"`
	TrackingID string    `json:"tracking_id"`
	ShippedAt  time.Time `json:"shipped_at"`
}

// Message is one delivery of an event. The trace context its publisher sent comes in the
// handler's context, not here.
type Message struct {
	Subject  string
	ID       string // the publisher's de-duplication ID
	Data     []byte // JSON payload
	Delivery int    // 1 on the first delivery, more on redeliveries
}

// Handler reacts to a message. Returning nil acknowledges it; an error asks for a redelivery
// later (see RetryDelay), unless it wraps ErrPoison: such a message would fail on every
// delivery, so it is given up at once. A message given up, poison or out of deliveries, is
// not lost on JetStream: it goes to the dead-letter stream (package natsjs), from which an
// admin replays it once the cause is fixed.
type Handler func(ctx context.Context, m Message) error

// ErrPoison marks a message that this code can never handle: undecodable or meaningless to it.
var ErrPoison = errors.New("poison message")

// Publisher publishes an event. id de-duplicates: a second publish with the same id within
// the broker's window is dropped.
type Publisher interface {
	Publish(ctx context.Context, subject, id string, payload any) error
}

// Subscription is a running consumer.
type Subscription interface {
	// Stop stops delivering and waits for the handler calls in flight to return.
	Stop()
}

// Subscriber starts durable consumers: a consumer's name identifies its position in the
// stream across restarts, so messages published while it was down are delivered later.
type Subscriber interface {
	Subscribe(ctx context.Context, consumer string, subjects []string, h Handler) (Subscription, error)
}

// Decode decodes a message's payload; a payload that does not decode is poison.
func Decode[T any](m Message) (T, error) {
	var v T
	if err := kv.Decode(m.Data, &v); err != nil {
		return v, fmt.Errorf("decode %s %s: %w: %v", m.Subject, m.ID, ErrPoison, err)
	}
	return v, nil
}

// MaxDeliveries bounds the deliveries of a message whose handler keeps failing with a
// transient error; after the last one the message is given up (dead-lettered on JetStream,
// dropped with a log line by the in-memory bus).
//
// With RetryDelay it sets how long a failing message is retried: the sum of the delays
// between its deliveries, 11 min 21 s (RetryBudget). That is the outage a message survives.
// The count alone decides, whatever the error: a handler fails mostly because its store or
// the broker is away (a connection lost, JetStream answering "no responders" at once), and
// telling that from a bug by the error would be a guess that, when wrong, retries a broken
// message until the event stream's age limit removes it without a trace, the very loss the
// dead letters are for. So the delays grow instead: a 90 s outage uses up 10 of the 30
// deliveries (TestRetriesOutlastAnOutage), and a message that fails for good is given up
// within 12 minutes, well inside the event stream's 24 hours.
const MaxDeliveries = 30

// MaxRetryDelay caps RetryDelay: the longest a message waits for its next try, and so how
// long after an outage ends the messages it held are handled at most.
const MaxRetryDelay = 30 * time.Second

// RetryDelay is how long a message waits after its delivery number delivery failed: 200 ms
// after the first, doubling up to MaxRetryDelay, which it reaches after the 9th.
func RetryDelay(delivery int) time.Duration {
	d := 100 * time.Millisecond << min(max(delivery, 1), 9)
	return min(d, MaxRetryDelay)
}

// RetryBudget is how long a message that always fails is retried before it is given up:
// the sum of the delays between its MaxDeliveries deliveries (handler time not counted).
func RetryBudget() time.Duration {
	var total time.Duration
	for n := 1; n < MaxDeliveries; n++ {
		total += RetryDelay(n)
	}
	return total
}
