//go:build !mitosis_group || mitosis_inventory

// Part of the implementation: only the binaries that run inventory link it (bounded.Group.BuildTags).

package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/validation"
)

// How the implementation keeps the invariant with nothing but single-key compare-and-set,
// in as few store round trips one after another as that allows. Both buckets sit behind
// kv.Cached, so that a write goes at the revision this process last saw, with no read first
// (a revision another process moved on costs the refused write and a read); a decision
// not to write is never taken on what the cache remembers, always on a read. Then:
//
//   - Reserve waits for one round trip: the record's Create and one write per product, all
//     at once.
//   - Commit waits for two: the record marked committing, then one write per product (the
//     sale), all at once. The tombstone is written after it returns.
//
// The buckets:
//
//   - The stock bucket holds one document per product: available, sold and the holds of
//     live reservations (token -> quantity, with the reservation's ID and expiry); reserved
//     is the sum of the holds. Every change is one kv.Mutate of that one document, so
//     available + reserved + sold never changes except by Add, and the "is there enough?"
//     decision sits inside the Mutate function.
//   - The reservations bucket holds one record per reservation ID. A record's token names
//     one incarnation of a reservation ID. Holds are keyed by token, not by ID, so that a
//     slow release of an old incarnation can never remove the holds of a new reservation
//     made later under the same ID.
//
// Reserve writes the record (state reserving) and takes every hold at the same time, and
// returns once all of them are acknowledged: the reservation is made when its record and
// all its holds exist, and nothing else marks it. So either may exist without the other
// after a crash, or while a Reserve is under way:
//
//   - A record without all its holds is found by its ID: a second Reserve of the ID, or a
//     Commit, checks that every hold of the record's token is on its stock document before
//     it goes on. A hold seen there once may be taken as still there: whatever removes
//     the hold of a record's token (a Release, the sweeper, the failed Reserve's undo)
//     moves the record out of reserving first, so that the caller's compare-and-set on
//     the record fails if the hold went. A second Reserve that finds them all marks the record held, so
//     that the first call, if it failed after all (a write whose answer it did not get),
//     does not undo it. A record never made whole expires, and the sweeper releases it.
//   - A hold without its record (the call that took it lost the record's Create to another
//     call, or died first, or its record was released before the hold landed) carries the
//     ID and the expiry of its reservation. The call that took it gives it back when it
//     can; if it cannot, the sweeper finds it on the stock document once it is past that
//     expiry by orphanGrace, reads the record of its ID, and releases the hold if the
//     record is gone or is another incarnation (another token), or sells it if its record
//     is being committed. Until then its units are unavailable: an orphan costs stock for
//     the TTL and orphanGrace, never a sale.
//   - Unless its ID is released first. A caller whose Reserve failed without an answer (its
//     process died, say) releases the ID; with no record there, Release writes a released
//     tombstone in its place, for the TTL and orphanGrace. No record of another token can
//     then be made under the ID: a Create still on its way fails, and its call gives its
//     holds back and returns ErrReservationNotFound. So the sweeper releases a hold of that
//     ID as soon as it is orphanAge old, and a crash mid-Reserve costs the stock it held for
//     seconds, not minutes (sweep.go). A Reserve begun after the release makes the ID anew.
//   - Reserve succeeds only if its writes were all acknowledged before the reservation's
//     expiry, so a hold is treated as an orphan only when its record, if it was ever
//     written, is visible to the sweeper (with clocks agreeing to within orphanGrace).
//   - A Reserve that finds its hold short while another call's holds for the same ID take
//     the units (retries of one reservation racing each other) does not report the product
//     out of stock: it waits for the loser of the record's Create to give its holds back,
//     and tries again.
//
// A record moves reserving [-> held] -> committing -> committed (a tombstone, so that Commit
// stays a no-op for a day), or reserving/held -> releasing -> deleted; a Release that finds
// no record writes one released (a tombstone too). A tombstone is written with a TTL
// (kv.TTL): the store forgets it on its own, and no process keeps it in memory meanwhile
// (the sweeper's index holds open reservations only, see sweep.go), so what a day of
// checkouts leaves costs disk, bounded by the bucket's byte limit, not the memory of every
// process that runs the inventory.
// Every transition is a compare-and-set on the record, so a Commit and a Release (or the
// sweeper) racing for one reservation cannot both win: whoever moves it out of
// reserving/held first decides, and a commit once started is always finished, never
// undone. Commit marks the record committing, sells every hold at the same time, and
// returns: the units are sold before it does. The tombstone is written after it returns;
// if that write never happens, the record stays committing, and the sweeper finishes it
// once past its expiry (selling is idempotent: a hold no longer there is sold), which
// reads its stock documents once, not at every sweep.
//
// A Release (or the sweeper) that wins the record while its Reserve is under way no longer
// makes that Reserve fail: Reserve returns the reservation, the Commit that follows finds
// it released (ErrReservationNotFound, as for an expired one), and the holds that landed
// after the release are orphans.
//
// Residual windows, accepted: clocks of two processes that disagree by more than
// orphanGrace may let the sweeper release a hold whose Reserve, stalled past its expiry,
// is about to succeed; a retry of a reservation racing another call with the same ID may,
// for one round trip, hold units that a third reservation finds missing; a record's Create
// held up across its ID's release, a new reservation of the ID and that one's release too
// makes a record whose holds the sweeper may have let go, which nothing but a caller that
// commits what it released would commit.

