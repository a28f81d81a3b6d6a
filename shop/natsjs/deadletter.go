package natsjs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mitosis-dev/mitosis/shop/events"
)

// Dead letters: no event is lost because a consumer gave up on it.
//
// A consumer gives a message up when its handler calls it poison (it cannot be handled by
// this code: an undecodable payload, a field the handler rejects) or when it has failed
// events.MaxDeliveries times. Both go to the dead-letter stream, not only the exhausted
// ones: poison is almost always a bug of the producer or the consumer, and once that is
// fixed the event is still the fact it was (an order paid, to be shipped); dropping it
// would leave the order unshipped for good with only a log line to say why.
//
// The consumer itself writes the dead letter, before it terminates the message, and only
// once JetStream has acknowledged it; if that write fails, the message is not terminated but
// redelivered later, and given up again (the consumer's MaxDeliver is unlimited for this:
// the bus, not the server, counts deliveries). JetStream's own advisories were the other
// way ($JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES and MSG_TERMINATED, captured by a stream):
// they need no code in the consumer, but they carry only the stream sequence, not the
// payload, the headers or the handler's error, so the message would have to be read back
// from the event stream later, by when its age limit may have removed it; and an advisory
// is sent without acknowledgement, so one the capturing stream misses (full, or being
// restarted) loses the message silently, which is what this is for.
//
// A dead letter is the event as it was (payload and headers, the trace context among them)
// plus headers that say what happened (see DeadLetter):
//
//	Shop-Dead-Subject     the event's subject
//	Shop-Dead-Msg-Id      the event's Nats-Msg-Id
//	Shop-Dead-Consumer    the consumer that gave up (also the last token of the subject)
//	Shop-Dead-Reason      poison or max-deliveries
//	Shop-Dead-Error       the handler's last error (one line, at most 1 KiB)
//	Shop-Dead-Deliveries  how many times the consumer got it
//	Shop-Dead-Sequence    its sequence in the event stream
//	Shop-Dead-Published   when it was published (RFC 3339)
//
// Its own Nats-Msg-Id is <consumer>.<event stream sequence>, so a consumer that wrote the
// dead letter and then failed to terminate the message (the connection dropped) writes it
// again on the redelivery and the dead-letter stream drops the copy.
//
// Replay (mitosis events replay) re-publishes a dead letter into the event stream for the
// consumer that gave up on it, and only that one (see Replay).

const (
	// DeadLetterStream is the JetStream stream of the messages consumers gave up on.
	DeadLetterStream = "SHOP_DEAD_LETTERS"
	// deadLetterPrefix + <consumer> is a dead letter's subject.
	deadLetterPrefix = "shop.dead-letters."
	// replayPrefix + <consumer> is the subject a replayed event travels on in the event
	// stream: every consumer's filter takes its own, so a replay reaches only the consumer
	// that gave up.
	replayPrefix = "shop.replay."

	// deadLetterDuplicates is how long a second dead letter of one delivery is recognised:
	// it covers the redelivery of a message whose termination failed (the ack wait, 30 s,
	// plus the longest retry delay), with room to spare.
	deadLetterDuplicates = 10 * time.Minute
	// maxErrorLen bounds the error kept with a dead letter.
	maxErrorLen = 1024
)

// Reasons a consumer gives a message up, as DeadLetter.Reason says.
const (
	ReasonPoison        = "poison"
	ReasonMaxDeliveries = "max-deliveries"
)

// Headers of dead letters and of replayed events.
const (
	hdrDeadSubject    = "Shop-Dead-Subject"
	hdrDeadMsgID      = "Shop-Dead-Msg-Id"
	hdrDeadConsumer   = "Shop-Dead-Consumer"
	hdrDeadReason     = "Shop-Dead-Reason"
	hdrDeadError      = "Shop-Dead-Error"
	hdrDeadDeliveries = "Shop-Dead-Deliveries"
	hdrDeadSequence   = "Shop-Dead-Sequence"
	hdrDeadPublished  = "Shop-Dead-Published"
	// A replayed event carries its own subject and ID in these: its real subject is the
	// consumer's replay subject and its Nats-Msg-Id the replay's (see Replay).
	hdrReplaySubject = "Shop-Replay-Subject"
	hdrReplayMsgID   = "Shop-Replay-Msg-Id"
)

