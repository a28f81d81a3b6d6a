//go:build !mitosis_group || mitosis_inventory

// Part of the implementation: only the binaries that run inventory link it (bounded.Group.BuildTags).

package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// The sweep. Every open record in the reservations bucket is due for the sweeper at its
// expiry (release it, or finish its commit). Most records are tombstones waiting for their
// day to pass, which the store removes by itself (their TTL), so a sweep first picks the
// records that are due from a cheap view of them, and reads in full, then changes with a
// compare-and-set, only those. The view comes from one watch of the bucket
// (ReleaseExpired), or from an index that a watch keeps up to date (RunSweeper), which
// holds the open records only: its memory follows the checkouts under way, not the day's
// worth of tombstones (about 250 bytes each: at 65 checkouts a second, the services' most
// here, a day's would take 1.4 GB: the inventory service's 51 MiB would be gone within the
// hour). A tombstone from before tombstones had a TTL carries its ForgetAt instead: the
// index keeps it, and the sweep deletes it then.
//
// The sweep also looks for holds left without their record (see the top of service.go):
// the stock documents that hold anything, from the same kind of view of the stock bucket,
// and on them the holds past their reservation's expiry by orphanGrace. Each such hold's
// record is read by the ID the hold carries, and decides: no record, or another
// incarnation's, and the hold is released; a record still open is released whole, one
// being committed is finished. A hold older than orphanAge is looked up too, sooner: if its
// ID was released before any record was made (Release's tombstone), no record of its token
// can come any more, and it is released at once. That is the hold of a Reserve whose process
// died after the hold landed and before its record's Create did: the caller's compensation
// releases the ID, and the units are back within seconds instead of the TTL and orphanGrace.

// sweepView is what a sweep decides on: a record without its lines, so that the index keeps
// a few dozen bytes per open record.
type sweepView struct {
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
	ForgetAt  time.Time `json:"forget_at,omitzero"`
}

// dueAt is when the sweeper has something to do with the record; ok is false for a
// tombstone that the store forgets by itself.
func (v sweepView) dueAt() (at time.Time, ok bool) {
	switch v.State {
	case stateCommitted:
		return v.ForgetAt, !v.ForgetAt.IsZero()
	case stateReleased:
		return time.Time{}, false
	}
	return v.ExpiresAt, true
}

// newIndex returns the sweeper's index of reservations: every record but the tombstones
// with a TTL, which no sweep needs.
func newIndex(reservations kv.Bucket, log *slog.Logger) *kv.Tracker[sweepView] {
	return kv.NewTracker(reservations, func(v sweepView) bool {
		_, ok := v.dueAt()
		return ok
	}, log)
}

// due selects the records to sweep at now, and those that do not decode, to report them.
func due(now time.Time) func(kv.Item[sweepView]) bool {
	return func(it kv.Item[sweepView]) bool {
		if it.Err != nil {
			return true
		}
		at, ok := it.Value.dueAt()
		return ok && !now.Before(at)
	}
}

// holding selects the stock documents that hold anything: where the sweep looks for holds
// left without their record.
func holding(d stockDoc) bool { return len(d.Holds) > 0 }

// orphanAge is how old a hold is before the sweep asks whether its ID was released before
// its record was made. A Reserve takes milliseconds, so a hold this old whose ID's record
// is Release's tombstone is an orphan; a younger one may still be a live call's, which
// gives it back itself when its Create fails on the tombstone.
const orphanAge = 5 * time.Second

// lingering selects, at now, the stock documents with a hold whose record the sweep reads
// (lookedUp; reservations last ttl), and those that do not decode, to report them.
func lingering(now time.Time, ttl time.Duration) func(kv.Item[stockDoc]) bool {
	return func(it kv.Item[stockDoc]) bool {
		if it.Err != nil {
			return true
		}
		for _, h := range it.Value.Holds {
			if lookedUp(h, now, ttl) {
				return true
			}
		}
		return false
	}
}

