//go:build !mitosis_group || mitosis_notify

// Part of the implementation: only the binaries that run notify link it (bounded.Group.BuildTags).

package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/paging"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// A user's notifications are kept in the notifications bucket in documents of bounded size,
// so that a user has no limit (a single document stopped at NATS's 1 MiB value limit, some
// 7,000 notifications, after which every new one was lost):
//
//   - the inbox, under the user's ID: the newest notifications, oldest first (at most
//     inboxChunkSize after a write), and how many chunks of older ones are sealed;
//   - sealed chunks of inboxChunkSize notifications, oldest first, under chunkKey(user, n):
//     chunk n holds the user's notifications n*inboxChunkSize to (n+1)*inboxChunkSize-1,
//     counted from the first (a notification's ordinal). A chunk never changes once written;
//   - a receipt for every sealed notification, under receiptKey(user, kind, order), holding
//     it: what keeps a notification from being made twice once it has left the inbox.
//
// Every notification is added by one compare-and-set write of the inbox, after the inbox's
// oldest notifications have been sealed (receipts and chunk) when it is full. Notify looks
// for a duplicate in the inbox and then, if anything is sealed, among the receipts: a
// notification leaves the inbox only once its receipt is written, so one of the two has it.
// (That relies on Get returning the current value, as kv.Bucket promises.) The one write
// also keeps the list in the order of created_at, and reads touch the inbox and at most two
// chunks per page.
//
// Before chunks, the inbox held every notification in this very shape: such a document reads
// as an inbox with nothing sealed, and the next notification of its user seals it.
type inbox struct {
	Notifications []Notification `json:"notifications"`    // oldest first
	Sealed        int            `json:"sealed,omitempty"` // chunks 0 to Sealed-1 exist
}

// inboxChunk is a sealed chunk of a user's notifications.
type inboxChunk struct {
	Notifications []Notification `json:"notifications"` // inboxChunkSize, oldest first
}

// inboxChunkSize is how many notifications a chunk holds and the most an inbox holds after
// a write: at some 150 bytes a notification, an inbox stays under 16 KB, and a page of up to
// paging.MaxSize+1 notifications spans the inbox and at most two chunks.
const inboxChunkSize = 100

// tokenKind marks the page tokens of notification lists (package paging).
const tokenKind = 'n'

func chunkKey(user string, n int) string { return kv.Key(user, "chunk", strconv.Itoa(n)) }

func receiptKey(user, kind, orderID string) string { return kv.Key(user, "sent", kind, orderID) }

// total is the number of notifications of the user.
func (b inbox) total() uint64 {
	return uint64(b.Sealed)*inboxChunkSize + uint64(len(b.Notifications))
}

// find returns the notification of kind for orderID in the inbox.
func (b inbox) find(kind, orderID string) (Notification, bool) {
	for _, n := range b.Notifications {
		if n.Kind == kind && n.OrderID == orderID {
			return n, true
		}
	}
	return Notification{}, false
}

// service is the Service over the notifications bucket.
type service struct {
	inboxes kv.Bucket // the bucket, remembering the inboxes it writes (kv.Cached)
	// sealed is the same bucket without the cache, for what is written once and never
	// compare-and-set again (receipts and chunks): remembered, they would only push the
	// inboxes out of the cache.
	sealed kv.Bucket
	now    func() time.Time
}

// New returns the notify service over the notifications bucket (see inbox for what it
// holds); now stamps notifications and their IDs.
func New(notifications kv.Bucket, now func() time.Time) Service {
	return &service{inboxes: kv.Cached(notifications, cachedInboxes), sealed: notifications, now: now}
}

// cachedInboxes is how many inboxes the service remembers at most (kv.Cached, which also
// bounds them in bytes: a few hundred of the largest inboxes), so that a notification is
// one write of the inbox as this process last wrote or read it, not a read and a write:
// the order-shipped notification follows its order-paid one within seconds. An inbox the
// process does not remember is taken for absent (see notifyOnce): when it exists after all
// (another replica made it, the cache forgot it past its bounds, or it is over kv.Cached's
// value bound, some 100 notifications with the longest IDs), its notification costs a
// refused create before the read and the write it cost before.
const cachedInboxes = 8192

// maxNotifyAttempts bounds the writes of one Notify: concurrent notifications of one user
// take turns at the inbox, and every round one of them lands.
const maxNotifyAttempts = 100

