package natsjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/events"
)

// StreamName is the JetStream stream that holds every shop event.
const StreamName = "SHOP_EVENTS"

// Bus publishes and consumes the shop's events on one JetStream stream. Each publish is a
// PRODUCER span whose context travels in the message's headers (traceparent,
// X-Amzn-Trace-Id...: whatever the propagator writes); each delivery is a CONSUMER span, child
// of the publish, so that an event's reactions belong to the trace of the request that caused
// it, in both architectures.
type Bus struct {
	js      jetstream.JetStream
	logger  *slog.Logger
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	publish []trace.SpanStartOption // the PRODUCER spans' start options
	process []trace.SpanStartOption // the CONSUMER spans'
}

// BusOption configures a Bus.
type BusOption func(*Bus)

// WithTracerProvider traces the bus with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) BusOption {
	return func(b *Bus) { b.tracer = tp.Tracer(tracerName) }
}

// WithPropagator carries trace context in message headers with p instead of the global
// propagator.
func WithPropagator(p propagation.TextMapPropagator) BusOption {
	return func(b *Bus) { b.prop = p }
}

const tracerName = "github.com/mitosis-dev/mitosis/shop/natsjs"

// Messaging attributes, as OpenTelemetry's messaging conventions name them.
const (
	msgSystem      = attribute.Key("messaging.system")
	msgDestination = attribute.Key("messaging.destination.name")
	msgOperation   = attribute.Key("messaging.operation.type")
	msgID          = attribute.Key("messaging.message.id")
	msgConsumer    = attribute.Key("messaging.consumer.group.name")
	msgDelivery    = attribute.Key("messaging.nats.delivery")
)

var (
	_ events.Publisher  = (*Bus)(nil)
	_ events.Subscriber = (*Bus)(nil)
)

// OpenBus creates the event stream, or updates it to cfg's replicas and byte limit, and
// returns a bus on it. Events are kept for a day: consumers that were down catch up, and the
// disk does not fill. The duplicate window drops a re-publish of one fact, e.g. by a recovered
// checkout. A full stream refuses new events (Publish fails with ErrFull) rather than dropping
// old ones that a consumer may not have read yet.
//
// The bus traces with OpenTelemetry's global tracer provider and propagator as they are when
// it opens, unless options say otherwise.
func OpenBus(ctx context.Context, js jetstream.JetStream, cfg StoreConfig, logger *slog.Logger, opts ...BusOption) (*Bus, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("open stream %s: %w", StreamName, err)
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       StreamName,
		Subjects:   []string{"shop.events.>"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     24 * time.Hour,
		MaxBytes:   cfg.Limit(StreamName),
		Discard:    jetstream.DiscardNew,
		Replicas:   cfg.replicas(),
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open stream %s (%d replicas, %d bytes): %w", StreamName, cfg.replicas(), cfg.Limit(StreamName), err)
	}
	b := &Bus{js: js, logger: logger, tracer: otel.GetTracerProvider().Tracer(tracerName), prop: otel.GetTextMapPropagator(),
		publish: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)},
		process: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}}
	for _, o := range opts {
		o(b)
	}
	return b, nil
}

func (b *Bus) Publish(ctx context.Context, subject, id string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s: %w", subject, err)
	}
	return b.PublishRaw(ctx, subject, id, data)
}

// PublishRaw publishes data as it is, also when it does not decode (tests send poison).
// The PRODUCER span lasts until JetStream acknowledged the message: stored, and so
// deliverable.
func (b *Bus) PublishRaw(ctx context.Context, subject, id string, data []byte) error {
	ctx, span := b.tracer.Start(ctx, "publish "+subject, b.publish...)
	defer span.End()
	// The attributes go in after the start, and only when the span records: as start options
	// they would be copied once more for the sampler, whom they do not concern (none of
	// OTEL_TRACES_SAMPLER's looks at attributes), and built for spans sampled out.
	if span.IsRecording() {
		span.SetAttributes(msgSystem.String("nats"), msgDestination.String(subject), msgOperation.String("send"), msgID.String(id))
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	b.prop.Inject(ctx, headerCarrier(msg.Header))
	// As with a bucket's writes, a message once sent is awaited: the publisher's retry is
	// deduplicated by id only within the stream's window, so it must know what landed.
	sendCtx, cancel, err := sending(ctx)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("publish %s %s: %w", subject, id, err)
	}
	defer cancel()
	if _, err := b.js.PublishMsg(sendCtx, msg, jetstream.WithMsgID(id)); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("publish %s %s: %w", subject, id, fullErr(err))
	}
	return nil
}

