package natsjs_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// twoConsumers are shipping and notify as the table has them: both take order-paid.
var twoConsumers = []natsjs.Consumer{
	{Name: "shipping", Subjects: []string{events.OrderPaidSubject}},
	{Name: "notify", Subjects: []string{events.OrderPaidSubject, events.OrderShippedSubject}},
}

// An event published while its consumers' processes are not running waits for them, with no
// age limit that would drop it after a while (the stream once kept events for a day); it
// stays until the last consumer it is for has acknowledged it, and goes then, so the stream
// holds the backlogs and no more. An event that no consumer takes is not kept at all.
func TestEventsWaitForEveryConsumerAndNoLonger(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	ctx := t.Context()
	bus, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, twoConsumers, discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, natsjs.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.Retention != jetstream.InterestPolicy || c.MaxAge != 0 || c.Discard != jetstream.DiscardNew || c.MaxBytes <= 0 {
		t.Fatalf("event stream: retention %v, max age %s, discard %v, max bytes %d; want interest, none, new, a limit",
			c.Retention, c.MaxAge, c.Discard, c.MaxBytes)
	}
	// Both consumers exist before anyone subscribes: OpenBus made them.
	made := map[string]jetstream.ConsumerConfig{}
	for _, k := range twoConsumers {
		c, err := js.Consumer(ctx, natsjs.StreamName, k.Name)
		if err != nil {
			t.Fatalf("consumer %s after OpenBus: %v", k.Name, err)
		}
		made[k.Name] = c.CachedInfo().Config
	}

	for i := range 3 {
		id := fmt.Sprintf("o-%d", i)
		if err := bus.Publish(ctx, events.OrderPaidSubject, "order-paid."+id, events.OrderPaid{OrderID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Publish(ctx, "shop.events.nobody-takes-it", "x", events.OrderPaid{}); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js, natsjs.StreamName); n != 3 {
		t.Fatalf("the stream holds %d events, want the 3 order-paid its consumers have not read", n)
	}

	// shipping processes them; notify, still down, has not: they stay for notify.
	shipping := newRecorder(false, false)
	sub, err := bus.Subscribe(ctx, "shipping", []string{events.OrderPaidSubject}, shipping.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	waitBacklog(t, js, "shipping", 0)
	if n := streamMsgs(t, js, natsjs.StreamName); n != 3 {
		t.Fatalf("after shipping acknowledged them the stream holds %d events, want the 3 notify has not read", n)
	}

	// notify comes back: it gets them, then the stream lets them go.
	notify := newRecorder(false, false)
	sub2, err := bus.Subscribe(ctx, "notify", []string{events.OrderPaidSubject, events.OrderShippedSubject}, notify.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Stop()
	waitStreamMsgs(t, js, 0)
	for _, r := range []*recorder{shipping, notify} {
		if got := r.count(); got != 3 {
			t.Errorf("a consumer handled %d events, want 3", got)
		}
	}
	// Subscribe resumed what OpenBus made, as it was.
	for _, k := range twoConsumers {
		c, err := js.Consumer(ctx, natsjs.StreamName, k.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.CachedInfo().Config; !reflect.DeepEqual(got, made[k.Name]) {
			t.Errorf("consumer %s: Subscribe changed it\n from %+v\n   to %+v", k.Name, made[k.Name], got)
		}
	}
}

// A stream made by an older version (limits retention, events dropped after a day) is
// switched to interest retention when the bus opens, keeping the events a consumer has not
// read yet: here notify, whose process never ran, and which the older version would have
// made with every event still in the stream. What every consumer has read goes.
func TestOpenBusSwitchesAnOldStreamToInterest(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natsjs.StreamName, Subjects: []string{"shop.events.>", "shop.replay.>"},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, MaxAge: 24 * time.Hour, MaxBytes: 1 << 30,
		Discard: jetstream.DiscardNew, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, events.OrderPaidSubject, fmt.Appendf(nil, `{"order_id":"o-%d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	// shipping, as the older version made it, has read and acknowledged them all.
	old, err := js.CreateOrUpdateConsumer(ctx, natsjs.StreamName, jetstream.ConsumerConfig{Durable: "shipping",
		FilterSubjects: []string{events.OrderPaidSubject, "shop.replay.shipping"}, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := old.Fetch(3, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitBacklog(t, js, "shipping", 0)

	bus, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, twoConsumers, discard)
	if err != nil {
		t.Fatal(err)
	}
	checkStream(t, js, natsjs.StreamName, natsjs.StoreConfig{}.Limit(natsjs.StreamName), 1)
	if n := streamMsgs(t, js, natsjs.StreamName); n != 3 {
		t.Fatalf("the switched stream holds %d events, want the 3 notify has not read", n)
	}
	notify := newRecorder(false, false)
	sub, err := bus.Subscribe(ctx, "notify", []string{events.OrderPaidSubject, events.OrderShippedSubject}, notify.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	waitStreamMsgs(t, js, 0)
	if got := notify.count(); got != 3 {
		t.Errorf("notify handled %d events, want the 3 published before the switch", got)
	}
	// Opening again, as every process start does, changes nothing.
	if _, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, twoConsumers, discard); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	checkStream(t, js, natsjs.StreamName, natsjs.StoreConfig{}.Limit(natsjs.StreamName), 1)
}

// StreamUsage says how much of its byte limit the event stream holds, which grows with what
// its consumers have not read.
func TestStreamUsage(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	ctx := t.Context()
	if _, ok, err := natsjs.StreamUsage(ctx, js); ok || err != nil {
		t.Fatalf("without a stream: %v, %v; want nothing", ok, err)
	}
	const limit = 16 << 10
	bus, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{MaxBytes: map[string]int64{natsjs.StreamName: limit}}, shippingOnly, discard)
	if err != nil {
		t.Fatal(err)
	}
	u, ok, err := natsjs.StreamUsage(ctx, js)
	if !ok || err != nil || u.Messages != 0 || u.MaxBytes != limit || u.Full() != 0 {
		t.Fatalf("empty: %+v, %v, %v", u, ok, err)
	}
	for i := 0; u.Full() < 0.5; i++ {
		if err := bus.Publish(ctx, events.OrderPaidSubject, fmt.Sprintf("e%d", i), events.OrderPaid{OrderID: fmt.Sprintf("o-%d", i)}); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if u, _, err = natsjs.StreamUsage(ctx, js); err != nil {
			t.Fatal(err)
		}
		if u.Messages != uint64(i+1) || u.Bytes == 0 {
			t.Fatalf("after %d events: %+v", i+1, u)
		}
	}
	if u.Full() >= 1 || float64(u.Bytes)/limit != u.Full() {
		t.Fatalf("half full: %+v, full %v", u, u.Full())
	}
}

// waitBacklog waits until consumer has n events waiting.
func waitBacklog(t *testing.T, js jetstream.JetStream, consumer string, n uint64) {
	t.Helper()
	var got []natsjs.Backlog
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		got, err = natsjs.Backlogs(t.Context(), js)
		for _, b := range got {
			if b.Consumer == consumer && b.Waiting == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlogs %+v, %v; want %d waiting for %s", got, err, n, consumer)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}

// waitStreamMsgs waits until the event stream holds n messages.
func waitStreamMsgs(t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		got := streamMsgs(t, js, natsjs.StreamName)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event stream holds %d messages, want %d", got, n)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
	}
}

// count is how many times the recorder was called.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// A consumer an operator paused (nats consumer pause) stays paused when processes start
// again, a publisher opening the bus or the consumer's own process subscribing, while the
// rest of its configuration is brought up to date: the server keeps the pause through an
// update that names none (nats-server 2.11 and later), which every start relies on.
func TestARestartKeepsAnOperatorsPause(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	ctx := t.Context()
	if _, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, twoConsumers[:1], discard); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if _, err := js.PauseConsumer(ctx, natsjs.StreamName, "shipping", until); err != nil {
		t.Fatal(err)
	}
	paused := func(when string) jetstream.ConsumerConfig {
		t.Helper()
		c, err := js.Consumer(ctx, natsjs.StreamName, "shipping")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		info := c.CachedInfo()
		if !info.Paused || info.Config.PauseUntil == nil || !info.Config.PauseUntil.Equal(until) {
			t.Fatalf("%s: shipping paused %t until %v, want paused until %v", when, info.Paused, info.Config.PauseUntil, until)
		}
		return info.Config
	}
	paused("after the pause")

	// A publisher starts again, with a consumer more to make.
	bus, err := natsjs.OpenBus(ctx, js, natsjs.StoreConfig{}, twoConsumers, discard)
	if err != nil {
		t.Fatal(err)
	}
	paused("after a publisher opened the bus")
	if _, err := js.Consumer(ctx, natsjs.StreamName, "notify"); err != nil {
		t.Fatalf("notify after the bus opened again: %v", err)
	}

	// shipping's own process starts again, its consumer's configuration grown meanwhile.
	if _, err := js.UpdateConsumer(ctx, natsjs.StreamName, jetstream.ConsumerConfig{Durable: "shipping",
		FilterSubjects: []string{events.OrderPaidSubject, "shop.replay.shipping"}, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Second, MaxDeliver: -1, MaxAckPending: 1, PauseUntil: &until}); err != nil {
		t.Fatal(err)
	}
	sub, err := bus.Subscribe(ctx, "shipping", []string{events.OrderPaidSubject}, newRecorder(false, false).handle)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if c := paused("after shipping subscribed"); c.AckWait == time.Second || c.MaxAckPending == 1 {
		t.Errorf("shipping's Subscribe left its old configuration: ack wait %s, max ack pending %d", c.AckWait, c.MaxAckPending)
	}
}
