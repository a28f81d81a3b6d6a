package orders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

// These tests write saga records directly, as many finished checkouts and a crash leave them,
// and check that periodic recovery reads only the unfinished ones.

func forEachBackend(t *testing.T, test func(t *testing.T, open func(tb testing.TB, name string) kv.Bucket)) {
	t.Run("Memory", func(t *testing.T) {
		test(t, func(testing.TB, string) kv.Bucket { return kv.NewMemory() })
	})
	t.Run("JetStream", func(t *testing.T) {
		srv := natsjstest.New(t)
		test(t, func(tb testing.TB, name string) kv.Bucket { return srv.Bucket(tb, name) })
	})
}

// putSaga writes a saga record in the given state, last updated at updated.
func putSaga(tb testing.TB, b kv.Bucket, key, state string, updated time.Time) {
	tb.Helper()
	rec := saga{Key: key, RequestHash: "h", OrderID: "ord-" + key, State: state, UserID: "u", Email: "u@example.com",
		Items: []Item{{ProductID: "sku-a", Quantity: 1}}, CreatedAt: updated, ChargedAt: updated, UpdatedAt: updated}
	if _, err := kv.Mutate(context.Background(), b, key, func(v *saga, _ bool) error { *v = rec; return nil }); err != nil {
		tb.Fatal(err)
	}
}

func putDone(tb testing.TB, b kv.Bucket, n int) {
	tb.Helper()
	for i := range n {
		putSaga(tb, b, fmt.Sprintf("done-%05d", i), stateDone, time.Now().Add(-time.Hour))
	}
}

// TestSagaIndexKeepsOnlyUnfinished: the index follows the bucket and holds the unfinished
// checkouts only, dropping each as it is done or deleted.
func TestSagaIndexKeepsOnlyUnfinished(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB, string) kv.Bucket) {
		sagas := open(t, "sagas")
		putDone(t, sagas, 50)
		putSaga(t, sagas, "pending", statePending, time.Now())
		o := New(Stores{Sagas: sagas}, Deps{Logger: slog.New(slog.DiscardHandler)})
		index := o.sagaIndex()
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { index.Run(ctx) })
		defer func() { cancel(); wg.Wait() }()
		select {
		case <-index.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("index not ready within 10s")
		}

		expect := func(want string) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				var got []string
				for _, it := range index.Items(nil) {
					got = append(got, it.Key+"="+it.Value.State)
				}
				if strings.Join(got, " ") == want {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("index holds %q, want %q", got, want)
				}
				time.Sleep(time.Millisecond) // polling interval, bounded by the deadline
			}
		}
		expect("pending=pending")
		putSaga(t, sagas, "charged", stateCharged, time.Now())
		expect("charged=charged pending=pending")
		putSaga(t, sagas, "charged", stateDone, time.Now())
		expect("pending=pending")
		if err := sagas.Delete(t.Context(), "pending", 0); err != nil {
			t.Fatal(err)
		}
		expect("")
	})
}

// TestRunRecoveryReadsOnlyUnfinished: with many finished checkouts in the bucket, periodic
// recovery compensates the abandoned ones, including one abandoned after it started,
// without reading a single finished record.
func TestRunRecoveryReadsOnlyUnfinished(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB, string) kv.Bucket) {
		ctx := t.Context()
		real := open(t, "sagas")
		sagas := kvtest.Counting(real)
		putDone(t, real, 300)
		stale := time.Now().Add(-2 * time.Minute)
		putSaga(t, real, "before", statePending, stale)
		charges := payments.New(open(t, "charges"), time.Now)
		o := New(Stores{Sagas: sagas, Orders: open(t, "orders"), UserOrders: open(t, "user_orders")}, Deps{
			Inventory: inventory.New(open(t, "stock"), open(t, "reservations"), time.Now, time.Minute),
			Payments:  charges,
			Logger:    slog.New(slog.DiscardHandler),
		})
		loopCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			o.RunRecovery(loopCtx, 2*time.Millisecond, time.Minute)
		}()
		defer func() { stop(); <-done }()
		putSaga(t, real, "after", statePending, stale)
		putSaga(t, real, "live", statePending, time.Now())

		deadline := time.Now().Add(10 * time.Second)
		for _, key := range []string{"before", "after"} {
			for {
				_, err := real.Get(ctx, key)
				if errors.Is(err, kv.ErrNotFound) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("saga %s not compensated within 10s (%v)", key, err)
				}
				time.Sleep(2 * time.Millisecond) // polling interval, bounded by the deadline
			}
			if ch, err := charges.Get(ctx, "ord-"+key); err != nil || ch.Status != payments.StatusVoided {
				t.Fatalf("charge of %s: %+v %v, want voided", key, ch, err)
			}
		}
		stop()
		<-done
		for key := range sagas.Reads() {
			if strings.HasPrefix(key, "done-") || key == "live" {
				t.Fatalf("recovery read %s, which has nothing to recover", key)
			}
		}
		if _, err := real.Get(ctx, "live"); err != nil {
			t.Fatalf("the live checkout's record: %v", err)
		}
	})
}

