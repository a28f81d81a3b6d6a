package natsjs_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/traced/tracedtest"
)

// A publish is a PRODUCER span whose context travels in the message headers; the delivery is
// a CONSUMER span, its child, and the handler runs inside it.
func TestBusCarriesTheTraceFromPublishToConsumer(t *testing.T) {
	srv := natsjstest.New(t)
	rec := tracedtest.New()
	bus, err := natsjs.OpenBus(t.Context(), srv.JetStream(), natsjs.StoreConfig{}, nil, slog.New(slog.DiscardHandler),
		natsjs.WithTracerProvider(rec), natsjs.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var inHandler trace.SpanContext
	sub, err := bus.Subscribe(t.Context(), "traced", []string{events.OrderPaidSubject}, func(ctx context.Context, m events.Message) error {
		mu.Lock()
		defer mu.Unlock()
		inHandler = trace.SpanContextFromContext(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()

	ctx, request := rec.Tracer("test").Start(t.Context(), "request")
	if err := bus.Publish(ctx, events.OrderPaidSubject, "order-paid.o-1", events.OrderPaid{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	request.End()

	var consumer []tracedtest.Span
	for deadline := time.Now().Add(10 * time.Second); len(consumer) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no consumer span within 10s")
		}
		time.Sleep(10 * time.Millisecond)
		consumer = rec.Named("process " + events.OrderPaidSubject)
	}
	producer := rec.Named("publish " + events.OrderPaidSubject)
	if len(producer) != 1 || producer[0].Kind != trace.SpanKindProducer {
		t.Fatalf("producer spans %+v", producer)
	}
	p, c := producer[0], consumer[0]
	if p.Parent.SpanID() != request.SpanContext().SpanID() {
		t.Errorf("the publish is not a child of the request")
	}
	if c.Kind != trace.SpanKindConsumer || c.SpanContext.TraceID() != p.SpanContext.TraceID() || c.Parent.SpanID() != p.SpanContext.SpanID() {
		t.Fatalf("consumer span %+v is not a CONSUMER child of the publish %+v", c, p)
	}
	if got := c.Attr("messaging.consumer.group.name"); got != "traced" {
		t.Errorf("consumer group %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if inHandler.SpanID() != c.SpanContext.SpanID() {
		t.Errorf("the handler ran in span %v, want the consumer span %v", inHandler.SpanID(), c.SpanContext.SpanID())
	}
}
