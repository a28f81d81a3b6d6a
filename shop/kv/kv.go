// Package kv is the persistence every context's store is built on: buckets of JSON values
// with optimistic concurrency by revision, as NATS JetStream key-value offers them.
//
// The Bucket interface is the port; this package holds the in-memory implementation (for unit
// tests and embedders) and package natsjs the JetStream one. Both pass the suite in kvtest.
// Contexts keep their rules out of here: they read, decide in a function, and Mutate writes
// with the revision they read, retrying on conflict. That is how "stock never goes below
// zero" stays one piece of domain code whatever the store. A bucket wrapped in Cached
// remembers the revisions this process last saw, so that Mutate writes at once, with no read
// first, when nothing else wrote the key since.
//
// Scan and Tracker are for sweeps (expired reservations, stalled checkouts): Scan reads a
// bucket in one request, and a Tracker keeps the entries a sweep cares about in memory with
// a watch, so that a sweep need not read the whole bucket every time it runs.
//
// Records that are kept for a while and then have no use (a finished checkout's idempotency
// record, a declined charge) are written with a TTL instead: the store removes them on its
// own, with no sweep and no index (JetStream's per-message TTL; the memory store keeps a
// timer).
package kv

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

var (
	// ErrNotFound: the key has no value.
	ErrNotFound = errors.New("kv: key not found")
	// ErrExists: Create found a value already there.
	ErrExists = errors.New("kv: key exists")
	// ErrConflict: the key's revision is not the one the write expected.
	ErrConflict = errors.New("kv: revision conflict")
	// ErrSkip is returned by a Mutate function to leave the value as it is.
	ErrSkip = errors.New("kv: no change")
	// ErrBadKey: the key is empty or longer than MaxKeyLen; nothing was sent to the store.
	ErrBadKey = errors.New("kv: key empty or too long")
)

// MaxKeyLen is the longest key, in bytes, that a bucket takes. Contexts bound their keys
// long before this (IDs are at most 128 bytes, package ids); the bound is the store's own, so
// that no key, whatever went wrong upstream, becomes a NATS subject over the server's 4 KB
// control line: the server answers that with an error that closes the connection for good.
// Escaped (up to three bytes each), 512 bytes stay under 1.6 KB.
const MaxKeyLen = 512

// CheckKey returns ErrBadKey for a key no bucket takes. Every Bucket calls it first.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes (1 to %d allowed)", ErrBadKey, len(key), MaxKeyLen)
	}
	return nil
}

// WriteOption changes how Create and Update write a value.
type WriteOption func(*writeOptions)

type writeOptions struct {
	ttl time.Duration
}

// TTL makes the value written expire: ttl after this write the store removes the key, as a
// Delete would (watchers see a deleted entry), unless a later write has replaced the value.
// A write without TTL keeps its value for good, also over one that had a TTL. Stores count
// whole seconds, JetStream's unit: ttl is rounded up to the next second; ttl <= 0 means no
// expiry. The removal is not instant: JetStream makes it within about a second of the
// expiry, the memory store at once.
func TTL(ttl time.Duration) WriteOption {
	return func(o *writeOptions) { o.ttl = ttl }
}

// TTLOf returns the expiry opts ask for, rounded up to whole seconds, or 0 for none: what a
// Bucket implementation applies.
func TTLOf(opts []WriteOption) time.Duration {
	if len(opts) == 0 {
		return 0 // most writes: and o, which opts see, is not allocated
	}
	var o writeOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.ttl <= 0 {
		return 0
	}
	return (o.ttl + time.Second - 1).Truncate(time.Second)
}

// Key joins parts into one key, as a context does to keep several records of one owner (a
// user's history and its chunks, say) apart from each other and from the owner's own key.
// Distinct lists of parts make distinct keys as long as no part holds the separator, a
// control character, which no ID holds (package ids).
func Key(parts ...string) string { return strings.Join(parts, "\x1f") }

// Entry is one value of a bucket.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64 // increases with every write to the bucket; 0 only in the watch marker
	Deleted  bool   // set on watch updates that remove the key
}

