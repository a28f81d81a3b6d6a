package inventory

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// The crash points of the protocol at the top of service.go: what a process that dies
// between two of Reserve's or Commit's writes leaves, and what the sweeper (and retries)
// make of it. Every test ends with the invariant checked on every product: available +
// reserved + sold is what was added, and nothing stays held that nothing will release.

// stocked is what each test's products start with.
const stocked = 10

// newHold is a hold as Reserve takes it for rec.
func newHold(rec record, q int64) hold { return hold{Quantity: q, ID: rec.ID, Until: rec.ExpiresAt} }

// expectSettled checks every product of the tests: nothing reserved, available + sold is
// what was stocked, and sold is want[product].
func (f *fixture) expectSettled(t *testing.T, sold map[string]int64) {
	t.Helper()
	for _, p := range []string{"sku-a", "sku-b"} {
		f.expectStock(t, Stock{ProductID: p, Available: stocked - sold[p], Sold: sold[p]})
	}
}

func (f *fixture) sweep(t *testing.T) int {
	t.Helper()
	n, err := f.svc.ReleaseExpired(t.Context())
	if err != nil {
		t.Fatalf("ReleaseExpired: %v", err)
	}
	return n
}

func TestCrashAfterTheRecordBeforeTheHolds(t *testing.T) {
	for _, taken := range []int{0, 1} {
		f := newFixture(t)
		rec := record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateReserving}
		f.putRecord(t, rec)
		f.putStock(t, "sku-a", stockDoc{Available: stocked})
		if taken == 1 {
			f.putStock(t, "sku-a", stockDoc{Available: stocked - 2, Holds: map[string]hold{"tok": newHold(rec, 2)}})
		}
		f.putStock(t, "sku-b", stockDoc{Available: stocked})
		// Never made whole: not committable, and not released before its expiry.
		if err := f.svc.Commit(t.Context(), "r1"); !errors.Is(err, ErrReservationNotFound) {
			t.Fatalf("%d taken: Commit of a reservation never made whole: %v, want ErrReservationNotFound", taken, err)
		}
		if n := f.sweep(t); n != 0 {
			t.Fatalf("%d taken: swept %d before the expiry", taken, n)
		}
		f.clock.Advance(time.Minute)
		if n := f.sweep(t); n != 1 {
			t.Fatalf("%d taken: swept %d after the expiry, want 1", taken, n)
		}
		f.expectNoRecord(t, "r1")
		f.expectSettled(t, nil)
		if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}}); err != nil {
			t.Fatalf("%d taken: Reserve again: %v", taken, err)
		}
	}
}

func TestCrashAfterTheHoldsBeforeTheRecord(t *testing.T) {
	f := newFixture(t)
	dead := record{ID: "r1", Token: "dead", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute)}
	f.putStock(t, "sku-a", stockDoc{Available: stocked - 2, Holds: map[string]hold{"dead": newHold(dead, 2)}})
	f.putStock(t, "sku-b", stockDoc{Available: stocked - 3, Holds: map[string]hold{"dead": newHold(dead, 3)}})
	index := startHoldIndex(t, f.svc)

	// The saga's retry makes the reservation anew, beside the dead call's holds.
	f.clock.Advance(30 * time.Second)
	if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}, {ProductID: "sku-b", Quantity: 3}}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: stocked - 4, Reserved: 4})

	// Past the dead call's expiry, but not by orphanGrace: the holds stay, in case their
	// record is being swept.
	f.clock.Set(dead.ExpiresAt.Add(orphanGrace - time.Second))
	if err := f.svc.sweepHoldIndex(t.Context(), index); err != nil {
		t.Fatal(err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: stocked - 4, Reserved: 4})

	// Then the index finds them, and the record of r1, another incarnation's, lets them go;
	// the new reservation is untouched and commits.
	f.clock.Set(dead.ExpiresAt.Add(orphanGrace))
	waitFor(t, "the index has the holds", func() bool { return len(index.Items(lingering(f.clock.Now(), f.svc.ttl))) == 2 })
	if err := f.svc.sweepHoldIndex(t.Context(), index); err != nil {
		t.Fatal(err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: stocked - 2, Reserved: 2})
	f.expectStock(t, Stock{ProductID: "sku-b", Available: stocked - 3, Reserved: 3})
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	f.expectSettled(t, map[string]int64{"sku-a": 2, "sku-b": 3})
}

