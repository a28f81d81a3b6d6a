package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// The sweep. Every record in the reservations bucket is due for the sweeper at some time:
// an open one at its expiry (release it, or finish its commit), a committed tombstone at its
// ForgetAt (delete it). Most records are tombstones waiting for their day to pass, so a sweep
// first picks the records that are due from a cheap view of them, and reads in full, then
// changes with a compare-and-set, only those. The view comes from one watch of the bucket
// (ReleaseExpired), or from an index that a watch keeps up to date (RunSweeper), which costs
// nothing per sweep for the records that are not due.

// sweepView is what a sweep decides on: a record without its lines, so that the index keeps
// a few dozen bytes per tombstone.
type sweepView struct {
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
	ForgetAt  time.Time `json:"forget_at,omitzero"`
}

// dueAt is when the sweeper has something to do with the record.
func (v sweepView) dueAt() time.Time {
	if v.State == stateCommitted {
		return v.ForgetAt
	}
	return v.ExpiresAt
}

// due selects the records to sweep at now, and those that do not decode, to report them.
func due(now time.Time) func(kv.Item[sweepView]) bool {
	return func(it kv.Item[sweepView]) bool {
		return it.Err != nil || !now.Before(it.Value.dueAt())
	}
}

// ReleaseExpired releases the reservations past their expiry, finishes the commits that
// stopped midway (a crashed commit is finished, never undone), and forgets committed
// tombstones past theirs. It returns how many reservations it released; a failure on one
// record does not stop the others, and all failures are returned together.
//
// It reads the whole bucket, in one watch; RunSweeper keeps an index instead.
func (s *service) ReleaseExpired(ctx context.Context) (int, error) {
	items, err := kv.Scan[sweepView](ctx, s.reservations, nil)
	if err != nil {
		return 0, fmt.Errorf("release expired: list reservations: %w", err)
	}
	return s.sweep(ctx, items)
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
		index := kv.NewTracker[sweepView](s.reservations, nil, log)
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { index.Run(ctx) })
		sweep = func(ctx context.Context) (int, error) { return s.sweepIndex(ctx, index) }
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
			if now.Before(rec.ForgetAt) {
				continue
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