// Bucket is a key-value bucket. Keys are arbitrary strings of 1..MaxKeyLen bytes (others get
// ErrBadKey); backends escape them.
//
// A write (Create, Update, Delete) that returns an error did not happen, and one that
// returns nil did, also when the caller's context ends midway: a write already sent is
// awaited, not abandoned. Only a store that does not answer in time leaves it unknown, and
// so does a connection lost while the write waits: such a write returns an error that wraps
// context.DeadlineExceeded, and may have landed.
//
// The value a write is given is the caller's again once the write returns: a bucket copies
// what it keeps (so that writers can encode into a pooled Buffer).
type Bucket interface {
	// Get returns the current value of key, or ErrNotFound.
	Get(ctx context.Context, key string) (Entry, error)
	// Create writes value if key has none, or returns ErrExists. A key that expired (see
	// TTL) has none.
	Create(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error)
	// Update writes value if key's revision is still rev, or returns ErrConflict.
	Update(ctx context.Context, key string, value []byte, rev uint64, opts ...WriteOption) (uint64, error)
	// Delete removes key; with rev > 0 only if its revision is still rev (else ErrConflict).
	// Deleting a missing key is not an error.
	Delete(ctx context.Context, key string, rev uint64) error
	// Keys lists every key that has a value, in no particular order.
	Keys(ctx context.Context) ([]string, error)
	// Watch delivers every current entry, then one Entry with an empty Key meaning "up to
	// date", then every later change, until ctx is done, when the channel is closed.
	Watch(ctx context.Context) (<-chan Entry, error)
}

// maxConcurrent bounds the requests Concurrently has in flight: enough for a page of a list
// (up to 101 reads) in one wave.
const maxConcurrent = 128

