package inventory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/clocktest"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// buckets opens a stock and a reservations bucket on one backend.
type buckets func(tb testing.TB) (stock, reservations kv.Bucket)

func forEachBackend(t *testing.T, test func(t *testing.T, open buckets)) {
	t.Run("Memory", func(t *testing.T) {
		test(t, func(testing.TB) (kv.Bucket, kv.Bucket) { return kv.NewMemory(), kv.NewMemory() })
	})
	t.Run("JetStream", func(t *testing.T) {
		srv := natsjstest.New(t)
		test(t, func(tb testing.TB) (kv.Bucket, kv.Bucket) {
			return srv.Bucket(tb, "stock"), srv.Bucket(tb, "reservations")
		})
	})
}

// putTombstones writes n committed reservations as a day of checkouts leaves them: with the
// TTL Commit gives them.
func putTombstones(tb testing.TB, b kv.Bucket, now time.Time, n int) {
	tb.Helper()
	for i := range n {
		r := record{ID: fmt.Sprintf("done-%05d", i), Token: "t", Lines: []line{{ProductID: "sku-a", Quantity: 1}},
			ExpiresAt: now, State: stateCommitted}
		if _, err := kv.Create(context.Background(), b, r.ID, r, kv.TTL(tombstoneTTL)); err != nil {
			tb.Fatal(err)
		}
	}
}

// putOldTombstones writes n committed reservations as versions before tombstones had a TTL
// left them: with the time to forget them at, a day on.
func putOldTombstones(tb testing.TB, b kv.Bucket, now time.Time, n int) {
	tb.Helper()
	for i := range n {
		r := record{ID: fmt.Sprintf("old-%05d", i), Token: "t", Lines: []line{{ProductID: "sku-a", Quantity: 1}},
			ExpiresAt: now, State: stateCommitted, ForgetAt: now.Add(tombstoneTTL)}
		if _, err := kv.Create(context.Background(), b, r.ID, r); err != nil {
			tb.Fatal(err)
		}
	}
}

// startIndex follows reservations until the test ends, and waits until it has read them.
func startIndex(tb testing.TB, reservations kv.Bucket) *kv.Tracker[sweepView] {
	tb.Helper()
	index := newIndex(reservations, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { index.Run(ctx) })
	tb.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-index.Ready():
	case <-time.After(10 * time.Second):
		tb.Fatal("index not ready within 10s")
	}
	return index
}

// TestSweepReadsOnlyDueRecords: a sweep over a bucket full of committed tombstones reads the
// records that are due and none of the others, from the index as from ReleaseExpired; the
// index keeps none of the tombstones, which the store forgets by itself.
func TestSweepReadsOnlyDueRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open buckets) {
		ctx := t.Context()
		stock, real := open(t)
		resvs := kvtest.Counting(real)
		clock := clocktest.New(time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC))
		svc := New(stock, resvs, clock.Now, 15*time.Minute).(*service)
		putTombstones(t, real, clock.Now(), 300)
		if _, err := svc.Add(ctx, "sku-a", 10); err != nil {
			t.Fatal(err)
		}
		index := startIndex(t, resvs)

		reserve := func(id string) {
			t.Helper()
			if _, err := svc.Reserve(ctx, id, []Line{{ProductID: "sku-a", Quantity: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		reserve("r1")
		reserve("r2")
		waitIndexed(t, index, "r1", "r2") // the index follows live writes
		clock.Advance(15 * time.Minute)
		resvs.Reads()

		if n, err := svc.sweepIndex(ctx, index); err != nil || n != 2 {
			t.Fatalf("sweep from the index = %d, %v; want 2 released", n, err)
		}
		expectOnlyRead(t, resvs.Reads(), "r1", "r2")
		if got, _ := svc.Get(ctx, "sku-a"); got.Available != 10 {
			t.Fatalf("stock after the sweep: %+v", got)
		}

		reserve("r3")
		clock.Advance(15 * time.Minute)
		resvs.Reads()
		if n, err := svc.ReleaseExpired(ctx); err != nil || n != 1 {
			t.Fatalf("ReleaseExpired = %d, %v; want 1 released", n, err)
		}
		expectOnlyRead(t, resvs.Reads(), "r3")
	})
}

// waitIndexed waits until the index holds exactly the records ids.
func waitIndexed(t *testing.T, index *kv.Tracker[sweepView], ids ...string) {
	t.Helper()
	var keys []string
	waitFor(t, fmt.Sprintf("the index to hold %v", ids), func() bool {
		keys = keys[:0]
		for _, it := range index.Items(nil) {
			keys = append(keys, it.Key)
		}
		return slices.Equal(keys, ids)
	})
}

// TestIndexKeepsOpenReservationsOnly: what the sweeper keeps in memory follows the
// reservations still open, not the checkouts of the day: a committed reservation leaves
// the index once its tombstone is written. A tombstone written before tombstones had a TTL
// stays in it until its day is over, when the sweep deletes it.
func TestIndexKeepsOpenReservationsOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open buckets) {
		ctx := t.Context()
		stock, resvs := open(t)
		clock := clocktest.New(time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC))
		svc := New(stock, resvs, clock.Now, 15*time.Minute).(*service)
		if _, err := svc.Add(ctx, "sku-a", 100); err != nil {
			t.Fatal(err)
		}
		putOldTombstones(t, resvs, clock.Now(), 2)
		index := startIndex(t, resvs)
		for i := range 20 {
			id := fmt.Sprintf("r%02d", i)
			if _, err := svc.Reserve(ctx, id, []Line{{ProductID: "sku-a", Quantity: 1}}); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				if err := svc.Commit(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
		}
		svc.background.Wait() // the tombstones written
		pending := []string{"old-00000", "old-00001"}
		for i := 1; i < 20; i += 2 {
			pending = append(pending, fmt.Sprintf("r%02d", i))
		}
		waitIndexed(t, index, pending...)

		clock.Advance(tombstoneTTL)
		if _, err := svc.sweepIndex(ctx, index); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"old-00000", "old-00001"} {
			if _, err := resvs.Get(ctx, id); !errors.Is(err, kv.ErrNotFound) {
				t.Fatalf("old tombstone %s after its day: %v, want it deleted", id, err)
			}
		}
		if _, err := resvs.Get(ctx, "r00"); err != nil {
			t.Fatalf("a tombstone with a TTL after a sweep: %v, want it left to its TTL", err)
		}
	})
}

