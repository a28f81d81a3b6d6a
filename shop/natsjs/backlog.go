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
// takes room, and a stream full of backlogs refuses new events.
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