// Record states.
const (
	stateReserving = "reserving" // made when its record and every hold exist
	stateHeld      = "held"      // found whole by another call; Commit or Release decides
	stateCommit    = "committing"
	stateReleasing = "releasing"
	stateCommitted = "committed" // tombstone: holds sold, kept so that Commit again is a no-op
	stateReleased  = "released"  // tombstone: released before any record was made (Release)
)

const (
	// tombstoneTTL is how long a committed reservation is remembered, so that a retried
	// Commit is a no-op rather than ErrReservationNotFound: its tombstone's TTL.
	tombstoneTTL = 24 * time.Hour
	// waitLimit bounds how long Reserve waits for another call making the same reservation;
	// a Reserve takes milliseconds, so one still going after this is stuck or dead.
	waitLimit = 5 * time.Second
	// cleanupTimeout bounds the compensation a failed Reserve runs after its caller's
	// context is done, and the tombstone Commit writes after it returns; what they cannot
	// finish the sweeper finishes.
	cleanupTimeout = 5 * time.Second
	// orphanGrace is how long past its reservation's expiry a hold waits before the sweeper
	// looks it up by its reservation's ID: by then the sweep of the record itself has
	// released or sold it, unless it has no record.
	orphanGrace = time.Minute

	// How many stock documents and reservation records a process remembers the revision of
	// (kv.Cached): those of the products being sold and the checkouts under way, with plenty
	// to spare.
	cachedStock        = 4096
	cachedReservations = 4096
)

// stockDoc is the stock bucket's document for one product.
type stockDoc struct {
	Available int64           `json:"available"`
	Sold      int64           `json:"sold"`
	Holds     map[string]hold `json:"holds,omitempty"` // by reservation token
}

// hold is units of a product held for one incarnation of a reservation.
type hold struct {
	Quantity int64     `json:"q"`
	ID       string    `json:"id,omitempty"`   // the reservation's ID, to find its record by
	Until    time.Time `json:"until,omitzero"` // the reservation's expiry
}

// UnmarshalJSONFrom reads a hold, also in the form stock documents had before holds carried
// their reservation (a bare quantity), which the sweeper finds from the record alone. It is
// the JSON v2 form of an UnmarshalJSON method (kv.Decode), which saves the copy of the hold's
// bytes that the older form takes.
func (h *hold) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	if dec.PeekKind() != '{' {
		*h = hold{}
		return json.UnmarshalDecode(dec, &h.Quantity)
	}
	type plain hold
	return json.UnmarshalDecode(dec, (*plain)(h))
}

func (d stockDoc) reserved() int64 {
	var n int64
	for _, h := range d.Holds {
		n += h.Quantity
	}
	return n
}

