package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
)

// StreamName is the JetStream stream that holds every shop event.
const StreamName = "SHOP_EVENTS"

// streamSubjects are the event stream's: the events, and the replays of dead letters, one
// subject per consumer (see Replay).
var streamSubjects = []string{"shop.events.>", replayPrefix + ">"}

// Bus publishes and consumes the shop's events on one JetStream stream. Each publish is a
// PRODUCER span whose context travels in the message's headers (traceparent,
// X-Amzn-Trace-Id...: whatever the propagator writes); each delivery is a CONSUMER span, child
// of the publish, so that an event's reactions belong to the trace of the request that caused
// it, in both architectures.
type Bus struct {
	js      jetstream.JetStream
	req     *requester // publishes go straight on the connection through it (PublishRaw)
	pubs    sync.Pool  // of *putMsg
	logger  *slog.Logger
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	publish []trace.SpanStartOption // the PRODUCER spans' start options
	process []trace.SpanStartOption // the CONSUMER spans'

	maxDeliveries int                              // events.MaxDeliveries unless WithRedelivery
	retryDelay    func(delivery int) time.Duration // events.RetryDelay unless WithRedelivery

	// sent measures each publish until JetStream acknowledged it: a store round trip, as a
	// bucket's operations are (shop/traced measures those).
	sent            metric.Float64Histogram
	sentOK, sentErr bySubject[[]metric.RecordOption] // the histogram's attributes by outcome

	publishNames, processNames bySubject[string] // the spans' names
}

// bySubject keeps what the bus makes of a subject (a span's name, a metric's attributes),
// made once for each of the few subjects the shop has instead of once for every message:
// each was an allocation or more a message. Lookups by a string key allocate nothing, as
// those of a sync.Map (whose keys are interfaces) do.
type bySubject[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

// maxSubjects bounds what a bySubject keeps: the shop has a handful of event subjects and
// one replay subject per consumer; past the bound, values are made and not kept.
const maxSubjects = 256

// get returns what make makes of subject, made once.
func (s *bySubject[V]) get(subject string, make func(subject string) V) V {
	s.mu.RLock()
	v, ok := s.m[subject]
	s.mu.RUnlock()
	if ok {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[subject]; ok {
		return v
	}
	v = make(subject)
	if len(s.m) < maxSubjects {
		if s.m == nil {
			s.m = map[string]V{}
		}
		s.m[subject] = v
	}
	return v
}

func publishName(subject string) string { return "publish " + subject }
func processName(subject string) string { return "process " + subject }

// BusOption configures a Bus.
type BusOption func(*Bus)

// WithTracerProvider traces the bus with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) BusOption {
	return func(b *Bus) { b.tracer = tp.Tracer(tracerName) }
}

// WithRedelivery gives a failing message maxDeliveries deliveries, delay(n) apart after the
// nth, before it is dead-lettered, instead of events.MaxDeliveries and events.RetryDelay
// (whose 11 minutes a test does not wait for).
func WithRedelivery(maxDeliveries int, delay func(delivery int) time.Duration) BusOption {
	return func(b *Bus) { b.maxDeliveries, b.retryDelay = maxDeliveries, delay }
}

// WithMeterProvider measures the bus with mp instead of the global provider.
func WithMeterProvider(mp metric.MeterProvider) BusOption {
	return func(b *Bus) { b.sent = newSentHistogram(mp) }
}

// newSentHistogram is OpenTelemetry's messaging client histogram, per destination and
// outcome: its count is the publishes, each one round trip to JetStream.
func newSentHistogram(mp metric.MeterProvider) metric.Float64Histogram {
	h, err := mp.Meter(tracerName).Float64Histogram("messaging.client.operation.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of event publishes, each until JetStream acknowledged it"),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err != nil {
		otel.Handle(err) // the meter still returned a usable (no-op) instrument
	}
	return h
}

// recordSent records a publish to subject that started at start and ended with err.
func (b *Bus) recordSent(ctx context.Context, subject string, start time.Time, err error) {
	opts := b.sentOK.get(subject, sentOK)
	if err != nil {
		opts = b.sentErr.get(subject, sentErr)
	}
	b.sent.Record(ctx, time.Since(start).Seconds(), opts...)
}

// sentOK and sentErr are the attributes of a publish to subject that succeeded or failed.
func sentOK(subject string) []metric.RecordOption { return sentAttrs(subject) }
func sentErr(subject string) []metric.RecordOption {
	return sentAttrs(subject, errorType.String("_OTHER"))
}

func sentAttrs(subject string, more ...attribute.KeyValue) []metric.RecordOption {
	attrs := append([]attribute.KeyValue{msgSystem.String("nats"), msgOperationName.String("send"), msgDestination.String(subject)}, more...)
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

// WithPropagator carries trace context in message headers with p instead of the global
// propagator.
func WithPropagator(p propagation.TextMapPropagator) BusOption {
	return func(b *Bus) { b.prop = p }
}

const tracerName = "github.com/mitosis-dev/mitosis/shop/natsjs"

// Messaging attributes, as OpenTelemetry's messaging conventions name them.
const (
	msgSystem        = attribute.Key("messaging.system")
	msgDestination   = attribute.Key("messaging.destination.name")
	msgOperation     = attribute.Key("messaging.operation.type")
	msgOperationName = attribute.Key("messaging.operation.name")
	errorType        = attribute.Key("error.type")
	msgID            = attribute.Key("messaging.message.id")
	msgConsumer      = attribute.Key("messaging.consumer.group.name")
	msgDelivery      = attribute.Key("messaging.nats.delivery")
)

var (
	_ events.Publisher  = (*Bus)(nil)
	_ events.Subscriber = (*Bus)(nil)
)

// Consumer is a durable consumer of the event stream: its name and the event subjects it
// takes. The table of contexts (services/bounded) lists them; the host hands them to OpenBus.
type Consumer struct {
	Name     string
	Subjects []string
}

// consumerConfig is the configuration of the durable consumer name of subjects, and of its
// replay subject: the one place that says it, so that OpenBus creates what Subscribe resumes
// and neither changes what the other made.
func consumerConfig(name string, subjects []string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        name,
		FilterSubjects: append(slices.Clip(subjects), replaySubject(name)),
		AckPolicy:      jetstream.AckExplicitPolicy,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     -1,
		MaxAckPending:  256,
	}
}

// eventStreamConfig is the event stream's configuration under cfg.
//
// Interest retention keeps an event until every consumer whose subjects it matches has
// acknowledged it (or terminated it, once dead-lettered), however long that takes, and no
// longer: a consumer down for days loses nothing, and what every consumer has processed
// leaves the stream, which so stays as small as the consumers' backlogs. There is no age
// limit: an age limit drops what a consumer has not processed yet, silently. The byte limit
// stays, with DiscardNew: a stream full of unprocessed events refuses new ones (Publish fails
// with ErrFull, loudly) rather than dropping old ones. The duplicate window drops a
// re-publish of one fact, e.g. by a recovered checkout.
func eventStreamConfig(cfg StoreConfig) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       StreamName,
		Subjects:   streamSubjects,
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.InterestPolicy,
		MaxBytes:   cfg.Limit(StreamName),
		Discard:    jetstream.DiscardNew,
		Replicas:   cfg.replicas(),
		Duplicates: 10 * time.Minute,
	}
}

