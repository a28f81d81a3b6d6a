//go:build !mitosis_group || mitosis_orders

// Part of the implementation: only the binaries that run orders link it (bounded.Group.BuildTags).

package orders

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
)

// Saga states, in order. Before stateCharged a checkout that stops is compensated (the Undo
// calls of its steps in reverse order: refund or void the charge, release the reservation;
// then delete the record); from stateCharged on it is rolled forward (steps.go lists both
// phases' steps). stateCompensating marks a record no live checkout owns any more: claimed by
// Recover, so that the checkout it belongs to (if any) cannot advance it, or given up by its
// checkout when an undo step failed (a peer down). Whoever meets such a record finishes the
// undo at once: a retry with the same key, or RunRecovery's next run, without waiting for
// the record to go stale. A checkout undone by its owner after the pivot was tried (the
// pivot failed, or a roll-forward step's Abort) is marked compensating too, still owned,
// before anything is undone (abandon): a record left saying charged would be rolled forward
// after the refund.
//
// Reserving and charging share one state on purpose: a crash in either is compensated the
// same way (refund and release by the order ID, both no-ops when nothing happened), and every
// state write is a store round trip on the checkout's critical path.
//
// Ownership: one process at a time works on a record. Several processes share the stores
// (the replicas of orders, platform/topology; a process and its successor), so each record
// names its owner: a token the checkout writes when it creates the record, or a process
// writes when it takes the record over (saga.Owner); "" when nobody works on it.
//
//   - The owner's writes (advance, finish) are made at the revision it last wrote, or, after
//     a conflict, only if the record still carries its token: a record taken over is lost
//     to it (errSagaLost), and it stops.
//   - An owner that stops without finishing lets the record go (Owner ""): an undo that
//     failed (compensating) or a roll-forward that failed (charged, see release).
//   - Anyone else acts on a record only after taking it over (claim): a compare-and-set at
//     the revision it read, writing its own token, allowed when the record is unowned
//     (charged or compensating) or stale, untouched for longer than the staleness limit (its
//     owner is taken to be gone: Deps.StaleAfter, a minute unless set, far beyond any step's
//     deadline). Of two processes claiming one record, the store lets one write at that
//     revision: the other gets kv.ErrConflict and leaves it (recovery), or reads it again
//     (a duplicate request). So two replicas never both recover, finish or undo one checkout,
//     and only its owner publishes its order-paid.
//   - The one exception is an owner silent beyond the staleness limit yet alive (a process
//     frozen for a minute): it may repeat a step the new owner made before its next write
//     fails. Every step is safe to repeat (see rollForward), and order-paid carries the
//     order's ID as its message ID, which the stream deduplicates for 10 minutes
//     (shop/natsjs), so even then nothing is doubled.
const (
	statePending      = "pending"      // key claimed; pricing, reserving, charging under the order ID
	stateCharged      = "charged"      // charged: commit, record, take the order out of the cart, publish
	stateDone         = "done"         // the order exists; the record stays, for the retention, as the key's idempotency record
	stateCompensating = "compensating" // owned by nobody: to be undone by whoever meets it
)

// saga is a checkout's record, keyed by its idempotency key: the idempotency record (the
// request hash and the order it made) and the crash-recovery log (the state and everything
// needed to finish or undo the checkout without the request). It never holds the card: a
// checkout interrupted before its charge is compensated, never retried.
//
// Retention: the record of a finished checkout is written, as it becomes done, with a TTL
// of the retention (Deps.Retention, 25 hours unless set), so that a key replayed within it
// returns its order, and the store drops it afterwards on its own (kv.TTL). Unfinished
// records have no TTL: recovery needs them however long a peer stays down. RunRecovery's
// periodic sweeps do not read finished records (an index fed by a watch holds only the
// unfinished ones); a lone Recover, and RunRecovery's index when it starts, read the bucket
// once, which holds one retention's worth of them.
type saga struct {
	Key         string         `json:"key"`
	RequestHash string         `json:"request_hash"`
	OrderID     string         `json:"order_id"`
	State       string         `json:"state"`
	UserID      string         `json:"user_id"`
	Email       string         `json:"email"`
	Address     events.Address `json:"address"`
	Items       []Item         `json:"items,omitempty"`
	WeightGrams int64          `json:"weight_grams"`
	Subtotal    money.Money    `json:"subtotal"`
	Shipping    money.Money    `json:"shipping"`
	Total       money.Money    `json:"total"`
	CreatedAt   time.Time      `json:"created_at"`      // the order's created_at
	ChargedAt   time.Time      `json:"charged_at"`      // order-paid's paid_at
	UpdatedAt   time.Time      `json:"updated_at"`      // last state change; Recover's staleness clock
	Owner       string         `json:"owner,omitempty"` // the token of the process working on it; "" for nobody (see Ownership)

	rev uint64 // the record's revision when this process last read or wrote it
}

