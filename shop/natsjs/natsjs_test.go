package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

func TestBucketConformance(t *testing.T) {
	srv := natsjstest.New(t)
	kvtest.Run(t, func(t *testing.T) kv.Bucket { return srv.Bucket(t, "conformance") })
}

func TestBusDeduplicatesRedeliversAndSetsPoisonAside(t *testing.T) {
	srv := natsjstest.New(t)
	bus := srv.Bus(t)
	ctx := context.Background()

	var mu sync.Mutex
	got := map[string]int{}
	failOnce := true
	sub, err := bus.Subscribe(ctx, "test", []string{events.OrderPaidSubject}, func(ctx context.Context, m events.Message) error {
		p, err := events.Decode[events.OrderPaid](m)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if p.OrderID == "flaky" && failOnce {
			failOnce = false
			return errors.New("transient")
		}
		got[p.OrderID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()

	pub := func(id, order string) {
		t.Helper()
		if err := bus.Publish(ctx, events.OrderPaidSubject, id, events.OrderPaid{OrderID: order}); err != nil {
			t.Fatal(err)
		}
	}
	pub("a", "o1")
	pub("a", "o1") // same ID: dropped by the stream
	pub("b", "flaky")
	if err := bus.PublishRaw(ctx, events.OrderPaidSubject, "poison", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	pub("c", "o2")

	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		done := got["o1"] == 1 && got["flaky"] == 1 && got["o2"] == 1
		snapshot := map[string]int{}
		for k, v := range got {
			snapshot[k] = v
		}
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries = %v, want o1, flaky and o2 once each", snapshot)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublishReportsWhatHappenedEvenIfItsCallerGivesUp: a publish whose caller's context ends
// midway either fails and is not in the stream, or succeeds and is (as a bucket's writes in
// kvtest): the stream then holds exactly the messages reported published.
func TestPublishReportsWhatHappenedEvenIfItsCallerGivesUp(t *testing.T) {
	srv := natsjstest.New(t)
	bus := srv.Bus(t, shippingOnly...) // a consumer that reads nothing: the stream keeps every event
	stream, err := srv.JetStream().Stream(t.Context(), natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	for i := range 300 {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Duration(i%60)*5*time.Microsecond, cancel)
		err := bus.Publish(ctx, events.OrderPaidSubject, fmt.Sprintf("m%d", i), events.OrderPaid{OrderID: "o"})
		cancel()
		if err == nil {
			published++
		}
		time.Sleep(200 * time.Microsecond) // a message reported as failed may land a moment later
		info, err := stream.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := int(info.State.Msgs); got != published {
			t.Fatalf("after publish %d: the stream holds %d messages, %d were reported published", i, got, published)
		}
	}
}
