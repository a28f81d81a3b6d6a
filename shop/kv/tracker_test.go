package kv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// job is what the tests track: kept while not done.
type job struct {
	Done bool `json:"done"`
	N    int  `json:"n"`
}

func open(j job) bool { return !j.Done }

// forEachBucket runs test over an empty memory bucket and an empty JetStream bucket.
func forEachBucket(t *testing.T, test func(t *testing.T, b kv.Bucket)) {
	t.Run("Memory", func(t *testing.T) { test(t, kv.NewMemory()) })
	t.Run("JetStream", func(t *testing.T) { test(t, natsjstest.New(t).Bucket(t, "tracked")) })
}

// put writes j under key, whatever is there.
func put(t *testing.T, b kv.Bucket, key string, j job) {
	t.Helper()
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Get(t.Context(), key)
	switch {
	case errors.Is(err, kv.ErrNotFound):
		_, err = b.Create(t.Context(), key, data)
	case err == nil:
		_, err = b.Update(t.Context(), key, data, e.Revision)
	}
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// startTracker runs a tracker of b's open jobs until the test ends, and waits until it is ready.
func startTracker(t *testing.T, b kv.Bucket) *kv.Tracker[job] {
	t.Helper()
	tr := kv.NewTracker(b, open, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { tr.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-tr.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("tracker not ready within 10s")
	}
	return tr
}

// keys renders items as "key=n" (or "key!" for an undecodable value), in order.
func keys(items []kv.Item[job]) string {
	var out []string
	for _, it := range items {
		if it.Err != nil {
			out = append(out, it.Key+"!")
		} else {
			out = append(out, fmt.Sprintf("%s=%d", it.Key, it.Value.N))
		}
	}
	return strings.Join(out, " ")
}

// eventually polls the tracker until its items render as want.
func eventually(t *testing.T, tr *kv.Tracker[job], want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := keys(tr.Items(nil))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracked %q, want %q", got, want)
		}
		time.Sleep(time.Millisecond) // polling interval, bounded by the deadline
	}
}

func TestTrackerFollowsTheBucket(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b kv.Bucket) {
		ctx := t.Context()
		put(t, b, "a", job{N: 1})
		put(t, b, "done", job{Done: true, N: 2})
		if _, err := b.Create(ctx, "bad", []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		put(t, b, "gone", job{N: 3})
		if err := b.Delete(ctx, "gone", 0); err != nil {
			t.Fatal(err)
		}
		tr := startTracker(t, b)
		// Ready means the initial values are in: no waiting needed.
		if got, want := keys(tr.Items(nil)), "a=1 bad!"; got != want {
			t.Fatalf("after the initial values: %q, want %q", got, want)
		}

		put(t, b, "c", job{N: 4}) // created
		eventually(t, tr, "a=1 bad! c=4")
		put(t, b, "a", job{N: 5}) // updated
		eventually(t, tr, "a=5 bad! c=4")
		put(t, b, "c", job{Done: true, N: 6}) // done: dropped
		eventually(t, tr, "a=5 bad!")
		put(t, b, "done", job{N: 7}) // open again: kept again
		eventually(t, tr, "a=5 bad! done=7")
		if err := b.Delete(ctx, "a", 0); err != nil { // deleted
			t.Fatal(err)
		}
		put(t, b, "bad", job{N: 8}) // fixed
		eventually(t, tr, "bad=8 done=7")

		items := tr.Items(func(it kv.Item[job]) bool { return it.Value.N > 7 })
		if got := keys(items); got != "bad=8" {
			t.Fatalf("Items(N > 7) = %q, want bad=8", got)
		}
		if e, err := b.Get(ctx, "bad"); err != nil || items[0].Revision != e.Revision {
			t.Fatalf("revision %d, stored %d (%v)", items[0].Revision, e.Revision, err)
		}
	})
}

