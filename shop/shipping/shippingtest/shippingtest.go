// Package shippingtest is the conformance suite of shipping.Service, written once against the
// interface: the implementation runs it over the memory and JetStream stores, and services/
// runs it through a gRPC client and server. It is a test helper, not a fake shipping service.
package shippingtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// Run runs the suite. newService returns a service with an empty store that publishes its
// events to pub; the suite passes a recording publisher so that it can see what is announced.
func Run(t *testing.T, newService func(t *testing.T, pub events.Publisher) shipping.Service) {
	t.Run("ShipCreatesShipmentAndPublishes", func(t *testing.T) {
		ctx := context.Background()
		pub := &recorder{}
		svc := newService(t, pub)
		paid := paidOrder("ord-1", "user-1")
		before := time.Now().UTC().Add(-time.Minute)

		s, err := svc.Ship(ctx, paid)
		if err != nil {
			t.Fatalf("Ship: %v", err)
		}
		if s.OrderID != paid.OrderID || s.UserID != paid.UserID || s.Address != paid.Address || s.WeightGrams != paid.WeightGrams {
			t.Fatalf("Ship = %+v, want the order, user, address and weight of %+v", s, paid)
		}
		if s.TrackingID == "" {
			t.Fatal("Ship: empty tracking ID")
		}
		if s.CreatedAt.Before(before) || s.CreatedAt.Location() != time.UTC {
			t.Fatalf("created_at = %v, want a recent time in UTC", s.CreatedAt)
		}

		got := pub.published()
		if len(got) != 1 {
			t.Fatalf("published %d events, want 1: %+v", len(got), got)
		}
		wantShipped(t, got[0], s)
	})

	t.Run("ShipAgainKeepsTrackingID", func(t *testing.T) {
		ctx := context.Background()
		pub := &recorder{}
		svc := newService(t, pub)
		paid := paidOrder("ord-2", "user-2")

		first, err := svc.Ship(ctx, paid)
		if err != nil {
			t.Fatalf("Ship: %v", err)
		}
		again, err := svc.Ship(ctx, paid)
		if err != nil {
			t.Fatalf("Ship again: %v", err)
		}
		if !sameShipment(first, again) {
			t.Fatalf("Ship again = %+v, want the first shipment %+v", again, first)
		}
		// Re-announcing is allowed (it heals a crash before the first publish), but only as
		// the same fact: same subject, ID and payload, which the broker de-duplicates.
		for _, m := range pub.published() {
			wantShipped(t, m, first)
		}
	})

	t.Run("ConcurrentShipsMakeOneShipment", func(t *testing.T) {
		ctx := context.Background()
		pub := &recorder{}
		svc := newService(t, pub)
		paid := paidOrder("ord-3", "user-3")

		const n = 10
		results := make([]shipping.Shipment, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i], errs[i] = svc.Ship(ctx, paid) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Ship %d: %v", i, errs[i])
			}
			if results[i].TrackingID != results[0].TrackingID {
				t.Fatalf("tracking IDs differ: %q and %q", results[i].TrackingID, results[0].TrackingID)
			}
		}
		stored, err := svc.Get(ctx, paid.OrderID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if stored.TrackingID != results[0].TrackingID {
			t.Fatalf("stored tracking ID %q, want %q", stored.TrackingID, results[0].TrackingID)
		}
		for _, m := range pub.published() {
			wantShipped(t, m, stored)
		}
	})

	t.Run("PublishFailureIsRetriedWithSameFact", func(t *testing.T) {
		// A crash (here: a broker error) between storing the shipment and announcing it: the
		// retry must still announce, with the first tracking ID.
		ctx := context.Background()
		pub := &recorder{}
		svc := newService(t, pub)
		paid := paidOrder("ord-4", "user-4")

		pub.setFailing(true)
		if _, err := svc.Ship(ctx, paid); err == nil {
			t.Fatal("Ship with a failing publisher: got nil error")
		}
		stored, err := svc.Get(ctx, paid.OrderID)
		if err != nil {
			t.Fatalf("Get after failed publish: %v (the shipment should be stored)", err)
		}
		pub.setFailing(false)
		s, err := svc.Ship(ctx, paid)
		if err != nil {
			t.Fatalf("Ship retry: %v", err)
		}
		if !sameShipment(s, stored) {
			t.Fatalf("Ship retry = %+v, want the stored shipment %+v", s, stored)
		}
		got := pub.published()
		if len(got) != 1 {
			t.Fatalf("published %d events, want 1: %+v", len(got), got)
		}
		wantShipped(t, got[0], stored)
	})

	t.Run("Get", func(t *testing.T) {
		ctx := context.Background()
		svc := newService(t, &recorder{})
		shipped := map[string]shipping.Shipment{}
		for _, id := range []string{"ord-a", "ord.b", "ord c/ü"} { // odd IDs: keys are escaped by the store
			s, err := svc.Ship(ctx, paidOrder(id, "user-"+id))
			if err != nil {
				t.Fatalf("Ship %s: %v", id, err)
			}
			shipped[id] = s
		}
		for id, want := range shipped {
			got, err := svc.Get(ctx, id)
			if err != nil {
				t.Fatalf("Get %s: %v", id, err)
			}
			if !sameShipment(got, want) {
				t.Fatalf("Get %s = %+v, want %+v", id, got, want)
			}
		}
	})

	t.Run("GetUnknownIsNotFound", func(t *testing.T) {
		svc := newService(t, &recorder{})
		if _, err := svc.Get(context.Background(), "ord-unknown"); !errors.Is(err, shipping.ErrNotFound) {
			t.Fatalf("Get unknown: got %v, want ErrNotFound", err)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		ctx := context.Background()
		pub := &recorder{}
		svc := newService(t, pub)
		for _, tc := range []struct {
			name  string
			paid  events.OrderPaid
			field string
		}{
			{"no order", paidOrder("", "user-1"), "order_id"},
			{"no user", paidOrder("ord-v", ""), "user_id"},
		} {
			_, err := svc.Ship(ctx, tc.paid)
			if !errors.Is(err, validation.ErrInvalid) || validation.FieldOf(err) != tc.field {
				t.Errorf("%s: got %v (field %q), want a validation error on %q", tc.name, err, validation.FieldOf(err), tc.field)
			}
		}
		if _, err := svc.Get(ctx, "ord-v"); !errors.Is(err, shipping.ErrNotFound) {
			t.Errorf("invalid Ship stored something: Get = %v, want ErrNotFound", err)
		}
		for _, id := range []string{"", "o\x00", strings.Repeat("o", 4100)} {
			if _, err := svc.Get(ctx, id); !errors.Is(err, shipping.ErrNotFound) {
				t.Errorf("Get of an order ID that is no ID (%d bytes): got %v, want ErrNotFound", len(id), err)
			}
		}
		if got := pub.published(); len(got) != 0 {
			t.Errorf("invalid Ship published %+v", got)
		}
	})
}