// headerCarrier lets a propagator read and write NATS headers, which keep their keys'
// case as written (unlike HTTP's).
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return nats.Header(h).Get(key) }
func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Subscribe creates (or resumes) the durable consumer and handles its messages one at a time
// until Stop. Acks are explicit: a message is acknowledged only once its handler returned nil.
func (b *Bus) Subscribe(ctx context.Context, consumer string, subjects []string, h events.Handler) (events.Subscription, error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:        consumer,
		FilterSubjects: subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     events.MaxDeliveries,
		MaxAckPending:  256,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", consumer, err)
	}
	logger := b.logger.With("consumer", consumer)
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		b.handle(hctx, consumer, logger, h, msg)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			logger.Warn("consume", "err", err)
		}
	}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("consume %s: %w", consumer, err)
	}
	return &subscription{cc: cc, cancel: cancel}, nil
}

// handle runs the handler on one delivery, inside a CONSUMER span that continues the trace
// of the publish (its context is in the headers), and acknowledges the message as the
// handler's answer says.
func (b *Bus) handle(ctx context.Context, consumer string, logger *slog.Logger, h events.Handler, msg jetstream.Msg) {
	m := events.Message{Subject: msg.Subject(), Data: msg.Data(), Delivery: 1}
	hdr := msg.Headers()
	if hdr != nil {
		m.ID = hdr.Get(jetstream.MsgIDHeader)
		m.Header = make(map[string]string, len(hdr))
		for k := range hdr {
			m.Header[k] = hdr.Get(k)
		}
		ctx = b.prop.Extract(ctx, headerCarrier(hdr))
	}
	if md, err := msg.Metadata(); err == nil {
		m.Delivery = int(md.NumDelivered)
	}
	ctx, span := b.tracer.Start(ctx, "process "+m.Subject, b.process...)
	defer span.End()
	if span.IsRecording() { // as in PublishRaw
		span.SetAttributes(msgSystem.String("nats"), msgDestination.String(m.Subject), msgOperation.String("process"),
			msgID.String(m.ID), msgConsumer.String(consumer), msgDelivery.Int(m.Delivery))
	}
	err := h(ctx, m)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			logger.WarnContext(ctx, "ack", "subject", m.Subject, "id", m.ID, "err", err)
		}
	case errors.Is(err, events.ErrPoison):
		logger.ErrorContext(ctx, "dropping poison message", "subject", m.Subject, "id", m.ID, "err", err)
		_ = msg.TermWithReason("poison: " + err.Error())
	case m.Delivery >= events.MaxDeliveries:
		logger.ErrorContext(ctx, "dropping message after max deliveries", "subject", m.Subject, "id", m.ID, "deliveries", m.Delivery, "err", err)
		_ = msg.TermWithReason("max deliveries: " + err.Error())
	default:
		logger.WarnContext(ctx, "message handler failed; will redeliver", "subject", m.Subject, "id", m.ID, "delivery", m.Delivery, "err", err)
		_ = msg.NakWithDelay(events.RetryDelay(m.Delivery))
	}
}

type subscription struct {
	cc     jetstream.ConsumeContext
	cancel context.CancelFunc
}

// Stop drains the consumer: no new messages, and it returns once the handler in flight has
// finished and been acknowledged, so a shutdown loses nothing and redoes little.
func (s *subscription) Stop() {
	s.cc.Drain()
	select {
	case <-s.cc.Closed():
	case <-time.After(30 * time.Second):
	}
	s.cancel()
}