// Concurrently runs call(i) for every i in [0, n), up to maxConcurrent at a time, and
// returns their errors joined: for independent store requests, which then cost one round
// trip of latency instead of n.
//
// The last call runs on the caller's goroutine, and a single call with no other: a
// goroutine that makes a store request grows its stack several times over (the profile of
// a checkout, whose calls are mostly of one product, showed a tenth of its goroutine CPU
// copying stacks), where the caller's stack has grown already.
func Concurrently(n int, call func(i int) error) error {
	if n == 1 {
		return errors.Join(call(0))
	}
	errs := make([]error, n)
	var sem chan struct{} // nil, and never waited on, when every call fits in one wave
	if n > maxConcurrent {
		sem = make(chan struct{}, maxConcurrent)
	}
	var wg sync.WaitGroup
	for i := range n {
		if sem != nil {
			sem <- struct{}{}
		}
		if i == n-1 {
			errs[i] = call(i)
			break
		}
		wg.Go(func() {
			if sem != nil {
				defer func() { <-sem }()
			}
			errs[i] = call(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// GetEach reads keys concurrently and decodes each value into a T: values[i] is that of
// keys[i], and found[i] says whether it has one. Any other failure is returned.
func GetEach[T any](ctx context.Context, b Bucket, keys []string) (values []T, found []bool, err error) {
	values, found = make([]T, len(keys)), make([]bool, len(keys))
	err = Concurrently(len(keys), func(i int) error {
		v, _, err := Get[T](ctx, b, keys[i])
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		values[i], found[i] = v, true
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return values, found, nil
}

// Get reads key and decodes its JSON value into a T.
func Get[T any](ctx context.Context, b Bucket, key string) (T, uint64, error) {
	var v T
	e, err := b.Get(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := Decode(e.Value, &v); err != nil {
		return v, 0, fmt.Errorf("decode %q: %w", key, err)
	}
	return v, e.Revision, nil
}

// Create encodes v as JSON and writes it if key has no value (else ErrExists).
func Create[T any](ctx context.Context, b Bucket, key string, v T, opts ...WriteOption) (uint64, error) {
	data, err := EncodeBuffer(&v) // v is copied to the heap once, where passing it would copy it twice
	if err != nil {
		return 0, fmt.Errorf("encode %q: %w", key, err)
	}
	defer data.Free()
	return b.Create(ctx, key, data.Bytes(), opts...)
}

// maxAttempts bounds the retries of Mutate on revision conflicts. Under 40 concurrent writers
// of one key (the no-oversell test) a write lands within a few dozen attempts.
const maxAttempts = 500

// Mutate reads key, lets fn change the value (the zero T and exists=false when there is
// none), and writes the result with the revision it read, retrying from the read on conflict.
// fn must be free of side effects: it may run several times. If fn returns ErrSkip nothing is
// written and the current value is returned; any other error is returned as it is.
//
// On a bucket Cached returned, the first attempt starts from the value the cache remembers,
// which saves the read when nothing else wrote the key since; the store refuses the write
// otherwise, and Mutate reads and goes on as usual. Only a write is decided on the
// remembered value: if fn returns an error (ErrSkip too) there, it runs again on a value
// read from the store, whose answer counts. The write is made with opts (TTL).
func Mutate[T any](ctx context.Context, b Bucket, key string, fn func(v *T, exists bool) error, opts ...WriteOption) (T, error) {
	var start *known[T]
	if v, rev, ok := Peek[T](b, key); ok {
		start = &known[T]{v: v, rev: rev, guess: true}
	}
	v, _, err := mutate(ctx, b, key, start, fn, opts)
	return v, err
}

// MutateFrom is Mutate starting from a value the caller already holds at revision rev (from
// its own Create or an earlier write), which saves the first read: the write is tried at rev
// and only a conflict makes it read. It also returns the revision written (or, after
// ErrSkip, the one read), so that a sequence of writes to one key reads nothing.
func MutateFrom[T any](ctx context.Context, b Bucket, key string, cur T, rev uint64, fn func(v *T, exists bool) error, opts ...WriteOption) (T, uint64, error) {
	return mutate(ctx, b, key, &known[T]{v: cur, rev: rev}, fn, opts)
}

type known[T any] struct {
	v     T
	rev   uint64
	guess bool // remembered by a cache: only a write decided on it counts
}

func mutate[T any](ctx context.Context, b Bucket, key string, start *known[T], fn func(v *T, exists bool) error, opts []WriteOption) (T, uint64, error) {
	for attempt := 0; ; attempt++ {
		var v T
		var rev uint64
		exists, guess := false, false
		if start != nil {
			v, rev, exists, guess = start.v, start.rev, start.rev > 0, start.guess
			start = nil
		} else {
			e, err := b.Get(ctx, key)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return v, 0, err
			default:
				exists, rev = true, e.Revision
				if err := Decode(e.Value, &v); err != nil {
					return v, 0, fmt.Errorf("decode %q: %w", key, err)
				}
			}
		}
		if err := fn(&v, exists); err != nil {
			if guess {
				attempt--
				continue // decided on a remembered value: ask the store
			}
			if errors.Is(err, ErrSkip) {
				return v, rev, nil
			}
			return v, rev, err
		}
		data, err := EncodeBuffer(&v) // v is on the heap already (fn has it): no copy to encode
		if err != nil {
			return v, 0, fmt.Errorf("encode %q: %w", key, err)
		}
		var written uint64
		if exists {
			written, err = b.Update(ctx, key, data.Bytes(), rev, opts...)
		} else {
			written, err = b.Create(ctx, key, data.Bytes(), opts...)
		}
		data.Free()
		if err == nil {
			return v, written, nil
		}
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrExists) {
			return v, 0, err
		}
		if guess {
			attempt--
			continue // the remembered revision was stale: read, with no pause
		}
		if attempt >= maxAttempts {
			return v, 0, fmt.Errorf("update %q: %d attempts: %w", key, attempt+1, ErrConflict)
		}
		if err := Backoff(ctx, attempt); err != nil {
			return v, 0, err
		}
	}
}

// Backoff waits a short random time that grows with the attempt (0 for the first retry),
// so that writers contending for one key spread out instead of colliding again at once.
func Backoff(ctx context.Context, attempt int) error {
	if attempt < 2 {
		return ctx.Err()
	}
	limit := time.Duration(min(attempt, 20)) * 200 * time.Microsecond
	return Sleep(ctx, rand.N(limit)+50*time.Microsecond)
}

// Sleep waits d, or less if ctx ends first, when it returns ctx.Err(). It is for the loops
// that poll a record another writer is busy with, and for retries after a store failure.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