// lookedUp tells whether the sweep reads the record of h's ID at now: h is expired or old
// (holds written before holds carried their reservation are found from the record alone).
func lookedUp(h hold, now time.Time, ttl time.Duration) bool {
	return h.ID != "" && (expired(h, now) || old(h, now, ttl))
}

// expired tells whether h is past its reservation's expiry by orphanGrace, when whatever
// record its ID has decides about it.
func expired(h hold, now time.Time) bool { return !now.Before(h.Until.Add(orphanGrace)) }

// old tells whether h was taken orphanAge ago or more, for a reservation lasting ttl.
func old(h hold, now time.Time, ttl time.Duration) bool {
	return !now.Before(h.Until.Add(orphanAge - ttl))
}

// ReleaseExpired releases the reservations past their expiry, finishes the commits that
// stopped midway (a crashed commit is finished, never undone), forgets committed
// tombstones past theirs, and releases the holds left without a record. It returns how many
// reservations it released (holds without a record are not counted); a failure on one
// record does not stop the others, and all failures are returned together.
//
// It reads both buckets whole, in one watch each; RunSweeper keeps indexes instead.
func (s *service) ReleaseExpired(ctx context.Context) (int, error) {
	items, err := kv.Scan[sweepView](ctx, s.reservations, nil)
	if err != nil {
		return 0, fmt.Errorf("release expired: list reservations: %w", err)
	}
	n, err := s.sweep(ctx, items)
	docs, serr := kv.Scan(ctx, s.stock, holding)
	if serr != nil {
		return n, errors.Join(err, fmt.Errorf("release expired: list stock: %w", serr))
	}
	return n, errors.Join(err, s.sweepHolds(ctx, docs))
}

// Timing of the inventory's background work, the same in every process that runs it.
const (
	// DefaultReservationTTL is how long stock stays reserved for a checkout that never
	// finishes (SHOP_RESERVATION_TTL overrides it).
	DefaultReservationTTL = 5 * time.Minute
	// SweepEvery is how often expired reservations are looked for.
	SweepEvery = 5 * time.Second
)

// RunSweeper does the work of ReleaseExpired every interval until ctx ends, logging what it
// did and what failed. For the Service New returns, it keeps an index of the reservations
// bucket up to date with a watch, so that a sweep reads only the records that are due: its
// cost follows the reservations to act on, not the day's worth of committed tombstones that
// the bucket holds. Any other Service (a decorator, a gRPC client) has its ReleaseExpired
// called instead. log nil means slog.Default().
func RunSweeper(ctx context.Context, svc Service, every time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	sweep := svc.ReleaseExpired
	if s, ok := svc.(*service); ok {
		index := newIndex(s.reservations, log)
		holds := kv.NewTracker(s.stock, holding, log)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { index.Run(ctx) })
		wg.Go(func() { holds.Run(ctx) })
		sweep = func(ctx context.Context) (int, error) {
			n, err := s.sweepIndex(ctx, index)
			return n, errors.Join(err, s.sweepHoldIndex(ctx, holds))
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("release expired reservations", "released", n, "err", err)
		case n > 0:
			log.Info("released expired reservations", "count", n)
		}
	}
}

// sweepIndex sweeps the records that index says are due. Until the index has read the
// bucket once there is nothing to go by, and nothing is swept.
func (s *service) sweepIndex(ctx context.Context, index *kv.Tracker[sweepView]) (int, error) {
	select {
	case <-index.Ready():
	default:
		return 0, nil
	}
	return s.sweep(ctx, index.Items(due(s.now())))
}

// sweepHoldIndex sweeps the holds left without a record on the stock documents that index
// says hold something; like sweepIndex, nothing until the index has read the bucket once.
func (s *service) sweepHoldIndex(ctx context.Context, index *kv.Tracker[stockDoc]) error {
	select {
	case <-index.Ready():
	default:
		return nil
	}
	return s.sweepHolds(ctx, index.Items(lingering(s.now(), s.ttl)))
}

