package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// How the implementation keeps the invariant with nothing but single-key compare-and-set:
//
//   - The stock bucket holds one document per product: available, sold and the holds of
//     live reservations (token -> quantity); reserved is the sum of the holds. Every change
//     is one kv.Mutate of that one document, so available + reserved + sold never changes
//     except by Add, and the "is there enough?" decision sits inside the Mutate function.
//   - The reservations bucket holds one record per reservation ID, written before any hold
//     is taken and deleted only after every hold is gone, so that whatever crashes, the
//     sweeper (ReleaseExpired) finds from the record every hold it has to release or sell.
//   - A record's token names one incarnation of a reservation ID. Holds are keyed by token,
//     not by ID, so that a slow release of an old incarnation can never remove the holds of
//     a new reservation made later under the same ID.
//
// A record moves reserving -> held -> committing -> committed (a tombstone, so that Commit
// stays a no-op until the sweeper forgets it), or reserving/held -> releasing -> deleted.
// Every transition is a compare-and-set on the record, so a Commit and a Release (or the
// sweeper) racing for one reservation cannot both win: whoever moves it out of "held" first
// decides, and a commit once started is always finished, never undone.
//
// Residual window, accepted: an owner stalled in Reserve for longer than the TTL, whose
// reservation the sweeper releases meanwhile, takes the hold it was about to take and then
// crashes before it notices; that hold has no record left to find it by.

// Record states.
const (
	stateReserving = "reserving" // holds being taken by the call that created the record
	stateHeld      = "held"      // every hold taken; Commit or Release decides
	stateCommit    = "committing"
	stateReleasing = "releasing"
	stateCommitted = "committed" // tombstone: holds sold, kept so that Commit again is a no-op
)

const (
	maxLines = 1000 // keeps a reservation record well under JetStream's 1 MiB value limit

	// tombstoneTTL is how long a committed reservation is remembered, so that a retried
	// Commit is a no-op rather than ErrReservationNotFound.
	tombstoneTTL = 24 * time.Hour
	// waitLimit bounds how long Reserve waits for another call making the same reservation;
	// a Reserve takes milliseconds, so one still going after this is stuck or dead.
	waitLimit = 5 * time.Second
	// cleanupTimeout bounds the compensation a failed Reserve runs after its caller's
	// context is done; what it cannot finish the sweeper finishes from the record.
	cleanupTimeout = 5 * time.Second
)

// stockDoc is the stock bucket's document for one product.
type stockDoc struct {
	Available int64            `json:"available"`
	Sold      int64            `json:"sold"`
	Holds     map[string]int64 `json:"holds,omitempty"` // reservation token -> units held
}

func (d stockDoc) reserved() int64 {
	var n int64
	for _, q := range d.Holds {
		n += q
	}
	return n
}

// record is the reservations bucket's document for one reservation ID.
type record struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	Lines     []line    `json:"lines"` // merged, sorted by product ID
	ExpiresAt time.Time `json:"expires_at"`
	State     string    `json:"state"`
	ForgetAt  time.Time `json:"forget_at,omitzero"` // committed tombstones only
}

type line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

func (r record) reservation() Reservation {
	lines := make([]Line, len(r.Lines))
	for i, l := range r.Lines {
		lines[i] = Line(l)
	}
	return Reservation{ID: r.ID, Lines: lines, ExpiresAt: r.ExpiresAt}
}

// service is the inventory over two kv buckets.
type service struct {
	stock        kv.Bucket
	reservations kv.Bucket
	now          func() time.Time
	ttl          time.Duration
}

// New returns the inventory over its stock and reservations buckets. Reservations expire ttl
// after they are made (ReleaseExpired releases them); now is the clock.
func New(stock, reservations kv.Bucket, now func() time.Time, ttl time.Duration) Service {
	return &service{stock: stock, reservations: reservations, now: now, ttl: ttl}
}

// errNoop ends a record Mutate that finds nothing to do; it never leaves this file.
var errNoop = errors.New("inventory: nothing to do")

func (s *service) Get(ctx context.Context, productID string) (Stock, error) {
	if err := ids.Check("product_id", productID); err != nil {
		return Stock{}, err
	}
	d, _, err := kv.Get[stockDoc](ctx, s.stock, productID)
	if err != nil && !errors.Is(err, kv.ErrNotFound) {
		return Stock{}, fmt.Errorf("get stock of %s: %w", productID, err)
	}
	return stockOf(productID, d), nil
}

