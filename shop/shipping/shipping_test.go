package shipping_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/shipping/shippingtest"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct {
		grams int64
		want  int64
	}{
		{0, 500},
		{1, 501},
		{10, 501},
		{11, 502},
		{1234, 624},
	} {
		if got := shipping.Quote(tc.grams); got != money.Cents(tc.want) {
			t.Errorf("Quote(%d g) = %v, want %v", tc.grams, got, money.Cents(tc.want))
		}
	}
}

func TestConformanceMemory(t *testing.T) {
	shippingtest.Run(t, func(t *testing.T, pub events.Publisher) shipping.Service {
		return shipping.New(kv.NewMemory(), pub, time.Now)
	})
}

func TestConformanceJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	shippingtest.Run(t, func(t *testing.T, pub events.Publisher) shipping.Service {
		return shipping.New(srv.Bucket(t, "shipments"), pub, time.Now)
	})
}

func TestTrackingIDIsStampedWithTheClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	svc := shipping.New(kv.NewMemory(), events.NewMemory(slog.New(slog.DiscardHandler)), func() time.Time { return at })
	s, err := svc.Ship(context.Background(), events.OrderPaid{OrderID: "ord-1", UserID: "user-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.TrackingID, "trk-") {
		t.Errorf("tracking ID %q, want prefix trk-", s.TrackingID)
	}
	if !s.CreatedAt.Equal(at) || s.CreatedAt.Location() != time.UTC {
		t.Errorf("created_at = %v, want %v in UTC", s.CreatedAt, at)
	}
}

// failingPublisher is a broker that is down.
type failingPublisher struct{}

func (failingPublisher) Publish(context.Context, string, string, any) error {
	return errors.New("broker down")
}

func TestHandleOrderPaidErrors(t *testing.T) {
	ctx := context.Background()
	memBus := events.NewMemory(slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		name       string
		pub        events.Publisher
		data       string
		wantErr    bool
		wantPoison bool
	}{
		{"ok", memBus, `{"order_id":"ord-1","user_id":"user-1"}`, false, false},
		{"undecodable", memBus, `{not json`, true, true},
		{"wrong type", memBus, `{"order_id":42}`, true, true},
		{"no order ID", memBus, `{"user_id":"user-1"}`, true, true},
		{"no user ID", memBus, `{"order_id":"ord-2"}`, true, true},
		{"broker down", failingPublisher{}, `{"order_id":"ord-3","user_id":"user-1"}`, true, false},
	} {
		h := shipping.HandleOrderPaid(shipping.New(kv.NewMemory(), tc.pub, time.Now))
		err := h(ctx, events.Message{Subject: events.OrderPaidSubject, ID: "m-" + tc.name, Data: []byte(tc.data), Delivery: 1})
		if (err != nil) != tc.wantErr || errors.Is(err, events.ErrPoison) != tc.wantPoison {
			t.Errorf("%s: got %v, want error %v, poison %v", tc.name, err, tc.wantErr, tc.wantPoison)
		}
	}
}

// bus is what both event buses offer, including raw publishes for poison.
type bus interface {
	events.Publisher
	events.Subscriber
	PublishRaw(ctx context.Context, subject, id string, data []byte) error
}

func TestHandleOrderPaidOnMemoryBus(t *testing.T) {
	testHandleOrderPaidOnBus(t, kv.NewMemory(), events.NewMemory(slog.New(slog.DiscardHandler)))
}

func TestHandleOrderPaidOnJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	testHandleOrderPaidOnBus(t, srv.Bucket(t, "shipments"), srv.Bus(t))
}

// testHandleOrderPaidOnBus delivers one order-paid fact twice under two IDs (as after a crash
// of its publisher, outside the broker's de-duplication), then poison, then another order, and
// checks that the first order has exactly one shipment announced once and the poison did not
// stop the consumer.
func testHandleOrderPaidOnBus(t *testing.T, shipments kv.Bucket, b bus) {
	ctx := context.Background()
	svc := shipping.New(shipments, b, time.Now)

	var mu sync.Mutex
	shipped := map[string][]events.OrderShipped{} // by order ID, every delivery
	watch, err := b.Subscribe(ctx, "test-order-shipped", []string{events.OrderShippedSubject}, func(_ context.Context, m events.Message) error {
		e, err := events.Decode[events.OrderShipped](m)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		shipped[e.OrderID] = append(shipped[e.OrderID], e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watch.Stop)
	sub, err := b.Subscribe(ctx, "shipping", []string{events.OrderPaidSubject}, shipping.HandleOrderPaid(svc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)

	paid := events.OrderPaid{OrderID: "ord-1", UserID: "user-1", WeightGrams: 100, PaidAt: time.Now().UTC()}
	for _, id := range []string{"order-paid.ord-1", "order-paid.ord-1.again"} {
		if err := b.Publish(ctx, events.OrderPaidSubject, id, paid); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PublishRaw(ctx, events.OrderPaidSubject, "poison-1", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, events.OrderPaidSubject, "invalid-1", events.OrderPaid{OrderID: "ord-invalid"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, events.OrderPaidSubject, "order-paid.ord-2", events.OrderPaid{OrderID: "ord-2", UserID: "user-2"}); err != nil {
		t.Fatal(err)
	}

	// ord-2 was published last, so once it is announced everything before it was handled.
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		done := len(shipped["ord-1"]) > 0 && len(shipped["ord-2"]) > 0
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("order-shipped of ord-1 and ord-2 not seen within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	s, err := svc.Get(ctx, "ord-1")
	if err != nil {
		t.Fatalf("Get ord-1: %v", err)
	}
	mu.Lock()
	got := slices.Clone(shipped["ord-1"])
	mu.Unlock()
	if len(got) != 1 || got[0].TrackingID != s.TrackingID || got[0].UserID != "user-1" {
		t.Fatalf("order-shipped events of ord-1 = %+v, want one with tracking ID %s", got, s.TrackingID)
	}
	keys, err := shipments.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"ord-1", "ord-2"}) {
		t.Fatalf("shipments = %v, want one each for ord-1 and ord-2", keys)
	}
}
