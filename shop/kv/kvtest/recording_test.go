package kvtest

import (
	"fmt"
	"testing"
	"time"
)

// TestChain: the chain is the longest run of operations each starting after the one before
// ended, whatever order they were recorded in.
func TestChain(t *testing.T) {
	t0 := time.Now()
	op := func(name string, from, to int) Op {
		return Op{Name: name, Start: t0.Add(time.Duration(from) * time.Millisecond), End: t0.Add(time.Duration(to) * time.Millisecond)}
	}
	ops := []Op{op("c", 5, 7), op("a", 0, 2), op("long", 0, 9), op("b1", 3, 4), op("b2", 3, 5), op("d", 8, 10)}
	var got []string
	for _, o := range Chain(ops) {
		got = append(got, o.Name)
	}
	if fmt.Sprint(got) != "[a b1 c d]" {
		t.Errorf("chain %v, want [a b1 c d]", got)
	}
	if n := len(Chain(nil)); n != 0 {
		t.Errorf("chain of nothing: %d", n)
	}
}
