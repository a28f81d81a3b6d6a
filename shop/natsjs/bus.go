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

	"github.com/mitosis-dev/mitosis/shop/events"
)

// StreamName is the JetStream stream that holds every shop event.
const StreamName = "SHOP_EVENTS"

// Bus publishes and consumes the shop's events on one JetStream stream.
type Bus struct {
	js     jetstream.JetStream
	logger *slog.Logger
}

var (
	_ events.Publisher  = (*Bus)(nil)
	_ events.Subscriber = (*Bus)(nil)
)

// OpenBus creates or updates the event stream and returns a bus on it. Events are kept for a
// day (bounded in bytes too): consumers that were down catch up, and the disk does not fill.
// The duplicate window drops a re-publish of one fact, e.g. by a recovered checkout.
func OpenBus(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) (*Bus, error) {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       StreamName,
		Subjects:   []string{"shop.events.>"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		MaxAge:     24 * time.Hour,
		MaxBytes:   1 << 30,
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", StreamName, err)
	}
	return &Bus{js: js, logger: logger}, nil
}

func (b *Bus) Publish(ctx context.Context, subject, id string, payload any) error {
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s: %w", subject, err)
	}
	return b.PublishRaw(ctx, subject, id, data)
}

// PublishRaw publishes data as it is, also when it does not decode (tests send poison).
func (b *Bus) PublishRaw(ctx context.Context, subject, id string, data []byte) error {
	msg := nats.NewMsg(subject)
	msg.Data = data
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("publish %s %s: %w", subject, id, err)
	}
	return nil
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
		handle(hctx, logger, h, msg)
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

func handle(ctx context.Context, logger *slog.Logger, h events.Handler, msg jetstream.Msg) {
	m := events.Message{Subject: msg.Subject(), Data: msg.Data(), Delivery: 1}
	if hdr := msg.Headers(); hdr != nil {
		m.ID = hdr.Get(jetstream.MsgIDHeader)
		m.Header = make(map[string]string, len(hdr))
		for k := range hdr {
			m.Header[k] = hdr.Get(k)
		}
	}
	if md, err := msg.Metadata(); err == nil {
		m.Delivery = int(md.NumDelivered)
	}
	err := h(ctx, m)
	switch {
	case err == nil:
		if err := msg.Ack(); err != nil {
			logger.Warn("ack", "subject", m.Subject, "id", m.ID, "err", err)
		}
	case errors.Is(err, events.ErrPoison):
		logger.Error("dropping poison message", "subject", m.Subject, "id", m.ID, "err", err)
		_ = msg.TermWithReason("poison: " + err.Error())
	case m.Delivery >= events.MaxDeliveries:
		logger.Error("dropping message after max deliveries", "subject", m.Subject, "id", m.ID, "deliveries", m.Delivery, "err", err)
		_ = msg.TermWithReason("max deliveries: " + err.Error())
	default:
		logger.Warn("message handler failed; will redeliver", "subject", m.Subject, "id", m.ID, "delivery", m.Delivery, "err", err)
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