// TestRecoveryLeavesFinishedCheckouts: RunRecovery's index lags the bucket, so a run may
// read whole a record that finished since the index listed it unfinished. However old, and
// even to a process that owns every saga (olderThan 0), a done record is left as it is:
// taking it over would compensate, refund, a paid order.
func TestRecoveryLeavesFinishedCheckouts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(testing.TB, string) kv.Bucket) {
		ctx := t.Context()
		sagas := open(t, "sagas")
		putSaga(t, sagas, "paid", stateDone, time.Now().Add(-time.Hour))
		o := New(Stores{Sagas: sagas, Orders: open(t, "orders"), UserOrders: open(t, "user_orders")}, Deps{
			Inventory: inventory.New(open(t, "stock"), open(t, "reservations"), time.Now, time.Minute),
			Payments:  payments.New(open(t, "charges"), time.Now),
			Logger:    slog.New(slog.DiscardHandler),
		})
		read, rev, err := kv.Get[saga](ctx, sagas, "paid")
		if err != nil {
			t.Fatal(err)
		}
		// What recoverIndex hands on for a key its index still lists as charged.
		listed := []kv.Item[saga]{{Key: "paid", Value: read, Revision: rev}}
		for _, olderThan := range []time.Duration{0, time.Minute} {
			if n, err := o.recover(ctx, listed, olderThan); n != 0 || err != nil {
				t.Errorf("recover (older than %s): %d %v, want nothing handled", olderThan, n, err)
			}
		}
		if now, nowRev, err := kv.Get[saga](ctx, sagas, "paid"); err != nil || now.State != stateDone || nowRev != rev {
			t.Fatalf("record after recovery: %s at %d, %v; want done, untouched at %d", now.State, nowRev, err, rev)
		}
	})
}

// BenchmarkRecover and BenchmarkRecoverIndex measure one recovery run over a bucket of
// finished checkouts with nothing to recover: the cost it adds every 5 s after a load test.
func BenchmarkRecover(b *testing.B) {
	benchmarkRecover(b, func(b *testing.B, o *Orders) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) { return o.Recover(ctx, time.Minute) }
	})
}

func BenchmarkRecoverIndex(b *testing.B) {
	benchmarkRecover(b, func(b *testing.B, o *Orders) func(context.Context) (int, error) {
		index := o.sagaIndex()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { index.Run(ctx) })
		b.Cleanup(func() { cancel(); wg.Wait() })
		<-index.Ready()
		return func(ctx context.Context) (int, error) { return o.recoverIndex(ctx, index, time.Minute) }
	})
}

func benchmarkRecover(b *testing.B, runner func(*testing.B, *Orders) func(context.Context) (int, error)) {
	for _, backend := range []string{"Memory", "JetStream"} {
		for _, finished := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("%s/finished=%d", backend, finished), func(b *testing.B) {
				var sagas kv.Bucket = kv.NewMemory()
				if backend == "JetStream" {
					sagas = natsjstest.New(b).Bucket(b, "sagas")
				}
				putDone(b, sagas, finished)
				o := New(Stores{Sagas: sagas}, Deps{Logger: slog.New(slog.DiscardHandler)})
				run := runner(b, o)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if n, err := run(ctx); err != nil || n != 0 {
						b.Fatal(n, err)
					}
				}
			})
		}
	}
}
