package main

import (
	"errors"
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
			targets, err := a.serviceTargets(cmd.Context(), args)
			if err != nil {
				return err
			}
			var errs []error
			for _, t := range targets {
				start := time.Now()
				err := t.rt.Start(cmd.Context(), t.arch, t.service)
				switch {
				case errors.Is(err, stack.ErrAlreadyRunning):
					a.say("%s/%s runs already (%s runtime)", t.arch, t.service, t.rt.Name())
				case err != nil:
					errs = append(errs, err)
				default:
					a.say("started %s/%s (%s runtime), ready in %s", t.arch, t.service, t.rt.Name(), time.Since(start).Round(time.Millisecond))
				}
			}
			return errors.Join(errs...)
		},
	}
}
