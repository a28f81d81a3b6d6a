package stack_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestUpLevelsStartsALevelOnceTheOneBeforeIsUp: a level's services start side by side, the
// next level's only once all of them are up, and a level with failures is the last, its
// failures joined.
func TestUpLevelsStartsALevelOnceTheOneBeforeIsUp(t *testing.T) {
	svc := func(names ...string) []topology.Service {
		out := make([]topology.Service, len(names))
		for i, n := range names {
			out[i] = topology.Service{Name: n}
		}
		return out
	}
	levels := [][]topology.Service{svc("nats"), svc("catalog", "cart"), svc("gateway")}

	var mu sync.Mutex
	var up []string
	started := make(chan struct{}, 2)
	both := make(chan struct{})
	go func() { // catalog and cart must be starting at the same time
		<-started
		<-started
		close(both)
	}()
	start := func(_ context.Context, s topology.Service) error {
		if s.Name == "catalog" || s.Name == "cart" {
			started <- struct{}{}
			select {
			case <-both:
			case <-time.After(10 * time.Second):
				return errors.New(s.Name + ": its level's other service never started alongside")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		up = append(up, s.Name)
		return nil
	}
	if err := stack.UpLevels(t.Context(), levels, start); err != nil {
		t.Fatal(err)
	}
	slices.Sort(up[1:3]) // a level's two in either order
	if want := []string{"nats", "cart", "catalog", "gateway"}; !slices.Equal(up, want) {
		t.Errorf("started %v, want %v", up, want)
	}

	up = nil
	errCatalog, errCart := errors.New("catalog did not start"), errors.New("cart did not start")
	failing := func(_ context.Context, s topology.Service) error {
		mu.Lock()
		defer mu.Unlock()
		up = append(up, s.Name)
		switch s.Name {
		case "catalog":
			return errCatalog
		case "cart":
			return errCart
		}
		return nil
	}
	err := stack.UpLevels(t.Context(), levels, failing)
	if !errors.Is(err, errCatalog) || !errors.Is(err, errCart) {
		t.Errorf("a level with two failures: %v, want both", err)
	}
	if slices.Contains(up, "gateway") {
		t.Errorf("started %v: the level after a failed one started", up)
	}
}