// heldByOthers is what d holds for reservation id under tokens other than token: the holds
// of other calls making the same reservation, one of which is left without a record.
func (d stockDoc) heldByOthers(id, token string) int64 {
	var n int64
	for t, h := range d.Holds {
		if h.ID == id && t != token {
			n += h.Quantity
		}
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
	// ForgetAt is when the sweeper deletes a tombstone written before tombstones had a TTL
	// (zero on the others): a store kept from an older version forgets those too.
	ForgetAt time.Time `json:"forget_at,omitzero"`
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
	tombstone    kv.WriteOption // how a tombstone is written: with tombstoneTTL
	background   sync.WaitGroup // tombstones being written after their Commit returned
}

// New returns the inventory over its stock and reservations buckets. Reservations expire ttl
// after they are made (ReleaseExpired releases them); now is the clock.
func New(stock, reservations kv.Bucket, now func() time.Time, ttl time.Duration) Service {
	return &service{stock: kv.Cached(stock, cachedStock), reservations: kv.Cached(reservations, cachedReservations), now: now, ttl: ttl,
		tombstone: kv.TTL(tombstoneTTL)}
}

var (
	// errNoop ends a record Mutate that finds nothing to do; it never leaves this file.
	errNoop = errors.New("inventory: nothing to do")
	// errKept ends the compensation of a Reserve whose reservation another call found
	// whole and kept.
	errKept = errors.New("inventory: reservation kept by another call")
	// errAbsent ends a Release's Mutate that finds no record.
	errAbsent = errors.New("inventory: no record")
)

// racedError is a hold short of units that other calls making the same reservation hold:
// one of them will give them back.
type racedError struct{ short *OutOfStockError }

func (e *racedError) Error() string {
	return e.short.Error() + " (held by a retry of the same reservation)"
}

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
	started, began := time.Now(), s.now()
	for {
		rec := record{
			ID:        reservationID,
			Token:     ids.New("rsv", s.now()),
			Lines:     merged,
			ExpiresAt: s.now().Add(s.ttl),
			State:     stateReserving,
		}
		r, err := s.make(ctx, rec)
		if !errors.Is(err, kv.ErrExists) {
			return r, err
		}
		// Another call's record has the ID (this call's holds went back): it decides.
		r, again, err := s.await(ctx, reservationID, started, began)
		if !again {
			return r, err
		}
		if time.Since(started) > waitLimit {
			return Reservation{}, fmt.Errorf("reserve %s: other calls kept making and releasing this reservation for over %v", reservationID, waitLimit)
		}
	}
}

// make writes rec and takes its holds, all at once. If the record's Create finds another
// record, make gives back what it held and returns kv.ErrExists; on any other failure it
// undoes what it did, so that nothing stays held for an order that will not happen.
func (s *service) make(ctx context.Context, rec record) (Reservation, error) {
	var created error
	held := make([]error, len(rec.Lines))
	_ = kv.Concurrently(1+len(rec.Lines), func(i int) error {
		if i == 0 {
			_, created = kv.Create(ctx, s.reservations, rec.ID, rec)
		} else {
			held[i-1] = s.hold(ctx, rec, rec.Lines[i-1])
		}
		return nil
	})
	if errors.Is(created, kv.ErrExists) {
		_ = s.giveBack(ctx, rec, held)
		return Reservation{}, created
	}
	if created == nil {
		s.retryRaced(ctx, rec, held)
	}
	err := created
	for _, herr := range held {
		if herr != nil {
			err = herr // the first short product, in the order of the lines
			break
		}
	}
	var raced *racedError
	if errors.As(err, &raced) {
		err = raced.short
	}
	if err == nil && !s.now().Before(rec.ExpiresAt) {
		err = fmt.Errorf("made after its expiry at %s: %w", rec.ExpiresAt.Format(time.RFC3339), ErrReservationNotFound)
	}
	if err != nil {
		s.undo(ctx, rec, held)
		return Reservation{}, fmt.Errorf("reserve %s: %w", rec.ID, err)
	}
	return rec.reservation(), nil
}

// refused tells whether a hold's error says it was not taken: the product was short.
func refused(err error) bool {
	var raced *racedError
	return errors.Is(err, ErrOutOfStock) || errors.As(err, &raced)
}

// retryRaced takes again, until waitLimit, the holds that found their units held by another
// call making the same reservation: that call lost the record to this one and gives them
// back. held[i] is updated with each line's outcome.
func (s *service) retryRaced(ctx context.Context, rec record, held []error) {
	started := time.Now()
	for i, l := range rec.Lines {
		for attempt := 0; ; attempt++ {
			var raced *racedError
			if !errors.As(held[i], &raced) || time.Since(started) > waitLimit {
				break
			}
			if err := kv.Sleep(ctx, min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)); err != nil {
				held[i] = err
				break
			}
			held[i] = s.hold(ctx, rec, l)
		}
	}
}