func TestReleaseOfAReserveThatDiedBeforeItsRecord(t *testing.T) {
	// The process making r1 died after its holds landed and before its record's Create
	// did; the caller, its call failed, releases r1. The holds go at the first sweep once
	// they are orphanAge old, not the TTL and orphanGrace later.
	f := newFixture(t)
	dead := record{ID: "r1", Token: "dead", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(f.svc.ttl)}
	f.putStock(t, "sku-a", stockDoc{Available: stocked - 2, Holds: map[string]hold{"dead": newHold(dead, 2)}})
	f.putStock(t, "sku-b", stockDoc{Available: stocked - 3, Holds: map[string]hold{"dead": newHold(dead, 3)}})
	index := startHoldIndex(t, f.svc)
	if err := f.svc.Release(t.Context(), "r1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := f.svc.Commit(t.Context(), "r1"); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("Commit after Release: %v, want ErrReservationNotFound", err)
	}
	if err := f.svc.Release(t.Context(), "r1"); err != nil {
		t.Fatalf("Release again: %v", err)
	}

	// Younger than orphanAge, the holds may be a live call's, which gives them back itself.
	f.clock.Advance(orphanAge - time.Second)
	if err := f.svc.sweepHoldIndex(t.Context(), index); err != nil {
		t.Fatal(err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: stocked - 2, Reserved: 2})

	f.clock.Advance(time.Second)
	waitFor(t, "the index has the holds", func() bool { return len(index.Items(lingering(f.clock.Now(), f.svc.ttl))) == 2 })
	if err := f.svc.sweepHoldIndex(t.Context(), index); err != nil {
		t.Fatal(err)
	}
	f.expectSettled(t, nil)

	// Reserved after that, r1 is made anew, and commits.
	if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}}); err != nil {
		t.Fatalf("Reserve after the release: %v", err)
	}
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	f.expectSettled(t, map[string]int64{"sku-a": 2})
}

func TestARecordArrivingAfterItsReleaseIsRefused(t *testing.T) {
	// A Reserve of r1 still under way when r1 was released, its record's Create slower than
	// the release: the Create finds the release's tombstone, and the call gives its holds
	// back, as a loser of the Create does.
	f := newFixture(t)
	f.putStock(t, "sku-a", stockDoc{Available: stocked})
	f.putStock(t, "sku-b", stockDoc{Available: stocked})
	if err := f.svc.Release(t.Context(), "r1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	late := record{ID: "r1", Token: "late", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(f.svc.ttl), State: stateReserving}
	if _, err := f.svc.make(t.Context(), late); !errors.Is(err, kv.ErrExists) {
		t.Fatalf("make after the release: %v, want kv.ErrExists", err)
	}
	f.expectSettled(t, nil)
	if r, _, err := kv.Get[record](t.Context(), f.resvs, "r1"); err != nil || r.State != stateReleased {
		t.Fatalf("record %+v, %v; want the release's tombstone", r, err)
	}
}

// slowCreate holds up the first Create until proceed is closed (or its context ends), having
// closed entered.
type slowCreate struct {
	kv.Bucket
	once             sync.Once
	entered, proceed chan struct{}
}

func (b *slowCreate) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.entered)
		select {
		case <-b.proceed:
		case <-ctx.Done(): // the test ended first
			return 0, ctx.Err()
		}
	}
	return b.Bucket.Create(ctx, key, value, opts...)
}