func (s *service) Add(ctx context.Context, productID string, n int64) (Stock, error) {
	if err := ids.Check("product_id", productID); err != nil {
		return Stock{}, err
	}
	if n < 1 || n > MaxAdd {
		return Stock{}, validation.Errorf("add", "must be 1 to %d, got %d", MaxAdd, n)
	}
	d, err := kv.Mutate(ctx, s.stock, productID, func(d *stockDoc, _ bool) error {
		if d.Available+d.reserved()+d.Sold > math.MaxInt64-n {
			return validation.Errorf("add", "would overflow the product's stock count")
		}
		d.Available += n
		return nil
	})
	if err != nil {
		return Stock{}, fmt.Errorf("add %d to %s: %w", n, productID, err)
	}
	return stockOf(productID, d), nil
}

func stockOf(productID string, d stockDoc) Stock {
	return Stock{ProductID: productID, Available: d.Available, Reserved: d.reserved(), Sold: d.Sold}
}

// Reserve makes a reservation, or returns the one already made under reservationID (whatever
// lines it holds: a retry is assumed to ask for the same). The returned lines are merged per
// product and sorted by product ID.
func (s *service) Reserve(ctx context.Context, reservationID string, lines []Line) (Reservation, error) {
	merged, err := validateReserve(reservationID, lines)
	if err != nil {
		return Reservation{}, err
	}
	started := time.Now()
	for attempt := 0; ; attempt++ {
		rec := record{
			ID:        reservationID,
			Token:     ids.New("rsv", s.now()),
			Lines:     merged,
			ExpiresAt: s.now().Add(s.ttl),
			State:     stateReserving,
		}
		rev, err := kv.Create(ctx, s.reservations, reservationID, rec)
		if err == nil {
			return s.place(ctx, rec, rev)
		}
		if !errors.Is(err, kv.ErrExists) {
			return Reservation{}, fmt.Errorf("reserve %s: %w", reservationID, err)
		}
		existing, _, err := kv.Get[record](ctx, s.reservations, reservationID)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			continue // deleted since Create looked: try again
		case err != nil:
			return Reservation{}, fmt.Errorf("reserve %s: %w", reservationID, err)
		}
		switch existing.State {
		case stateHeld, stateCommit, stateCommitted:
			return existing.reservation(), nil
		case stateReleasing:
			// Being released (or a release crashed): finishing it is idempotent.
			if err := s.release(ctx, existing); err != nil {
				return Reservation{}, fmt.Errorf("reserve %s: finish earlier release: %w", reservationID, err)
			}
			continue
		}
		// Another call is taking the holds. Its result is ours: wait for it, unless it is
		// past its expiry (it crashed), in which case release what it took and start over.
		if !s.now().Before(existing.ExpiresAt) {
			if _, err := s.releaseExpired(ctx, existing); err != nil {
				return Reservation{}, fmt.Errorf("reserve %s: release stale attempt: %w", reservationID, err)
			}
			continue
		}
		if time.Since(started) > waitLimit {
			return Reservation{}, fmt.Errorf("reserve %s: another call has been making this reservation for over %v", reservationID, waitLimit)
		}
		// Look again soon: 1ms, doubling up to 50ms.
		if err := kv.Sleep(ctx, min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)); err != nil {
			return Reservation{}, fmt.Errorf("reserve %s: %w", reservationID, err)
		}
	}
}

// place takes the holds of a record this call created, then marks it held. On failure it
// releases what it took and deletes the record, so that nothing stays held for an order
// that will not happen.
func (s *service) place(ctx context.Context, rec record, rev uint64) (Reservation, error) {
	for _, l := range rec.Lines {
		if err := s.hold(ctx, rec.Token, l); err != nil {
			s.undo(ctx, rec)
			return Reservation{}, fmt.Errorf("reserve %s: %w", rec.ID, err)
		}
	}
	_, _, err := kv.MutateFrom(ctx, s.reservations, rec.ID, rec, rev, func(r *record, exists bool) error {
		if !exists || r.Token != rec.Token || r.State != stateReserving {
			// Only this call moves its record out of "reserving", so anything else means
			// a Release or the sweeper claimed it meanwhile.
			return errNoop
		}
		r.State = stateHeld
		return nil
	})
	switch {
	case errors.Is(err, errNoop):
		s.undo(ctx, rec)
		return Reservation{}, fmt.Errorf("reserve %s: released while being made: %w", rec.ID, ErrReservationNotFound)
	case err != nil:
		s.undo(ctx, rec)
		return Reservation{}, fmt.Errorf("reserve %s: mark held: %w", rec.ID, err)
	}
	rec.State = stateHeld
	return rec.reservation(), nil
}

