package inventory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/clocktest"
	"github.com/mitosis-dev/mitosis/shop/kv"
)

// These tests put the stores in the states a crash leaves behind (which no sequence of
// calls through the port can produce) and check that the sweeper and retries recover them.
// The conformance suite in inventorytest covers everything reachable through the port.

type fixture struct {
	svc          *service
	stock, resvs *kv.Memory
	clock        *clocktest.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{stock: kv.NewMemory(), resvs: kv.NewMemory(), clock: clocktest.New(time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC))}
	f.svc = New(f.stock, f.resvs, f.clock.Now, 15*time.Minute).(*service)
	return f
}

func (f *fixture) putStock(t *testing.T, product string, d stockDoc) {
	t.Helper()
	if _, err := kv.Mutate(t.Context(), f.stock, product, func(v *stockDoc, _ bool) error { *v = d; return nil }); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) putRecord(t *testing.T, r record) {
	t.Helper()
	if _, err := kv.Mutate(t.Context(), f.resvs, r.ID, func(v *record, _ bool) error { *v = r; return nil }); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) expectStock(t *testing.T, want Stock) {
	t.Helper()
	got, err := f.svc.Get(t.Context(), want.ProductID)
	if err != nil || got != want {
		t.Fatalf("stock = %+v, %v; want %+v", got, err, want)
	}
}

func (f *fixture) expectNoRecord(t *testing.T, id string) {
	t.Helper()
	if _, err := f.resvs.Get(t.Context(), id); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("record %s still there (%v)", id, err)
	}
}

// shortTombstones makes the tombstones the fixture's service writes from now on expire
// after a second or two instead of a day: the stores count TTLs on the wall clock, not on
// the fixture's.
func (f *fixture) shortTombstones() { f.svc.tombstone = kv.TTL(shortTombstone) }

// shortTombstone is the TTL of shortTombstones: short, and still ample for what a test
// does with a tombstone before it goes.
const shortTombstone = 2 * time.Second

// expectForgotten waits until the store has removed the record id by itself.
func (f *fixture) expectForgotten(t *testing.T, id string) {
	t.Helper()
	waitFor(t, "record "+id+" forgotten", func() bool {
		_, err := f.resvs.Get(t.Context(), id)
		return errors.Is(err, kv.ErrNotFound)
	})
}

func twoLines() []line {
	return []line{{ProductID: "sku-a", Quantity: 2}, {ProductID: "sku-b", Quantity: 3}}
}

func TestSweeperFinishesCrashedCommit(t *testing.T) {
	f := newFixture(t)
	f.shortTombstones()
	// Crashed after selling sku-a and before selling sku-b.
	f.putStock(t, "sku-a", stockDoc{Available: 8, Sold: 2})
	f.putStock(t, "sku-b", stockDoc{Available: 7, Holds: map[string]hold{"tok": {Quantity: 3}}})
	f.putRecord(t, record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateCommit})

	if n, err := f.svc.ReleaseExpired(t.Context()); err != nil || n != 0 {
		t.Fatalf("ReleaseExpired before expiry = %d, %v", n, err)
	}
	f.clock.Advance(2 * time.Minute)
	if n, err := f.svc.ReleaseExpired(t.Context()); err != nil || n != 0 {
		t.Fatalf("ReleaseExpired = %d, %v; want 0 released (a commit is finished, not undone)", n, err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 8, Sold: 2})
	f.expectStock(t, Stock{ProductID: "sku-b", Available: 7, Sold: 3})
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatalf("Commit after the sweeper finished it: %v", err)
	}
	if err := f.svc.Release(t.Context(), "r1"); err != nil {
		t.Fatalf("Release after commit: %v", err)
	}
	f.expectStock(t, Stock{ProductID: "sku-b", Available: 7, Sold: 3})

	// The store forgets the tombstone at its TTL; then the ID is unknown.
	f.expectForgotten(t, "r1")
	if err := f.svc.Commit(t.Context(), "r1"); !errors.Is(err, ErrReservationNotFound) {
		t.Fatalf("Commit after the tombstone expired: %v", err)
	}
}

func TestCommitFinishesCrashedCommit(t *testing.T) {
	f := newFixture(t)
	f.putStock(t, "sku-a", stockDoc{Available: 8, Holds: map[string]hold{"tok": {Quantity: 2}}})
	f.putStock(t, "sku-b", stockDoc{Available: 7, Holds: map[string]hold{"tok": {Quantity: 3}}})
	f.putRecord(t, record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateCommit})
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 8, Sold: 2})
	f.expectStock(t, Stock{ProductID: "sku-b", Available: 7, Sold: 3})
}

func TestSweeperReleasesCrashedReserveAndRelease(t *testing.T) {
	for _, state := range []string{stateReserving, stateHeld, stateReleasing} {
		t.Run(state, func(t *testing.T) {
			f := newFixture(t)
			// Only sku-a's hold was taken (or is left) when the process died.
			f.putStock(t, "sku-a", stockDoc{Available: 8, Holds: map[string]hold{"tok": {Quantity: 2}, "other": {Quantity: 1}}})
			f.putStock(t, "sku-b", stockDoc{Available: 10})
			f.putRecord(t, record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: state})
			f.clock.Advance(time.Minute)
			if n, err := f.svc.ReleaseExpired(t.Context()); err != nil || n != 1 {
				t.Fatalf("ReleaseExpired = %d, %v; want 1", n, err)
			}
			// Another reservation's hold on the same product is left alone.
			f.expectStock(t, Stock{ProductID: "sku-a", Available: 10, Reserved: 1})
			f.expectStock(t, Stock{ProductID: "sku-b", Available: 10})
			f.expectNoRecord(t, "r1")
		})
	}
}