func TestAReserveReleasedWhileItsRecordWasOnItsWayFails(t *testing.T) {
	// The caller gave up on a Reserve whose record's Create was slow, and released r1: when
	// the Create arrives, it finds the release's tombstone, and the Reserve gives its holds
	// back and fails instead of making the reservation nobody will commit.
	f := newFixture(t)
	f.putStock(t, "sku-a", stockDoc{Available: stocked})
	f.putStock(t, "sku-b", stockDoc{Available: stocked})
	slow := &slowCreate{Bucket: f.resvs, entered: make(chan struct{}), proceed: make(chan struct{})}
	svc := New(f.stock, slow, f.clock.Now, f.svc.ttl).(*service)
	done := make(chan error, 1)
	go func() {
		_, err := svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}, {ProductID: "sku-b", Quantity: 3}})
		done <- err
	}()
	select {
	case <-slow.entered:
	case err := <-done:
		t.Fatalf("Reserve returned before its Create: %v", err)
	}
	f.clock.Advance(time.Second)
	if err := svc.Release(t.Context(), "r1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	close(slow.proceed)
	if err := <-done; !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("Reserve released while it made it: %v, want ErrReservationNotFound", err)
	}
	f.expectSettled(t, nil)
}

func TestHoldsLandingAfterTheirRecordWasReleased(t *testing.T) {
	// A Release (or the sweeper) released the record before the holds of the Reserve making
	// it landed: the holds have no record left.
	f := newFixture(t)
	rec := record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute)}
	f.putStock(t, "sku-a", stockDoc{Available: stocked - 2, Holds: map[string]hold{"tok": newHold(rec, 2)}})
	f.putStock(t, "sku-b", stockDoc{Available: stocked})
	if err := f.svc.Commit(t.Context(), "r1"); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("Commit: %v, want ErrReservationNotFound", err)
	}
	f.clock.Advance(time.Minute + orphanGrace)
	if n := f.sweep(t); n != 0 {
		t.Fatalf("swept %d reservations, want 0: a hold without a record is not one", n)
	}
	f.expectSettled(t, nil)
}

func TestLoserOfTheRecordDiedWithItsHolds(t *testing.T) {
	// Two calls made r1 at once; "winner" wrote the record and was committing when it died,
	// "loser" died before it could give its holds back.
	f := newFixture(t)
	winner := record{ID: "r1", Token: "winner", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateCommit}
	loser := winner
	loser.Token = "loser"
	f.putRecord(t, winner)
	f.putStock(t, "sku-a", stockDoc{Available: stocked - 4, Holds: map[string]hold{"winner": newHold(winner, 2), "loser": newHold(loser, 2)}})
	f.putStock(t, "sku-b", stockDoc{Available: stocked - 6, Holds: map[string]hold{"winner": newHold(winner, 3), "loser": newHold(loser, 3)}})
	f.clock.Advance(time.Minute + orphanGrace)
	if n := f.sweep(t); n != 0 {
		t.Fatalf("swept %d, want 0 released: a commit is finished", n)
	}
	f.expectSettled(t, map[string]int64{"sku-a": 2, "sku-b": 3})
	if r, _, err := kv.Get[record](t.Context(), f.resvs, "r1"); err != nil || r.State != stateCommitted {
		t.Fatalf("record %+v, %v; want committed", r, err)
	}
}

func TestCrashAfterCommittingBeforeTheSells(t *testing.T) {
	for _, by := range []string{"Commit", "sweeper"} {
		f := newFixture(t)
		rec := record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateCommit}
		f.putRecord(t, rec)
		f.putStock(t, "sku-a", stockDoc{Available: stocked - 2, Holds: map[string]hold{"tok": newHold(rec, 2)}})
		f.putStock(t, "sku-b", stockDoc{Available: stocked - 3, Holds: map[string]hold{"tok": newHold(rec, 3)}})
		if err := f.svc.Release(t.Context(), "r1"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if by == "Commit" {
			if err := f.svc.Commit(t.Context(), "r1"); err != nil {
				t.Fatalf("Commit: %v", err)
			}
		} else {
			f.clock.Advance(time.Minute)
			if n := f.sweep(t); n != 0 {
				t.Fatalf("swept %d, want 0 released", n)
			}
		}
		f.expectSettled(t, map[string]int64{"sku-a": 2, "sku-b": 3})
		if r, _, err := kv.Get[record](t.Context(), f.resvs, "r1"); err != nil || r.State != stateCommitted {
			t.Fatalf("by %s: record %+v, %v; want committed", by, r, err)
		}
	}
}