// undo releases every hold of rec and deletes its record if it is still this incarnation.
// It runs after the caller's context may be done, so it has its own short deadline; errors
// are dropped because the sweeper finishes from the record what undo could not.
func (s *service) undo(ctx context.Context, rec record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = kv.Mutate(ctx, s.reservations, rec.ID, func(r *record, exists bool) error {
		if !exists || r.Token != rec.Token || r.State == stateReleasing {
			return kv.ErrSkip
		}
		r.State = stateReleasing
		return nil
	})
	_ = s.release(ctx, rec)
}

// hold moves l.Quantity units of l.ProductID from available into the hold named token.
// Taking a hold that is already there is a no-op, so a retry never holds twice.
func (s *service) hold(ctx context.Context, token string, l line) error {
	_, err := kv.Mutate(ctx, s.stock, l.ProductID, func(d *stockDoc, _ bool) error {
		if _, ok := d.Holds[token]; ok {
			return kv.ErrSkip
		}
		if d.Available < l.Quantity {
			return &OutOfStockError{ProductID: l.ProductID, Requested: l.Quantity, Available: d.Available}
		}
		d.Available -= l.Quantity
		if d.Holds == nil {
			d.Holds = map[string]int64{}
		}
		d.Holds[token] = l.Quantity
		return nil
	})
	return err
}

// unhold returns the hold named token on productID to available; no hold is a no-op.
func (s *service) unhold(ctx context.Context, token, productID string) error {
	_, err := kv.Mutate(ctx, s.stock, productID, func(d *stockDoc, _ bool) error {
		q, ok := d.Holds[token]
		if !ok {
			return kv.ErrSkip
		}
		delete(d.Holds, token)
		d.Available += q
		return nil
	})
	if err != nil {
		return fmt.Errorf("release hold on %s: %w", productID, err)
	}
	return nil
}

// sell moves the hold named token on productID into sold; no hold means already sold.
func (s *service) sell(ctx context.Context, token, productID string) error {
	_, err := kv.Mutate(ctx, s.stock, productID, func(d *stockDoc, _ bool) error {
		q, ok := d.Holds[token]
		if !ok {
			return kv.ErrSkip
		}
		delete(d.Holds, token)
		d.Sold += q
		return nil
	})
	if err != nil {
		return fmt.Errorf("sell hold on %s: %w", productID, err)
	}
	return nil
}