// OpenBus creates the event stream and the dead-letter stream, or updates them to cfg's
// replicas and byte limits, creates (or updates) every one of consumers, and returns a bus on
// them. consumers must hold every durable consumer of every event the caller publishes,
// whichever process runs it: the event stream keeps an event only for the consumers that
// exist when it is published (interest retention, see eventStreamConfig), so a publisher
// creates them when it opens the bus, before it can publish.
//
// A stream made by an older version (limits retention, events kept for a day) is switched to
// interest retention, keeping what any of consumers has not acknowledged yet: the consumers
// are made first, since the switch drops at once every message that no consumer holds.
//
// The bus traces with OpenTelemetry's global tracer provider and propagator as they are when
// it opens, unless options say otherwise.
func OpenBus(ctx context.Context, js jetstream.JetStream, cfg StoreConfig, consumers []Consumer, logger *slog.Logger, opts ...BusOption) (*Bus, error) {
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("open stream %s: %w", StreamName, err)
	}
	for _, c := range consumers {
		if err := CheckConsumer(c.Name); err != nil {
			return nil, fmt.Errorf("open stream %s: %w", StreamName, err)
		}
	}
	if err := openEvents(ctx, js, cfg, consumers); err != nil {
		return nil, err
	}
	if err := openDeadLetters(ctx, js, cfg); err != nil {
		return nil, err
	}
	b := &Bus{js: js, req: newRequester(js.Conn()), logger: logger, tracer: otel.GetTracerProvider().Tracer(tracerName), prop: otel.GetTextMapPropagator(),
		sent:    newSentHistogram(otel.GetMeterProvider()),
		publish: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)},
		process: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}}
	b.maxDeliveries, b.retryDelay = events.MaxDeliveries, events.RetryDelay
	for _, o := range opts {
		o(b)
	}
	return b, nil
}

