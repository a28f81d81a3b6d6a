package natsjs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Backlog is what one consumer of the event stream has not processed yet.
type Backlog struct {
	Consumer string `json:"consumer"`
	// Waiting is the events not delivered yet, and those delivered but not acknowledged.
	Waiting uint64 `json:"waiting"`
	// Oldest is when the oldest waiting event was published; zero when none waits.
	Oldest time.Time `json:"oldest,omitzero"`
}

// Backlogs returns what each durable consumer of the event stream has not processed yet, by
// consumer name; none when the stream does not exist. The stream keeps every event until
// each consumer it is for has processed it (see OpenBus), so a backlog is never lost: it
// takes room, and a stream full of backlogs refuses new events (see StreamUsage). The counts
// are the server's, which it updates just after it acknowledges a publish: an event published
// a moment ago may not be counted yet.
//
// Every durable consumer is listed, those the table of contexts no longer has too: they are
// not deleted by anyone (a process of an older version may still run them while a
// deployment rolls), and the stream keeps their events for them until they are; the caller
// compares the names with its table.
func Backlogs(ctx context.Context, js jetstream.JetStream) ([]Backlog, error) {
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backlogs: %w", err)
	}
	var out []Backlog
	lister := s.ListConsumers(ctx)
	for info := range lister.Info() {
		if info.Config.Durable == "" {
			continue // a tool's passing reader, not one of the shop's consumers
		}
		b := Backlog{Consumer: info.Name, Waiting: info.NumPending + uint64(info.NumAckPending)}
		if b.Waiting > 0 {
			if b.Oldest, err = firstAfter(ctx, s, info); err != nil {
				return nil, fmt.Errorf("backlog of %s: %w", info.Name, err)
			}
		}
		out = append(out, b)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("backlogs: %w", err)
	}
	slices.SortFunc(out, func(a, b Backlog) int { return cmp.Compare(a.Consumer, b.Consumer) })
	return out, nil
}

// Usage is how much of its byte limit the event stream holds: what its consumers have not
// all processed yet. A full stream refuses new events (Publish fails with ErrFull).
type Usage struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	MaxBytes int64  `json:"max_bytes"` // -1 for none
}

// Full is the part of the byte limit in use, from 0 to 1; 0 without a limit.
func (u Usage) Full() float64 {
	if u.MaxBytes <= 0 {
		return 0
	}
	return float64(u.Bytes) / float64(u.MaxBytes)
}

// StreamUsage returns how full the event stream is; ok is false when it does not exist.
func StreamUsage(ctx context.Context, js jetstream.JetStream) (u Usage, ok bool, err error) {
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Usage{}, false, nil
	}
	if err != nil {
		return Usage{}, false, fmt.Errorf("stream usage: %w", err)
	}
	info := s.CachedInfo() // js.Stream asked for it just now
	return Usage{Messages: info.State.Msgs, Bytes: info.State.Bytes, MaxBytes: info.Config.MaxBytes}, true, nil
}

// firstAfter is when the first event the consumer has not acknowledged was published: the
// first message past its acknowledgement floor on any of its subjects.
func firstAfter(ctx context.Context, s jetstream.Stream, info *jetstream.ConsumerInfo) (time.Time, error) {
	subjects := slices.Clone(info.Config.FilterSubjects)
	if info.Config.FilterSubject != "" {
		subjects = append(subjects, info.Config.FilterSubject)
	}
	var oldest time.Time
	for _, subject := range subjects {
		msg, err := s.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return time.Time{}, err
		}
		if oldest.IsZero() || msg.Time.Before(oldest) {
			oldest = msg.Time
		}
	}
	return oldest, nil
}
