package stack

import (
	"context"
	"errors"
	"sync"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// UpLevels brings an architecture's services up in the order of its start levels
// (topology.Arch.Levels), for either runtime: the services of a level side by side, once
// every service of the levels before is up, so that each starts with the peers it calls
// ready. A level with a failure is the last: its failures come back joined, and no later
// service is started against a peer that is not there.
func UpLevels(ctx context.Context, levels [][]topology.Service, up func(context.Context, topology.Service) error) error {
	for _, level := range levels {
		if err := sideBySide(level, func(s topology.Service) error { return up(ctx, s) }); err != nil {
			return err
		}
	}
	return nil
}

// sideBySide runs f on every x at once and returns every failure joined.
func sideBySide[T any](xs []T, f func(T) error) error {
	errs := make([]error, len(xs))
	var wg sync.WaitGroup
	for i, x := range xs {
		wg.Go(func() { errs[i] = f(x) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
