package inventory

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

// timed is a real bucket that makes every request take at least latency, as a store across
// a network does, and notes when each started and ended. Requests issued together overlap;
// requests that wait for each other do not, so the longest chain of requests each starting
// after the previous one ended is the number of round trips one after another: what a
// caller waits for.
type timed struct {
	kv.Bucket
	latency time.Duration
	mu      sync.Mutex
	spans   []span
}

type span struct {
	op         string
	start, end time.Time
}

// latency is long enough that requests started together overlap on a busy machine, short
// enough for a test: the measure is taken three times and the least kept.
const latency = 10 * time.Millisecond

func (b *timed) record(op string, call func()) {
	start := time.Now()
	call()
	// Hold the answer back to make the request last latency: the stand-in for the network.
	time.Sleep(time.Until(start.Add(latency)))
	b.mu.Lock()
	b.spans = append(b.spans, span{op, start, time.Now()})
	b.mu.Unlock()
}

func (b *timed) Get(ctx context.Context, key string) (e kv.Entry, err error) {
	b.record("Get", func() { e, err = b.Bucket.Get(ctx, key) })
	return e, err
}

func (b *timed) Create(ctx context.Context, key string, value []byte, opts ...kv.WriteOption) (rev uint64, err error) {
	b.record("Create", func() { rev, err = b.Bucket.Create(ctx, key, value, opts...) })
	return rev, err
}

func (b *timed) Update(ctx context.Context, key string, value []byte, rev uint64, opts ...kv.WriteOption) (r uint64, err error) {
	b.record("Update", func() { r, err = b.Bucket.Update(ctx, key, value, rev, opts...) })
	return r, err
}

func (b *timed) Delete(ctx context.Context, key string, rev uint64) (err error) {
	b.record("Delete", func() { err = b.Bucket.Delete(ctx, key, rev) })
	return err
}

func (b *timed) take() []span {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.spans
	b.spans = nil
	return s
}

// depth is the longest chain of spans each starting after the one before it ended.
func depth(spans []span) int {
	slices.SortFunc(spans, func(a, b span) int { return a.end.Compare(b.end) })
	chain := make([]int, len(spans))
	best := 0
	for i, s := range spans {
		chain[i] = 1
		for j := range i {
			if !spans[j].end.After(s.start) {
				chain[i] = max(chain[i], chain[j]+1)
			}
		}
		best = max(best, chain[i])
	}
	return best
}

// roundTrips runs op three times (each with fresh IDs from its argument) and returns the
// fewest round trips one after another it waited for, with the requests it made then, and
// the requests made after it returned, off its caller's path, until settle returns.
func roundTrips(t *testing.T, stock, resvs *timed, settle func(), op func(run int)) (sequential, requests, after int) {
	t.Helper()
	sequential = -1
	for run := range 3 {
		stock.take()
		resvs.take()
		op(run)
		spans := append(stock.take(), resvs.take()...)
		settle()
		later := len(stock.take()) + len(resvs.take())
		if d := depth(spans); sequential < 0 || d < sequential {
			sequential, requests, after = d, len(spans), later
		}
	}
	return sequential, requests, after
}

// TestCheckoutRoundTrips counts the store round trips of a checkout's Reserve and Commit
// in a process that has served checkouts of the product before (the usual case: its stock
// document is known), and the requests they make in all.
func TestCheckoutRoundTrips(t *testing.T) {
	for _, lines := range [][]Line{
		{{ProductID: "sku-a", Quantity: 1}},
		{{ProductID: "sku-a", Quantity: 1}, {ProductID: "sku-b", Quantity: 2}},
	} {
		stock := &timed{Bucket: kv.NewMemory(), latency: latency}
		resvs := &timed{Bucket: kv.NewMemory(), latency: latency}
		svc := New(stock, resvs, time.Now, time.Minute).(*service)
		settle := svc.background.Wait
		ctx := t.Context()
		for _, l := range lines {
			if _, err := svc.Add(ctx, l.ProductID, 100); err != nil {
				t.Fatal(err)
			}
		}
		id := func(run int) string { return "r" + string(rune('a'+run)) }
		// A checkout before, as the process has served.
		if _, err := svc.Reserve(ctx, "warm", lines); err != nil {
			t.Fatal(err)
		}
		if err := svc.Commit(ctx, "warm"); err != nil {
			t.Fatal(err)
		}
		settle()
		reserve, reserveReqs, _ := roundTrips(t, stock, resvs, settle, func(run int) {
			if _, err := svc.Reserve(ctx, id(run), lines); err != nil {
				t.Fatal(err)
			}
		})
		commit, commitReqs, commitAfter := roundTrips(t, stock, resvs, settle, func(run int) {
			if err := svc.Commit(ctx, id(run)); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%d line(s), warm: Reserve %d round trips one after another (%d requests), Commit %d (%d requests, %d more after it returned)",
			len(lines), reserve, reserveReqs, commit, commitReqs, commitAfter)
		// A process that knows nothing yet (just started, or another replica): each write is
		// read first.
		cold := func() *service { return New(stock, resvs, time.Now, time.Minute).(*service) }
		coldReserve, coldReserveReqs, _ := roundTrips(t, stock, resvs, settle, func(run int) {
			if _, err := cold().Reserve(ctx, "cold-"+id(run), lines); err != nil {
				t.Fatal(err)
			}
		})
		var last *service
		coldCommit, coldCommitReqs, coldCommitAfter := roundTrips(t, stock, resvs, func() { last.background.Wait() }, func(run int) {
			last = cold()
			if err := last.Commit(ctx, "cold-"+id(run)); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%d line(s), cold: Reserve %d round trips one after another (%d requests), Commit %d (%d requests, %d more after it returned)",
			len(lines), coldReserve, coldReserveReqs, coldCommit, coldCommitReqs, coldCommitAfter)
		if want := 1; reserve > want {
			t.Errorf("%d line(s): Reserve waited for %d round trips, want %d", len(lines), reserve, want)
		}
		if want := 2; commit > want {
			t.Errorf("%d line(s): Commit waited for %d round trips, want %d", len(lines), commit, want)
		}
	}
}