// expectOnlyRead fails if a tombstone was read, or one of want was not.
func expectOnlyRead(t *testing.T, read map[string]int, want ...string) {
	t.Helper()
	var others []string
	for k := range read {
		if strings.HasPrefix(k, "done-") {
			others = append(others, k)
		}
	}
	if len(others) > 0 {
		t.Fatalf("the sweep read %d records that were not due (%v...); want only %v", len(others), others[:min(3, len(others))], want)
	}
	for _, k := range want {
		if read[k] == 0 {
			t.Fatalf("the sweep did not read %s", k)
		}
	}
}

// TestRunSweeper: the background sweeper releases what expires, including records written
// after it started; a tombstone answers Commit again until the store forgets it (its TTL).
func TestRunSweeper(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open buckets) {
		ctx := t.Context()
		stock, resvs := open(t)
		clock := clocktest.New(time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC))
		svc := New(stock, resvs, clock.Now, 15*time.Minute)
		svc.(*service).tombstone = kv.TTL(shortTombstone)
		if _, err := svc.Add(ctx, "sku-a", 10); err != nil {
			t.Fatal(err)
		}
		reserve := func(id string, n int64) {
			t.Helper()
			if _, err := svc.Reserve(ctx, id, []Line{{ProductID: "sku-a", Quantity: n}}); err != nil {
				t.Fatal(err)
			}
		}
		reserve("before", 1)
		reserve("sold", 2)
		if err := svc.Commit(ctx, "sold"); err != nil {
			t.Fatal(err)
		}

		loopCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			RunSweeper(loopCtx, svc, 2*time.Millisecond, slog.New(slog.DiscardHandler))
		}()
		defer func() { stop(); <-done }()

		reserve("after", 3)
		clock.Advance(15 * time.Minute)
		waitFor(t, "expired reservations released", func() bool {
			s, err := svc.Get(ctx, "sku-a")
			return err == nil && s == Stock{ProductID: "sku-a", Available: 8, Sold: 2}
		})
		if err := svc.Commit(ctx, "sold"); err != nil {
			t.Fatalf("Commit again within the tombstone's day: %v", err)
		}
		waitFor(t, "tombstone forgotten", func() bool {
			_, err := resvs.Get(ctx, "sold")
			return errors.Is(err, kv.ErrNotFound)
		})
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// BenchmarkReleaseExpired and BenchmarkSweepIndex measure one sweep over a bucket holding
// finished reservations (committed tombstones, their TTL a day) and nothing to do: the cost a
// sweep adds every 5 s after a load test. gets/op counts the records read one by one.
func BenchmarkReleaseExpired(b *testing.B) {
	benchmarkSweep(b, func(b *testing.B, svc *service) func(context.Context) (int, error) {
		return svc.ReleaseExpired
	})
}

func BenchmarkSweepIndex(b *testing.B) {
	benchmarkSweep(b, func(b *testing.B, svc *service) func(context.Context) (int, error) {
		index := startIndex(b, svc.reservations)
		return func(ctx context.Context) (int, error) { return svc.sweepIndex(ctx, index) }
	})
}

func benchmarkSweep(b *testing.B, sweeper func(*testing.B, *service) func(context.Context) (int, error)) {
	for _, backend := range []string{"Memory", "JetStream"} {
		for _, finished := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("%s/finished=%d", backend, finished), func(b *testing.B) {
				var stock, resvs kv.Bucket = kv.NewMemory(), kv.NewMemory()
				if backend == "JetStream" {
					srv := natsjstest.New(b)
					stock, resvs = srv.Bucket(b, "stock"), srv.Bucket(b, "reservations")
				}
				now := time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC)
				putTombstones(b, resvs, now, finished)
				counted := kvtest.Counting(resvs)
				svc := New(stock, counted, func() time.Time { return now }, 15*time.Minute).(*service)
				sweep := sweeper(b, svc)
				ctx := context.Background()
				counted.Reads()
				b.ReportAllocs()
				for b.Loop() {
					if n, err := sweep(ctx); err != nil || n != 0 {
						b.Fatal(n, err)
					}
				}
				gets := 0
				for _, n := range counted.Reads() {
					gets += n
				}
				b.ReportMetric(float64(gets)/float64(b.N), "gets/op")
			})
		}
	}
}