func (s saga) order() Order {
	return Order{
		ID:         s.OrderID,
		UserID:     s.UserID,
		Status:     StatusPaid,
		Items:      s.Items,
		Subtotal:   s.Subtotal,
		Shipping:   s.Shipping,
		Total:      s.Total,
		TrackingID: "",
		CreatedAt:  s.CreatedAt,
	}
}

// bought is what the order takes out of the cart: its lines as the cart had them when the
// checkout read it.
func (s saga) bought() []cart.Item {
	items := make([]cart.Item, len(s.Items))
	for i, it := range s.Items {
		items[i] = cart.Item{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	return items
}

func (s saga) orderPaid() events.OrderPaid {
	items := make([]events.Item, len(s.Items))
	for i, it := range s.Items {
		items[i] = events.Item{ProductID: it.ProductID, Quantity: it.Quantity}
	}
	return events.OrderPaid{
		OrderID:     s.OrderID,
		UserID:      s.UserID,
		Email:       s.Email,
		Address:     s.Address,
		Items:       items,
		WeightGrams: s.WeightGrams,
		Total:       s.Total,
		PaidAt:      s.ChargedAt,
	}
}

// errSagaLost: the record is no longer in the state this process left it in, or no longer
// its own: another process took it over (the checkout was stalled past its staleness limit)
// and finishes or compensates it.
var errSagaLost = errors.New("orders: checkout was taken over by another process")

// errRefunded: a charged checkout could not be completed (its reservation lapsed) and was
// compensated in full: charge refunded, stock released, record deleted.
var errRefunded = errors.New("charge refunded")

// errCompensating: a checkout that cannot be finished was marked compensating, and its
// compensation failed midway: it is left to the next retry or recovery run.
var errCompensating = errors.New("left compensating to the next retry or recovery run")

// sideEffectTimeout bounds compensations and roll-forwards, which run detached from the
// request's context: a client that goes away must not leave a checkout half done.
const sideEffectTimeout = 30 * time.Second

// advance moves the saga from state from to state to, writing rec's fields, if the stored
// record is still this checkout's and still in state from. On failure it returns rec as given.
func (o *Orders) advance(ctx context.Context, rec saga, from, to string) (saga, error) {
	next := rec
	next.State = to
	next.UpdatedAt = o.now()
	rev, err := o.put(ctx, next, rec.rev, nil, func(cur saga) error {
		if cur.OrderID != rec.OrderID || cur.State != from || cur.Owner != rec.Owner {
			return errSagaLost
		}
		return nil
	})
	if err != nil {
		return rec, fmt.Errorf("checkout %s: order %s %s → %s: %w", rec.Key, rec.OrderID, from, to, err)
	}
	next.rev = rev
	return next, nil
}

// abandon marks compensating the record of a checkout that is to be undone, if the record
// is still this checkout's and in one of the states from: after a failed pivot, pending or
// charged (the pivot's write may have landed); after an Abort, charged. From then on nobody
// rolls it forward, and its undo may begin: a record is undone only once it says
// compensating, since one that says charged is rolled forward by whoever meets it next.
func (o *Orders) abandon(ctx context.Context, rec saga, from ...string) (saga, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sideEffectTimeout)
	defer cancel()
	next := rec
	next.State = stateCompensating
	next.UpdatedAt = o.now()
	rev, err := o.put(ctx, next, rec.rev, nil, func(cur saga) error {
		if cur.OrderID != rec.OrderID || cur.Owner != rec.Owner || !slices.Contains(from, cur.State) {
			return errSagaLost
		}
		return nil
	})
	if err != nil {
		return rec, fmt.Errorf("checkout %s: order %s %s → %s: %w", rec.Key, rec.OrderID, rec.State, stateCompensating, err)
	}
	next.rev = rev
	return next, nil
}

// claim takes rec over for this process (see Ownership): it writes rec in state to, with a
// new owner token and UpdatedAt now, at the revision rec was read at. kv.ErrConflict (or
// kv.ErrNotFound) means someone else wrote it since: another claim, its owner, a finish.
func (o *Orders) claim(ctx context.Context, rec saga, to string) (saga, error) {
	now := o.now()
	next := rec
	next.State = to
	next.Owner = ids.New("own", now)
	next.UpdatedAt = now
	data, err := kv.EncodeBuffer(&next)
	if err != nil {
		return rec, fmt.Errorf("encode saga %s: %w", rec.Key, err)
	}
	rev, err := o.stores.Sagas.Update(ctx, rec.Key, data.Bytes(), rec.rev)
	data.Free()
	if err != nil {
		return rec, fmt.Errorf("take over checkout %s: %w", rec.Key, err)
	}
	next.rev = rev
	return next, nil
}

// lostClaim tells whether a claim failed because someone else wrote the record first.
func lostClaim(err error) bool {
	return errors.Is(err, kv.ErrConflict) || errors.Is(err, kv.ErrNotFound)
}

// giveUp lets rec go in state to (see Ownership), if it is still this owner's as it left it:
// whoever meets it next (a retry with its key, the next recovery run) takes it over at once
// rather than once it is stale. When the write fails too, the record waits to go stale.
func (o *Orders) giveUp(ctx context.Context, rec saga, to string) error {
	next := rec
	next.State = to
	next.Owner = ""
	next.UpdatedAt = o.now()
	_, err := o.put(ctx, next, rec.rev, nil, func(cur saga) error {
		if cur.OrderID != rec.OrderID || cur.State != rec.State || cur.Owner != rec.Owner {
			return errSagaLost
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkout %s: let order %s go (%s): %w", rec.Key, rec.OrderID, to, err)
	}
	return nil
}

// release lets a charged checkout whose roll-forward failed go, for the next one who meets
// it to finish (see giveUp).
func (o *Orders) release(ctx context.Context, rec saga, why error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sideEffectTimeout)
	defer cancel()
	if err := o.giveUp(ctx, rec, rec.State); err != nil {
		o.log.Warn("finish checkout: record stays for recovery once stale", "key", rec.Key, "order_id", rec.OrderID, "err", errors.Join(why, err))
		return
	}
	o.log.Warn("finish checkout: left to the next retry or recovery run", "key", rec.Key, "order_id", rec.OrderID, "err", why)
}

// takeOver claims a due record (see due) and finishes it: a charged one is rolled forward
// (its order returned), any other undone (errStartOver: its key is free again). taken is
// false when another process claimed it first, or it moved on since it was read; nothing
// was done then.
func (o *Orders) takeOver(ctx context.Context, rec saga) (ord Order, taken bool, err error) {
	to := stateCompensating
	if rec.State == stateCharged {
		to = stateCharged
	}
	claimed, err := o.claim(ctx, rec, to)
	if lostClaim(err) {
		return Order{}, false, nil
	}
	if err != nil {
		return Order{}, false, err
	}
	o.log.Info("took over checkout", "key", rec.Key, "order_id", rec.OrderID, "state", rec.State, "owner_was", rec.Owner)
	if to == stateCharged {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sideEffectTimeout)
		defer cancel()
		ord, err := o.rollForward(fctx, claimed, nil)
		if err != nil && !errors.Is(err, errRefunded) && !errors.Is(err, errCompensating) {
			o.release(ctx, claimed, err)
		}
		return ord, true, err
	}
	if err := o.undo(ctx, claimed, undoAll()); err != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sideEffectTimeout)
		defer cancel()
		if gerr := o.giveUp(ctx, claimed, stateCompensating); gerr != nil {
			err = errors.Join(err, gerr)
		}
		return Order{}, true, fmt.Errorf("undo checkout %s: %w", rec.Key, err)
	}
	return Order{}, true, errStartOver
}