func paidOrder(orderID, userID string) events.OrderPaid {
	return events.OrderPaid{
		OrderID: orderID,
		UserID:  userID,
		Email:   "someone@example.com",
		Address: events.Address{Street: "1 Main St", City: "Springfield", PostalCode: "12345", Country: "US"},
		Items:   []events.Item{{ProductID: "sku-0001", Quantity: 2}},
		// 1234 g: the cost depends on it, the shipment only carries it.
		WeightGrams: 1234,
		Total:       money.Cents(4999),
		PaidAt:      time.Now().UTC(),
	}
}

// sameShipment compares shipments field by field, times as instants (a transport may change
// their representation but not the instant).
func sameShipment(a, b shipping.Shipment) bool {
	ca, cb := a.CreatedAt, b.CreatedAt
	a.CreatedAt, b.CreatedAt = time.Time{}, time.Time{}
	return a == b && ca.Equal(cb)
}

// wantShipped checks that m announces s as the order-shipped fact of its order.
func wantShipped(t *testing.T, m published, s shipping.Shipment) {
	t.Helper()
	if m.subject != events.OrderShippedSubject || m.id != "order-shipped."+s.OrderID {
		t.Fatalf("published %s %s, want %s order-shipped.%s", m.subject, m.id, events.OrderShippedSubject, s.OrderID)
	}
	var got events.OrderShipped
	if err := json.Unmarshal(m.data, &got); err != nil {
		t.Fatalf("decode published payload: %v", err)
	}
	if got.OrderID != s.OrderID || got.UserID != s.UserID || got.TrackingID != s.TrackingID || got.ShippedAt.IsZero() {
		t.Fatalf("published %+v, want order %s, user %s, tracking %s and a time", got, s.OrderID, s.UserID, s.TrackingID)
	}
}

// published is one event handed to the recorder, its payload as JSON (as any broker sees it).
type published struct {
	subject, id string
	data        []byte
}

// recorder is an events.Publisher that keeps what it is given and can be told to fail.
type recorder struct {
	mu     sync.Mutex
	events []published
	fail   bool
}

func (r *recorder) Publish(ctx context.Context, subject, id string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s: %w", subject, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("shippingtest: publisher told to fail")
	}
	r.events = append(r.events, published{subject: subject, id: id, data: data})
	return nil
}

func (r *recorder) setFailing(fail bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = fail
}

func (r *recorder) published() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]published(nil), r.events...)
}
