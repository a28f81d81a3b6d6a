package kv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// The cache must keep every promise of a Bucket: the whole suite, on both stores, and with a
// cache so small that it evicts all the time.
func TestCachedMemory(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Bucket { return kv.Cached(kv.NewMemory(), 64) })
}

func TestCachedMemoryTiny(t *testing.T) {
	kvtest.Run(t, func(t *testing.T) kv.Bucket { return kv.Cached(kv.NewMemory(), 1) })
}

func TestCachedJetStream(t *testing.T) {
	srv := natsjstest.New(t)
	kvtest.Run(t, func(t *testing.T) kv.Bucket { return kv.Cached(srv.Bucket(t, "cached"), 64) })
}

// calls is a real bucket that counts the requests it passes on, by operation.
type calls struct {
	kv.Bucket
	mu sync.Mutex
	n  map[string]int
}

func counted(b kv.Bucket) *calls { return &calls{Bucket: b, n: map[string]int{}} }

func (c *calls) count(op string) {
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
}

// take returns the requests made since the last call, as "Get=1 Update=1".
func (c *calls) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, op := range []string{"Get", "Create", "Update", "Delete"} {
		if c.n[op] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", op, c.n[op]))
		}
	}
	c.n = map[string]int{}
	return strings.Join(parts, " ")
}

func (c *calls) Get(ctx context.Context, key string) (kv.Entry, error) {
	c.count("Get")
	return c.Bucket.Get(ctx, key)
}

func (c *calls) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (uint64, error) {
	c.count("Create")
	return c.Bucket.Create(ctx, key, value, opts...)
}

func (c *calls) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (uint64, error) {
	c.count("Update")
	return c.Bucket.Update(ctx, key, value, rev, opts...)
}

func (c *calls) Delete(ctx context.Context, key string, rev uint64) error {
	c.count("Delete")
	return c.Bucket.Delete(ctx, key, rev)
}

func inc(n *int, _ bool) error { *n++; return nil }

func mustMutate(t *testing.T, b kv.Bucket, key string, fn func(*int, bool) error, want int) {
	t.Helper()
	got, err := kv.Mutate(t.Context(), b, key, fn)
	if err != nil || got != want {
		t.Fatalf("Mutate %s = %d, %v; want %d", key, got, err, want)
	}
	if stored, _, err := kv.Get[int](context.WithoutCancel(t.Context()), b, key); err != nil || stored != want {
		t.Fatalf("stored %s = %d, %v; want %d", key, stored, err, want)
	}
}

func expectCalls(t *testing.T, c *calls, what, want string) {
	t.Helper()
	if got := c.take(); got != want {
		t.Fatalf("%s: requests %q, want %q", what, got, want)
	}
}

// forEachStore runs test over a memory bucket and over a JetStream one.
func forEachStore(t *testing.T, test func(t *testing.T, b kv.Bucket)) {
	t.Run("Memory", func(t *testing.T) { test(t, kv.NewMemory()) })
	t.Run("JetStream", func(t *testing.T) { test(t, natsjstest.New(t).Bucket(t, "shared")) })
}

// TestCachedMutateWritesAtTheRememberedRevision: a key this process wrote or read is
// written again in one request; one it knows nothing of is read first.
func TestCachedMutateWritesAtTheRememberedRevision(t *testing.T) {
	forEachStore(t, func(t *testing.T, store kv.Bucket) {
		c := counted(store)
		b := kv.Cached(c, 16)
		mustMutate(t, b, "n", inc, 1)
		expectCalls(t, c, "first Mutate (the key is known to have no value)", "Get=2 Create=1")
		mustMutate(t, b, "n", inc, 2)
		expectCalls(t, c, "Mutate of a key it wrote", "Get=1 Update=1") // the Get is mustMutate's check
		c.take()
		if _, err := kv.Mutate(t.Context(), b, "n", inc); err != nil {
			t.Fatal(err)
		}
		expectCalls(t, c, "Mutate of a key it read", "Update=1")
	})
}

// TestCachedStaleValue: another writer changed the key; the remembered revision is refused,
// and the change is made to the stored value. A decision not to write, taken on the
// remembered value, is taken again on the stored one.
func TestCachedStaleValue(t *testing.T) {
	forEachStore(t, func(t *testing.T, store kv.Bucket) {
		ctx := t.Context()
		c := counted(store)
		mine, theirs := kv.Cached(c, 16), kv.Cached(store, 16)
		mustMutate(t, mine, "n", inc, 1)
		mustMutate(t, theirs, "n", func(n *int, _ bool) error { *n += 10; return nil }, 11)
		c.take()
		mustMutate(t, mine, "n", inc, 12)
		expectCalls(t, c, "Mutate from a stale revision", "Get=2 Update=2") // refused, read, written, checked

		// mine remembers 12; theirs makes it 0. "Take one if there is one" refuses on the
		// stored 0, though the remembered 12 would allow it.
		mustMutate(t, theirs, "n", func(n *int, _ bool) error { *n = 0; return nil }, 0)
		errNone := errors.New("none left")
		take := func(n *int, _ bool) error {
			if *n == 0 {
				return errNone
			}
			*n--
			return nil
		}
		c.take()
		if _, err := kv.Mutate(ctx, mine, "n", take); !errors.Is(err, errNone) {
			t.Fatalf("take from a stale 12, stored 0: %v, want errNone", err)
		}
		expectCalls(t, c, "take from a stale value", "Get=1 Update=1")
		// And the other way: mine remembers 0 (it just read it), theirs makes it 5. The
		// remembered 0 says "none left"; the store says 5, and one is taken.
		mustMutate(t, theirs, "n", func(n *int, _ bool) error { *n = 5; return nil }, 5)
		got, err := kv.Mutate(ctx, mine, "n", take)
		if err != nil || got != 4 {
			t.Fatalf("take from a stale 0, stored 5: %d, %v; want 4", got, err)
		}
		// ErrSkip on the remembered value is not trusted either.
		mustMutate(t, theirs, "n", func(n *int, _ bool) error { *n = 100; return nil }, 100)
		got, err = kv.Mutate(ctx, mine, "n", func(n *int, _ bool) error {
			if *n < 50 {
				return kv.ErrSkip
			}
			*n = 50
			return nil
		})
		if err != nil || got != 50 {
			t.Fatalf("cap at 50 from a stale 4, stored 100: %d, %v; want 50", got, err)
		}
	})
}

