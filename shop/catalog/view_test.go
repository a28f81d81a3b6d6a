package catalog

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/ids"
	"github.com/mitosis-dev/mitosis/shop/kv"
	"github.com/mitosis-dev/mitosis/shop/money"
)

func TestApplyKeepsTheNewestRevision(t *testing.T) {
	p := func(id, name string) Product { return Product{ID: id, Name: name, Price: money.Cents(1)} }
	tombs := map[string]uint64{}
	snap := apply(&snapshot{byID: map[string]int{}}, []change{
		{id: "b", product: p("b", "B1"), rev: 2},
		{id: "a", product: p("a", "A1"), rev: 1},
		{id: "b", product: p("b", "B2"), rev: 3}, // same batch: the newer wins
	}, tombs)
	// An Upsert's own write that lands after the watch delivered a newer one is ignored...
	snap = apply(snap, []change{{id: "b", product: p("b", "B-stale"), rev: 2}}, tombs)
	// ...and so is a stale write of a product deleted since.
	snap = apply(snap, []change{{id: "a", rev: 5, deleted: true}}, tombs)
	snap = apply(snap, []change{{id: "a", product: p("a", "A-stale"), rev: 4}}, tombs)
	// A newer write after the delete brings it back.
	snap = apply(snap, []change{{id: "c", product: p("c", "C1"), rev: 6}}, tombs)

	var got []string
	for i, q := range snap.products {
		got = append(got, q.Name)
		if snap.byID[q.ID] != i {
			t.Errorf("byID[%s] = %d, want %d", q.ID, snap.byID[q.ID], i)
		}
	}
	if want := []string{"B2", "C1"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("view = %v, want %v", got, want)
	}
	snap = apply(snap, []change{{id: "a", product: p("a", "A2"), rev: 7}}, tombs)
	if i, ok := snap.byID["a"]; !ok || snap.products[i].Name != "A2" || snap.entries[i].foldName != "a2" {
		t.Fatalf("a after a newer write: %+v", snap)
	}
	if _, ok := tombs["a"]; ok {
		t.Fatal("tombstone of a kept after it was written again")
	}
}

func TestWatchEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := newService(ctx, kv.NewMemory(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("watch goroutine still running 10s after its context ended")
	}
}

// endingWatch is a real memory bucket whose first watch ends right after it is up to date,
// as a watch does when the store goes away, to exercise the view's re-watch.
type endingWatch struct {
	*kv.Memory
	watches atomic.Int32
}

func (b *endingWatch) Watch(ctx context.Context) (<-chan kv.Entry, error) {
	if b.watches.Add(1) > 1 {
		return b.Memory.Watch(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	in, err := b.Memory.Watch(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan kv.Entry)
	go func() {
		defer close(out)
		defer cancel()
		for e := range in {
			out <- e
			if e.Key == "" {
				return
			}
		}
	}()
	return out, nil
}

func TestViewSurvivesAWatchThatEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &endingWatch{Memory: kv.NewMemory()}
	s, err := newService(ctx, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := Product{ID: "late", Name: "Written While The Watch Was Down", Price: money.Cents(1)}
	if _, err := kv.Create(ctx, b.Memory, p.ID, p); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Get(ctx, p.ID)
		if err == nil && got == p {
			break
		}
		if !errors.Is(err, ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("Get(%s) = %+v, %v; want %+v from the re-opened watch", p.ID, got, err, p)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if n := b.watches.Load(); n < 2 {
		t.Fatalf("%d watches opened, want the first and a re-opened one", n)
	}
}

func FuzzDecodeToken(f *testing.F) {
	f.Add(encodeToken("sku-0001"))
	f.Add("")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, token string) {
		var buf [ids.MaxLen]byte
		n, err := decodeToken(token, &buf)
		if err != nil {
			return
		}
		id := string(buf[:n])
		if !ids.Valid(id) || encodeToken(id) != token {
			t.Fatalf("token %q decodes to %q, which is not an ID that encodes back to it", token, id)
		}
	})
}

// TestFold: texts equal but for case, as Unicode's simple case folding sees it, fold alike,
// and a fold keeps every other difference.
func TestFold(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"Wombat", "wOMBAT", true},
		{"ΟΔΟΣ", "οδος", true}, // final sigma
		{"ΟΔΟΣ", "οδοσ", true},
		{"Kelvin", "\u212Aelvin", true}, // the Kelvin sign
		{"ſtraße", "STRAßE", true},      // long s; ß folds with ẞ, not ss
		{"Émile", "émile", true},
		{"straße", "strasse", false}, // full case folding only
		{"a b", "a-b", false},
	} {
		if got := fold(tc.a) == fold(tc.b); got != tc.same {
			t.Errorf("fold(%q) = %q, fold(%q) = %q; same %v, want %v", tc.a, fold(tc.a), tc.b, fold(tc.b), got, tc.same)
		}
		if len([]rune(fold(tc.a))) != len([]rune(tc.a)) {
			t.Errorf("fold(%q) = %q: not one rune for one rune", tc.a, fold(tc.a))
		}
	}
}