// put writes next as its key's record, with the write option opt (nil: none), if the
// record is still at revision rev, the one this process last saw (0: none). Otherwise it
// reads the record again and writes over it only if allow accepts what is there now
// (kv.ErrSkip from allow: leave it, and succeed). Writing at the known revision saves the
// read that kv.Mutate would make on every transition.
func (o *Orders) put(ctx context.Context, next saga, rev uint64, opt kv.WriteOption, allow func(cur saga) error) (uint64, error) {
	data, err := kv.EncodeBuffer(&next)
	if err != nil {
		return 0, fmt.Errorf("encode saga %s: %w", next.Key, err)
	}
	defer data.Free()
	var opts []kv.WriteOption // none rather than a nil one: the variadic slice is an allocation a write
	if opt != nil {
		opts = []kv.WriteOption{opt}
	}
	// Few writers ever touch one record (its checkout, a duplicate finishing it, Recover),
	// so a handful of attempts is plenty.
	for range 10 {
		if rev != 0 {
			newRev, err := o.stores.Sagas.Update(ctx, next.Key, data.Bytes(), rev, opts...)
			if !errors.Is(err, kv.ErrConflict) {
				return newRev, err
			}
		}
		cur, curRev, err := kv.Get[saga](ctx, o.stores.Sagas, next.Key)
		if errors.Is(err, kv.ErrNotFound) {
			return 0, errSagaLost
		}
		if err != nil {
			return 0, err
		}
		if err := allow(cur); err != nil {
			if errors.Is(err, kv.ErrSkip) {
				return curRev, nil
			}
			return 0, err
		}
		rev = curRev
	}
	return 0, fmt.Errorf("write saga %s: %w", next.Key, kv.ErrConflict)
}