func TestCrashAfterTheSellsBeforeTheTombstone(t *testing.T) {
	f := newFixture(t)
	stock := kvtest.Counting(f.stock)
	f.svc = New(stock, f.resvs, f.clock.Now, 15*time.Minute).(*service)
	f.shortTombstones()
	rec := record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateCommit}
	f.putRecord(t, rec)
	f.putStock(t, "sku-a", stockDoc{Available: stocked - 2, Sold: 2})
	f.putStock(t, "sku-b", stockDoc{Available: stocked - 3, Sold: 3})
	sold := map[string]int64{"sku-a": 2, "sku-b": 3}
	if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}}); err != nil {
		t.Fatalf("Reserve of a committing reservation: %v", err)
	}
	f.expectSettled(t, sold)
	if n := f.sweep(t); n != 0 {
		t.Fatal(n)
	}
	// Past its expiry the sweeper writes the tombstone, reading the stock documents once to
	// find nothing left to sell; later sweeps leave them alone.
	f.clock.Advance(time.Minute)
	stock.Reads()
	if n := f.sweep(t); n != 0 {
		t.Fatalf("swept %d, want 0 released", n)
	}
	if reads := stock.Reads(); reads["sku-a"] != 1 || reads["sku-b"] != 1 {
		t.Fatalf("finishing the commit read the stock %v, want each document once", reads)
	}
	f.sweep(t)
	if reads := stock.Reads(); len(reads) != 0 {
		t.Fatalf("a sweep after the tombstone read the stock %v, want nothing", reads)
	}
	f.expectSettled(t, sold)
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatalf("Commit after the tombstone: %v", err)
	}
	f.expectForgotten(t, "r1")
	f.expectSettled(t, sold)
}

// TestTombstoneAfterCommitReturns: Commit has sold the units when it returns; the tombstone
// follows.
func TestTombstoneAfterCommitReturns(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"sku-a", "sku-b"} {
		if _, err := f.svc.Add(t.Context(), p, stocked); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}, {ProductID: "sku-b", Quantity: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatal(err)
	}
	f.expectSettled(t, map[string]int64{"sku-a": 2, "sku-b": 3})
	f.svc.background.Wait()
	if r, _, err := kv.Get[record](t.Context(), f.resvs, "r1"); err != nil || r.State != stateCommitted || !r.ForgetAt.IsZero() {
		t.Fatalf("record %+v, %v; want a committed tombstone, left to its TTL (no ForgetAt)", r, err)
	}
}

// TestUndoLeavesAReservationFoundWhole: a Reserve that failed after all its writes landed
// (an answer it did not get) does not release what another call found whole and kept.
func TestUndoLeavesAReservationFoundWhole(t *testing.T) {
	f := newFixture(t)
	rec := record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateHeld}
	f.putRecord(t, rec)
	f.putStock(t, "sku-a", stockDoc{Available: stocked - 2, Holds: map[string]hold{"tok": newHold(rec, 2)}})
	f.putStock(t, "sku-b", stockDoc{Available: stocked - 3, Holds: map[string]hold{"tok": newHold(rec, 3)}})
	f.svc.undo(t.Context(), rec, nil)
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	f.expectSettled(t, map[string]int64{"sku-a": 2, "sku-b": 3})
}

// TestHoldsOfTheOldFormat: a stock document written before holds carried their
// reservation reads, sells and releases as before.
func TestHoldsOfTheOldFormat(t *testing.T) {
	f := newFixture(t)
	if _, err := f.stock.Create(t.Context(), "sku-a", []byte(`{"available":8,"sold":0,"holds":{"tok":2}}`)); err != nil {
		t.Fatal(err)
	}
	f.putStock(t, "sku-b", stockDoc{Available: stocked})
	f.putRecord(t, record{ID: "r1", Token: "tok", Lines: []line{{ProductID: "sku-a", Quantity: 2}}, ExpiresAt: f.clock.Now().Add(time.Minute), State: stateHeld})
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 8, Reserved: 2})
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatal(err)
	}
	f.expectSettled(t, map[string]int64{"sku-a": 2})
}

