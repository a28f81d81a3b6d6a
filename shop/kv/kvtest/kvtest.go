// Package kvtest is the conformance suite every kv.Bucket implementation passes: the
// in-memory one and the JetStream one run the very same tests.
package kvtest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Run runs the suite; newBucket returns an empty bucket for each test.
func Run(t *testing.T, newBucket func(t *testing.T) kv.Bucket) {
	t.Run("GetMissing", func(t *testing.T) {
		b := newBucket(t)
		if _, err := b.Get(context.Background(), "nope"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("Get missing: got %v, want ErrNotFound", err)
		}
	})
	t.Run("CreateGetUpdate", func(t *testing.T) {
		ctx := context.Background()
		b := newBucket(t)
		rev, err := b.Create(ctx, "a", []byte("1"))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := b.Create(ctx, "a", []byte("2")); !errors.Is(err, kv.ErrExists) {
			t.Fatalf("Create twice: got %v, want ErrExists", err)
		}
		e, err := b.Get(ctx, "a")
		if err != nil || string(e.Value) != "1" || e.Revision != rev {
			t.Fatalf("Get: %+v %v, want value 1 at revision %d", e, err, rev)
		}
		rev2, err := b.Update(ctx, "a", []byte("2"), rev)
		if err != nil || rev2 <= rev {
			t.Fatalf("Update: rev %d err %v", rev2, err)
		}
		if _, err := b.Update(ctx, "a", []byte("3"), rev); !errors.Is(err, kv.ErrConflict) {
			t.Fatalf("Update with stale revision: got %v, want ErrConflict", err)
		}
		if _, err := b.Update(ctx, "missing", []byte("3"), 1); !errors.Is(err, kv.ErrConflict) {
			t.Fatalf("Update of missing key: got %v, want ErrConflict", err)
		}
		if e, _ := b.Get(ctx, "a"); string(e.Value) != "2" {
			t.Fatalf("value after stale update = %q, want 2", e.Value)
		}
	})
	t.Run("AWriteKeepsNoReferenceToItsValue", func(t *testing.T) {
		// Writers encode into pooled buffers (kv.EncodeBuffer) and reuse them once the write
		// returned: what the bucket holds, and what a watch or a cached read sees, must be
		// its own copy.
		ctx := context.Background()
		b := newBucket(t)
		value := []byte(`{"n":1}`)
		rev, err := b.Create(ctx, "a", value)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		copy(value, `{"n":9}`)
		if e, err := b.Get(ctx, "a"); err != nil || string(e.Value) != `{"n":1}` {
			t.Fatalf("Get after the caller reused Create's value: %q %v, want {\"n\":1}", e.Value, err)
		}
		value = []byte(`{"n":2}`)
		if _, err := b.Update(ctx, "a", value, rev); err != nil {
			t.Fatalf("Update: %v", err)
		}
		copy(value, `{"n":8}`)
		if e, err := b.Get(ctx, "a"); err != nil || string(e.Value) != `{"n":2}` {
			t.Fatalf("Get after the caller reused Update's value: %q %v, want {\"n\":2}", e.Value, err)
		}
		type record struct {
			N int `json:"n"`
		}
		var v record
		if _, err := kv.Mutate(ctx, b, "a", func(cur *record, _ bool) error { v = *cur; return kv.ErrSkip }); err != nil || v.N != 2 {
			t.Fatalf("Mutate saw n=%d (%v), want 2: a cache kept the caller's bytes", v.N, err)
		}
	})
	t.Run("KeyBounds", func(t *testing.T) {
		// The longest key in the worst case for escaping (no byte of it plain) works; a longer
		// or empty one is refused before it reaches the store, and the bucket keeps working:
		// with NATS, a subject over the control line would close the connection for good.
		ctx := context.Background()
		b := newBucket(t)
		longest := strings.Repeat("ü", kv.MaxKeyLen/2)
		rev, err := b.Create(ctx, longest, []byte("1"))
		if err != nil {
			t.Fatalf("Create with a %d-byte key: %v", len(longest), err)
		}
		if _, err := b.Update(ctx, longest, []byte("2"), rev); err != nil {
			t.Fatalf("Update with a %d-byte key: %v", len(longest), err)
		}
		for _, key := range []string{"", longest + "x", strings.Repeat("ü", 4100)} {
			if _, err := b.Get(ctx, key); !errors.Is(err, kv.ErrBadKey) {
				t.Errorf("Get of a %d-byte key: %v, want ErrBadKey", len(key), err)
			}
			if _, err := b.Create(ctx, key, []byte("1")); !errors.Is(err, kv.ErrBadKey) {
				t.Errorf("Create of a %d-byte key: %v, want ErrBadKey", len(key), err)
			}
			if _, err := b.Update(ctx, key, []byte("1"), 1); !errors.Is(err, kv.ErrBadKey) {
				t.Errorf("Update of a %d-byte key: %v, want ErrBadKey", len(key), err)
			}
			if err := b.Delete(ctx, key, 0); !errors.Is(err, kv.ErrBadKey) {
				t.Errorf("Delete of a %d-byte key: %v, want ErrBadKey", len(key), err)
			}
		}
		if e, err := b.Get(ctx, longest); err != nil || string(e.Value) != "2" {
			t.Fatalf("Get after the refused keys: %q %v, want 2", e.Value, err)
		}
		if err := b.Delete(ctx, longest, 0); err != nil {
			t.Fatalf("Delete with a %d-byte key: %v", len(longest), err)
		}
	})
	t.Run("KeysAreEscaped", func(t *testing.T) {
		ctx := context.Background()
		b := newBucket(t)
		odd := []string{"user 1", "a.b.c", "ü/ñ", "*>", "=41", "-_x"}
		for _, k := range odd {
			if _, err := b.Create(ctx, k, []byte(k)); err != nil {
				t.Fatalf("Create %q: %v", k, err)
			}
		}
		for _, k := range odd {
			if e, err := b.Get(ctx, k); err != nil || string(e.Value) != k || e.Key != k {
				t.Fatalf("Get %q: %+v %v", k, e, err)
			}
		}
		keys, err := b.Keys(ctx)
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		slices.Sort(keys)
		want := slices.Sorted(slices.Values(odd))
		if !slices.Equal(keys, want) {
			t.Fatalf("Keys = %q, want %q", keys, want)
		}
	})
	t.Run("KeysAreAllOrAnError", func(t *testing.T) {
		// A listing cut short (its caller's deadline, a lost connection) is an error, never
		// a shorter list: the catalog seeds a bucket that Keys says is empty.
		ctx := context.Background()
		b := newBucket(t)
		const n = 500
		err := kv.Concurrently(n, func(i int) error {
			_, err := b.Create(ctx, "k"+strconv.Itoa(i), []byte("1"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// Deadlines from none to long enough for the whole listing, each a tenth longer than
		// the last: some end it midway.
		for d := time.Duration(0); ; d += d/10 + 10*time.Microsecond {
			ctx, cancel := context.WithTimeout(ctx, d)
			keys, err := b.Keys(ctx)
			cancel()
			if err == nil && len(keys) != n {
				t.Fatalf("Keys with a %v deadline: %d keys and no error, want %d or an error", d, len(keys), n)
			}
			if err == nil || d > 2*time.Second {
				break
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		ctx := context.Background()
		b := newBucket(t)
		rev, _ := b.Create(ctx, "a", []byte("1"))
		if err := b.Delete(ctx, "a", rev+100); !errors.Is(err, kv.ErrConflict) {
			t.Fatalf("Delete with wrong revision: got %v, want ErrConflict", err)
		}
		if err := b.Delete(ctx, "a", rev); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := b.Get(ctx, "a"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("Get after delete: got %v, want ErrNotFound", err)
		}
		if err := b.Delete(ctx, "a", 0); err != nil {
			t.Fatalf("Delete missing key: %v", err)
		}
		if keys, _ := b.Keys(ctx); len(keys) != 0 {
			t.Fatalf("Keys after delete = %q, want none", keys)
		}
		if _, err := b.Create(ctx, "a", []byte("again")); err != nil {
			t.Fatalf("Create after delete: %v", err)
		}
	})
	t.Run("ConcurrentCreates", func(t *testing.T) { ConcurrentCreates(t, newBucket(t)) })
	t.Run("MutateNeverLosesAnUpdate", func(t *testing.T) {
		ctx := context.Background()
		b := newBucket(t)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					_, err := kv.Mutate(ctx, b, "n", func(n *int, _ bool) error { *n++; return nil })
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Mutate: %v", err)
		}
		n, _, err := kv.Get[int](ctx, b, "n")
		if err != nil || n != writers*each {
			t.Fatalf("counter = %d (%v), want %d", n, err, writers*each)
		}
	})
	t.Run("AWriteReportsWhatHappenedEvenIfItsCallerGivesUp", func(t *testing.T) {
		// A caller whose context ends mid-write (its client hung up) must learn whether the
		// write landed: told "canceled" about a write that lands, it compensates as if
		// nothing had happened, and what it wrote stays (a stock hold whose reservation is
		// gone). So a write that fails must not be there afterwards, and one that succeeds
		// must; cancellations and deadlines are spread over the whole round trip.
		b := newBucket(t)
		rev, err := b.Create(context.Background(), "k", []byte("0"))
		if err != nil {
			t.Fatal(err)
		}
		canceled := 0
		for i := range 300 {
			// Half hang up (cancel), half run out of time (deadline).
			after := time.Duration(i%60) * 5 * time.Microsecond
			ctx, cancel := context.WithCancel(context.Background())
			if i%2 == 0 {
				time.AfterFunc(after, cancel)
			} else {
				cancel()
				ctx, cancel = context.WithTimeout(context.Background(), after)
			}
			value := []byte(strconv.Itoa(i + 1))
			newRev, err := b.Update(ctx, "k", value, rev)
			cancel()
			e, gerr := b.Get(context.Background(), "k")
			if gerr != nil {
				t.Fatal(gerr)
			}
			switch {
			case err == nil && (string(e.Value) != string(value) || e.Revision != newRev):
				t.Fatalf("write %d succeeded, but the bucket holds %q at %d", i+1, e.Value, e.Revision)
			case err != nil && e.Revision != rev:
				t.Fatalf("write %d failed (%v), but it landed: the bucket holds %q", i+1, err, e.Value)
			case err != nil:
				canceled++
			}
			rev = e.Revision
			// A write reported as failed may still land a moment later: look again.
			time.Sleep(200 * time.Microsecond)
			if e, _ := b.Get(context.Background(), "k"); e.Revision != rev {
				t.Fatalf("after write %d (err %v) the bucket moved on by itself to %q", i+1, err, e.Value)
			}
		}
		t.Logf("%d of 300 writes refused, their caller being done before they were sent", canceled)
	})
	t.Run("MutateFrom", func(t *testing.T) {
		ctx := context.Background()
		b := newBucket(t)
		rev, err := kv.Create(ctx, b, "k", 1)
		if err != nil {
			t.Fatal(err)
		}
		inc := func(n *int, _ bool) error { *n++; return nil }
		// From the revision it wrote: no read needed, and the write lands.
		n, rev2, err := kv.MutateFrom(ctx, b, "k", 1, rev, inc)
		if err != nil || n != 2 || rev2 <= rev {
			t.Fatalf("MutateFrom fresh: %d rev %d err %v", n, rev2, err)
		}
		// From a stale value: the conflict makes it read, and fn runs on the stored value.
		n, rev3, err := kv.MutateFrom(ctx, b, "k", 1, rev, inc)
		if err != nil || n != 3 || rev3 <= rev2 {
			t.Fatalf("MutateFrom stale: %d rev %d err %v, want 3", n, rev3, err)
		}
		if got, r, _ := kv.Get[int](ctx, b, "k"); got != 3 || r != rev3 {
			t.Fatalf("stored %d at %d, want 3 at %d", got, r, rev3)
		}
	})
	t.Run("MutateSkipAndError", func(t *testing.T) {
		ctx := context.Background()
		b := newBucket(t)
		if _, err := kv.Mutate(ctx, b, "k", func(v *string, exists bool) error { return kv.ErrSkip }); err != nil {
			t.Fatalf("skip: %v", err)
		}
		if _, err := b.Get(ctx, "k"); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("skip wrote a value: %v", err)
		}
		boom := errors.New("boom")
		if _, err := kv.Mutate(ctx, b, "k", func(v *string, exists bool) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("error from fn: got %v, want boom", err)
		}
	})
	t.Run("TTL", func(t *testing.T) {
		// Values written with a TTL go by themselves, as a Delete would take them: watchers
		// see them deleted, reads and Keys miss them, Create takes the key again. A later
		// write without TTL keeps its value for good, and one with a TTL makes a value
		// expire. JetStream counts whole seconds; two leave ample time for the writes and
		// checks before the expiry.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b := newBucket(t)
		ttl := kv.TTL(2 * time.Second)
		// "kept" is written with the TTL before "short", so it would be gone before it.
		rev, err := b.Create(ctx, "kept", []byte("1"), ttl)
		if err != nil {
			t.Fatalf("Create with TTL: %v", err)
		}
		if _, err := b.Update(ctx, "kept", []byte("2"), rev); err != nil {
			t.Fatalf("Update without TTL: %v", err)
		}
		rev, err = b.Create(ctx, "renewed", []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Update(ctx, "renewed", []byte("2"), rev+100, ttl); !errors.Is(err, kv.ErrConflict) {
			t.Fatalf("Update with TTL at a stale revision: %v, want ErrConflict", err)
		}
		if _, err := b.Update(ctx, "renewed", []byte("2"), rev, ttl); err != nil {
			t.Fatalf("Update with TTL: %v", err)
		}
		if _, err := b.Create(ctx, "short", []byte("1"), ttl); err != nil {
			t.Fatalf("Create with TTL: %v", err)
		}
		if _, err := b.Create(ctx, "short", []byte("again"), ttl); !errors.Is(err, kv.ErrExists) {
			t.Fatalf("Create of a key with a live TTL value: %v, want ErrExists", err)
		}
		if _, err := b.Create(ctx, "plain", []byte("1")); err != nil {
			t.Fatal(err)
		}
		// Mutate and MutateFrom write with the TTL they are given, when they create a key
		// as when they update one.
		set := func(to string) func(*string, bool) error {
			return func(v *string, _ bool) error { *v = to; return nil }
		}
		if _, err := kv.Mutate(ctx, b, "mutated", set("1"), ttl); err != nil {
			t.Fatalf("Mutate with TTL: %v", err)
		}
		if rev, err = kv.Create(ctx, b, "mutated-from", "1"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := kv.MutateFrom(ctx, b, "mutated-from", "1", rev, set("2"), ttl); err != nil {
			t.Fatalf("MutateFrom with TTL: %v", err)
		}
		expiring := []string{"short", "renewed", "mutated", "mutated-from"}
		ch, err := b.Watch(ctx)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		deleted := map[string]bool{}
		deadline := time.After(15 * time.Second)
		for slices.ContainsFunc(expiring, func(k string) bool { return !deleted[k] }) {
			select {
			case e, ok := <-ch:
				if !ok {
					t.Fatal("watch closed early")
				}
				if e.Deleted {
					deleted[e.Key] = true
				}
			case <-deadline:
				t.Fatalf("within 15s the watch saw only %v expire, want %v", deleted, expiring)
			}
		}
		for _, key := range expiring {
			if _, err := b.Get(ctx, key); !errors.Is(err, kv.ErrNotFound) {
				t.Errorf("Get %s after it expired: %v, want ErrNotFound", key, err)
			}
		}
		if e, err := b.Get(ctx, "kept"); err != nil || string(e.Value) != "2" || deleted["kept"] {
			t.Errorf("kept, written again without TTL: %q %v (deleted: %v), want 2", e.Value, err, deleted["kept"])
		}
		keys, err := b.Keys(ctx)
		slices.Sort(keys)
		if err != nil || !slices.Equal(keys, []string{"kept", "plain"}) {
			t.Errorf("Keys after the expiries: %q %v, want kept and plain", keys, err)
		}
		if _, err := b.Create(ctx, "short", []byte("again")); err != nil {
			t.Fatalf("Create of an expired key: %v", err)
		}
		if e, err := b.Get(ctx, "short"); err != nil || string(e.Value) != "again" {
			t.Fatalf("Get after Create of an expired key: %q %v", e.Value, err)
		}
	})
	t.Run("Watch", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b := newBucket(t)
		b.Create(ctx, "before", []byte("1"))
		ch, err := b.Watch(ctx)
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		next := func() kv.Entry {
			t.Helper()
			select {
			case e, ok := <-ch:
				if !ok {
					t.Fatal("watch closed early")
				}
				return e
			case <-time.After(10 * time.Second):
				t.Fatal("no watch update within 10s")
			}
			return kv.Entry{}
		}
		if e := next(); e.Key != "before" || string(e.Value) != "1" {
			t.Fatalf("first entry = %+v, want before=1", e)
		}
		if e := next(); e.Key != "" {
			t.Fatalf("want the up-to-date marker, got %+v", e)
		}
		rev, _ := b.Create(ctx, "after", []byte("2"))
		if e := next(); e.Key != "after" || string(e.Value) != "2" || e.Revision != rev {
			t.Fatalf("update = %+v, want after=2 at %d", e, rev)
		}
		b.Delete(ctx, "after", 0)
		if e := next(); e.Key != "after" || !e.Deleted {
			t.Fatalf("delete = %+v, want a deleted entry for after", e)
		}
		cancel()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("watch channel not closed after cancel")
			}
		}
	})
}

// ConcurrentCreates checks that of writers racing to Create one key, on a new key and on one
// whose value was deleted, exactly one succeeds and every other gets ErrExists: callers take
// ErrExists as "another request made this record" (an idempotency key, a reservation) and
// read it, and any other error as a failure of their own. It is part of Run, and exported
// for the buckets that Run is too long for (a replicated one on a test cluster).
func ConcurrentCreates(t *testing.T, b kv.Bucket) {
	t.Helper()
	ctx := context.Background()
	const writers, rounds = 8, 10
	for round := range rounds {
		key := "k" + strconv.Itoa(round%2) // every other round, over the key deleted last time but one
		var wg sync.WaitGroup
		errs := make([]error, writers)
		revs := make([]uint64, writers)
		for w := range writers {
			wg.Go(func() { revs[w], errs[w] = b.Create(ctx, key, []byte(strconv.Itoa(w))) })
		}
		wg.Wait()
		won := -1
		for w, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("round %d: writers %d and %d both created %s", round, won, w, key)
			case err == nil:
				won = w
			case !errors.Is(err, kv.ErrExists):
				t.Fatalf("round %d: Create of %s lost the race with %v, want ErrExists", round, key, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer created %s", round, key)
		}
		if e, err := b.Get(ctx, key); err != nil || string(e.Value) != strconv.Itoa(won) || e.Revision != revs[won] {
			t.Fatalf("round %d: %s holds %q at %d (%v), want %d's value at %d", round, key, e.Value, e.Revision, err, won, revs[won])
		}
		if err := b.Delete(ctx, key, 0); err != nil {
			t.Fatalf("round %d: Delete: %v", round, err)
		}
	}
}