func TestReserveWaitsForAnotherCallMakingIt(t *testing.T) {
	f := newFixture(t)
	// Another call has written the record and taken sku-a; its hold on sku-b is on its way.
	f.putStock(t, "sku-a", stockDoc{Available: 8, Holds: map[string]hold{"tok": {Quantity: 2}}})
	f.putStock(t, "sku-b", stockDoc{Available: 10})
	f.putRecord(t, record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateReserving})

	type result struct {
		r   Reservation
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}, {ProductID: "sku-b", Quantity: 3}})
		done <- result{r, err}
	}()
	// Until every hold is there, Reserve must not answer: the last might still fail.
	select {
	case res := <-done:
		t.Fatalf("Reserve answered %+v, %v while the reservation was still being made", res.r, res.err)
	case <-time.After(50 * time.Millisecond):
	}
	f.putStock(t, "sku-b", stockDoc{Available: 7, Holds: map[string]hold{"tok": {Quantity: 3}}})
	res := <-done
	if res.err != nil || res.r.ID != "r1" || len(res.r.Lines) != 2 {
		t.Fatalf("Reserve = %+v, %v", res.r, res.err)
	}
	// It found the reservation whole, and marked it so: the call making it cannot undo it.
	if r, _, err := kv.Get[record](t.Context(), f.resvs, "r1"); err != nil || r.State != stateHeld || r.Token != "tok" {
		t.Fatalf("record after Reserve found it whole: %+v, %v; want tok held", r, err)
	}
	// The holds it took while it tried to make the reservation itself went back.
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 8, Reserved: 2})
	f.expectStock(t, Stock{ProductID: "sku-b", Available: 7, Reserved: 3})
}

func TestReserveReplacesAStaleAttempt(t *testing.T) {
	f := newFixture(t)
	// A Reserve died after taking sku-a; its record expired before the sweeper came by.
	f.putStock(t, "sku-a", stockDoc{Available: 8, Holds: map[string]hold{"tok": {Quantity: 2}}})
	f.putStock(t, "sku-b", stockDoc{Available: 10})
	f.putRecord(t, record{ID: "r1", Token: "tok", Lines: twoLines(), ExpiresAt: f.clock.Now().Add(time.Minute), State: stateReserving})
	f.clock.Advance(time.Minute)
	if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 2}, {ProductID: "sku-b", Quantity: 3}}); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 8, Reserved: 2})
	f.expectStock(t, Stock{ProductID: "sku-b", Available: 7, Reserved: 3})
}

func TestStaleReleaseLeavesANewIncarnationAlone(t *testing.T) {
	f := newFixture(t)
	f.putStock(t, "sku-a", stockDoc{Available: 10})
	f.putStock(t, "sku-b", stockDoc{Available: 10})
	old := record{ID: "r1", Token: "old", Lines: twoLines(), State: stateReleasing}
	if _, err := f.svc.Reserve(t.Context(), "r1", []Line{{ProductID: "sku-a", Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	// A slow release of an earlier reservation under the same ID finishes only now.
	if err := f.svc.release(t.Context(), old); err != nil {
		t.Fatalf("release: %v", err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 9, Reserved: 1})
	if err := f.svc.Commit(t.Context(), "r1"); err != nil {
		t.Fatalf("Commit of the new reservation: %v", err)
	}
	f.expectStock(t, Stock{ProductID: "sku-a", Available: 9, Sold: 1})
}

// cancelling is a real bucket whose writes of one key cancel the caller's context and fail,
// as when a client gives up in the middle of a Reserve.
type cancelling struct {
	kv.Bucket
	key    string
	cancel context.CancelFunc
}

func (b cancelling) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	if key == b.key {
		b.cancel()
		return 0, context.Canceled
	}
	return b.Bucket.Update(ctx, key, value, rev, opts...)
}

func TestReserveUndoesAfterItsContextIsCancelled(t *testing.T) {
	stock, resvs := kv.NewMemory(), kv.NewMemory()
	plain := New(stock, resvs, time.Now, time.Minute)
	for _, p := range []string{"sku-a", "sku-b"} {
		if _, err := plain.Add(t.Context(), p, 10); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	svc := New(cancelling{Bucket: stock, key: "sku-b", cancel: cancel}, resvs, time.Now, time.Minute)
	_, err := svc.Reserve(ctx, "r1", []Line{{ProductID: "sku-a", Quantity: 2}, {ProductID: "sku-b", Quantity: 1}})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "r1") {
		t.Fatalf("Reserve: %v, want context.Canceled", err)
	}
	// The compensation ran although the caller's context was gone.
	got, err := plain.Get(t.Context(), "sku-a")
	if err != nil || got != (Stock{ProductID: "sku-a", Available: 10}) {
		t.Fatalf("sku-a after a cancelled Reserve: %+v, %v", got, err)
	}
	if keys, _ := resvs.Keys(t.Context()); len(keys) != 0 {
		t.Fatalf("records left after a cancelled Reserve: %v", keys)
	}
}

func TestNoRecordsLeftBehind(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if _, err := f.svc.Add(ctx, "sku-a", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Reserve(ctx, "r1", []Line{{ProductID: "sku-a", Quantity: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Release(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Reserve(ctx, "r2", []Line{{ProductID: "sku-a", Quantity: 9}}); !errors.Is(err, ErrOutOfStock) {
		t.Fatalf("Reserve 9 of 5: %v", err)
	}
	if keys, _ := f.resvs.Keys(ctx); len(keys) != 0 {
		t.Fatalf("records left: %v", keys)
	}
	d, _, err := kv.Get[stockDoc](ctx, f.stock, "sku-a")
	if err != nil || len(d.Holds) != 0 {
		t.Fatalf("stock document %+v, %v; want no holds", d, err)
	}
}