// openEvents creates or updates the event stream and consumers. On a stream that exists
// the consumers come first: a stream switched to interest retention keeps only what its
// consumers of the moment hold (nats-server drops everything when it has none).
func openEvents(ctx context.Context, js jetstream.JetStream, cfg StoreConfig, consumers []Consumer) error {
	want := eventStreamConfig(cfg)
	_, err := js.Stream(ctx, StreamName)
	exists := err == nil
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("open stream %s: %w", StreamName, err)
	}
	if exists {
		if err := createConsumers(ctx, js, consumers); err != nil {
			return err
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, want); err != nil {
		return fmt.Errorf("open stream %s (%d replicas, %d bytes): %w", StreamName, cfg.replicas(), cfg.Limit(StreamName), err)
	}
	if !exists {
		return createConsumers(ctx, js, consumers)
	}
	return nil
}

// createConsumers creates each of consumers on the event stream, or updates it to the
// configuration Subscribe gives it: idempotent, so that every process does it at every start.
func createConsumers(ctx context.Context, js jetstream.JetStream, consumers []Consumer) error {
	for _, c := range consumers {
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamName, consumerConfig(c.Name, c.Subjects)); err != nil {
			return fmt.Errorf("open stream %s: consumer %s: %w", StreamName, c.Name, err)
		}
	}
	return nil
}

func (b *Bus) Publish(ctx context.Context, subject, id string, payload any) error {
	data, err := kv.EncodeBuffer(payload) // PublishRaw sends a copy: the buffer goes back after
	if err != nil {
		return fmt.Errorf("encode %s: %w", subject, err)
	}
	defer data.Free()
	return b.PublishRaw(ctx, subject, id, data.Bytes())
}