// TestCachedDeletedKey: a key deleted behind the cache's back, or through it, and one created
// behind its back where it remembers none, all end with the right value.
func TestCachedDeletedKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, store kv.Bucket) {
		ctx := t.Context()
		mine := kv.Cached(store, 16)
		mustMutate(t, mine, "gone", inc, 1)
		if err := store.Delete(ctx, "gone", 0); err != nil {
			t.Fatal(err)
		}
		mustMutate(t, mine, "gone", inc, 1) // from nothing, not from the remembered 1

		if err := mine.Delete(ctx, "gone", 0); err != nil {
			t.Fatal(err)
		}
		mustMutate(t, mine, "gone", inc, 1)

		// mine learns that "late" has no value; then someone creates it.
		if _, err := mine.Get(ctx, "late"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("Get late: %v", err)
		}
		if _, err := kv.Create(ctx, store, "late", 7); err != nil {
			t.Fatal(err)
		}
		mustMutate(t, mine, "late", inc, 8)
	})
}

// TestCachedConcurrentWritersOverOneBucket: two processes, each with its own cache, and
// several goroutines in each, increment one key of one JetStream bucket: no increment is
// lost, whatever each cache remembers.
func TestCachedConcurrentWritersOverOneBucket(t *testing.T) {
	srv := natsjstest.New(t)
	store := srv.Bucket(t, "contended")
	caches := []kv.Bucket{kv.Cached(store, 16), kv.Cached(store, 16)}
	const perCache, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, len(caches)*perCache)
	for _, b := range caches {
		for range perCache {
			wg.Go(func() {
				for range each {
					if _, err := kv.Mutate(t.Context(), b, "n", inc); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Mutate: %v", err)
	}
	if n, _, err := kv.Get[int](t.Context(), store, "n"); err != nil || n != len(caches)*perCache*each {
		t.Fatalf("counter = %d, %v; want %d", n, err, len(caches)*perCache*each)
	}
}

// TestCachedIsBoundedInBytes: a cache of large values forgets the least recently used ones
// before they hold more than kv.MaxCacheBytes, however many entries it may keep.
func TestCachedIsBoundedInBytes(t *testing.T) {
	ctx := t.Context()
	b := kv.Cached(kv.NewMemory(), 1_000_000)
	value := strings.Repeat("x", 15_000) // an inbox of some hundred notifications
	const n = 1000
	for i := range n {
		if _, err := kv.Create(ctx, b, fmt.Sprintf("k%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	found := 0
	for i := range n {
		if _, _, ok := kv.Peek[string](b, fmt.Sprintf("k%04d", i)); ok {
			found++
		}
	}
	if held := found * len(value); held > kv.MaxCacheBytes || held < kv.MaxCacheBytes/2 {
		t.Errorf("the cache remembers %d values of %d bytes (%d bytes), want between half of and all %d bytes", found, len(value), held, kv.MaxCacheBytes)
	}
	if _, _, ok := kv.Peek[string](b, fmt.Sprintf("k%04d", n-1)); !ok {
		t.Error("the last value written was forgotten")
	}
	if _, _, ok := kv.Peek[string](b, "k0000"); ok {
		t.Error("the first value written is still remembered")
	}
}

// TestCachedIsBounded: the least recently used keys are forgotten past the bound, and so are
// values too large to keep.
func TestCachedIsBounded(t *testing.T) {
	ctx := t.Context()
	b := kv.Cached(kv.NewMemory(), 2)
	for _, k := range []string{"a", "b", "c"} {
		if _, err := kv.Create(ctx, b, k, 1); err != nil {
			t.Fatal(err)
		}
	}
	for k, want := range map[string]bool{"a": false, "b": true, "c": true} {
		if _, _, found := kv.Peek[int](b, k); found != want {
			t.Errorf("Peek %s: found %v, want %v", k, found, want)
		}
	}
	if _, err := kv.Create(ctx, b, "big", strings.Repeat("x", 64<<10)); err != nil {
		t.Fatal(err)
	}
	if _, _, found := kv.Peek[string](b, "big"); found {
		t.Error("a 64 KiB value was kept")
	}
	if kv.Cached(b, 10) != b {
		t.Error("Cached of a cached bucket wrapped it again")
	}
	if _, _, found := kv.Peek[int](kv.NewMemory(), "a"); found {
		t.Error("Peek found something in a bucket without a cache")
	}
}
