package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Memory is an in-process bus with the delivery contract of the JetStream one: publishes are
// de-duplicated by ID, every consumer sees every message of its subjects from the beginning
// (as a new durable consumer does), failures are redelivered. What a consumer gives up
// (poison, or out of deliveries) is logged and dropped: this bus is for tests and keeps
// nothing; the JetStream one keeps it in its dead-letter stream.
type Memory struct {
	mu     sync.Mutex
	log    []Message
	seen   map[string]bool
	subs   []*memSub
	logger *slog.Logger
}

// NewMemory returns an empty bus.
func NewMemory(logger *slog.Logger) *Memory {
	return &Memory{seen: map[string]bool{}, logger: logger}
}

var (
	_ Publisher  = (*Memory)(nil)
	_ Subscriber = (*Memory)(nil)
)

func (b *Memory) Publish(ctx context.Context, subject, id string, payload any) error {
	data, err := kv.Encode(payload)
	if err != nil {
		return fmt.Errorf("encode %s: %w", subject, err)
	}
	return b.PublishRaw(ctx, subject, id, data)
}

// PublishRaw publishes m as it is, also when its payload does not decode; tests use it to
// send poison and to deliver one fact twice under two IDs, as a broker might after a crash.
func (b *Memory) PublishRaw(ctx context.Context, subject, id string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := Message{Subject: subject, ID: id, Data: data}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[m.ID] {
		return nil
	}
	b.seen[m.ID] = true
	b.log = append(b.log, m)
	for _, s := range b.subs {
		if slices.Contains(s.subjects, m.Subject) {
			s.push(m)
		}
	}
	return nil
}

func (b *Memory) Subscribe(ctx context.Context, consumer string, subjects []string, h Handler) (Subscription, error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &memSub{subjects: subjects, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	b.mu.Lock()
	for _, m := range b.log {
		if slices.Contains(subjects, m.Subject) {
			s.queue = append(s.queue, m)
		}
	}
	b.subs = append(b.subs, s)
	b.mu.Unlock()
	go s.run(ctx, b.logger.With("consumer", consumer), h)
	s.signal()
	return s, nil
}

type memSub struct {
	subjects []string
	mu       sync.Mutex
	queue    []Message
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
}

func (s *memSub) push(m Message) {
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	s.signal()
}

func (s *memSub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *memSub) Stop() {
	s.cancel()
	<-s.done
}

func (s *memSub) run(ctx context.Context, logger *slog.Logger, h Handler) {
	defer close(s.done)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, m := range batch {
			if !deliver(ctx, logger, h, m) {
				return
			}
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		}
	}
}

// deliver hands m to h until it is handled, is poison or has failed MaxDeliveries times. It
// returns false when ctx ended first.
func deliver(ctx context.Context, logger *slog.Logger, h Handler, m Message) bool {
	for n := 1; ; n++ {
		m.Delivery = n
		err := h(ctx, m)
		switch {
		case err == nil:
			return true
		case errors.Is(err, ErrPoison):
			logger.Error("dropping poison message", "subject", m.Subject, "id", m.ID, "err", err)
			return true
		case n >= MaxDeliveries:
			logger.Error("dropping message after max deliveries", "subject", m.Subject, "id", m.ID, "deliveries", n, "err", err)
			return true
		}
		logger.Warn("message handler failed; will redeliver", "subject", m.Subject, "id", m.ID, "delivery", n, "err", err)
		t := time.NewTimer(RetryDelay(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}