func (s *service) Notify(ctx context.Context, userID, kind, orderID string) (Notification, error) {
	if err := ids.Check("user_id", userID); err != nil {
		return Notification{}, err
	}
	if kind != KindOrderPaid && kind != KindOrderShipped {
		return Notification{}, validation.Errorf("kind", "must be %q or %q, got %q", KindOrderPaid, KindOrderShipped, kind)
	}
	if err := ids.Check("order_id", orderID); err != nil {
		return Notification{}, err
	}
	guess := true
	for attempt := 1; ; attempt++ {
		n, done, err := s.notifyOnce(ctx, userID, kind, orderID, guess)
		switch {
		case done:
			return n, nil
		case err == nil && guess:
			guess = false // the remembered inbox was stale: read it, with no pause
			attempt--
			continue
		case err == nil && attempt == maxNotifyAttempts:
			err = fmt.Errorf("%d attempts: %w", attempt, kv.ErrConflict)
		case err == nil:
			err = kv.Backoff(ctx, attempt-1)
		}
		if err != nil {
			return Notification{}, fmt.Errorf("notify %s of %s %s: %w", userID, kind, orderID, err)
		}
	}
}

// notifyOnce finds the notification, or adds it with one write of the inbox as read. It
// reports done with the notification, or not done (and no error) when that write lost a
// race and should be tried again.
//
// With guess, the inbox is not read but taken as this process remembers it, and as absent
// when it remembers nothing (a user's first notification, most often): the write's
// compare-and-set on that revision is what checks the guess, so a stale one writes nothing
// and the caller reads. The guess finds no duplicate the store would not: a notification in
// a remembered inbox was in the store, and stays there, in the inbox or in its receipt. A
// full inbox is not sealed on a guess: sealing writes chunks that must match the store's.
func (s *service) notifyOnce(ctx context.Context, userID, kind, orderID string, guess bool) (Notification, bool, error) {
	var box inbox
	var rev uint64
	if guess {
		box, rev, _ = kv.Peek[inbox](s.inboxes, userID)
	} else {
		var err error
		box, rev, err = kv.Get[inbox](ctx, s.inboxes, userID)
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return Notification{}, false, err
		}
	}
	if n, ok := box.find(kind, orderID); ok {
		return n, true, nil
	}
	if guess && len(box.Notifications) >= inboxChunkSize {
		return Notification{}, false, nil
	}
	if box.Sealed > 0 {
		// Read after the inbox: one that left the inbox since had its receipt written first.
		n, _, err := kv.Get[Notification](ctx, s.sealed, receiptKey(userID, kind, orderID))
		if err == nil {
			return n, true, nil
		}
		if !errors.Is(err, kv.ErrNotFound) {
			return Notification{}, false, err
		}
	}
	var prev time.Time
	if k := len(box.Notifications); k > 0 {
		prev = box.Notifications[k-1].CreatedAt
	}
	if len(box.Notifications) >= inboxChunkSize {
		var err error
		if box, err = s.seal(ctx, userID, box); err != nil {
			return Notification{}, false, err
		}
	}
	now := s.now()
	// Milliseconds, like orders' created_at: one precision across the API. The list is in
	// write order; created_at keeps to it if the clock steps back or a slower writer read the
	// inbox earlier.
	created := now.UTC().Truncate(time.Millisecond)
	if created.Before(prev) {
		created = prev
	}
	n := Notification{ID: ids.New("ntf", now), Kind: kind, OrderID: orderID, CreatedAt: created}
	// A new slice (box's may be the cache's): one allocation, where a clone then an append
	// took two.
	box.Notifications = append(append(make([]Notification, 0, len(box.Notifications)+1), box.Notifications...), n)
	data, err := kv.EncodeBuffer(&box)
	if err != nil {
		return Notification{}, false, fmt.Errorf("encode inbox: %w", err)
	}
	if rev == 0 {
		_, err = s.inboxes.Create(ctx, userID, data.Bytes())
	} else {
		_, err = s.inboxes.Update(ctx, userID, data.Bytes(), rev)
	}
	data.Free()
	switch {
	case err == nil:
		return n, true, nil
	case errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrExists):
		return Notification{}, false, nil
	}
	return Notification{}, false, err
}

// seal writes the oldest notifications of a full inbox into chunks, as many whole chunks as
// it holds, with their receipts, and returns the inbox without them (not yet written: the
// caller's compare-and-set of the inbox is what makes the chunks part of the list). Writers
// that seal the same inbox concurrently write the same receipts and chunks: an inbox with
// Sealed = n and at least a chunk's worth of notifications has only ever one oldest chunk's
// worth.
func (s *service) seal(ctx context.Context, userID string, box inbox) (inbox, error) {
	n := len(box.Notifications) / inboxChunkSize
	sealed := box.Notifications[:n*inboxChunkSize]
	err := kv.Concurrently(len(sealed)+n, func(i int) error {
		if i < len(sealed) {
			note := sealed[i]
			_, err := kv.Create(ctx, s.sealed, receiptKey(userID, note.Kind, note.OrderID), note)
			if errors.Is(err, kv.ErrExists) {
				return nil
			}
			return err
		}
		c := i - len(sealed)
		chunk := inboxChunk{Notifications: sealed[c*inboxChunkSize : (c+1)*inboxChunkSize]}
		key := chunkKey(userID, box.Sealed+c)
		_, err := kv.Create(ctx, s.sealed, key, chunk)
		if !errors.Is(err, kv.ErrExists) {
			return err
		}
		had, _, err := kv.Get[inboxChunk](ctx, s.sealed, key)
		if err != nil {
			return err
		}
		if !slices.EqualFunc(had.Notifications, chunk.Notifications, same) {
			return fmt.Errorf("chunk %d holds other notifications than its inbox's", box.Sealed+c)
		}
		return nil
	})
	if err != nil {
		return inbox{}, fmt.Errorf("seal the notifications of %s: %w", userID, err)
	}
	return inbox{Notifications: box.Notifications[n*inboxChunkSize:], Sealed: box.Sealed + n}, nil
}