// compensate undoes a checkout that has not been charged (or whose charge is to be undone):
// it runs the undo steps given (see compensations) in their order, then deletes its record,
// and returns the undo's error.
// When a step fails the record stays, marked compensating and owned by nobody, so that the
// customer's retry or RunRecovery finishes the undo (all of it: undoAll) as soon as the peer
// is back, rather than after the record goes stale (a minute in the services), answering
// the retries 503 all that time.
func (o *Orders) compensate(ctx context.Context, rec saga, undos []step) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sideEffectTimeout)
	defer cancel()
	err := o.undo(ctx, rec, undos)
	if err == nil {
		return nil
	}
	if merr := o.giveUp(ctx, rec, stateCompensating); merr != nil {
		o.log.Warn("compensate checkout: record stays for recovery once stale", "key", rec.Key, "order_id", rec.OrderID, "err", errors.Join(err, merr))
		return err
	}
	o.log.Warn("compensate checkout: left to the next retry or recovery run", "key", rec.Key, "order_id", rec.OrderID, "err", err)
	return err
}

// undo runs the undo steps given, in their order, then deletes rec's record; it stops at
// the first that fails.
func (o *Orders) undo(ctx context.Context, rec saga, undos []step) error {
	for _, s := range undos {
		if err := s.undo(o, ctx, rec.OrderID); err != nil {
			return err
		}
	}
	return o.drop(ctx, rec)
}

// drop deletes rec's record if it is still this checkout's (a later attempt with the same key
// may have its own record there by now).
func (o *Orders) drop(ctx context.Context, rec saga) error {
	for {
		cur, rev, err := kv.Get[saga](ctx, o.stores.Sagas, rec.Key)
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete saga %s: %w", rec.Key, err)
		}
		if cur.OrderID != rec.OrderID {
			return nil
		}
		err = o.stores.Sagas.Delete(ctx, rec.Key, rev)
		if !errors.Is(err, kv.ErrConflict) {
			if err != nil {
				return fmt.Errorf("delete saga %s: %w", rec.Key, err)
			}
			return nil
		}
	}
}

// rollForward finishes a charged checkout: the RollForward steps of checkoutSteps, each
// group of them at once, then the record is marked done. Every step is safe to repeat, also
// concurrently, because Recover repeats them: commit is a no-op the second time, the order
// is written once, the cart removes an order's items once (whatever the user added since
// stays), and the broker drops a re-published event by its ID. (The order is in its user's
// history already: run put it there before the charge was recorded.) A step's Abort error
// compensates the checkout in full instead (errRefunded), once its record says compensating
// (abandon); a compensation that fails midway leaves it so for the next comer
// (errCompensating).
func (o *Orders) rollForward(ctx context.Context, rec saga, history <-chan historyRead) (Order, error) {
	a := &attempt{rec: rec, history: history}
	steps := o.steps
	for lo := 0; lo < len(steps); {
		hi := groupEnd(steps, lo)
		if steps[lo].Phase != RollForward {
			lo = hi
			continue
		}
		errs := o.runGroup(ctx, a, steps[lo:hi])
		err := firstError(errs)
		if err == nil {
			lo = hi
			continue
		}
		undos := groupCompensations(steps, lo, errs)
		if undos == nil {
			return Order{}, err
		}
		// Undone only once the record says compensating: left saying charged after the
		// refund, it would be rolled forward by the next comer, whose Commit may succeed
		// where this one's failed (an inventory whose clock is behind this one's).
		abandoned, aerr := o.abandon(ctx, rec, stateCharged)
		if aerr != nil {
			return Order{}, fmt.Errorf("checkout: order %s cannot be finished (%s) and cannot be compensated yet (retried): %w", rec.OrderID, steps[lo].Name, errors.Join(err, aerr))
		}
		if uerr := o.compensate(ctx, abandoned, undos); uerr != nil {
			return Order{}, fmt.Errorf("checkout: order %s cannot be finished (%s) and its compensation failed: %w: %w", rec.OrderID, steps[lo].Name, errCompensating, errors.Join(err, uerr))
		}
		return Order{}, fmt.Errorf("checkout: order %s cannot be finished (%s): %w: %w", rec.OrderID, steps[lo].Name, errRefunded, err)
	}
	if err := o.finish(ctx, rec); err != nil {
		return Order{}, err
	}
	return a.ord, nil
}