// DeadLetter is a message a consumer gave up on, as the dead-letter stream holds it.
type DeadLetter struct {
	Sequence       uint64            // in DeadLetterStream: what Replay removes
	Consumer       string            // the durable consumer that gave up
	Subject        string            // the event's subject
	ID             string            // the event's Nats-Msg-Id
	Reason         string            // ReasonPoison or ReasonMaxDeliveries
	Error          string            // the handler's last error
	Deliveries     int               // how many times the consumer got it
	StreamSequence uint64            // in the event stream
	Published      time.Time         // when the event was published
	DeadAt         time.Time         // when it was dead-lettered
	Header         map[string]string // the event's own headers (trace context)
	Data           []byte            // the event's payload
}

// DeadLetterCount is how many dead letters wait for a replay.
type DeadLetterCount struct {
	Total      int            `json:"total"`
	ByConsumer map[string]int `json:"by_consumer,omitempty"`
}

// ErrBadConsumer: a consumer name JetStream would not take (empty, too long, or with a dot,
// a wildcard, a space or a path separator).
var ErrBadConsumer = errors.New("bad consumer name")

// CheckConsumer returns ErrBadConsumer for a name that cannot be a durable consumer's (and
// so a subject token).
func CheckConsumer(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsAny(name, ".*> \t\r\n/\\") || !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q", ErrBadConsumer, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q", ErrBadConsumer, name)
		}
	}
	return nil
}

func deadLetterSubject(consumer string) string { return deadLetterPrefix + consumer }

// DeadLetterSubject is the subject a consumer's dead letters are published on: what its
// process must be allowed to publish (platform/natsauth).
func DeadLetterSubject(consumer string) string { return deadLetterSubject(consumer) }
func replaySubject(consumer string) string     { return replayPrefix + consumer }

// deadLetterFilter is the subject filter of one consumer's dead letters, or of all ("").
func deadLetterFilter(consumer string) string {
	if consumer == "" {
		return deadLetterPrefix + ">"
	}
	return deadLetterSubject(consumer)
}

// openDeadLetters creates or updates the dead-letter stream. It keeps dead letters until
// they are replayed (no age limit: one that expired would be lost as silently as before).
func openDeadLetters(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       DeadLetterStream,
		Subjects:   []string{deadLetterFilter("")},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Replicas:   cfg.replicas(),
		MaxBytes:   cfg.Limit(DeadLetterStream),
		Discard:    jetstream.DiscardNew,
		Duplicates: deadLetterDuplicates,
	})
	if err != nil {
		return fmt.Errorf("open stream %s (%d replicas, %d bytes): %w", DeadLetterStream, cfg.replicas(), cfg.Limit(DeadLetterStream), err)
	}
	return nil
}