// same tells whether two notifications are the same one.
func same(a, b Notification) bool { return a.ID == b.ID && a.Kind == b.Kind && a.OrderID == b.OrderID }

func (s *service) List(ctx context.Context, req ListRequest) (Page, error) {
	if err := ids.Check("user_id", req.UserID); err != nil {
		return Page{}, err
	}
	size, err := paging.Size(req.PageSize, DefaultPageSize)
	if err != nil {
		return Page{}, err
	}
	var from uint64 // the ordinal of the page's first notification
	if req.PageToken != "" {
		if from, err = paging.Position(req.PageToken, tokenKind); err != nil {
			return Page{}, err
		}
	}
	box, _, err := kv.Get[inbox](ctx, s.inboxes, req.UserID)
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return Page{}, fmt.Errorf("notifications of %s: %w", req.UserID, err)
	}
	total := box.total()
	if req.PageToken != "" && from >= total {
		// A token names the first notification of a page, which exists once made.
		return Page{}, paging.ErrBadToken()
	}
	// One more than the page, to know whether it is the last.
	notes, err := s.slice(ctx, req.UserID, box, from, min(total, from+uint64(size)+1))
	if err != nil {
		return Page{}, err
	}
	page := Page{Notifications: notes[:min(size, len(notes))]}
	if len(notes) > size {
		page.NextPageToken = paging.Token(tokenKind, from+uint64(size))
	}
	return page, nil
}

// slice returns the notifications with ordinals lo to hi-1, oldest first, reading the chunks
// that hold them.
func (s *service) slice(ctx context.Context, userID string, box inbox, lo, hi uint64) ([]Notification, error) {
	out := make([]Notification, 0, hi-lo)
	sealed := uint64(box.Sealed) * inboxChunkSize
	if lo < sealed {
		var keys []string
		for c := lo / inboxChunkSize; c <= (min(hi, sealed)-1)/inboxChunkSize; c++ {
			keys = append(keys, chunkKey(userID, int(c)))
		}
		chunks, found, err := kv.GetEach[inboxChunk](ctx, s.sealed, keys)
		if err != nil {
			return nil, fmt.Errorf("notifications of %s: %w", userID, err)
		}
		for i, chunk := range chunks {
			start := (lo/inboxChunkSize + uint64(i)) * inboxChunkSize
			if !found[i] || len(chunk.Notifications) != inboxChunkSize {
				return nil, fmt.Errorf("notifications of %s: chunk %d is missing or not whole", userID, start/inboxChunkSize)
			}
			out = append(out, chunk.Notifications[max(lo, start)-start:min(hi, start+inboxChunkSize)-start]...)
		}
	}
	if hi > sealed {
		out = append(out, box.Notifications[max(lo, sealed)-sealed:hi-sealed]...)
	}
	return out, nil
}

// Handler turns order-paid and order-shipped events into notifications. Events are delivered
// at least once and Notify is idempotent, so a redelivery changes nothing. A message that can
// never be handled (another subject, an undecodable or invalid payload) is poison; any other
// failure is returned for redelivery.
func Handler(svc Service) events.Handler {
	return func(ctx context.Context, m events.Message) error {
		var userID, kind, orderID string
		switch m.Subject {
		case events.OrderPaidSubject:
			e, err := events.Decode[events.OrderPaid](m)
			if err != nil {
				return err
			}
			userID, kind, orderID = e.UserID, KindOrderPaid, e.OrderID
		case events.OrderShippedSubject:
			e, err := events.Decode[events.OrderShipped](m)
			if err != nil {
				return err
			}
			userID, kind, orderID = e.UserID, KindOrderShipped, e.OrderID
		default:
			return fmt.Errorf("%s %s: %w: notify does not handle this subject", m.Subject, m.ID, events.ErrPoison)
		}
		if _, err := svc.Notify(ctx, userID, kind, orderID); err != nil {
			if errors.Is(err, validation.ErrInvalid) {
				return fmt.Errorf("%s %s: %w: %w", m.Subject, m.ID, events.ErrPoison, err)
			}
			return fmt.Errorf("%s %s: %w", m.Subject, m.ID, err)
		}
		return nil
	}
}
