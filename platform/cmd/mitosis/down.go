package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

func (a *app) downCmd() *cobra.Command {
	var volumes bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove what up made: pods, containers, networks, processes; the data with --volumes",
		Long: `down removes every object labelled with the stack's name (and, with -t NAMES or --split,
those architectures' only, and the trace collector with the last of them): pods and their
containers and networks in Podman, and the processes of the process runtime. Their data
stays, as compose keeps volumes: NATS's volumes in Podman, the services' data folders as
processes, so that the next up finds carts, orders and stock as they were; --volumes
removes them too. Nothing else is touched. Running it when nothing is up is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			archs, err := a.archsOf()
			if err != nil {
				return err
			}
			rts, err := a.runtimes(cmd.Context(), nil, false)
			if err != nil {
				return err
			}
			var errs []error
			for _, rt := range rts {
				// The collector goes with the last architecture: the runtime decides, from
				// what it holds (stack.DownArchs).
				removed, err := rt.Down(cmd.Context(), stack.DownOptions{Archs: archs, Volumes: volumes})
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", rt.Name(), err))
				}
				if removed != (stack.Removed{}) {
					a.say("%s: removed %s", rt.Name(), removed)
				}
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			a.say("down (stack %s) in %s", a.stack, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().BoolVar(&volumes, "volumes", false, "remove the data too: NATS's volumes, the services' data folders")
	return cmd
}