// giveBack returns, all at once, the holds of rec that may have been taken: all but those
// refused for want of units. It runs after the caller's context may be done, with its own
// short deadline; a hold it cannot return is the sweeper's (see the top of this file).
func (s *service) giveBack(ctx context.Context, rec record, held []error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return kv.Concurrently(len(rec.Lines), func(i int) error {
		if refused(held[i]) {
			return nil
		}
		return s.unhold(ctx, rec.Token, rec.Lines[i].ProductID)
	})
}

// await follows the record another call made under id until it is made (it returns it),
// released or gone (again: make a new one), or stuck past waitLimit. began is when the
// Reserve began, by the service's clock.
func (s *service) await(ctx context.Context, id string, started, began time.Time) (r Reservation, again bool, err error) {
	for attempt := 0; ; attempt++ {
		existing, rev, err := kv.Get[record](ctx, s.reservations, id)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			return Reservation{}, true, nil // deleted since Create looked: try again
		case err != nil:
			return Reservation{}, false, fmt.Errorf("reserve %s: %w", id, err)
		}
		switch existing.State {
		case stateHeld, stateCommit, stateCommitted:
			return existing.reservation(), false, nil
		case stateReleased:
			// Released before it was made. If that was after this call began, the caller
			// gave up on this call (its Create came late): it is not made after all.
			// Otherwise it is a new reservation under the ID: made anew.
			if releasedAt := existing.ExpiresAt.Add(-s.ttl); began.Before(releasedAt) {
				return Reservation{}, false, fmt.Errorf("reserve %s: released at %s, while this call made it: %w",
					id, releasedAt.Format(time.RFC3339Nano), ErrReservationNotFound)
			}
			if err := s.deleteIf(ctx, id, func(r record) bool { return r.Token == existing.Token && r.State == stateReleased }); err != nil {
				return Reservation{}, false, fmt.Errorf("reserve %s: forget earlier release: %w", id, err)
			}
			return Reservation{}, true, nil
		case stateReleasing:
			// Being released (or a release crashed): finishing it is idempotent.
			if err := s.release(ctx, existing); err != nil {
				return Reservation{}, false, fmt.Errorf("reserve %s: finish earlier release: %w", id, err)
			}
			return Reservation{}, true, nil
		}
		// Being made by another call, or left unfinished. Past its expiry it is dead: release
		// what it took and start over. Whole, it is made: keep it.
		if !s.now().Before(existing.ExpiresAt) {
			if _, err := s.releaseExpired(ctx, existing); err != nil {
				return Reservation{}, false, fmt.Errorf("reserve %s: release stale attempt: %w", id, err)
			}
			return Reservation{}, true, nil
		}
		whole, err := s.whole(ctx, existing)
		if err != nil {
			return Reservation{}, false, fmt.Errorf("reserve %s: %w", id, err)
		}
		if whole {
			_, _, err := kv.MutateFrom(ctx, s.reservations, id, existing, rev, func(r *record, exists bool) error {
				if !exists || r.Token != existing.Token {
					return errNoop
				}
				switch r.State {
				case stateReserving:
					r.State = stateHeld
					return nil
				case stateHeld, stateCommit, stateCommitted:
					return kv.ErrSkip
				}
				return errNoop
			})
			switch {
			case err == nil:
				return existing.reservation(), false, nil
			case !errors.Is(err, errNoop):
				return Reservation{}, false, fmt.Errorf("reserve %s: mark held: %w", id, err)
			}
			// Changed since it was read: look again, within the bound of any wait, so that
			// a state this version does not know (one a later version writes while a
			// deployment rolls) cannot keep the call here.
		}
		if time.Since(started) > waitLimit {
			return Reservation{}, false, fmt.Errorf("reserve %s: another call has been making this reservation for over %v", id, waitLimit)
		}
		// Look again soon: 1ms, doubling up to 50ms.
		if err := kv.Sleep(ctx, min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)); err != nil {
			return Reservation{}, false, fmt.Errorf("reserve %s: %w", id, err)
		}
	}
}

