package kv

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// Cached returns b remembering, for up to entries keys and maxCacheBytes of them (the least
// recently used go first), the last value and revision this process read or wrote, so that
// Mutate can write at that revision straight away: one store round trip instead of a read
// and a write, when nothing else wrote the key since. Nothing is ever answered from the
// memory: Get always asks the store. What is remembered is only a guess at the revision,
// which the store's compare-and-set checks, so a stale guess costs one refused write and the
// read Mutate would have made anyway, never a wrong write. Values longer than maxCachedValue
// are not remembered. Cached of a bucket Cached returned is that bucket.
//
// It is for buckets whose keys a process reads and then writes again (a stock document, a
// reservation, a cart); wrap the bucket outermost, so that Mutate sees it.
func Cached(b Bucket, entries int) Bucket {
	if _, ok := b.(*cachedBucket); ok {
		return b
	}
	return &cachedBucket{Bucket: b, max: max(entries, 1), index: map[string]*list.Element{}, lru: list.New()}
}

// maxCacheBytes bounds what one cache holds, keys and values (entryOverhead each included):
// a bound in entries alone let a cache of large values outgrow its process. Notify kept
// 8,192 entries of inboxes (up to 16 KB once a user has some hundred notifications, as the
// load test's 500 returning users soon do) and of the chunks it sealed: up to 120 MB in a
// service of 51 MiB, whose heap's goal grew from 4 to 25 MB in five minutes of load. 4 MiB
// keeps the thousands of small records the caches are sized for (a stock document, a
// reservation, a cart: a few hundred bytes), and a few hundred of the largest: the records
// written in the last seconds, which is what a cache is for.
const maxCacheBytes = 4 << 20

// entryOverhead is about what remembering a key costs besides its key's and value's bytes:
// its list element, its cacheEntry and its map slot.
const entryOverhead = 160

// maxCachedValue bounds the values a cache keeps (maxCacheBytes bounds them all together):
// the shop's records are well under it (a cart, a stock document, a reservation of a few
// lines); a larger one is read before it is written, as without a cache.
const maxCachedValue = 16 << 10

// cachedBucket is the Bucket Cached returns.
type cachedBucket struct {
	Bucket
	max int

	mu    sync.Mutex
	index map[string]*list.Element // of *cacheEntry
	lru   *list.List               // most recently used first
	bytes int                      // the entries' sizes (cacheEntry.size): at most maxCacheBytes
}

// cacheEntry is what a cache knows of a key: its value at rev, or no value (rev 0).
type cacheEntry struct {
	key   string
	value []byte
	rev   uint64
}

// size is the memory e holds: its value's whole buffer (keep leaves room to grow), its key
// and entryOverhead.
func (e *cacheEntry) size() int { return cap(e.value) + len(e.key) + entryOverhead }

// peek decodes what the cache knows of key into v, a pointer, and returns its revision, or
// rev 0 when the key had no value (v is then left alone); ok is false when it knows nothing
// of key or the value does not decode. It decodes under the lock, so that no one holds an
// entry's bytes but the cache, and remember can write a key's next value over them.
func (c *cachedBucket) peek(key string, v any) (rev uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[key]
	if !ok {
		return 0, false
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	if e.rev > 0 && Decode(e.value, v) != nil {
		return 0, false
	}
	return e.rev, true
}

// remember notes key's value at rev (rev 0: no value). Revisions only grow, so an older
// write finishing after a newer one does not replace it; a value with no revision replaces
// nothing it does not know. A key's new value is copied over its old one when it fits (most
// writes replace a record with one of about its size): the cache holds the only reference
// to it (see peek).
func (c *cachedBucket) remember(key string, value []byte, rev uint64) {
	if len(value) > maxCachedValue {
		c.forget(key)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[key]; ok {
		e := el.Value.(*cacheEntry)
		if rev == 0 || rev <= e.rev {
			return
		}
		c.bytes -= e.size()
		e.value, e.rev = keep(e.value, value), rev
		c.bytes += e.size()
		c.lru.MoveToFront(el)
	} else {
		e := &cacheEntry{key: key, value: keep(nil, value), rev: rev}
		c.index[key] = c.lru.PushFront(e)
		c.bytes += e.size()
	}
	for c.lru.Len() > c.max || (c.bytes > maxCacheBytes && c.lru.Len() > 1) {
		c.remove(c.lru.Back())
	}
}

// remove forgets the entry el; c.mu is held.
func (c *cachedBucket) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.lru.Remove(el)
	delete(c.index, e.key)
	c.bytes -= e.size()
}

// keep copies value over dst when it fits, or into a new slice with room for a value a
// quarter longer: a record's next version is often a little longer than the last (a
// reservation's state, a stock document's one more hold).
func keep(dst, value []byte) []byte {
	if cap(dst) < len(value) {
		dst = make([]byte, 0, len(value)+len(value)/4)
	}
	return append(dst[:0], value...)
}

// forget drops what the cache knows of key: after a refused write, or one whose outcome is
// unknown.
func (c *cachedBucket) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[key]; ok {
		c.remove(el)
	}
}

func (c *cachedBucket) Get(ctx context.Context, key string) (Entry, error) {
	e, err := c.Bucket.Get(ctx, key)
	switch {
	case err == nil:
		c.remember(key, e.Value, e.Revision)
	case errors.Is(err, ErrNotFound):
		c.remember(key, nil, 0)
	}
	return e, err
}

func (c *cachedBucket) Create(ctx context.Context, key string, value []byte, opts ...WriteOption) (uint64, error) {
	rev, err := c.Bucket.Create(ctx, key, value, opts...)
	c.written(key, value, rev, err)
	return rev, err
}

func (c *cachedBucket) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...WriteOption) (uint64, error) {
	rev, err := c.Bucket.Update(ctx, key, value, rev, opts...)
	c.written(key, value, rev, err)
	return rev, err
}

func (c *cachedBucket) Delete(ctx context.Context, key string, rev uint64) error {
	err := c.Bucket.Delete(ctx, key, rev)
	c.forget(key) // a delete returns no revision to remember its absence by
	return err
}

func (c *cachedBucket) written(key string, value []byte, rev uint64, err error) {
	if err != nil {
		c.forget(key)
		return
	}
	c.remember(key, value, rev)
}

// cache is what Mutate and Peek look for in a bucket.
type cache interface {
	peek(key string, v any) (rev uint64, ok bool)
}

var _ cache = (*cachedBucket)(nil)

// Peek returns what b, a bucket Cached returned, remembers of key, decoded, without asking
// the store: found says whether it remembers anything, and rev 0 that the key had no value
// then. It is a guess of the past, good for choosing what to write at rev (the store's
// compare-and-set settles it) and for facts that, once true, stay true until the caller's
// own compare-and-set would fail; a decision to write nothing must be taken on a Get.
func Peek[T any](b Bucket, key string) (v T, rev uint64, found bool) {
	c, ok := b.(cache)
	if !ok {
		return v, 0, false
	}
	var known T
	if rev, found = c.peek(key, &known); !found {
		return v, 0, false
	}
	return known, rev, true
}
