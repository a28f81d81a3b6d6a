package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

func (a *app) upCmd() *cobra.Command {
	var readyTimeout time.Duration
	var envs []string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build what changed and run the topology, waiting until every service is ready",
		Long: `up builds the topology's images (only those whose inputs changed), then runs every
service: with Podman, one network with DNS per architecture, one pod per service with its
ports on 127.0.0.1 only, read-only, non-root, no capabilities, CPU and memory limits; as
processes, one process per service on 127.0.0.1. Services start in dependency order and
up waits for each to be ready (HTTP /readyz, gRPC health). Running it again is safe: what
runs as asked is left alone, what is missing, stopped or changed is remade.

Each architecture gets the same budget (--cpus, --memory), enforced as --budget says:
per-service (each pod its share by the groups' weights), shared (the architecture's pods,
or processes, in one cgroup limited to the total; as processes, where the machine allows
it, else with a warning) or measured (each pod its share of what it used in the
calibration <state>/calibration/<placement>.json that loadtest calibrate writes).
-t monolith,services,services@shared,services@measured runs one placement under several
modes side by side (services-shared, services-measured, on the next free edges).

A group may run as several replicas (replicas: N in a topology file's group, or *N after a
group of --split: 'edge,catalog*2,cart+orders+payments,inventory,shipping+notify'): its
callers balance their calls over them, and its share of the budget is split among them.
When a service with replicas changed (a new image, or --env), up rolls it: one replica at
a time, each new one ready before the next old one stops, so that its callers always have
one. --env TARGET:KEY=VALUE (repeatable) sets a variable on the services that run TARGET,
a service or a context, in every architecture ("ARCH/TARGET" for one): a harmless change to
roll with, e.g. --env catalog:ROLLOUT=2.

The admin token is SHOP_ADMIN_TOKEN, else <state>/admin-token (generated when missing).

gRPC between the services runs over mutual TLS, each call authorized by the access table
(services/bounded): up keeps the stack's CA in <state>/pki/<stack> and gives each service a
certificate of it (spiffe://mitosis/<stack>/<service>), renewed once half its week is gone,
by up and, while the stack runs, by its renewer (pki/renewer, the one process that holds
the CA); see mitosis certs. --insecure turns that off, to measure what it costs, and nothing else.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			start := time.Now()
			for _, e := range envs {
				setting, err := topology.ParseEnv(e)
				if err != nil {
					return usageError{err}
				}
				a.env = append(a.env, setting)
			}
			t, err := a.topology()
			if err != nil {
				return err
			}
			token, err := a.adminToken()
			if err != nil {
				return err
			}
			requestKey, err := stack.RequestKey(a.state)
			if err != nil {
				return err
			}
			rts, err := a.runtimes(ctx, nil, true)
			if err != nil {
				return err
			}
			rt := rts[0]
			// Both runtimes run what the images hold: Podman loads them, the process
			// runtime runs their binaries.
			imgs, err := a.build(ctx, t, nil, false, true)
			if err != nil {
				return err
			}
			a.say("images ready (%s)", time.Since(start).Round(time.Millisecond))
			if rt.Name() == "process" {
				a.runtime = "process" // as chosen: do not ask Podman twice
				for name, img := range imgs {
					if img.ExtractedBinary, err = img.ExtractBinary(filepath.Join(a.state, "run", "bin")); err != nil {
						return err
					}
					imgs[name] = img
				}
			}
			if rts, err = a.runtimes(ctx, imgs, false); err != nil {
				return err
			}
			rt = rts[0]
			// The same stack up in the other runtime holds the same edges: say so plainly
			// rather than fail on a busy port.
			for _, other := range rts[1:] {
				if sts, err := other.Status(ctx); err == nil && len(sts) > 0 {
					return fmt.Errorf("stack %s is up in the %s runtime: run `mitosis down` first", a.stack, other.Name())
				}
			}
			opts := stack.UpOptions{AdminToken: token, RequestKey: requestKey, ReadyTimeout: readyTimeout, Progress: a.out, Env: otelEnv(),
				PKI: a.pki(), Insecure: insecure}
			if insecure {
				fmt.Fprintln(a.errOut, insecureWarning)
			}
			if err := rt.Up(ctx, t, opts); err != nil {
				return withAddrAdvice(err)
			}
			var sts []stack.Status // only read for an edge of port 0, which the runtime picked
			if slices.ContainsFunc(t.Archs, func(a topology.Arch) bool { return strings.HasSuffix(a.Edge, ":0") }) {
				if sts, err = rt.Status(ctx); err != nil {
					return err
				}
			}
			for _, arch := range t.Archs {
				edge, err := stack.EdgeAddr(t, sts, arch.Name)
				if err != nil {
					return err
				}
				a.say("%s: http://%s (budget %s)", arch.Name, edge, arch.Mode)
			}
			a.say("up (%s runtime, stack %s) in %s; admin token: SHOP_ADMIN_TOKEN or %s",
				rt.Name(), a.stack, time.Since(start).Round(time.Millisecond), filepath.Join(a.state, "admin-token"))
			return nil
		},
	}
	cmd.Flags().DurationVar(&readyTimeout, "ready-timeout", 60*time.Second, "how long each service may take to become ready")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "plaintext gRPC and no authorization between the services: only to measure what security costs")
	cmd.Flags().StringArrayVar(&envs, "env", nil, "[ARCH/]TARGET:KEY=VALUE: a variable for the services that run TARGET (a service or a context); repeatable")
	cmd.Flags().StringSliceVar(&a.platforms, "platform", nil, "platforms to build (default the host's: only it is run) [MITOSIS_PLATFORMS]")
	cmd.Flags().BoolVar(&a.anyPorts, "any-ports", a.envBool("MITOSIS_ANY_PORTS"), "process runtime: every port but the edges any free one, never a service's own number (9101...), for stacks started side by side at the same moment, which could both find that number free [MITOSIS_ANY_PORTS]")
	return cmd
}

// withAddrAdvice adds to an error about a host address the topology fixes and another
// program holds how to choose another: the flag that sets it. An edge is the only address an
// architecture fixes; the collector fixes its query port and OTLP's 4317 and 4318, the ports a
// Jaeger or an OpenTelemetry Collector already running here would hold.
func withAddrAdvice(err error) error {
	var taken *stack.AddrTakenError
	switch {
	case !errors.As(err, &taken):
		return err
	case taken.Arch == topology.Telemetry:
		return fmt.Errorf("%w\nfree it, or run the collector on other ports: --collector-edge 127.0.0.1:0 (every port of it picked freely), or --collector-edge none", err)
	default:
		return fmt.Errorf("%w\nfree it, or give %s's edge another address: --edges %s=127.0.0.1:PORT (port 0: any free one)", err, taken.Arch, taken.Arch)
	}
}

// otelEnv passes the standard OpenTelemetry variables of the caller to every service.
func otelEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") && k != "OTEL_SERVICE_NAME" {
			env[k] = v
		}
	}
	return env
}
