package natsjs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/traced/tracedtest"
)

// testDeliveries is how many deliveries a failing message gets in these tests, 20 ms apart.
const testDeliveries = 3

// openTestBus opens a bus that gives up after testDeliveries and carries W3C trace context.
func openTestBus(t *testing.T, srv *natsjstest.Server) (*natsjs.Bus, *tracedtest.Recorder) {
	t.Helper()
	rec := tracedtest.New()
	bus, err := natsjs.OpenBus(t.Context(), srv.JetStream(), natsjs.StoreConfig{}, nil, slog.New(slog.DiscardHandler),
		natsjs.WithTracerProvider(rec), natsjs.WithPropagator(propagation.TraceContext{}),
		natsjs.WithRedelivery(testDeliveries, func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	return bus, rec
}

// recorder is a handler that fails while broken, and otherwise records each message it
// handles by its ID.
type recorder struct {
	mu      sync.Mutex
	broken  bool
	calls   int                       // every call, failed or not
	handled map[string]events.Message // by ID, the last handling
	traces  map[string]trace.TraceID  // by ID, the trace the last handling ran in
	times   map[string]int            // by ID, how many successful handlings
	decode  bool                      // decode the payload as OrderPaid (poison if it does not)
}

func newRecorder(broken, decode bool) *recorder {
	return &recorder{broken: broken, decode: decode, handled: map[string]events.Message{}, traces: map[string]trace.TraceID{}, times: map[string]int{}}
}

func (r *recorder) handle(ctx context.Context, m events.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.decode {
		if _, err := events.Decode[events.OrderPaid](m); err != nil {
			return err
		}
	}
	if r.broken {
		return fmt.Errorf("ship %s: store says no", m.ID)
	}
	r.handled[m.ID] = m
	r.traces[m.ID] = trace.SpanContextFromContext(ctx).TraceID()
	r.times[m.ID]++
	return nil
}

func (r *recorder) set(f func(r *recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *recorder) snapshot() (calls int, times map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, maps.Clone(r.times)
}

func subscribe(t *testing.T, bus *natsjs.Bus, consumer string, h events.Handler) {
	t.Helper()
	sub, err := bus.Subscribe(t.Context(), consumer, []string{events.OrderPaidSubject}, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
}

// eventually polls cond every 20 ms until it holds, failing the test after 15 s with what it
// last said.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s; last %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCount waits until the dead letters are want.
func waitCount(t *testing.T, js jetstream.JetStream, want natsjs.DeadLetterCount) {
	t.Helper()
	eventually(t, fmt.Sprintf("dead letters %+v", want), func() (bool, string) {
		c, err := natsjs.CountDeadLetters(t.Context(), js)
		if err != nil {
			return false, err.Error()
		}
		return c.Total == want.Total && maps.Equal(c.ByConsumer, want.ByConsumer), fmt.Sprintf("%+v", c)
	})
}

// settled waits until consumer has nothing pending: every message delivered, acknowledged or
// terminated, none waiting for a redelivery. It reads the server's own account, so that "the
// message is not delivered again" is a fact, not a wait that happened to be long enough.
func settled(t *testing.T, js jetstream.JetStream, consumer string) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	eventually(t, "consumer "+consumer+" settled", func() (bool, string) {
		c, err := js.Consumer(t.Context(), natsjs.StreamName, consumer)
		if err != nil {
			return false, err.Error()
		}
		info, err = c.Info(t.Context())
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0,
			fmt.Sprintf("pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
	})
	return info
}

// A handler that always fails: after testDeliveries the message is in the dead-letter stream
// with what it takes to diagnose and replay it, the count says 1, and the consumer is done
// with it. Once the handler is fixed, a replay delivers it to that consumer (and no other),
// as the event it was, within the duplicate window that would drop a re-publish under its
// own ID; the count goes back to 0; a second replay does nothing.
func TestExhaustedMessageIsDeadLetteredThenReplayed(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	bus, rec := openTestBus(t, srv)
	shipping, notify := newRecorder(true, true), newRecorder(false, true)
	subscribe(t, bus, "shipping", shipping.handle)
	subscribe(t, bus, "notify", notify.handle)

	ctx, request := rec.Tracer("test").Start(t.Context(), "checkout")
	paid := events.OrderPaid{OrderID: "o-1", UserID: "ada"}
	if err := bus.Publish(ctx, events.OrderPaidSubject, "order-paid.o-1", paid); err != nil {
		t.Fatal(err)
	}
	request.End()

	waitCount(t, js, natsjs.DeadLetterCount{Total: 1, ByConsumer: map[string]int{"shipping": 1}})
	settled(t, js, "shipping")
	if calls, _ := shipping.snapshot(); calls != testDeliveries {
		t.Errorf("the failing handler ran %d times, want %d", calls, testDeliveries)
	}
	dls, err := natsjs.DeadLetters(t.Context(), js, "", 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v (%v), want one", dls, err)
	}
	dl := dls[0]
	want, _ := events.Decode[events.OrderPaid](events.Message{Data: dl.Data})
	if dl.Consumer != "shipping" || dl.Subject != events.OrderPaidSubject || dl.ID != "order-paid.o-1" ||
		dl.Reason != natsjs.ReasonMaxDeliveries || dl.Deliveries != testDeliveries || dl.StreamSequence != 1 ||
		!strings.Contains(dl.Error, "store says no") || want.OrderID != "o-1" {
		t.Errorf("dead letter = %+v", dl)
	}
	if dl.Published.IsZero() || dl.DeadAt.Before(dl.Published) || time.Since(dl.DeadAt) > time.Minute {
		t.Errorf("dead letter published %s, dead at %s", dl.Published, dl.DeadAt)
	}
	if tp := dl.Header["traceparent"]; !strings.Contains(tp, request.SpanContext().TraceID().String()) {
		t.Errorf("dead letter's traceparent %q is not the checkout's trace %s", tp, request.SpanContext().TraceID())
	}
	if _, ok := dl.Header[jetstream.MsgIDHeader]; ok {
		t.Errorf("dead letter headers %v keep JetStream's own", dl.Header)
	}

	// Within the duplicate window, the event's own ID is still taken: a replay under it would
	// be dropped.
	dup := nats.NewMsg(events.OrderPaidSubject)
	dup.Data = dl.Data
	if ack, err := js.PublishMsg(t.Context(), dup, jetstream.WithMsgID(dl.ID)); err != nil || !ack.Duplicate {
		t.Fatalf("re-publish under the original ID: %+v, %v; want a duplicate", ack, err)
	}

	shipping.set(func(r *recorder) { r.broken = false })
	replayed, err := natsjs.Replay(t.Context(), js, "shipping")
	if err != nil || !maps.Equal(replayed, map[string]int{"shipping": 1}) {
		t.Fatalf("replay = %v, %v; want shipping: 1", replayed, err)
	}
	waitCount(t, js, natsjs.DeadLetterCount{})
	eventually(t, "replayed event handled", func() (bool, string) {
		_, times := shipping.snapshot()
		return times["order-paid.o-1"] == 1, fmt.Sprint(times)
	})
	shipping.mu.Lock()
	got, gotTrace := shipping.handled["order-paid.o-1"], shipping.traces["order-paid.o-1"]
	shipping.mu.Unlock()
	if got.Subject != events.OrderPaidSubject || got.Delivery != 1 || !bytes.Equal(got.Data, dl.Data) ||
		gotTrace != request.SpanContext().TraceID() {
		t.Errorf("replayed message as handled = %+v in trace %s, want the checkout's %s", got, gotTrace, request.SpanContext().TraceID())
	}

	// Twice: nothing left to replay, nothing handled again.
	if replayed, err := natsjs.Replay(t.Context(), js, ""); err != nil || len(replayed) != 0 {
		t.Fatalf("second replay = %v, %v; want nothing", replayed, err)
	}
	settled(t, js, "shipping")
	if _, times := shipping.snapshot(); times["order-paid.o-1"] != 1 {
		t.Errorf("handled %v after two replays, want once", times)
	}
	// The consumer that handled the event the first time never saw the replay.
	if info := settled(t, js, "notify"); info.Delivered.Consumer != 1 {
		t.Errorf("notify got %d deliveries, want the original only", info.Delivered.Consumer)
	}
	if _, times := notify.snapshot(); times["order-paid.o-1"] != 1 {
		t.Errorf("notify handled %v, want once", times)
	}
}

// A poison message is dead-lettered on its first delivery, without waiting for the others;
// replayed once the handler is fixed (here: it learns to read the payload), it is handled.
func TestPoisonIsDeadLetteredAtOnceThenReplayed(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	bus, _ := openTestBus(t, srv)
	notify := newRecorder(false, true)
	subscribe(t, bus, "notify", notify.handle)
	if err := bus.PublishRaw(t.Context(), events.OrderPaidSubject, "order-paid.bad", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	waitCount(t, js, natsjs.DeadLetterCount{Total: 1, ByConsumer: map[string]int{"notify": 1}})
	settled(t, js, "notify")
	dls, err := natsjs.DeadLetters(t.Context(), js, "notify", 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v (%v), want one", dls, err)
	}
	if dl := dls[0]; dl.Reason != natsjs.ReasonPoison || dl.Deliveries != 1 || string(dl.Data) != "{not json" ||
		!strings.Contains(dl.Error, events.ErrPoison.Error()) || dl.ID != "order-paid.bad" {
		t.Errorf("dead letter = %+v", dl)
	}
	if calls, _ := notify.snapshot(); calls != 1 {
		t.Errorf("poison handled %d times, want once", calls)
	}

	notify.set(func(r *recorder) { r.decode = false })
	if replayed, err := natsjs.Replay(t.Context(), js, ""); err != nil || replayed["notify"] != 1 {
		t.Fatalf("replay = %v, %v", replayed, err)
	}
	eventually(t, "replayed poison handled", func() (bool, string) {
		_, times := notify.snapshot()
		return times["order-paid.bad"] == 1, fmt.Sprint(times)
	})
	waitCount(t, js, natsjs.DeadLetterCount{})
}

// Replays running side by side (an admin's twice, or two admins) deliver every dead letter
// once: both may publish one, under the same replay ID, and the stream keeps the first.
func TestConcurrentReplaysDeliverEachDeadLetterOnce(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	bus, _ := openTestBus(t, srv)
	shipping := newRecorder(true, false)
	subscribe(t, bus, "shipping", shipping.handle)
	const n = 30
	for i := range n {
		if err := bus.Publish(t.Context(), events.OrderPaidSubject, fmt.Sprintf("order-paid.o-%d", i), events.OrderPaid{}); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(t, js, natsjs.DeadLetterCount{Total: n, ByConsumer: map[string]int{"shipping": n}})
	shipping.set(func(r *recorder) { r.broken = false })

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { _, errs[i] = natsjs.Replay(t.Context(), js, "shipping") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	waitCount(t, js, natsjs.DeadLetterCount{})
	eventually(t, "every replay handled", func() (bool, string) {
		_, times := shipping.snapshot()
		return len(times) == n, fmt.Sprintf("%d of %d", len(times), n)
	})
	settled(t, js, "shipping")
	_, times := shipping.snapshot()
	for id, k := range times {
		if k != 1 {
			t.Errorf("%s handled %d times", id, k)
		}
	}
}

// When the dead letter cannot be written (here the dead-letter stream is full), the message
// is not terminated: it keeps coming back, and lands in the dead letters once they take it.
func TestUnwritableDeadLetterKeepsTheMessage(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	bus, _ := openTestBus(t, srv)
	dlq, err := js.Stream(t.Context(), natsjs.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dlq.CachedInfo().Config
	full := cfg
	full.MaxMsgs = 1 // and DiscardNew: once it holds one, it refuses the next
	if _, err := js.UpdateStream(t.Context(), full); err != nil {
		t.Fatal(err)
	}
	// Fill it.
	filler := nats.NewMsg("shop.dead-letters.filler")
	if _, err := js.PublishMsg(t.Context(), filler); err != nil {
		t.Fatal(err)
	}

	shipping := newRecorder(true, false)
	subscribe(t, bus, "shipping", shipping.handle)
	if err := bus.Publish(t.Context(), events.OrderPaidSubject, "order-paid.o-1", events.OrderPaid{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deliveries past the last", func() (bool, string) {
		calls, _ := shipping.snapshot()
		return calls >= 2*testDeliveries, fmt.Sprintf("%d calls", calls)
	})
	if c, err := natsjs.CountDeadLetters(t.Context(), js); err != nil || c.ByConsumer["shipping"] != 0 {
		t.Fatalf("count %+v, %v: the full stream took a dead letter", c, err)
	}

	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	waitCount(t, js, natsjs.DeadLetterCount{Total: 2, ByConsumer: map[string]int{"filler": 1, "shipping": 1}})
	settled(t, js, "shipping")
}

// A replay for a consumer the event stream does not have would reach nobody: its dead
// letters stay, and the error says why; the others are replayed all the same.
func TestReplayLeavesDeadLettersOfAnUnknownConsumer(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	openTestBus(t, srv)
	orphan := nats.NewMsg("shop.dead-letters.gone")
	orphan.Header.Set("Shop-Dead-Subject", events.OrderPaidSubject)
	if _, err := js.PublishMsg(t.Context(), orphan); err != nil {
		t.Fatal(err)
	}
	replayed, err := natsjs.Replay(t.Context(), js, "")
	if err == nil || !strings.Contains(err.Error(), "gone") || len(replayed) != 0 {
		t.Fatalf("replay = %v, %v; want nothing replayed and an error naming the consumer", replayed, err)
	}
	waitCount(t, js, natsjs.DeadLetterCount{Total: 1, ByConsumer: map[string]int{"gone": 1}})
	if _, err := natsjs.Replay(t.Context(), js, "no.such"); !errors.Is(err, natsjs.ErrBadConsumer) {
		t.Errorf("replay of a bad name: %v, want ErrBadConsumer", err)
	}
}

// A consumer made by a version without dead letters (the server gave up after 20 deliveries
// on its own, and it read no replay subject) is brought up to date by Subscribe, so that a
// stack's data from before keeps working.
func TestSubscribeUpdatesAConsumerFromBeforeDeadLetters(t *testing.T) {
	srv := natsjstest.New(t)
	js := srv.JetStream()
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: natsjs.StreamName, Subjects: []string{"shop.events.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(t.Context(), natsjs.StreamName, jetstream.ConsumerConfig{Durable: "shipping",
		FilterSubjects: []string{events.OrderPaidSubject}, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 20}); err != nil {
		t.Fatal(err)
	}
	bus, _ := openTestBus(t, srv)
	shipping := newRecorder(true, false)
	subscribe(t, bus, "shipping", shipping.handle)
	c, err := js.Consumer(t.Context(), natsjs.StreamName, "shipping")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; cfg.MaxDeliver != -1 || len(cfg.FilterSubjects) != 2 {
		t.Fatalf("consumer after Subscribe: max deliver %d, filters %v", cfg.MaxDeliver, cfg.FilterSubjects)
	}
	if err := bus.Publish(t.Context(), events.OrderPaidSubject, "order-paid.o-1", events.OrderPaid{}); err != nil {
		t.Fatal(err)
	}
	waitCount(t, js, natsjs.DeadLetterCount{Total: 1, ByConsumer: map[string]int{"shipping": 1}})
	shipping.set(func(r *recorder) { r.broken = false })
	if _, err := natsjs.Replay(t.Context(), js, "shipping"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replay handled", func() (bool, string) {
		_, times := shipping.snapshot()
		return times["order-paid.o-1"] == 1, fmt.Sprint(times)
	})
}
