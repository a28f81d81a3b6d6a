package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// startCmd is `mitosis start`: a killed or stopped service of the stack back up, as it was.
func (a *app) startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start SERVICE|ARCH/SERVICE...",
		Short: "Start services of the stack that are down again, as they were, and wait until ready",
		Long: `start starts each named service that is down (after ` + "`mitosis kill`" + `, or a crash) again
exactly as it was made: the process runtime runs its recorded command with the same
environment and ports; Podman starts its pod again, with the same container, address and
published ports. It then waits until the service's readiness probe passes (at most 60 s).
Unlike up, it builds nothing and changes nothing: what changed since is left for up.

Services are named as for kill. Starting a service that runs already says so and is no
error.`,
		Args: needServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.onServices(cmd.Context(), args, serviceVerb{
				act:     func(ctx context.Context, t serviceTarget) error { return t.rt.Start(ctx, t.arch, t.service) },
				already: stack.ErrAlreadyRunning,
				skipped: func(t serviceTarget) string { return fmt.Sprintf("%s runs already (%s runtime)", t, t.rt.Name()) },
				done: func(t serviceTarget, took time.Duration) string {
					return fmt.Sprintf("started %s (%s runtime), ready in %s", t, t.rt.Name(), took)
				},
			})
		},
	}
}