// PublishRaw publishes data as it is, also when it does not decode (tests send poison).
// The PRODUCER span lasts until JetStream acknowledged the message: stored, and so
// deliverable.
func (b *Bus) PublishRaw(ctx context.Context, subject, id string, data []byte) (err error) {
	start := time.Now()
	ctx, span := b.tracer.Start(ctx, b.publishNames.get(subject, publishName), b.publish...)
	defer span.End()
	defer func() { b.recordSent(ctx, subject, start, err) }()
	// The attributes go in after the start, and only when the span records: as start options
	// they would be copied once more for the sampler, whom they do not concern (none of
	// OTEL_TRACES_SAMPLER's looks at attributes), and built for spans sampled out.
	if span.IsRecording() {
		span.SetAttributes(msgSystem.String("nats"), msgDestination.String(subject), msgOperation.String("send"), msgID.String(id))
	}
	// As with a bucket's writes, a message once sent is awaited: the publisher's retry is
	// deduplicated by id only within the stream's window, so it must know what landed. It
	// is sent as a bucket's writes are (Bucket.put): what js.PublishMsg with WithMsgID sends.
	limit, err := ackLimit(ctx)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("publish %s %s: %w", subject, id, err)
	}
	p, _ := b.pubs.Get().(*putMsg)
	if p == nil {
		p = &putMsg{hdr: nats.Header{}}
	}
	defer b.pubs.Put(p)
	clear(p.hdr)
	p.seq[0] = id
	p.hdr[jetstream.MsgIDHeader] = p.seq[:]
	b.prop.Inject(ctx, headerCarrier(p.hdr))
	p.msg = nats.Msg{Subject: subject, Header: p.hdr, Data: data}
	if _, err := p.send(ctx, b.req, limit); err != nil {
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
// until Stop. The consumer should be one of those OpenBus was given, which made it with the
// same configuration: an event published before a consumer exists is not kept for it. Acks
// are explicit: a message is acknowledged only once its handler returned nil. A message the
// handler fails on is redelivered after events.RetryDelay; one it calls poison,
// or fails on for the last of events.MaxDeliveries times, is dead-lettered (see Replay).
//
// The consumer also reads its replay subject, where Replay puts its dead letters back. Its
// MaxDeliver is unlimited: the bus counts deliveries itself and terminates a message only
// once its dead letter is stored, and the server must go on delivering one whose dead letter
// could not be written, or it would be lost.
func (b *Bus) Subscribe(ctx context.Context, consumer string, subjects []string, h events.Handler) (events.Subscription, error) {
	if err := CheckConsumer(consumer); err != nil {
		return nil, err
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StreamName, consumerConfig(consumer, subjects))
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
	return &subscription{cc: cc, nc: b.js.Conn(), cancel: cancel}, nil
}

// handle runs the handler on one delivery, inside a CONSUMER span that continues the trace
// of the publish (its context is in the headers), and acknowledges the message as the
// handler's answer says: ack, redeliver later, or dead-letter then terminate.
func (b *Bus) handle(ctx context.Context, consumer string, logger *slog.Logger, h events.Handler, msg jetstream.Msg) {
	m := events.Message{Subject: msg.Subject(), Data: msg.Data(), Delivery: 1}
	hdr := msg.Headers()
	if hdr != nil {
		m.ID = hdr.Get(jetstream.MsgIDHeader)
		ctx = b.prop.Extract(ctx, headerCarrier(hdr))
	}
	var badReplay error
	if strings.HasPrefix(m.Subject, replayPrefix) {
		// A replayed dead letter: the handler sees the event it was.
		m.Subject, m.ID = hdr.Get(hdrReplaySubject), hdr.Get(hdrReplayMsgID)
		if m.Subject == "" {
			badReplay = fmt.Errorf("replay on %s without %s: %w", msg.Subject(), hdrReplaySubject, events.ErrPoison)
			m.Subject = msg.Subject()
		}
	}
	md, err := msg.Metadata()
	if err != nil {
		// Only a message not from JetStream has none; it cannot be acknowledged either.
		logger.ErrorContext(ctx, "message without metadata", "subject", m.Subject, "err", err)
		return
	}
	m.Delivery = int(md.NumDelivered)
	ctx, span := b.tracer.Start(ctx, b.processNames.get(m.Subject, processName), b.process...)
	defer span.End()
	if span.IsRecording() { // as in PublishRaw
		span.SetAttributes(msgSystem.String("nats"), msgDestination.String(m.Subject), msgOperation.String("process"),
			msgID.String(m.ID), msgConsumer.String(consumer), msgDelivery.Int(m.Delivery))
	}
	err = badReplay
	if err == nil {
		err = h(ctx, m)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	poison := errors.Is(err, events.ErrPoison)
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			logger.WarnContext(ctx, "ack", "subject", m.Subject, "id", m.ID, "err", err)
		}
	case poison || m.Delivery >= b.maxDeliveries:
		reason := ReasonMaxDeliveries
		if poison {
			reason = ReasonPoison
		}
		if derr := b.deadLetter(ctx, consumer, msg, md, m, reason, err); derr != nil {
			// Not terminated: it comes back, and is given up again then.
			logger.ErrorContext(ctx, "message given up but not dead-lettered; will redeliver", "subject", m.Subject, "id", m.ID,
				"reason", reason, "deliveries", m.Delivery, "err", err, "dead_letter_err", derr)
			_ = msg.NakWithDelay(b.retryDelay(m.Delivery))
			return
		}
		span.AddEvent("dead-lettered", trace.WithAttributes(attribute.String("reason", reason)))
		logger.ErrorContext(ctx, "message dead-lettered", "subject", m.Subject, "id", m.ID, "reason", reason,
			"deliveries", m.Delivery, "err", err, "dead_letter_stream", DeadLetterStream)
		if err := msg.TermWithReason(reason); err != nil {
			// It comes back; its second dead letter is dropped as a duplicate.
			logger.WarnContext(ctx, "terminate dead-lettered message", "subject", m.Subject, "id", m.ID, "err", err)
		}
	default:
		logger.WarnContext(ctx, "message handler failed; will redeliver", "subject", m.Subject, "id", m.ID, "delivery", m.Delivery, "err", err)
		_ = msg.NakWithDelay(b.retryDelay(m.Delivery))
	}
}

type subscription struct {
	cc     jetstream.ConsumeContext
	nc     *nats.Conn
	cancel context.CancelFunc
}

// Stop drains the consumer: no new messages, and it returns once the handler in flight has
// finished and been acknowledged, so a shutdown loses nothing and redoes little. A drain
// needs the server, and so does an acknowledgement: once the connection is down (NATS
// stopping beside this process, as kube down and some rolling restarts do), Stop waits no
// longer, and the message in flight, unacknowledged, is delivered again to whoever consumes
// next.
func (s *subscription) Stop() {
	down := s.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer s.nc.RemoveStatusListener(down)
	s.cc.Drain()
	if s.nc.IsConnected() {
		select {
		case <-s.cc.Closed():
		case <-down:
		case <-time.After(30 * time.Second):
		}
	}
	s.cancel()
}