// finish marks a charged saga done (it may be done already: two roll-forwards may race),
// to be kept for the retention from now on.
func (o *Orders) finish(ctx context.Context, rec saga) error {
	next := rec
	next.State = stateDone
	next.UpdatedAt = o.now()
	_, err := o.put(ctx, next, rec.rev, kv.TTL(o.retention), func(cur saga) error {
		switch {
		case cur.OrderID != rec.OrderID:
			return errSagaLost // cannot happen: nothing deletes a charged record but rollForward
		case cur.State == stateDone:
			return kv.ErrSkip
		case cur.State != stateCharged || cur.Owner != rec.Owner:
			return errSagaLost
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkout %s: order %s charged → done: %w", rec.Key, rec.OrderID, err)
	}
	return nil
}

// Recover finishes or compensates the checkouts that stopped halfway: every saga record not
// done and not updated within olderThan. Before its charge a checkout is compensated
// (charge voided, reservation released, record deleted; the customer retries); once charged
// it is rolled forward to a paid order. It returns how many checkouts it handled, and keeps
// going past one that fails (the error says which), so that a later run retries it.
//
// A process that owns every saga (the monolith at start) passes 0; replicas sharing the
// stores pass a duration well beyond any live checkout (a minute), so as not to compensate
// each other's. Recover takes each record over before it acts (see Ownership): a stalled
// checkout cannot finish behind its back, and of several replicas recovering at once one
// handles each record; the others leave it.
//
// Recover reads every record, done ones included, in one watch of the bucket: fine once at
// start; to recover periodically use RunRecovery, whose sweeps read only unfinished records.
func (o *Orders) Recover(ctx context.Context, olderThan time.Duration) (int, error) {
	items, err := kv.Scan(ctx, o.stores.Sagas, func(s saga) bool { return unfinished(s.State) })
	if err != nil {
		return 0, fmt.Errorf("recover checkouts: %w", err)
	}
	return o.recover(ctx, items, olderThan)
}

// Timing of the recovery of abandoned checkouts, the same in every process that runs it.
const (
	// RecoverEvery is how often unfinished checkouts are looked for.
	RecoverEvery = 5 * time.Second
	// StaleSaga is the age after which a checkout untouched is taken to be abandoned (unless
	// Deps.StaleAfter says otherwise): far beyond any live checkout's deadline, so that
	// replicas never compensate each other's live checkouts, and a checkout whose own
	// compensation failed (its store was down, say) is retried.
	StaleSaga = time.Minute
)

// RunRecovery does the work of Recover every interval until ctx ends, logging what it did.
// It keeps an index of the unfinished saga records, up to date with a watch, so that a run
// reads nothing of the finished checkouts, whose records are kept for the retention: its
// cost follows the checkouts in flight, not the day's worth of checkouts made.
func (o *Orders) RunRecovery(ctx context.Context, every, olderThan time.Duration) {
	index := o.sagaIndex()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { index.Run(ctx) })
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := o.recoverIndex(ctx, index, olderThan)
		if err != nil && ctx.Err() == nil {
			o.log.Warn("recover checkouts", "handled", n, "err", err)
		} else if n > 0 {
			o.log.Info("recovered checkouts", "count", n)
		}
	}
}

// unfinished tells whether recovery looks at a saga record in state: a checkout not done.
func unfinished(state string) bool { return state != stateDone }