// startHoldIndex follows the stock documents that hold anything, as RunSweeper does, until
// the test ends, and waits until it has read them.
func startHoldIndex(t *testing.T, s *service) *kv.Tracker[stockDoc] {
	t.Helper()
	index := kv.NewTracker(s.stock, holding, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { index.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-index.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("index not ready within 10s")
	}
	return index
}

// TestReserveWaitsForARacingRetryToGiveItsHoldBack: another call making the same
// reservation holds the last units when this one's hold comes; it lost the record to this
// call and gives them back, and this call then takes them instead of answering out of
// stock.
func TestReserveWaitsForARacingRetryToGiveItsHoldBack(t *testing.T) {
	f := newFixture(t)
	loser := record{ID: "r1", Token: "loser", Lines: []line{{ProductID: "sku-a", Quantity: 2}}, ExpiresAt: f.clock.Now().Add(time.Minute)}
	f.putStock(t, "sku-a", stockDoc{Available: 0, Holds: map[string]hold{"loser": newHold(loser, 2)}})
	go func() {
		// The loser finds the record taken and gives its hold back.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := f.resvs.Get(context.Background(), "r1"); err == nil {
				_ = f.svc.unhold(context.Background(), "loser", "sku-a")
				return
			}
			time.Sleep(time.Millisecond) // polling interval, bounded by the deadline
		}
	}()
	if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 0, Reserved: 2})
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatal(err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 0, Sold: 2})

	// A hold of another reservation is no race: short is short.
	other := record{ID: "r2", Token: "t2", Lines: []line{{ProductID: "sku-b", Quantity: 1}}, ExpiresAt: f.clock.Now().Add(time.Minute)}
	f.putStock(t, "sku-b", stockDoc{Available: 0, Holds: map[string]hold{"t2": newHold(other, 1)}})
	_, err := f.svc.Reserve(t.Context(), "r3", []Line{{ProductID: "sku-b", Quantity: 1}})
	var short *OutOfStockError
	if !errors.As(err, &short) || short.Available != 0 {
		t.Fatalf("Reserve of a product held by another reservation: %v, want out of stock", err)
	}
}

// A record in a state this version does not know, as a later version may write while a
// deployment rolls, is another call's: Reserve waits for it as for any, and gives up at
// waitLimit instead of reading it until its caller's deadline.
func TestReserveGivesUpOnARecordInAStateItDoesNotKnow(t *testing.T) {
	t.Parallel() // it waits waitLimit
	f := newFixture(t)
	f.putStock(t, "sku-a", stockDoc{Available: stocked})
	// No lines: whole at once, so Reserve tries to mark it held, which only a state it knows
	// allows.
	f.putRecord(t, record{ID: "r1", Token: "later", ExpiresAt: f.clock.Now().Add(time.Minute), State: "from-a-later-version"})
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitLimit)
	defer cancel()
	_, err := f.svc.Reserve(ctx, "r1", []Line{{ProductID: "sku-a", Quantity: 2}})
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), waitLimit.String()) {
		t.Fatalf("Reserve over a record in an unknown state: %v (context: %v), want it to give up at %v", err, ctx.Err(), waitLimit)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: stocked})
}

// TestTombstoneTTLIsADay reads the TTL that JetStream holds for a committed reservation's
// tombstone: a retried Commit stays a no-op for a day, and then the store forgets it.
func TestTombstoneTTLIsADay(t *testing.T) {
	srv := natsjstest.New(t)
	ctx := t.Context()
	const name = "tombstone_reservations"
	resvs, err := natsjs.OpenBucket(ctx, srv.JetStream(), natsjs.StoreConfig{}, name)
	if err != nil {
		t.Fatal(err)
	}
	svc := New(srv.Bucket(t, "stock"), resvs, time.Now, 15*time.Minute).(*service)
	if _, err := svc.Add(ctx, "sku-a", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Reserve(ctx, "r1", []Line{{ProductID: "sku-a", Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Commit(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	svc.background.Wait()
	got := srv.TTL(t, name, "r1")
	if ttl, err := time.ParseDuration(got); err != nil || ttl != tombstoneTTL {
		t.Fatalf("the tombstone's TTL: %q (%v), want %s", got, err, tombstoneTTL)
	}
}
