package notify_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/notify"
	"github.com/mitosis-dev/mitosis/shop/notify/notifytest"
)

func TestConformanceMemory(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notify.Service {
		return notify.New(kv.NewMemory(), time.Now)
	})
}

func TestConformanceJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	notifytest.Run(t, func(t *testing.T) notify.Service {
		return notify.New(srv.Bucket(t, "notifications"), time.Now)
	})
}

func TestIDsAndTimesComeFromTheClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	clock := at
	svc := notify.New(kv.NewMemory(), func() time.Time { return clock })
	n, err := svc.Notify(context.Background(), "user-1", notify.KindOrderPaid, "ord-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.ID, "ntf-") || !n.CreatedAt.Equal(at) || n.CreatedAt.Location() != time.UTC {
		t.Fatalf("Notify = %+v, want an ntf- ID created at %v in UTC", n, at)
	}
	// A clock stepping back does not put a newer notification before an older one.
	clock = at.Add(-time.Hour)
	n2, err := svc.Notify(context.Background(), "user-1", notify.KindOrderShipped, "ord-1")
	if err != nil {
		t.Fatal(err)
	}
	if n2.CreatedAt.Before(n.CreatedAt) {
		t.Fatalf("created_at went back: %v after %v", n2.CreatedAt, n.CreatedAt)
	}
}

func TestHandlerErrors(t *testing.T) {
	ctx := context.Background()
	h := notify.Handler(notify.New(kv.NewMemory(), time.Now))
	for _, tc := range []struct {
		name, subject, data string
		wantPoison          bool
	}{
		{"paid", events.OrderPaidSubject, `{"order_id":"ord-1","user_id":"user-1"}`, false},
		{"shipped", events.OrderShippedSubject, `{"order_id":"ord-1","user_id":"user-1","tracking_id":"trk-1"}`, false},
		{"unknown subject", "shop.events.order-refunded", `{"order_id":"ord-1","user_id":"user-1"}`, true},
		{"undecodable paid", events.OrderPaidSubject, `{not json`, true},
		{"undecodable shipped", events.OrderShippedSubject, `[]`, true},
		{"no user", events.OrderPaidSubject, `{"order_id":"ord-2"}`, true},
		{"no order", events.OrderShippedSubject, `{"user_id":"user-1"}`, true},
	} {
		err := h(ctx, events.Message{Subject: tc.subject, ID: "m-" + tc.name, Data: []byte(tc.data), Delivery: 1})
		if (err != nil) != tc.wantPoison || errors.Is(err, events.ErrPoison) != tc.wantPoison {
			t.Errorf("%s: got %v, want poison %v", tc.name, err, tc.wantPoison)
		}
	}
}

func TestHandlerStoreFailureIsRedelivered(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the store fails: a transient error, not poison
	h := notify.Handler(notify.New(kv.NewMemory(), time.Now))
	err := h(ctx, events.Message{Subject: events.OrderPaidSubject, ID: "m", Data: []byte(`{"order_id":"ord-1","user_id":"user-1"}`)})
	if err == nil || errors.Is(err, events.ErrPoison) {
		t.Fatalf("got %v, want a non-poison error", err)
	}
}

// bus is what both event buses offer, including raw publishes for poison.
type bus interface {
	events.Publisher
	events.Subscriber
	PublishRaw(ctx context.Context, subject, id string, data []byte) error
}

func TestHandlerOnMemoryBus(t *testing.T) {
	testHandlerOnBus(t, kv.NewMemory(), events.NewMemory(slog.New(slog.DiscardHandler)))
}

func TestHandlerOnJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	testHandlerOnBus(t, srv.Bucket(t, "notifications"), srv.Bus(t))
}

// testHandlerOnBus delivers each fact of an order twice under two IDs (as after a crash of its
// publisher, outside the broker's de-duplication) with poison in between, and checks that
// exactly one notification per kind results and the poison did not stop the consumer.
func testHandlerOnBus(t *testing.T, notifications kv.Bucket, b bus) {
	ctx := context.Background()
	svc := notify.New(notifications, time.Now)
	sub, err := b.Subscribe(ctx, "notify", []string{events.OrderPaidSubject, events.OrderShippedSubject}, notify.Handler(svc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)

	publish := func(subject, id string, payload any) {
		t.Helper()
		if err := b.Publish(ctx, subject, id, payload); err != nil {
			t.Fatal(err)
		}
	}
	paid := events.OrderPaid{OrderID: "ord-1", UserID: "user-1", PaidAt: time.Now().UTC()}
	shipped := events.OrderShipped{OrderID: "ord-1", UserID: "user-1", TrackingID: "trk-1", ShippedAt: time.Now().UTC()}
	publish(events.OrderPaidSubject, "order-paid.ord-1", paid)
	if err := b.PublishRaw(ctx, events.OrderPaidSubject, "poison-1", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	publish(events.OrderShippedSubject, "order-shipped.ord-1", shipped)
	publish(events.OrderPaidSubject, "order-paid.ord-1.again", paid)
	if err := b.PublishRaw(ctx, events.OrderShippedSubject, "poison-2", []byte(`{"order_id":"ord-x"}`)); err != nil {
		t.Fatal(err)
	}
	publish(events.OrderShippedSubject, "order-shipped.ord-1.again", shipped)
	// Published last: once its notification exists, everything before it was handled.
	publish(events.OrderPaidSubject, "order-paid.ord-2", events.OrderPaid{OrderID: "ord-2", UserID: "user-1"})

	var list []notify.Notification
	deadline := time.Now().Add(15 * time.Second)
	for {
		list, err = notifytest.ListAll(ctx, svc, "user-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 && list[len(list)-1].OrderID == "ord-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification of ord-2 not seen within 15s; have %+v", list)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []struct{ kind, order string }{
		{notify.KindOrderPaid, "ord-1"},
		{notify.KindOrderShipped, "ord-1"},
		{notify.KindOrderPaid, "ord-2"},
	}
	if len(list) != len(want) {
		t.Fatalf("notifications = %+v, want %v", list, want)
	}
	for i, w := range want {
		if list[i].Kind != w.kind || list[i].OrderID != w.order {
			t.Fatalf("notifications = %+v, want %v", list, want)
		}
	}
}