func (s *service) Commit(ctx context.Context, reservationID string) error {
	if err := ids.Check("reservation_id", reservationID); err != nil {
		return err
	}
	cur, rev, err := kv.Get[record](ctx, s.reservations, reservationID)
	if errors.Is(err, kv.ErrNotFound) {
		return fmt.Errorf("commit %s: %w", reservationID, ErrReservationNotFound)
	}
	if err != nil {
		return fmt.Errorf("commit %s: %w", reservationID, err)
	}
	rec, rev, err := kv.MutateFrom(ctx, s.reservations, reservationID, cur, rev, func(r *record, exists bool) error {
		if !exists {
			return ErrReservationNotFound
		}
		switch r.State {
		case stateHeld:
			if !s.now().Before(r.ExpiresAt) {
				return fmt.Errorf("expired at %s: %w", r.ExpiresAt.Format(time.RFC3339), ErrReservationNotFound)
			}
			r.State = stateCommit
			return nil
		case stateCommit:
			return kv.ErrSkip // a commit that stopped midway: finish it
		case stateCommitted:
			return errNoop
		default: // still being made, or being released
			return ErrReservationNotFound
		}
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("commit %s: %w", reservationID, err)
	}
	if err := s.finishCommit(ctx, rec, rev); err != nil {
		return fmt.Errorf("commit %s: %w", reservationID, err)
	}
	return nil
}

// finishCommit sells every hold of a record in state committing and turns it into a
// tombstone. Every step is idempotent, so Commit and the sweeper may both run it. rev is the
// record's revision as the caller left it (0: unknown, read it).
func (s *service) finishCommit(ctx context.Context, rec record, rev uint64) error {
	for _, l := range rec.Lines {
		if err := s.sell(ctx, rec.Token, l.ProductID); err != nil {
			return err
		}
	}
	markCommitted := func(r *record, exists bool) error {
		if !exists || r.Token != rec.Token || r.State != stateCommit {
			return kv.ErrSkip
		}
		r.State = stateCommitted
		r.ForgetAt = s.now().Add(tombstoneTTL)
		return nil
	}
	var err error
	if rev > 0 {
		_, _, err = kv.MutateFrom(ctx, s.reservations, rec.ID, rec, rev, markCommitted)
	} else {
		_, err = kv.Mutate(ctx, s.reservations, rec.ID, markCommitted)
	}
	if err != nil {
		return fmt.Errorf("mark committed: %w", err)
	}
	return nil
}

func (s *service) Release(ctx context.Context, reservationID string) error {
	if err := ids.Check("reservation_id", reservationID); err != nil {
		return err
	}
	rec, err := kv.Mutate(ctx, s.reservations, reservationID, func(r *record, exists bool) error {
		if !exists {
			return errNoop
		}
		switch r.State {
		case stateReserving, stateHeld:
			r.State = stateReleasing
			return nil
		case stateReleasing:
			return kv.ErrSkip // a release that stopped midway: finish it
		default: // committing or committed: a commit is never undone
			return errNoop
		}
	})
	if errors.Is(err, errNoop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release %s: %w", reservationID, err)
	}
	if err := s.release(ctx, rec); err != nil {
		return fmt.Errorf("release %s: %w", reservationID, err)
	}
	return nil
}

// release returns every hold of a record in state releasing and deletes the record.
func (s *service) release(ctx context.Context, rec record) error {
	for _, l := range rec.Lines {
		if err := s.unhold(ctx, rec.Token, l.ProductID); err != nil {
			return err
		}
	}
	return s.deleteIf(ctx, rec.ID, func(r record) bool {
		return r.Token == rec.Token && r.State == stateReleasing
	})
}

// releaseExpired claims rec for release if it is still the same incarnation, still not
// committed and past its expiry, then releases it. It reports whether it released it.
func (s *service) releaseExpired(ctx context.Context, rec record) (bool, error) {
	claimed, err := kv.Mutate(ctx, s.reservations, rec.ID, func(r *record, exists bool) error {
		if !exists || r.Token != rec.Token || s.now().Before(r.ExpiresAt) {
			return errNoop
		}
		switch r.State {
		case stateReserving, stateHeld:
			r.State = stateReleasing
			return nil
		case stateReleasing:
			return kv.ErrSkip
		default:
			return errNoop
		}
	})
	if errors.Is(err, errNoop) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.release(ctx, claimed); err != nil {
		return false, err
	}
	return true, nil
}

// deleteIf deletes the record under id if match says so of its current value, with the
// revision it read, so that a record written meanwhile (a new reservation under the same ID)
// is never deleted by mistake.
func (s *service) deleteIf(ctx context.Context, id string, match func(record) bool) error {
	for attempt := 0; ; attempt++ {
		r, rev, err := kv.Get[record](ctx, s.reservations, id)
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete record: %w", err)
		}
		if !match(r) {
			return nil
		}
		err = s.reservations.Delete(ctx, id, rev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, kv.ErrConflict) || attempt >= 10 {
			return fmt.Errorf("delete record: %w", err)
		}
	}
}

// validateReserve checks a Reserve request and returns its lines merged per product (two
// lines of one product are one hold) and sorted by product ID, the order holds are taken in.
func validateReserve(id string, lines []Line) ([]line, error) {
	if err := ids.Check("reservation_id", id); err != nil {
		return nil, err
	}
	if len(lines) == 0 || len(lines) > maxLines {
		return nil, validation.Errorf("lines", "must hold 1 to %d lines, got %d", maxLines, len(lines))
	}
	qty := make(map[string]int64, len(lines))
	for i, l := range lines {
		if err := ids.Check(fmt.Sprintf("lines[%d].product_id", i), l.ProductID); err != nil {
			return nil, err
		}
		if l.Quantity < 1 {
			return nil, validation.Errorf(fmt.Sprintf("lines[%d].quantity", i), "must be at least 1, got %d", l.Quantity)
		}
		if qty[l.ProductID] > math.MaxInt64-l.Quantity {
			return nil, validation.Errorf(fmt.Sprintf("lines[%d].quantity", i), "too large")
		}
		qty[l.ProductID] += l.Quantity
	}
	merged := make([]line, 0, len(qty))
	for p, q := range qty {
		merged = append(merged, line{ProductID: p, Quantity: q})
	}
	slices.SortFunc(merged, func(a, b line) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return merged, nil
}
