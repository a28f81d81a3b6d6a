package kvtest

import (
	"context"
	"sync"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// CountingBucket is a real bucket that counts the reads of each key: what tests use to show
// that a sweep leaves records alone.
type CountingBucket struct {
	kv.Bucket
	mu   sync.Mutex
	gets map[string]int
}

// Counting wraps b.
func Counting(b kv.Bucket) *CountingBucket { return &CountingBucket{Bucket: b, gets: map[string]int{}} }

// Get counts the read and passes it on.
func (b *CountingBucket) Get(ctx context.Context, key string) (kv.Entry, error) {
	b.mu.Lock()
	b.gets[key]++
	b.mu.Unlock()
	return b.Bucket.Get(ctx, key)
}

// Reads returns how often each key was read since the last call.
func (b *CountingBucket) Reads() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.gets
	b.gets = map[string]int{}
	return got
}
