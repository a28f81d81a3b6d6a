package kv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Item is one decoded entry of a bucket, as Scan and Tracker hold it.
type Item[T any] struct {
	Key      string
	Value    T // the zero T when Err is set
	Revision uint64
	// Err says the value did not decode as a T. Such entries are always kept (there is no
	// value to decide on), so that whoever sweeps the bucket can report them.
	Err error
}

// Scan reads the entries of b that keep selects (every entry when keep is nil), sorted by
// key. It reads them with one watch up to its "up to date" marker: one request, where
// listing the keys and reading each would take a store round trip per entry. Everything is
// read and decoded all the same, so a sweep that runs often over a bucket that grows should
// use a Tracker instead.
func Scan[T any](ctx context.Context, b Bucket, keep func(T) bool) ([]Item[T], error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := b.Watch(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan: watch: %w", err)
	}
	items := map[string]Item[T]{}
	scratch := new(T)
	for e := range ch {
		if e.Key == "" {
			return sortedItems(items, nil), nil
		}
		apply(items, e, keep, scratch)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	return nil, errors.New("scan: watch ended before it was up to date")
}

// Tracker keeps in memory the entries of a bucket that a predicate selects, up to date with
// a watch: the index a periodic sweep reads instead of the whole bucket, so that the sweep
// costs in proportion to the entries still of interest (open reservations, unfinished
// checkouts), not to everything the bucket ever kept. Entries stop being kept when an
// update makes keep reject them or deletes them.
//
// The index lags the bucket by the watch's delivery (milliseconds), and more while the
// watch is being re-opened, so a sweep must re-read or compare-and-set whatever it acts on.
// Every kept entry is decoded once per update, whatever the sweeps do.
type Tracker[T any] struct {
	b     Bucket
	keep  func(T) bool
	log   *slog.Logger
	ready chan struct{} // closed once the first watch is up to date
	once  sync.Once

	mu    sync.RWMutex
	items map[string]Item[T]
}

// Pauses before a watch that ended or failed is re-opened: doubling from the first to the
// last, back to the first once a watch got up to date.
const (
	rewatchFirst = 250 * time.Millisecond
	rewatchLast  = 10 * time.Second
)

// NewTracker returns a tracker of the entries of b that keep selects (all when keep is
// nil). It follows nothing until Run. log receives the watch failures (nil: slog.Default()).
func NewTracker[T any](b Bucket, keep func(T) bool, log *slog.Logger) *Tracker[T] {
	if log == nil {
		log = slog.Default()
	}
	return &Tracker[T]{b: b, keep: keep, log: log, ready: make(chan struct{}), items: map[string]Item[T]{}}
}

// Run follows the bucket until ctx ends; call it once, in its own goroutine. A watch that fails or ends while ctx is live (the
// store went away) is re-opened after a pause, and its initial values rebuild the index from
// scratch, so that entries deleted meanwhile do not linger; until that rebuild is complete
// the previous index is kept as it was.
func (t *Tracker[T]) Run(ctx context.Context) {
	pause := rewatchFirst
	for {
		upToDate := false
		ch, err := t.b.Watch(ctx)
		if err == nil {
			upToDate = t.follow(ch)
		}
		if ctx.Err() != nil {
			return
		}
		if upToDate {
			pause = rewatchFirst
		}
		if err != nil {
			t.log.Warn("tracker: open watch; retrying", "after", pause, "err", err)
		} else {
			t.log.Warn("tracker: watch ended; re-opening it", "after", pause)
		}
		if Sleep(ctx, pause) != nil {
			return
		}
		pause = min(2*pause, rewatchLast)
	}
}

// follow applies one watch's entries until its channel closes, and reports whether the watch
// got up to date. The initial values are gathered apart and replace the index at the marker.
func (t *Tracker[T]) follow(ch <-chan Entry) bool {
	fresh := map[string]Item[T]{}
	upToDate := false
	scratch := new(T)
	for e := range ch {
		switch {
		case e.Key == "" && !upToDate:
			upToDate = true
			t.mu.Lock()
			t.items = fresh
			t.mu.Unlock()
			t.once.Do(func() { close(t.ready) })
		case e.Key == "": // a second marker: nothing to do
		case !upToDate:
			apply(fresh, e, t.keep, scratch)
		default:
			t.mu.Lock()
			apply(t.items, e, t.keep, scratch)
			t.mu.Unlock()
		}
	}
	return upToDate
}

// Ready is closed once the first watch has delivered the bucket's initial values: from then
// on Items reflects the bucket, give or take the watch's lag.
func (t *Tracker[T]) Ready() <-chan struct{} { return t.ready }

// Items returns the kept entries that match accepts (all when match is nil), sorted by key
// so that sweeps, their logs and their failures are reproducible. Filtering here copies only
// what the caller needs out of the index.
func (t *Tracker[T]) Items(match func(Item[T]) bool) []Item[T] {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return sortedItems(t.items, match)
}

// apply records the watch entry e in items: kept if keep selects its value (or it does not
// decode), removed otherwise. The value is decoded into scratch, zeroed first, which the
// caller keeps from one entry to the next: a T of its own each time was an allocation for
// every write to a tracked bucket, kept or not.
func apply[T any](items map[string]Item[T], e Entry, keep func(T) bool, scratch *T) {
	if e.Deleted {
		delete(items, e.Key)
		return
	}
	var zero T
	*scratch = zero
	if err := Decode(e.Value, scratch); err != nil {
		items[e.Key] = Item[T]{Key: e.Key, Revision: e.Revision, Err: fmt.Errorf("decode %q: %w", e.Key, err)}
		return
	}
	v := *scratch
	if keep != nil && !keep(v) {
		delete(items, e.Key)
		return
	}
	items[e.Key] = Item[T]{Key: e.Key, Value: v, Revision: e.Revision}
}

func sortedItems[T any](items map[string]Item[T], match func(Item[T]) bool) []Item[T] {
	var out []Item[T]
	for _, it := range items {
		if match == nil || match(it) {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b Item[T]) int { return cmp.Compare(a.Key, b.Key) })
	return out
}
