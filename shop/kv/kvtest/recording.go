package kvtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/kv"
)

// Recorder logs the store round trips of the buckets and publishers it wraps, each as the
// interval from its start to its end, after holding each one Delay before it goes out: with
// a delay well above a round trip's own time on a quiet machine, operations issued together
// overlap and operations issued one after another do not, so that Chain reads how many round
// trips a piece of code makes one after another, the latency it pays, whatever the machine.
type Recorder struct {
	Delay time.Duration

	mu  sync.Mutex
	ops []Op
}

// Op is one recorded store operation.
type Op struct {
	Name       string // "orders_sagas.Create", "events.Publish order-paid.ord-..."
	Start, End time.Time
}

func (o Op) String() string { return o.Name }

// NewRecorder returns a recorder that delays each operation by delay.
func NewRecorder(delay time.Duration) *Recorder { return &Recorder{Delay: delay} }

// Do records fn as the operation name: it waits Delay (or until ctx ends), then calls fn.
func (r *Recorder) Do(ctx context.Context, name string, fn func() error) error {
	start := time.Now()
	if err := kv.Sleep(ctx, r.Delay); err != nil {
		return err
	}
	err := fn()
	end := time.Now()
	r.mu.Lock()
	r.ops = append(r.ops, Op{Name: name, Start: start, End: end})
	r.mu.Unlock()
	return err
}

// Reset forgets what was recorded so far and returns it, in the order the operations ended.
func (r *Recorder) Reset() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

// Chain returns the longest chain of ops each of which started after the one before it
// ended: how many round trips the work that made them waited for one after another. Taking,
// from the start, the op that ends first among those that start after the last one taken
// gives a longest such chain (the greedy rule of interval scheduling).
func Chain(ops []Op) []Op {
	sorted := slices.Clone(ops)
	slices.SortStableFunc(sorted, func(a, b Op) int { return a.End.Compare(b.End) })
	var chain []Op
	var last time.Time
	for _, op := range sorted {
		if len(chain) == 0 || op.Start.After(last) {
			chain = append(chain, op)
			last = op.End
		}
	}
	return chain
}

// Names lists ops' names, one per line, each with its start and end in milliseconds from
// the first op's start: what a test prints when a chain is longer than it should be.
func Names(ops []Op) string {
	if len(ops) == 0 {
		return ""
	}
	t0 := slices.MinFunc(ops, func(a, b Op) int { return a.Start.Compare(b.Start) }).Start
	ms := func(t time.Time) float64 { return float64(t.Sub(t0).Microseconds()) / 1000 }
	var b strings.Builder
	for i, op := range ops {
		fmt.Fprintf(&b, "%2d. %-40s %7.2f → %7.2f ms\n", i+1, op.Name, ms(op.Start), ms(op.End))
	}
	return b.String()
}

// Bucket wraps b, named name in the records. Watch is not recorded: it is a stream that
// runs beside the requests (a view, an index), opened once, not a round trip of one.
func (r *Recorder) Bucket(name string, b kv.Bucket) kv.Bucket {
	return &RecordingBucket{Bucket: b, name: name, rec: r}
}

// RecordingBucket is a bucket whose round trips a Recorder records (see Recorder.Bucket).
type RecordingBucket struct {
	kv.Bucket
	name string
	rec  *Recorder
}

// Get records the read and passes it on.
func (b *RecordingBucket) Get(ctx context.Context, key string) (e kv.Entry, err error) {
	err = b.rec.Do(ctx, b.name+".Get", func() error { e, err = b.Bucket.Get(ctx, key); return err })
	return e, err
}

// Create records the write and passes it on.
func (b *RecordingBucket) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (rev uint64, err error) {
	err = b.rec.Do(ctx, b.name+".Create", func() error { rev, err = b.Bucket.Create(ctx, key, value, opts...); return err })
	return rev, err
}

// Update records the write and passes it on.
func (b *RecordingBucket) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (n uint64, err error) {
	err = b.rec.Do(ctx, b.name+".Update", func() error { n, err = b.Bucket.Update(ctx, key, value, rev, opts...); return err })
	return n, err
}

// Delete records the delete and passes it on.
func (b *RecordingBucket) Delete(ctx context.Context, key string, rev uint64) error {
	return b.rec.Do(ctx, b.name+".Delete", func() error { return b.Bucket.Delete(ctx, key, rev) })
}

// Keys records the listing and passes it on.
func (b *RecordingBucket) Keys(ctx context.Context) (keys []string, err error) {
	err = b.rec.Do(ctx, b.name+".Keys", func() error { keys, err = b.Bucket.Keys(ctx); return err })
	return keys, err
}

// Publisher wraps p, named name in the records: a publish the broker acknowledges is a
// round trip like a store write.
func (r *Recorder) Publisher(name string, p events.Publisher) events.Publisher {
	return recordingPublisher{p: p, name: name, rec: r}
}

type recordingPublisher struct {
	p    events.Publisher
	name string
	rec  *Recorder
}

func (p recordingPublisher) Publish(ctx context.Context, subject, id string, payload any) error {
	return p.rec.Do(ctx, p.name+".Publish "+subject, func() error { return p.p.Publish(ctx, subject, id, payload) })
}