// whole tells whether every hold of rec is on its stock document. A hold this process has
// seen there is taken as there without asking the store: while rec is reserving nothing
// removes it (see the top of this file), and the caller's next step is a compare-and-set
// of rec that fails if it is no longer reserving.
func (s *service) whole(ctx context.Context, rec record) (bool, error) {
	missing := make([]bool, len(rec.Lines))
	err := kv.Concurrently(len(rec.Lines), func(i int) error {
		p := rec.Lines[i].ProductID
		if d, _, found := kv.Peek[stockDoc](s.stock, p); found {
			if _, ok := d.Holds[rec.Token]; ok {
				return nil
			}
		}
		d, _, err := kv.Get[stockDoc](ctx, s.stock, p)
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return fmt.Errorf("read stock of %s: %w", p, err)
		}
		_, ok := d.Holds[rec.Token]
		missing[i] = !ok
		return nil
	})
	if err != nil {
		return false, err
	}
	return !slices.Contains(missing, true), nil
}

// undo compensates a Reserve that failed: if its record is there and still reserving, it
// is claimed for release and released; if it is not there (or is another call's), the holds
// are given back; if another call found it whole and kept it, nothing is undone. held are
// the outcomes of the holds (nil: all unknown); those refused are not looked at again. It
// runs after the caller's context may be done, so it has its own short deadline; errors
// are dropped because the sweeper finishes what undo could not, from the record or the
// holds.
func (s *service) undo(ctx context.Context, rec record, held []error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if held == nil {
		held = make([]error, len(rec.Lines))
	}
	_, err := kv.Mutate(ctx, s.reservations, rec.ID, func(r *record, exists bool) error {
		if !exists || r.Token != rec.Token {
			return errNoop
		}
		switch r.State {
		case stateReserving:
			r.State = stateReleasing
			return nil
		case stateReleasing:
			return kv.ErrSkip
		}
		return errKept
	})
	switch {
	case errors.Is(err, errNoop):
		_ = s.giveBack(ctx, rec, held)
	case err == nil:
		// Claimed for release: the record goes once every hold is back, so that until then
		// the sweeper finds them from it.
		if s.giveBack(ctx, rec, held) == nil {
			_ = s.deleteIf(ctx, rec.ID, func(r record) bool {
				return r.Token == rec.Token && r.State == stateReleasing
			})
		}
	}
}

// hold moves l.Quantity units of l.ProductID from available into the hold named rec.Token.
// Taking a hold that is already there is a no-op, so a retry never holds twice.
func (s *service) hold(ctx context.Context, rec record, l line) error {
	_, err := kv.Mutate(ctx, s.stock, l.ProductID, func(d *stockDoc, _ bool) error {
		if _, ok := d.Holds[rec.Token]; ok {
			return kv.ErrSkip
		}
		if d.Available < l.Quantity {
			short := &OutOfStockError{ProductID: l.ProductID, Requested: l.Quantity, Available: d.Available}
			if others := d.heldByOthers(rec.ID, rec.Token); others > 0 && d.Available+others >= l.Quantity {
				return &racedError{short}
			}
			return short
		}
		d.Available -= l.Quantity
		if d.Holds == nil {
			d.Holds = map[string]hold{}
		}
		d.Holds[rec.Token] = hold{Quantity: l.Quantity, ID: rec.ID, Until: rec.ExpiresAt}
		return nil
	})
	return err
}

// unhold returns the hold named token on productID to available; no hold is a no-op.
func (s *service) unhold(ctx context.Context, token, productID string) error {
	if err := s.settle(ctx, token, productID, func(d *stockDoc) *int64 { return &d.Available }); err != nil {
		return fmt.Errorf("release hold on %s: %w", productID, err)
	}
	return nil
}

// sell moves the hold named token on productID into sold; no hold means already sold.
func (s *service) sell(ctx context.Context, token, productID string) error {
	if err := s.settle(ctx, token, productID, func(d *stockDoc) *int64 { return &d.Sold }); err != nil {
		return fmt.Errorf("sell hold on %s: %w", productID, err)
	}
	return nil
}

// settle ends the hold named token on productID, adding its units to the count into picks;
// no hold changes nothing (it was settled before), so settling again is safe.
func (s *service) settle(ctx context.Context, token, productID string, into func(*stockDoc) *int64) error {
	_, err := kv.Mutate(ctx, s.stock, productID, func(d *stockDoc, _ bool) error {
		h, ok := d.Holds[token]
		if !ok {
			return kv.ErrSkip
		}
		delete(d.Holds, token)
		*into(d) += h.Quantity
		return nil
	})
	return err
}

// sellAll sells every hold of rec, all at once.
func (s *service) sellAll(ctx context.Context, rec record) error {
	return kv.Concurrently(len(rec.Lines), func(i int) error {
		return s.sell(ctx, rec.Token, rec.Lines[i].ProductID)
	})
}

