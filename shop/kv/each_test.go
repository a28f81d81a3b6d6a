package kv_test

import (
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mitosis-dev/mitosis/shop/kv"
)

func TestGetEach(t *testing.T) {
	ctx := t.Context()
	b := kv.NewMemory()
	for i := range 3 {
		if _, err := kv.Create(ctx, b, kv.Key("u", strconv.Itoa(i)), i*10); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{kv.Key("u", "2"), kv.Key("u", "9"), kv.Key("u", "0")}
	values, found, err := kv.GetEach[int](ctx, b, keys)
	if err != nil || values[0] != 20 || values[2] != 0 || !found[0] || found[1] || !found[2] {
		t.Fatalf("GetEach: %v %v %v, want [20 _ 0] found [true false true]", values, found, err)
	}
	if _, err := kv.Create(ctx, b, "bad", "not a number"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.GetEach[int](ctx, b, []string{"bad"}); err == nil {
		t.Fatal("GetEach of an undecodable value: no error")
	}
}

func TestConcurrently(t *testing.T) {
	var running, most atomic.Int64
	boom := errors.New("boom")
	err := kv.Concurrently(1000, func(i int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if i == 500 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("Concurrently: %v, want boom", err)
	}
	if m := most.Load(); m > 128 {
		t.Errorf("%d calls at once, want at most 128", m)
	}
}

func TestKeyKeepsPartsApart(t *testing.T) {
	if kv.Key("a.b", "c") == kv.Key("a", "b.c") || kv.Key("a", "b", "c") == kv.Key("a", "b c") {
		t.Fatal("distinct parts made the same key")
	}
}
