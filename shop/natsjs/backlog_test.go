package natsjs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// A consumer's backlog is what it has not processed: the events published while it does not
// handle them, dated by the oldest; a consumer of other subjects has none; once handled, the
// backlog is gone.
func TestBacklogsSayWhatEachConsumerHasNotProcessed(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	ctx := t.Context()
	// Redelivered as long as the test runs, never dead-lettered: a failing event stays waiting.
	bus, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, nil, slog.New(slog.DiscardHandler),
		natsjs.WithRedelivery(1<<20, func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := natsjs.Backlogs(ctx, js); err != nil || len(got) != 0 {
		t.Fatalf("before any consumer: %v, %v", got, err)
	}
	// shipping fails every event for now (it stays unacknowledged, redelivered); notify takes
	// order-shipped only.
	failing := newRecorder(true, false)
	sub, err := bus.Subscribe(ctx, "shipping", []string{events.OrderPaidSubject}, failing.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	other := newRecorder(false, false)
	sub2, err := bus.Subscribe(ctx, "notify", []string{events.OrderShippedSubject}, other.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Stop()
	// A tool's passing reader is no consumer of the shop's.
	s, err := js.Stream(ctx, natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{}); err != nil {
		t.Fatal(err)
	}

	for _, id := range []string{"o-1", "o-2", "o-3"} {
		if err := bus.Publish(ctx, events.OrderPaidSubject, id, events.OrderPaid{OrderID: id}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The server counts an event for its consumers just after it acknowledges the publish.
	waitBacklog(t, js, "shipping", 3)
	got, err := natsjs.Backlogs(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Consumer != "notify" || got[1].Consumer != "shipping" {
		t.Fatalf("backlogs %+v, want notify's and shipping's", got)
	}
	if got[0].Waiting != 0 || !got[0].Oldest.IsZero() {
		t.Errorf("notify, which takes no order-paid: %+v, want nothing waiting", got[0])
	}
	if got[1].Waiting != 3 || !got[1].Oldest.Equal(first.Time) {
		t.Errorf("shipping: %+v, want 3 waiting since %s (the first order-paid)", got[1], first.Time)
	}

	// Once shipping handles them, nothing waits.
	failing.mu.Lock()
	failing.broken = false
	failing.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err = natsjs.Backlogs(ctx, js)
		if err == nil && len(got) == 2 && got[1].Waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after shipping handled them: %+v, %v", got, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the redeliveries, bounded by the deadline
	}
	if !got[1].Oldest.IsZero() {
		t.Errorf("shipping with nothing waiting is dated %s", got[1].Oldest)
	}
}

// Without an event stream there is no backlog, and no error.
func TestBacklogsWithoutAStream(t *testing.T) {
	srv := natsjstest.New(t)
	got, err := natsjs.Backlogs(context.Background(), srv.JetStream())
	if err != nil || got != nil {
		t.Errorf("%v, %v; want nothing", got, err)
	}
}