func TestTrackerReadyOnEmptyBucket(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b kv.Bucket) {
		tr := startTracker(t, b)
		if items := tr.Items(nil); len(items) != 0 {
			t.Fatalf("items of an empty bucket: %v", items)
		}
		put(t, b, "a", job{N: 1})
		eventually(t, tr, "a=1")
	})
}

// flaky is a real bucket whose watches the test can end, and whose re-opening it can hold
// back, as when the store goes away for a while.
type flaky struct {
	kv.Bucket
	mu      sync.Mutex
	watches int
	end     context.CancelFunc // ends the current watch
	gate    chan struct{}      // the second and later watches wait for it to close
}

func (b *flaky) Watch(ctx context.Context) (<-chan kv.Entry, error) {
	b.mu.Lock()
	b.watches++
	n := b.watches
	b.mu.Unlock()
	if n > 1 {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	wctx, end := context.WithCancel(ctx)
	b.mu.Lock()
	b.end = end
	b.mu.Unlock()
	return b.Bucket.Watch(wctx)
}

func (b *flaky) endWatch() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.end()
}

func (b *flaky) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.watches
}

func TestTrackerResyncsAfterItsWatchEnds(t *testing.T) {
	forEachBucket(t, func(t *testing.T, real kv.Bucket) {
		ctx := t.Context()
		b := &flaky{Bucket: real, gate: make(chan struct{})}
		put(t, b, "a", job{N: 1})
		put(t, b, "b", job{N: 2})
		tr := startTracker(t, b)
		eventually(t, tr, "a=1 b=2")

		b.endWatch()
		deadline := time.Now().Add(10 * time.Second)
		for b.count() < 2 { // the tracker is trying to re-open its watch
			if time.Now().After(deadline) {
				t.Fatal("watch not re-opened within 10s")
			}
			time.Sleep(time.Millisecond) // polling interval, bounded by the deadline
		}
		// Changes while nobody watches: the index keeps its last state meanwhile.
		if err := b.Delete(ctx, "a", 0); err != nil {
			t.Fatal(err)
		}
		put(t, b, "b", job{Done: true})
		put(t, b, "c", job{N: 3})
		if got := keys(tr.Items(nil)); got != "a=1 b=2" {
			t.Fatalf("while disconnected: %q, want the last state a=1 b=2", got)
		}
		close(b.gate)
		eventually(t, tr, "c=3")
		put(t, b, "d", job{N: 4})
		eventually(t, tr, "c=3 d=4")
	})
}

func TestScan(t *testing.T) {
	forEachBucket(t, func(t *testing.T, b kv.Bucket) {
		ctx := t.Context()
		items, err := kv.Scan(ctx, b, open)
		if err != nil || len(items) != 0 {
			t.Fatalf("Scan of an empty bucket: %v, %v", items, err)
		}
		put(t, b, "b", job{N: 1})
		put(t, b, "a", job{N: 2})
		put(t, b, "done", job{Done: true})
		put(t, b, "gone", job{N: 3})
		if err := b.Delete(ctx, "gone", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Create(ctx, "bad", []byte("[]")); err != nil {
			t.Fatal(err)
		}
		items, err = kv.Scan(ctx, b, open)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := keys(items), "a=2 b=1 bad!"; got != want {
			t.Fatalf("Scan = %q, want %q", got, want)
		}
		if e, _ := b.Get(ctx, "a"); items[0].Revision != e.Revision {
			t.Fatalf("revision of a = %d, want %d", items[0].Revision, e.Revision)
		}
		all, err := kv.Scan[job](ctx, b, nil)
		if err != nil || !slices.ContainsFunc(all, func(it kv.Item[job]) bool { return it.Key == "done" }) {
			t.Fatalf("Scan with no filter: %q, %v; want done among them", keys(all), err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := kv.Scan(cancelled, b, open); err == nil {
			t.Fatal("Scan with a cancelled context succeeded")
		}
	})
}
