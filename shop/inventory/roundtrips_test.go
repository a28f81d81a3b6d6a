package inventory

import (
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/kv/kvtest"
)

// latency is what the recorder holds each request for, the stand-in for the network: long
// enough that requests started together overlap on a busy machine, short enough for a
// test: the measure is taken three times and the least kept.
const latency = 10 * time.Millisecond

// roundTrips runs op three times (each with fresh IDs from its argument) and returns the
// fewest round trips one after another it waited for (kvtest.Chain), with the requests it
// made then, and the requests made after it returned, off its caller's path, until settle
// returns.
func roundTrips(t *testing.T, rec *kvtest.Recorder, settle func(), op func(run int)) (sequential, requests, after int) {
	t.Helper()
	sequential = -1
	for run := range 3 {
		rec.Reset()
		op(run)
		ops := rec.Reset()
		settle()
		later := len(rec.Reset())
		if d := len(kvtest.Chain(ops)); sequential < 0 || d < sequential {
			sequential, requests, after = d, len(ops), later
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
		rec := kvtest.NewRecorder(latency)
		stock, resvs := rec.Bucket("stock", kv.NewMemory()), rec.Bucket("reservations", kv.NewMemory())
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
		reserve, reserveReqs, _ := roundTrips(t, rec, settle, func(run int) {
			if _, err := svc.Reserve(ctx, id(run), lines); err != nil {
				t.Fatal(err)
			}
		})
		commit, commitReqs, commitAfter := roundTrips(t, rec, settle, func(run int) {
			if err := svc.Commit(ctx, id(run)); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%d line(s), warm: Reserve %d round trips one after another (%d requests), Commit %d (%d requests, %d more after it returned)",
			len(lines), reserve, reserveReqs, commit, commitReqs, commitAfter)
		// A process that knows nothing yet (just started, or another replica): each write is
		// read first.
		cold := func() *service { return New(stock, resvs, time.Now, time.Minute).(*service) }
		coldReserve, coldReserveReqs, _ := roundTrips(t, rec, settle, func(run int) {
			if _, err := cold().Reserve(ctx, "cold-"+id(run), lines); err != nil {
				t.Fatal(err)
			}
		})
		var last *service
		coldCommit, coldCommitReqs, coldCommitAfter := roundTrips(t, rec, func() { last.background.Wait() }, func(run int) {
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
