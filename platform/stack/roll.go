package stack

import (
	"context"
	"time"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// UpReplicas brings up the processes of one service as UpOptions says, for either runtime:
// those of rest (missing, stopped, or running their spec already) side by side, then those
// of roll (running another spec) one at a time, each but the first after
// bounded.RedialWithin, so that the callers of the replica just made have found it before
// the next old one stops: stopping it sooner would leave some of them with fewer replicas
// than the one going. rolling is told each replica of roll as its turn comes (k from 0),
// before up remakes it.
func UpReplicas[P any](ctx context.Context, rest, roll []P, up func(context.Context, P) error, rolling func(k int, p P)) error {
	if err := sideBySide(rest, func(p P) error { return up(ctx, p) }); err != nil {
		return err
	}
	for k, p := range roll {
		if k > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(bounded.RedialWithin()):
			}
		}
		rolling(k, p)
		if err := up(ctx, p); err != nil {
			return err
		}
	}
	return nil
}
