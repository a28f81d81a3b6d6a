package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

func (a *app) logsCmd() *cobra.Command {
	var opts stack.LogsOptions
	cmd := &cobra.Command{
		Use:   "logs [service|arch/service|arch]...",
		Short: "Print (or follow) the logs of one, some or all services",
		Long: `logs prints each selected service's output, every line prefixed with arch/service.
With no argument it prints every service's; "nats" selects the NATS of both architectures,
"services/nats" one of them. -f follows until interrupted.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Services = args
			rts, err := a.runtimes(cmd.Context(), nil, false)
			if err != nil {
				return err
			}
			var errs []error
			found := false
			for _, rt := range rts {
				sts, err := rt.Status(cmd.Context())
				if err != nil || len(sts) == 0 {
					continue
				}
				found = true
				if err := rt.Logs(cmd.Context(), opts, a.out); err != nil && cmd.Context().Err() == nil {
					errs = append(errs, err)
				}
			}
			if !found {
				return &exitError{code: exitNothing, err: fmt.Errorf("nothing is up (stack %s)", a.stack)}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "follow the logs")
	cmd.Flags().IntVar(&opts.Tail, "tail", 0, "lines from the end of each service's log (0: all)")
	return cmd
}