// sagaView is what RunRecovery's index keeps of a saga record: what due decides on. The
// index decodes every write of the bucket, three a checkout, and most of a record (its
// items, its address) is of no use to it; a record found due is read whole before
// recovery acts on it, which is rare.
type sagaView struct {
	State     string    `json:"state"`
	UpdatedAt time.Time `json:"updated_at"`
	Owner     string    `json:"owner,omitempty"`
}

// sagaIndex returns an index of the unfinished saga records, for RunRecovery to Run.
func (o *Orders) sagaIndex() *kv.Tracker[sagaView] {
	return kv.NewTracker(o.stores.Sagas, func(v sagaView) bool { return unfinished(v.State) }, o.log)
}

// recoverIndex recovers the stale checkouts that index holds, each read whole first. Until
// the index has read the bucket once there is nothing to go by, and nothing is recovered.
func (o *Orders) recoverIndex(ctx context.Context, index *kv.Tracker[sagaView], olderThan time.Duration) (int, error) {
	select {
	case <-index.Ready():
	default:
		return 0, nil
	}
	now := o.now()
	var recs []kv.Item[saga]
	var errs []error
	for _, it := range index.Items(func(it kv.Item[sagaView]) bool {
		return it.Err != nil || it.Value.due(now, olderThan)
	}) {
		e, err := o.stores.Sagas.Get(ctx, it.Key)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			continue // dropped since: compensated, or expired
		case err != nil:
			errs = append(errs, fmt.Errorf("recover checkout %s: read saga: %w", it.Key, err))
			continue
		}
		var rec saga
		if err := kv.Decode(e.Value, &rec); err != nil {
			recs = append(recs, kv.Item[saga]{Key: it.Key, Revision: e.Revision, Err: fmt.Errorf("decode %q: %w", it.Key, err)})
			continue
		}
		recs = append(recs, kv.Item[saga]{Key: it.Key, Value: rec, Revision: e.Revision})
	}
	n, err := o.recover(ctx, recs, olderThan)
	return n, errors.Join(append(errs, err)...)
}

// due tells whether rec may be taken over now: when it is unfinished and nobody owns it (a
// charged or compensating record let go), or it is stale. A done record is never due, however
// old: RunRecovery's index lags the bucket and may still list a checkout that has finished
// since, and taking that one over would compensate (refund) a paid order.
func due(rec saga, now time.Time, olderThan time.Duration) bool {
	return sagaView{State: rec.State, UpdatedAt: rec.UpdatedAt, Owner: rec.Owner}.due(now, olderThan)
}

func (v sagaView) due(now time.Time, olderThan time.Duration) bool {
	if !unfinished(v.State) {
		return false
	}
	unowned := v.Owner == "" && (v.State == stateCompensating || v.State == stateCharged)
	return unowned || now.Sub(v.UpdatedAt) >= olderThan
}

// recover finishes or compensates the stale checkouts among items. The items may be stale
// themselves (RunRecovery's index lags the bucket): recoverOne decides on every record as
// it is in the store.
func (o *Orders) recover(ctx context.Context, items []kv.Item[saga], olderThan time.Duration) (int, error) {
	n := 0
	var errs []error
	for _, it := range items {
		if it.Err != nil {
			o.log.Error("undecodable saga record; skipped", "key", it.Key, "err", it.Err)
			continue
		}
		rec := it.Value
		rec.rev = it.Revision
		if !due(rec, o.now(), olderThan) {
			continue
		}
		handled, err := o.recoverOne(ctx, rec, olderThan)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover checkout %s (order %s, %s): %w", rec.Key, rec.OrderID, rec.State, err))
			continue
		}
		if handled {
			n++
			o.log.Info("recovered checkout", "key", rec.Key, "order_id", rec.OrderID, "state", rec.State)
		}
	}
	return n, errors.Join(errs...)
}

// recoverOne finishes or compensates one due checkout, as rec was listed, reporting whether
// it did anything: nothing when another process took it over first, or it moved on since
// the listing (the next run sees it as it is then).
func (o *Orders) recoverOne(ctx context.Context, rec saga, _ time.Duration) (bool, error) {
	_, taken, err := o.takeOver(ctx, rec)
	switch {
	case !taken:
		return false, err
	case errors.Is(err, errStartOver):
		return true, nil // compensated: the key is free again
	case errors.Is(err, errRefunded):
		// Handled all the same: nothing is left to do for it.
		o.log.Warn("recovered checkout refunded: its reservation had lapsed", "key", rec.Key, "order_id", rec.OrderID, "err", err)
		return true, nil
	}
	return err == nil, err
}
