package stack_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// TestUpReplicasRollsOneAtATime: the replicas to start run side by side, and only once they
// all have do those to roll go, one at a time, each after the one before has been up for
// bounded.RedialWithin; a failure stops the roll.
func TestUpReplicasRollsOneAtATime(t *testing.T) {
	var mu sync.Mutex
	var events []string
	upAt := map[string]time.Time{}
	started := make(chan struct{}, 2)
	both := make(chan struct{})
	go func() { // the two of rest must be in up at the same time
		<-started
		<-started
		close(both)
	}()
	up := func(_ context.Context, p string) error {
		if p == "a" || p == "b" {
			started <- struct{}{}
			select {
			case <-both:
			case <-time.After(10 * time.Second):
				return errors.New(p + ": the other of rest never started alongside")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		events = append(events, "up "+p)
		upAt[p] = time.Now()
		return nil
	}
	var turns []int
	rolling := func(k int, p string) {
		mu.Lock()
		defer mu.Unlock()
		turns = append(turns, k)
		events = append(events, "rolling "+p)
	}
	if err := stack.UpReplicas(t.Context(), []string{"a", "b"}, []string{"x", "y"}, up, rolling); err != nil {
		t.Fatal(err)
	}
	slices.Sort(events[:2]) // rest's two in either order
	if want := []string{"up a", "up b", "rolling x", "up x", "rolling y", "up y"}; !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	if !slices.Equal(turns, []int{0, 1}) {
		t.Errorf("turns %v, want [0 1]", turns)
	}
	if gap := upAt["y"].Sub(upAt["x"]); gap < bounded.RedialWithin() {
		t.Errorf("y was remade %s after x, before its callers could find x (%s)", gap, bounded.RedialWithin())
	}

	// A replica that fails to start stops the roll: the next old one keeps running.
	events = nil
	failing := func(_ context.Context, p string) error {
		events = append(events, "up "+p)
		if p == "x" {
			return errors.New("x did not start")
		}
		return nil
	}
	if err := stack.UpReplicas(t.Context(), nil, []string{"x", "y"}, failing, func(int, string) {}); err == nil || !slices.Equal(events, []string{"up x"}) {
		t.Errorf("a failed replica: %v, events %v; want its error and no other replica touched", err, events)
	}

	// A context that ends while a roll waits ends it.
	ctx, cancel := context.WithCancel(t.Context())
	events = nil
	err := stack.UpReplicas(ctx, nil, []string{"x", "y"}, func(_ context.Context, p string) error {
		events = append(events, "up "+p)
		cancel()
		return nil
	}, func(int, string) {})
	if !errors.Is(err, context.Canceled) || !slices.Equal(events, []string{"up x"}) {
		t.Errorf("cancelled while waiting: %v, events %v", err, events)
	}
}
