package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// killCmd is `mitosis kill`: a crash of one or more services of a running stack, on demand.
func (a *app) killCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kill SERVICE|ARCH/SERVICE...",
		Short: "Kill services of the running stack at once (SIGKILL, as a crash) and leave them down",
		Long: `kill kills each named service as a crash would: the process runtime sends SIGKILL to
its process, Podman stops its app container with no grace (SIGKILL at once) and kills its
pod's infra container. Nothing drains, nothing restarts it (Podman's restart policy does not
undo a stop): the service stays down (status says so) until ` + "`mitosis start`" + ` or ` + "`mitosis up`" + `
brings it back.

A service is named as status lists it, alone (payments, gateway) or with its architecture
(services/nats); a name that several architectures run (nats) needs one, given as
ARCH/SERVICE or with -t. Killing a service that is down already says so and is no error.
See what its peers and clients do meanwhile with status, logs and the load test's faults
phase (loadtest faults).`,
		Args: needServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.onServices(cmd.Context(), args, serviceVerb{
				act:     func(ctx context.Context, t serviceTarget) error { return t.rt.Kill(ctx, t.arch, t.service) },
				already: stack.ErrNotRunning,
				skipped: func(t serviceTarget) string { return fmt.Sprintf("%s was not running (%s runtime)", t, t.rt.Name()) },
				done: func(t serviceTarget, took time.Duration) string {
					return fmt.Sprintf("killed %s (%s runtime) in %s; `mitosis start %s` starts it again", t, t.rt.Name(), took, t)
				},
			})
		},
	}
}

// serviceVerb is what kill or start does to one service, and what it says of it.
type serviceVerb struct {
	act     func(context.Context, serviceTarget) error
	already error                                     // act's error for a service already as asked: said, and no error
	skipped func(serviceTarget) string                // what to say of such a service
	done    func(serviceTarget, time.Duration) string // what to say once act succeeded, given the time it took
}

// onServices does v to each service names designates (see serviceTargets), in turn.
func (a *app) onServices(ctx context.Context, names []string, v serviceVerb) error {
	targets, err := a.serviceTargets(ctx, names)
	if err != nil {
		return err
	}
	return a.each(ctx, targets, v)
}

// each does v to every target in turn, going on past a failure: the errors are returned
// together, once every target had its turn.
func (a *app) each(ctx context.Context, targets []serviceTarget, v serviceVerb) error {
	var errs []error
	for _, t := range targets {
		start := time.Now()
		err := v.act(ctx, t)
		switch {
		case errors.Is(err, v.already):
			a.say("%s", v.skipped(t))
		case err != nil:
			errs = append(errs, err)
		default:
			a.say("%s", v.done(t, time.Since(start).Round(time.Millisecond)))
		}
	}
	return errors.Join(errs...)
}

// needServices is the argument check of kill and start: one service at least.
func needServices(_ *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("name a service at least (as status lists them: payments, services/nats)")}
	}
	return nil
}

// serviceTarget is one service of the stack a verb acts on, in the runtime that holds it.
type serviceTarget struct {
	rt            stack.Runtime
	arch, service string
}

// String is the service's name as status lists it: ARCH/SERVICE.
func (t serviceTarget) String() string { return t.arch + "/" + t.service }

// serviceTargets finds each named service (SERVICE or ARCH/SERVICE) in the runtimes that
// hold the stack, within -t's architectures when -t was given. Nothing up is exit code 4; a
// name that matches no service, or several, is bad usage.
func (a *app) serviceTargets(ctx context.Context, names []string) ([]serviceTarget, error) {
	var archs []string
	if a.topoSet || a.split != "" {
		var err error
		if archs, err = a.archsOf(); err != nil {
			return nil, err
		}
	}
	rts, err := a.runtimes(ctx, nil, false)
	if err != nil {
		return nil, err
	}
	var all []serviceTarget
	var errs []error
	for _, rt := range rts {
		sts, err := rt.Status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rt.Name(), err))
			continue
		}
		for _, s := range sts {
			all = append(all, serviceTarget{rt: rt, arch: s.Arch, service: s.Service})
		}
	}
	if len(all) == 0 {
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return nil, &exitError{code: exitNothing, err: fmt.Errorf("nothing is up (stack %s)", a.stack)}
	}
	var out []serviceTarget
	for _, name := range names {
		t, err := matchService(all, archs, name)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, t)
	}
	return out, nil
}

// matchService picks the one service of all that name (SERVICE or ARCH/SERVICE) designates,
// within archs when not nil.
func matchService(all []serviceTarget, archs []string, name string) (serviceTarget, error) {
	arch, service, qualified := strings.Cut(name, "/")
	if !qualified {
		arch, service = "", name
	}
	var found []serviceTarget
	for _, t := range all {
		if t.service == service && (arch == "" || t.arch == arch) && (archs == nil || slices.Contains(archs, t.arch)) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		var have []string
		for _, t := range all {
			have = append(have, t.String())
		}
		slices.Sort(have)
		return serviceTarget{}, fmt.Errorf("no service %q is up%s; up: %s", name, inArchs(archs), strings.Join(slices.Compact(have), ", "))
	}
	var where []string
	for _, t := range found {
		where = append(where, t.String()+" ("+t.rt.Name()+")")
	}
	return serviceTarget{}, fmt.Errorf("%q names %s: say which, as ARCH/SERVICE or with -t", name, strings.Join(where, " and "))
}

func inArchs(archs []string) string {
	if archs == nil {
		return ""
	}
	return " in " + strings.Join(archs, ", ")
}