// deadLetter writes the dead letter of msg, which consumer gives up for reason after cause,
// and returns once JetStream has stored it. m is msg as the handler saw it (a replayed
// event's own subject and ID).
func (b *Bus) deadLetter(ctx context.Context, consumer string, msg jetstream.Msg, md *jetstream.MsgMetadata, m events.Message, reason string, cause error) error {
	dl := nats.NewMsg(deadLetterSubject(consumer))
	dl.Data = msg.Data()
	for k, vs := range msg.Headers() {
		if ownHeader(k) {
			continue
		}
		dl.Header[k] = append([]string(nil), vs...)
	}
	h := dl.Header
	h.Set(hdrDeadSubject, m.Subject)
	h.Set(hdrDeadMsgID, m.ID)
	h.Set(hdrDeadConsumer, consumer)
	h.Set(hdrDeadReason, reason)
	h.Set(hdrDeadError, headerValue(cause.Error(), maxErrorLen))
	h.Set(hdrDeadDeliveries, strconv.Itoa(m.Delivery))
	h.Set(hdrDeadSequence, strconv.FormatUint(md.Sequence.Stream, 10))
	h.Set(hdrDeadPublished, md.Timestamp.UTC().Format(time.RFC3339Nano))
	ctx, cancel, err := sending(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	id := consumer + "." + strconv.FormatUint(md.Sequence.Stream, 10)
	if _, err := b.js.PublishMsg(ctx, dl, jetstream.WithMsgID(id), jetstream.WithExpectStream(DeadLetterStream)); err != nil {
		return fmt.Errorf("dead-letter %s %s of %s: %w", m.Subject, m.ID, consumer, err)
	}
	return nil
}

// ownHeader tells the headers that are not the event's own: JetStream's (Nats-Msg-Id...)
// and this file's, which a dead letter and a replay set afresh.
func ownHeader(k string) bool {
	return strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Shop-Dead-") || strings.HasPrefix(k, "Shop-Replay-")
}

// headerValue makes s a header value: one line of valid UTF-8, at most max bytes.
func headerValue(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// CountDeadLetters counts the dead letters, in total and by consumer. No dead-letter stream
// (no bus ever opened on this server) is no dead letters.
func CountDeadLetters(ctx context.Context, js jetstream.JetStream) (DeadLetterCount, error) {
	s, err := deadLetterStream(ctx, js)
	if err != nil || s == nil {
		return DeadLetterCount{}, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(deadLetterFilter("")))
	if err != nil {
		return DeadLetterCount{}, fmt.Errorf("count dead letters: %w", err)
	}
	c := DeadLetterCount{Total: int(info.State.Msgs)}
	for subj, n := range info.State.Subjects {
		if c.ByConsumer == nil {
			c.ByConsumer = map[string]int{}
		}
		c.ByConsumer[strings.TrimPrefix(subj, deadLetterPrefix)] += int(n)
	}
	return c, nil
}

// DeadLetters lists the dead letters of consumer ("" for every consumer), oldest first, at
// most limit of them (limit <= 0: all).
func DeadLetters(ctx context.Context, js jetstream.JetStream, consumer string, limit int) ([]DeadLetter, error) {
	if consumer != "" {
		if err := CheckConsumer(consumer); err != nil {
			return nil, err
		}
	}
	dlq, err := deadLetterStream(ctx, js)
	if err != nil || dlq == nil {
		return nil, err
	}
	var out []DeadLetter
	err = eachDeadLetter(ctx, dlq, consumer, func(dl DeadLetter) (bool, error) {
		out = append(out, dl)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// deadLetterStream returns the dead-letter stream, or nil if there is none (no bus was ever
// opened on this server).
func deadLetterStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", DeadLetterStream, err)
	}
	return s, nil
}

// eachDeadLetter calls f with each dead letter of consumer ("" for all) that was in dlq when
// dlq was looked up, oldest first, until f says stop. Dead letters written since are left
// for the next call: a replayed event that fails again at once must not be replayed again
// and again by one call.
func eachDeadLetter(ctx context.Context, dlq jetstream.Stream, consumer string, f func(DeadLetter) (more bool, err error)) error {
	last := dlq.CachedInfo().State.LastSeq
	filter := deadLetterFilter(consumer)
	for seq := uint64(1); seq <= last; {
		raw, err := dlq.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read dead letter at or after %d: %w", seq, err)
		}
		if raw.Sequence > last {
			return nil
		}
		more, err := f(parseDeadLetter(raw))
		if err != nil || !more {
			return err
		}
		seq = raw.Sequence + 1
	}
	return nil
}

// parseDeadLetter reads a dead letter's headers. Fields that do not parse stay zero: a
// dead letter is still replayable from its subject, its Shop-Dead-Subject and its payload.
func parseDeadLetter(raw *jetstream.RawStreamMsg) DeadLetter {
	h := raw.Header
	dl := DeadLetter{
		Sequence: raw.Sequence,
		Consumer: strings.TrimPrefix(raw.Subject, deadLetterPrefix),
		Subject:  h.Get(hdrDeadSubject),
		ID:       h.Get(hdrDeadMsgID),
		Reason:   h.Get(hdrDeadReason),
		Error:    h.Get(hdrDeadError),
		DeadAt:   raw.Time,
		Header:   map[string]string{},
		Data:     raw.Data,
	}
	dl.Deliveries, _ = strconv.Atoi(h.Get(hdrDeadDeliveries))
	dl.StreamSequence, _ = strconv.ParseUint(h.Get(hdrDeadSequence), 10, 64)
	dl.Published, _ = time.Parse(time.RFC3339Nano, h.Get(hdrDeadPublished))
	for k := range h {
		if !ownHeader(k) {
			dl.Header[k] = h.Get(k)
		}
	}
	return dl
}

// Replay re-publishes the dead letters of consumer ("" for every consumer) into the event
// stream, each for the consumer that gave up on it, and removes each from the dead-letter
// stream once the event stream has stored it. It returns how many it replayed, by consumer.
// The consumers need not run: a replay waits in the event stream like any event.
//
// A replay goes to the consumer's own replay subject (shop.replay.<consumer>), not to the
// event's subject, which every consumer of that event reads: consumers are idempotent, but
// the others handled the event long ago and a second delivery would only redo their side
// effects (shipping re-publishing order-shipped, after the duplicate window). The consumer
// sees the event's own subject and ID (the bus reads them from the replay's headers), with
// a fresh count of deliveries.
//
// Running it twice is safe, also concurrently or after a crash between the publish and the
// removal. A replay cannot reuse the event's Nats-Msg-Id: within the event stream's
// duplicate window (10 minutes) the stream would drop it as a repeat of the original, and
// the dead letter would be removed with the event never delivered. Its ID is instead
// replay.<dead-letter sequence>.<dead-letter time>, the same on every run for one dead
// letter, so a second publish of it within the window is dropped, and after the window it
// is a second delivery to an idempotent consumer. The time part keeps IDs unique should the
// dead-letter stream be recreated and count from 1 again.
//
// Dead letters of a consumer the event stream does not have, or that takes no replays (its
// process runs a version older than dead letters), stay where they are and the error says
// so; the others are replayed all the same.
func Replay(ctx context.Context, js jetstream.JetStream, consumer string) (map[string]int, error) {
	if consumer != "" {
		if err := CheckConsumer(consumer); err != nil {
			return nil, err
		}
	}
	dlq, err := deadLetterStream(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	replayed := map[string]int{}
	if dlq == nil {
		return replayed, nil
	}
	refused := map[string]bool{}
	var errs []error
	err = eachDeadLetter(ctx, dlq, consumer, func(dl DeadLetter) (bool, error) {
		no, checked := refused[dl.Consumer]
		if !checked {
			why := takesReplays(ctx, js, dl.Consumer)
			if no = why != nil; no {
				errs = append(errs, why)
			}
			refused[dl.Consumer] = no
		}
		if no {
			return true, nil
		}
		if err := replayOne(ctx, js, dlq, dl); err != nil {
			return false, err
		}
		replayed[dl.Consumer]++
		return true, nil
	})
	return replayed, errors.Join(append(errs, err)...)
}

// takesReplays says why consumer's dead letters cannot be replayed, or nil if they can.
func takesReplays(ctx context.Context, js jetstream.JetStream, consumer string) error {
	if err := CheckConsumer(consumer); err != nil {
		return fmt.Errorf("dead letters on %s%s: %w", deadLetterPrefix, consumer, err)
	}
	c, err := js.Consumer(ctx, StreamName, consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("consumer %s: not in stream %s, nothing would receive its dead letters; they stay", consumer, StreamName)
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", consumer, err)
	}
	cfg := c.CachedInfo().Config
	want := replaySubject(consumer)
	if cfg.FilterSubject != want && !slices.Contains(cfg.FilterSubjects, want) {
		return fmt.Errorf("consumer %s takes no replays (its process predates dead letters: restart it); its dead letters stay", consumer)
	}
	return nil
}

// replayOne publishes dl for its consumer, awaits the event stream's acknowledgement, then
// removes dl from the dead-letter stream.
func replayOne(ctx context.Context, js jetstream.JetStream, dlq jetstream.Stream, dl DeadLetter) error {
	if dl.Subject == "" {
		return fmt.Errorf("dead letter %d of %s has no %s header: replay it by hand", dl.Sequence, dl.Consumer, hdrDeadSubject)
	}
	msg := nats.NewMsg(replaySubject(dl.Consumer))
	msg.Data = dl.Data
	for k, v := range dl.Header {
		msg.Header.Set(k, v)
	}
	msg.Header.Set(hdrReplaySubject, dl.Subject)
	msg.Header.Set(hdrReplayMsgID, dl.ID)
	id := fmt.Sprintf("replay.%d.%d", dl.Sequence, dl.DeadAt.UnixNano())
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamName)); err != nil {
		return fmt.Errorf("replay dead letter %d (%s %s) to %s: %w", dl.Sequence, dl.Subject, dl.ID, dl.Consumer, err)
	}
	if err := dlq.DeleteMsg(ctx, dl.Sequence); err != nil {
		// Gone already is fine: a concurrent replay removed it.
		if _, gerr := dlq.GetMsg(ctx, dl.Sequence); !errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("remove replayed dead letter %d (replaying it again is safe): %w", dl.Sequence, err)
		}
	}
	return nil
}