// sweepHolds acts on the holds of docs past their reservation's expiry by orphanGrace, and
// on those older than orphanAge whose ID was released before its record was made. The
// documents may be stale (an index lags): each hold's record is read, and every change is
// a compare-and-set of the record or the stock document, as it is now.
func (s *service) sweepHolds(ctx context.Context, docs []kv.Item[stockDoc]) error {
	type orphan struct {
		token, productID string
		expired          bool // else only old: released only if its ID's record is Release's tombstone
	}
	now := s.now()
	byID := map[string][]orphan{}
	var errs []error
	for _, it := range docs {
		if it.Err != nil {
			errs = append(errs, fmt.Errorf("read stock of %s: %w", it.Key, it.Err))
			continue
		}
		for token, h := range it.Value.Holds {
			if lookedUp(h, now, s.ttl) {
				byID[h.ID] = append(byID[h.ID], orphan{token, it.Key, expired(h, now)})
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("release lingering holds: %w", err))...)
		}
		rec, _, err := kv.Get[record](ctx, s.reservations, id)
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			errs = append(errs, fmt.Errorf("read reservation %s: %w", id, err))
			continue
		}
		found := err == nil
		released := found && rec.State == stateReleased
		for _, o := range byID[id] {
			if found && rec.Token == o.token || !o.expired && !released {
				continue // its record decides, below; or too early to tell
			}
			// Its record is gone, or is another incarnation's, or its ID was released before
			// any record was made: nothing will ever sell it.
			if err := s.unhold(ctx, o.token, o.productID); err != nil {
				errs = append(errs, fmt.Errorf("release lingering hold of %s: %w", id, err))
			}
		}
		if !found || !slices.ContainsFunc(byID[id], func(o orphan) bool { return o.expired && o.token == rec.Token }) {
			continue
		}
		switch rec.State {
		case stateCommit, stateCommitted:
			err = s.finishCommit(ctx, rec, 0)
		default:
			_, err = s.releaseExpired(ctx, rec)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("settle reservation %s: %w", id, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("release lingering holds: %w", errors.Join(errs...))
	}
	return nil
}

// sweep acts on the records among items that are due. The view may be stale (the index lags
// the bucket), so each record is read again and decided on as it is now, and every change is
// a compare-and-set on what was read.
func (s *service) sweep(ctx context.Context, items []kv.Item[sweepView]) (int, error) {
	isDue := due(s.now())
	released := 0
	var errs []error
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return released, fmt.Errorf("release expired: %w", err)
		}
		id := it.Key
		if it.Err != nil {
			errs = append(errs, fmt.Errorf("read reservation %s: %w", id, it.Err))
			continue
		}
		if !isDue(it) {
			continue
		}
		rec, _, err := kv.Get[record](ctx, s.reservations, id)
		if errors.Is(err, kv.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read reservation %s: %w", id, err))
			continue
		}
		now := s.now()
		switch rec.State {
		case stateReserving, stateHeld, stateReleasing:
			if now.Before(rec.ExpiresAt) {
				continue
			}
			ok, err := s.releaseExpired(ctx, rec)
			if err != nil {
				errs = append(errs, fmt.Errorf("release reservation %s: %w", id, err))
			}
			if ok {
				released++
			}
		case stateCommit:
			if now.Before(rec.ExpiresAt) {
				continue // probably still in progress; its own Commit finishes it
			}
			if err := s.finishCommit(ctx, rec, 0); err != nil {
				errs = append(errs, fmt.Errorf("finish commit of %s: %w", id, err))
			}
		case stateCommitted:
			if rec.ForgetAt.IsZero() || now.Before(rec.ForgetAt) {
				continue // its TTL, or its day not over
			}
			err := s.deleteIf(ctx, id, func(r record) bool {
				return r.Token == rec.Token && r.State == stateCommitted
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("forget reservation %s: %w", id, err))
			}
		}
	}
	if len(errs) > 0 {
		return released, fmt.Errorf("release expired: %w", errors.Join(errs...))
	}
	return released, nil
}