func (s *service) Commit(ctx context.Context, reservationID string) error {
	if err := ids.Check("reservation_id", reservationID); err != nil {
		return err
	}
	// What this process last saw of the record, if it is one to commit: the write that
	// marks it committing is tried at that revision, and only a refusal makes it read.
	rec, rev, found := kv.Peek[record](s.reservations, reservationID)
	guess := found && rev > 0 && (rec.State == stateReserving || rec.State == stateHeld) && s.now().Before(rec.ExpiresAt)
	for attempt := 0; ; attempt++ {
		if !guess {
			var err error
			rec, rev, err = kv.Get[record](ctx, s.reservations, reservationID)
			if errors.Is(err, kv.ErrNotFound) {
				return fmt.Errorf("commit %s: %w", reservationID, ErrReservationNotFound)
			}
			if err != nil {
				return fmt.Errorf("commit %s: %w", reservationID, err)
			}
		}
		switch rec.State {
		case stateCommitted:
			return nil
		case stateCommit: // a commit that stopped midway: finish it
			if err := s.finishCommit(ctx, rec, rev); err != nil {
				return fmt.Errorf("commit %s: %w", reservationID, err)
			}
			return nil
		case stateReserving, stateHeld:
		default: // being released
			return fmt.Errorf("commit %s: %w", reservationID, ErrReservationNotFound)
		}
		if !s.now().Before(rec.ExpiresAt) {
			return fmt.Errorf("commit %s: expired at %s: %w", reservationID, rec.ExpiresAt.Format(time.RFC3339), ErrReservationNotFound)
		}
		if rec.State == stateReserving {
			whole, err := s.whole(ctx, rec)
			if err != nil {
				return fmt.Errorf("commit %s: %w", reservationID, err)
			}
			if !whole {
				if guess {
					guess = false
					continue
				}
				return fmt.Errorf("commit %s: still being made: %w", reservationID, ErrReservationNotFound)
			}
		}
		next := rec
		next.State = stateCommit
		data, err := kv.EncodeBuffer(&next)
		if err != nil {
			return fmt.Errorf("commit %s: encode: %w", reservationID, err)
		}
		rev, err = s.reservations.Update(ctx, reservationID, data.Bytes(), rev)
		data.Free()
		if errors.Is(err, kv.ErrConflict) && attempt < maxCommitAttempts {
			guess = false
			if err := kv.Backoff(ctx, attempt); err != nil {
				return fmt.Errorf("commit %s: %w", reservationID, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("commit %s: mark committing: %w", reservationID, err)
		}
		if err := s.sellAll(ctx, next); err != nil {
			return fmt.Errorf("commit %s: %w", reservationID, err)
		}
		// The units are sold; the tombstone is bookkeeping, written off the caller's path.
		// If it is lost, the record stays committing and the sweeper writes it. It is
		// encoded here, on the caller's goroutine, whose stack has grown already: encoding
		// on a goroutine of its own grew that goroutine's stack several times over (1.5% of
		// the monolith checkout benchmark's CPU went to copying stacks there).
		tomb := next
		tomb.State = stateCommitted
		data, encErr := kv.EncodeBuffer(&tomb)
		s.background.Go(func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if encErr == nil {
				// What markCommitted writes first, at the revision Commit wrote; it reads and
				// decides again only if the record changed since.
				_, err := s.reservations.Update(ctx, reservationID, data.Bytes(), rev, s.tombstone)
				data.Free()
				if !errors.Is(err, kv.ErrConflict) {
					return
				}
				rev = 0
			}
			_ = s.markCommitted(ctx, next, rev)
		})
		return nil
	}
}

// maxCommitAttempts bounds Commit's retries when its record changes under it: only the few
// other callers of one reservation (a Release, the sweeper, a retry) ever write it.
const maxCommitAttempts = 20

// finishCommit sells every hold of a record in state committing and turns it into a
// tombstone. Every step is idempotent, so Commit and the sweeper may both run it. rev is the
// record's revision as the caller left it (0: unknown, read it).
func (s *service) finishCommit(ctx context.Context, rec record, rev uint64) error {
	if err := s.sellAll(ctx, rec); err != nil {
		return err
	}
	return s.markCommitted(ctx, rec, rev)
}

// markCommitted turns rec, committing and all sold, into a tombstone.
func (s *service) markCommitted(ctx context.Context, rec record, rev uint64) error {
	markCommitted := func(r *record, exists bool) error {
		if !exists || r.Token != rec.Token || r.State != stateCommit {
			return kv.ErrSkip
		}
		r.State = stateCommitted
		return nil
	}
	var err error
	if rev > 0 {
		_, _, err = kv.MutateFrom(ctx, s.reservations, rec.ID, rec, rev, markCommitted, s.tombstone)
	} else {
		_, err = kv.Mutate(ctx, s.reservations, rec.ID, markCommitted, s.tombstone)
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
	for attempt := 0; ; attempt++ {
		rec, err := kv.Mutate(ctx, s.reservations, reservationID, func(r *record, exists bool) error {
			if !exists {
				return errAbsent
			}
			switch r.State {
			case stateReserving, stateHeld:
				r.State = stateReleasing
				return nil
			case stateReleasing:
				return kv.ErrSkip // a release that stopped midway: finish it
			default: // committing or committed: a commit is never undone; or released already
				return errNoop
			}
		})
		switch {
		case errors.Is(err, errNoop):
			return nil
		case errors.Is(err, errAbsent):
			// A Reserve that never made its record (its process died, or its Create is
			// still on its way) may have taken holds. Its ID is marked released, so that
			// the sweeper lets those go at once (sweepHolds), and so that the Create, if it
			// comes, fails and its call gives them back.
			err = s.markReleased(ctx, reservationID)
			if errors.Is(err, kv.ErrExists) && attempt < 2 {
				continue // a record came meanwhile: release it
			}
			if err != nil {
				return fmt.Errorf("release %s: %w", reservationID, err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("release %s: %w", reservationID, err)
		}
		if err := s.release(ctx, rec); err != nil {
			return fmt.Errorf("release %s: %w", reservationID, err)
		}
		return nil
	}
}

// markReleased writes the tombstone of a reservation released before its record was made.
// It outlives any Reserve that could still make the record, by the TTL and orphanGrace: a
// Create of that record landing after the tombstone is gone is past its own reservation's
// expiry, so its Reserve fails and gives its holds back (make).
func (s *service) markReleased(ctx context.Context, id string) error {
	now := s.now()
	tomb := record{ID: id, Token: ids.New("rsv", now), ExpiresAt: now.Add(s.ttl), State: stateReleased}
	_, err := kv.Create(ctx, s.reservations, id, tomb, kv.TTL(s.ttl+orphanGrace))
	return err
}

// release returns every hold of a record in state releasing, all at once, and deletes the
// record.
func (s *service) release(ctx context.Context, rec record) error {
	err := kv.Concurrently(len(rec.Lines), func(i int) error {
		return s.unhold(ctx, rec.Token, rec.Lines[i].ProductID)
	})
	if err != nil {
		return err
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
// is never deleted by mistake. The first attempt goes by what this process last saw of the
// record, if that matches: the delete at its revision settles whether it still does.
func (s *service) deleteIf(ctx context.Context, id string, match func(record) bool) error {
	r, rev, found := kv.Peek[record](s.reservations, id)
	guess := found && rev > 0 && match(r)
	for attempt := 0; ; attempt++ {
		if !guess {
			var err error
			r, rev, err = kv.Get[record](ctx, s.reservations, id)
			if errors.Is(err, kv.ErrNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("delete record: %w", err)
			}
			if !match(r) {
				return nil
			}
		}
		err := s.reservations.Delete(ctx, id, rev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, kv.ErrConflict) || attempt >= 10 {
			return fmt.Errorf("delete record: %w", err)
		}
		guess = false
	}
}

// validateReserve checks a Reserve request and returns its lines merged per product (two
// lines of one product are one hold) and sorted by product ID, the order holds are taken in.
func validateReserve(id string, lines []Line) ([]line, error) {
	if err := ids.Check("reservation_id", id); err != nil {
		return nil, err
	}
	if len(lines) == 0 || len(lines) > MaxLines {
		return nil, validation.Errorf("lines", "must hold 1 to %d lines, got %d", MaxLines, len(lines))
	}
	qty := make(map[string]int64, len(lines))
	for i, l := range lines {
		if !ids.Valid(l.ProductID) { // the field's name is built only for the error
			return nil, ids.Check(fmt.Sprintf("lines[%d].product_id", i), l.ProductID)
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
