package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/identity"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/kube"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// app is the CLI's configuration, filled by flags.
type app struct {
	out, errOut io.Writer

	root, state, stack string
	verbose            bool
	topo               string
	topoSet            bool   // -t given (flag or MITOSIS_TOPOLOGY): with --split, also run those
	split              string // --split: a placement of its own, beside or instead of -t's
	splitName          string // --split-name: its architecture's name
	splitEdge          string
	edges              string // --edges: name=address of any architectures' edges
	runtime            string
	platforms          []string
	monolithEdge       string
	servicesEdge       string
	collectorEdge      string
	budget             topology.Budget
	mode               string                // --budget: the budget mode of the architectures -t names without @mode
	env                []topology.EnvSetting // up's --env
	envErrs            []error               // variables that do not parse, reported before any command runs
	socket             string
	anyPorts           bool // up --any-ports: the process runtime's ports, but the edges', any free ones
}

// usageError marks bad usage (exit code 2).
type usageError struct{ error }

func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "unknown flag") ||
		strings.HasPrefix(s, "unknown shorthand flag") || strings.Contains(s, "flag needs an argument") ||
		strings.HasPrefix(s, "invalid argument")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// envBool is the boolean in the variable key (1, true, 0, false...), false when it is unset;
// a value that is not one is an error resolve reports.
func (a *app) envBool(key string) bool {
	v := os.Getenv(key)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		a.envErrs = append(a.envErrs, fmt.Errorf("%s=%q: want true or false", key, v))
	}
	return b
}

// envFloat is the number in the variable key, or def when it is unset; a value that is not a
// number is an error resolve reports.
func (a *app) envFloat(key string, def float64) float64 {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		a.envErrs = append(a.envErrs, fmt.Errorf("%s=%q: not a number", key, v))
		return def
	}
	return f
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "mitosis",
		Short: "Build the shop's images and run its two architectures side by side",
		Long: `mitosis builds OCI images of every binary of the shop (no Dockerfile, no daemon),
and runs the monolith and the microservices side by side, as Podman pods or as local
processes, so that the two can be compared.

Exit codes: 0 success; 1 failure; 2 bad usage; 3 status found a service not running or not
ready; 4 status, logs, events, kill or start found nothing up.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.topoSet = cmd.Flags().Changed("topology") || os.Getenv("MITOSIS_TOPOLOGY") != ""
			return a.resolve()
		},
	}
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.root, "root", os.Getenv("MITOSIS_ROOT"), "the repository (default: the folder holding go.work, from the current one up) [MITOSIS_ROOT]")
	pf.StringVar(&a.state, "state", os.Getenv("MITOSIS_STATE"), "state folder: images, admin token, process runtime (default <root>/.mitosis) [MITOSIS_STATE]")
	pf.StringVar(&a.stack, "stack", envOr("MITOSIS_STACK", stack.DefaultName), "stack name: prefix and label of everything it makes [MITOSIS_STACK]")
	pf.StringVarP(&a.topo, "topology", "t", envOr("MITOSIS_TOPOLOGY", topology.Both), "topologies, comma-separated: names of topologies/ files (monolith, services, hybrid...), or both for monolith,services [MITOSIS_TOPOLOGY]")
	pf.StringVar(&a.split, "split", os.Getenv("MITOSIS_SPLIT"), "a placement of its own, named split (or --split-name): groups separated by commas, contexts by '+', the edge alone unless a group names it (catalog+inventory,cart+orders+payments,shipping+notify); without -t, it runs alone [MITOSIS_SPLIT]")
	pf.StringVar(&a.splitName, "split-name", envOr("MITOSIS_SPLIT_NAME", topology.SplitName), "the name of --split's architecture: its label, network and report name (e.g. services-x2 for the services with a group's replicas) [MITOSIS_SPLIT_NAME]")
	pf.StringVar(&a.splitEdge, "edge", os.Getenv("MITOSIS_EDGE"), "host address of the split's HTTP API (default: the first free of 127.0.0.1:8082 and up among the topologies) [MITOSIS_EDGE]")
	pf.StringVar(&a.edges, "edges", os.Getenv("MITOSIS_EDGES"), "host addresses of any architectures' edges, name=address comma-separated (services-shared=127.0.0.1:9082); default: the monolith's and the services' own, a topology file's, else the first free of 127.0.0.1:8082 and up [MITOSIS_EDGES]")
	pf.StringVar(&a.runtime, "runtime", envOr("MITOSIS_RUNTIME", "auto"), "runtime: auto (podman when its API answers, else process), podman or process [MITOSIS_RUNTIME]")
	pf.StringVar(&a.socket, "socket", podmanrt.Socket(), "Podman API address [CONTAINER_HOST]")
	pf.StringVar(&a.monolithEdge, "monolith-edge", envOr("MITOSIS_MONOLITH_EDGE", topology.MonolithEdge), "host address of the monolith's HTTP API [MITOSIS_MONOLITH_EDGE]")
	pf.StringVar(&a.servicesEdge, "services-edge", envOr("MITOSIS_SERVICES_EDGE", topology.ServicesEdge), "host address of the gateway's HTTP API [MITOSIS_SERVICES_EDGE]")
	pf.StringVar(&a.collectorEdge, "collector-edge", envOr("MITOSIS_COLLECTOR_EDGE", topology.DefaultCollectorEdge), "host address of the trace collector's query API, OTLP on 4317/4318 of the same host; \"none\": no collector [MITOSIS_COLLECTOR_EDGE]")
	pf.Float64Var(&a.budget.CPUs, "cpus", a.envFloat("MITOSIS_CPUS", topology.DefaultCPUs), "CPU limit of each architecture in total, in cores, shared out among its services [MITOSIS_CPUS]")
	pf.IntVar(&a.budget.MemoryMB, "memory", int(a.envFloat("MITOSIS_MEMORY_MB", topology.DefaultMemoryMB)), "memory limit of each architecture in total, in MiB [MITOSIS_MEMORY_MB]")
	pf.StringVar(&a.mode, "budget", envOr("MITOSIS_BUDGET", string(topology.PerService)), "how each architecture's budget is enforced, for those -t names without @mode (services@shared): per-service (each service its share by weights), shared (one limit for all its processes together), measured (each service its share of what it used in `loadtest calibrate`) [MITOSIS_BUDGET]")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "log every step")
	root.AddCommand(a.buildCmd(), a.upCmd(), a.downCmd(), a.statusCmd(), a.logsCmd(), a.pushCmd(),
		kube.Command(), manifests.Command(), a.eventsCmd(), a.killCmd(), a.startCmd(), a.certsCmd(), a.adviseCmd())
	traces := &cobra.Command{Use: "traces", Short: "Read and compare the traces the collector holds"}
	traces.AddCommand(tracecompare.Command())
	root.AddCommand(traces)
	return root
}

// resolve fills the defaults that depend on the file system.
func (a *app) resolve() error {
	if err := errors.Join(a.envErrs...); err != nil {
		return usageError{err}
	}
	switch a.runtime {
	case "auto", "podman", "process":
	default:
		return usageError{fmt.Errorf("--runtime %q: want auto, podman or process", a.runtime)}
	}
	if _, err := topology.ParseMode(a.mode); err != nil {
		return usageError{fmt.Errorf("--budget: %w", err)}
	}
	if a.root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				a.root = dir
				break
			}
			if filepath.Dir(dir) == dir {
				return usageError{errors.New("no go.work here or above: run mitosis inside the repository, or pass --root")}
			}
		}
	}
	abs, err := filepath.Abs(a.root)
	if err != nil {
		return err
	}
	a.root = abs
	if a.state == "" {
		a.state = filepath.Join(a.root, ".mitosis")
	}
	return nil
}

func (a *app) logger() *slog.Logger {
	level := slog.LevelWarn
	if a.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: level}))
}

func (a *app) say(format string, args ...any) { fmt.Fprintf(a.out, format+"\n", args...) }

// topology returns the chosen topology. With missing packages (the services not written
// yet), the default `both` leaves out the architecture that cannot be built and says so; a
// topology asked for by name fails.
func (a *app) topology() (topology.Topology, error) {
	if a.budget.CPUs <= 0 || a.budget.MemoryMB <= 0 {
		return topology.Topology{}, usageError{fmt.Errorf("--cpus %g and --memory %d: both must be positive", a.budget.CPUs, a.budget.MemoryMB)}
	}
	edges := map[string]string{a.splitName: a.splitEdge}
	for _, e := range strings.Split(a.edges, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		name, addr, ok := strings.Cut(e, "=")
		if _, _, err := net.SplitHostPort(addr); !ok || name == "" || err != nil {
			return topology.Topology{}, usageError{fmt.Errorf("--edges %q: want name=host:port, comma-separated", e)}
		}
		edges[name] = addr
	}
	t, err := topology.Get(a.topologies(), topology.Options{Dir: filepath.Join(a.root, "topologies"),
		MonolithEdge: a.monolithEdge, ServicesEdge: a.servicesEdge, Split: a.split, SplitName: a.splitName,
		Edges: edges, Collector: a.collectorEdge, Budget: a.budget,
		Mode: topology.Mode(a.mode), CalibrationDir: a.calibrationDir(), Env: a.env})
	if err != nil {
		return t, usageError{err}
	}
	var keep []topology.Arch
	for _, arch := range t.Archs {
		var missing []string
		for _, s := range arch.Services {
			if _, err := os.Stat(filepath.Join(a.root, s.Package)); err != nil {
				missing = append(missing, s.Package)
			}
		}
		if len(missing) == 0 {
			keep = append(keep, arch)
			continue
		}
		if t.Name != topology.Both {
			return t, fmt.Errorf("topology %s needs %s, which does not exist yet", t.Name, strings.Join(missing, ", "))
		}
		fmt.Fprintf(a.errOut, "mitosis: leaving out the %s architecture: %s does not exist yet\n", arch.Name, strings.Join(missing, ", "))
	}
	if len(keep) == 0 {
		return t, errors.New("nothing to run: no architecture of the topology can be built")
	}
	t.Archs = keep
	return t, nil
}

// calibrationDir holds the calibrations a measured budget is sized by (`loadtest calibrate`
// writes them there).
func (a *app) calibrationDir() string { return filepath.Join(a.state, "calibration") }

// build builds (or finds cached) the images of t, restricted to names when given.
// hostOnly builds only the host's platform unless platforms were asked for: what `up` needs.
func (a *app) build(ctx context.Context, t topology.Topology, names []string, force, hostOnly bool) (map[string]imagebuild.Image, error) {
	stamp, err := imagebuild.StampFrom(ctx, a.root)
	if err != nil {
		return nil, err
	}
	opts := imagebuild.Options{
		Root:     a.root,
		Dir:      filepath.Join(a.state, "images"),
		Version:  stamp.Version,
		Source:   stamp.Source,
		Created:  stamp.Created,
		GitStamp: true,
		Force:    force,
		Logger:   a.logger(),
		Progress: a.errOut, // not out: build --json writes there
	}
	plats := a.platforms
	if len(plats) == 0 {
		if v := os.Getenv("MITOSIS_PLATFORMS"); v != "" {
			plats = strings.Split(v, ",")
		}
	}
	if len(plats) == 0 && hostOnly {
		opts.Platforms = []v1.Platform{imagebuild.HostPlatform()}
	}
	for _, p := range plats {
		pl, err := imagebuild.ParsePlatform(strings.TrimSpace(p))
		if err != nil {
			return nil, usageError{err}
		}
		opts.Platforms = append(opts.Platforms, pl)
	}
	var specs []imagebuild.Spec
	known := map[string]bool{}
	for _, im := range t.Images() {
		known[im.Name] = true
		if len(names) == 0 || slices.Contains(names, im.Name) {
			specs = append(specs, imagebuild.Spec{Name: im.Name, Package: im.Package, Tags: im.Tags})
		}
	}
	for _, n := range names {
		if !known[n] {
			return nil, usageError{fmt.Errorf("no image %q in topology %s", n, t.Name)}
		}
	}
	imgs, err := imagebuild.Build(ctx, opts, specs...)
	if err != nil {
		return nil, err
	}
	out := map[string]imagebuild.Image{}
	for _, img := range imgs {
		out[img.Name] = img
	}
	return out, nil
}

// adminToken is SHOP_ADMIN_TOKEN, else the one in <state>/admin-token, generated if missing.
func (a *app) adminToken() (string, error) { return stack.AdminToken(a.state) }

// runtimes returns the runtimes to act on. For up it is one; for down, status and logs with
// --runtime auto it is every runtime that may hold something of the stack.
func (a *app) runtimes(ctx context.Context, images map[string]imagebuild.Image, forUp bool) ([]stack.Runtime, error) {
	proc := func() stack.Runtime {
		bins := map[string]string{}
		for name, img := range images {
			bins[name] = img.ExtractedBinary
		}
		return processrt.New(processrt.Options{
			Root: a.root, State: filepath.Join(a.state, "run"), Stack: a.stack, Logger: a.logger(), Binaries: bins,
			AnyPorts: a.anyPorts,
		})
	}
	if a.runtime == "process" {
		return []stack.Runtime{proc()}, nil
	}
	pm, err := podmanrt.Connect(ctx, podmanrt.Options{Socket: a.socket, Stack: a.stack, Images: images, Logger: a.logger()})
	if err != nil {
		if a.runtime == "podman" {
			return nil, fmt.Errorf("%w (run platform/setup/podman.sh as root, or use --runtime process)", err)
		}
		if forUp {
			fmt.Fprintf(a.errOut, "mitosis: %v: using the process runtime\n", err)
		}
		return []stack.Runtime{proc()}, nil
	}
	if forUp {
		fmt.Fprintf(a.errOut, "mitosis: using podman (%s)\n", a.socket)
		return []stack.Runtime{pm}, nil
	}
	if a.runtime == "podman" {
		return []stack.Runtime{pm}, nil
	}
	return []stack.Runtime{pm, proc()}, nil
}

func (a *app) buildCmd() *cobra.Command {
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "build [image...]",
		Short: "Build the topology's images (all, or those named) for every platform",
		Long: `build compiles each binary of the topology (CGO off, -trimpath, stripped, version
stamped) for every platform and assembles its OCI image on an empty base: CA certificates,
user 65532, the binary as entrypoint, OCI labels. Each image is an OCI layout in
<state>/images/<name>/oci with an SPDX SBOM per platform beside it. Images whose inputs
(sources, go.sum, flags) did not change are not rebuilt; --force rebuilds them.

Timestamps come from SOURCE_DATE_EPOCH, else the last commit's time, so the same sources
give the same digests.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.topology()
			if err != nil {
				return err
			}
			start := time.Now()
			imgs, err := a.build(cmd.Context(), t, args, force, false)
			if err != nil {
				return err
			}
			if asJSON {
				var list []imagebuild.Image
				for _, im := range t.Images() {
					if img, ok := imgs[im.Name]; ok {
						list = append(list, img)
					}
				}
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tBUILD\tREF\tPLATFORMS\tBINARY\tIMAGE SIZE\tINDEX")
			for _, im := range t.Images() {
				img, ok := imgs[im.Name]
				if !ok {
					continue
				}
				what := "built"
				if img.Cached {
					what = "cached"
				}
				var plats []string
				var bin, size int64
				for _, p := range img.Platforms {
					plats = append(plats, p.Platform)
					if p.Platform == "linux/"+imagebuild.HostPlatform().Architecture || bin == 0 {
						bin, size = p.BinarySize, p.ImageSize
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", img.Name, what, img.Ref, strings.Join(plats, ","),
					mib(bin), mib(size), img.Index[:19])
			}
			_ = tw.Flush()
			a.say("build took %s; images in %s", time.Since(start).Round(time.Millisecond), filepath.Join(a.state, "images"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even when the inputs did not change")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the images as JSON")
	cmd.Flags().StringSliceVar(&a.platforms, "platform", nil, "platforms to build (default linux/amd64,linux/arm64) [MITOSIS_PLATFORMS]")
	return cmd
}

func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

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

// topologies are the names -t gives, or none when --split runs alone.
func (a *app) topologies() string {
	if a.split != "" && !a.topoSet {
		return ""
	}
	return a.topo
}

// archsOf lists the architectures -t and --split name, for down: none for both alone, which
// means everything of the stack, the collector included. A name needs no topology file here:
// down removes what carries its label (services@shared: services-shared).
func (a *app) archsOf() ([]string, error) {
	names := a.topologies()
	if names == topology.Both && a.split == "" {
		return nil, nil
	}
	entries, err := topology.ParseArchs(names, topology.Options{Split: a.split, SplitName: a.splitName, Mode: topology.Mode(a.mode)})
	if err != nil {
		return nil, usageError{err}
	}
	// Down goes by the split's name alone, but a split that places no context right is a
	// mistake up would refuse: say so here too, rather than remove what carries the name.
	if a.split != "" {
		if _, err := topology.FromSplit(a.splitName, "", a.split); err != nil {
			return nil, usageError{err}
		}
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name
	}
	return out, nil
}

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

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each service's state, readiness, CPU and memory",
		Long: `status lists every service of the stack with its state (running, exited, ...), its
readiness (its probe, run now through its published port), its CPU (percent of one core),
its memory, where Prometheus scrapes its metrics (METRICS: each host process's /metrics,
published on 127.0.0.1), and on each NATS line the dead letters waiting there (see mitosis
events); then, per architecture, its budget: the mode, the limits, and whether the runtime enforces
them, checked now (a shared budget's cgroup holds the total and every process).
Last, when the stack's certificates expire (mutual TLS between the services): the first
to, with a WARNING once one is overdue for renewal (past half its life by the renewer's
hour: pki/renewer does not run) or expired, "run mitosis up to renew" (up renews them in
place; the running processes read them at their next connection).
Exit code 0 when every service runs and is ready, 3 when one is not,
4 when nothing is up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rts, err := a.runtimes(cmd.Context(), nil, false)
			if err != nil {
				return err
			}
			type row struct {
				Runtime string `json:"runtime"`
				stack.Status
				DeadLetters *deadLetterCell `json:"dead_letters,omitempty"` // NATS lines only
				Metrics     string          `json:"metrics,omitempty"`      // its Prometheus endpoint, for a host
			}
			var rows []row
			for _, rt := range rts {
				sts, err := rt.Status(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: %w", rt.Name(), err)
				}
				for _, s := range sts {
					rows = append(rows, row{Runtime: rt.Name(), Status: s, Metrics: metricsURL(s)})
				}
			}
			names := natsServices()
			for i, r := range rows {
				rows[i].DeadLetters = countDeadLetters(cmd.Context(), r.Runtime, r.Status, names, a.pki())
			}
			if asJSON {
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				if rows == nil {
					rows = []row{}
				}
				if err := enc.Encode(rows); err != nil {
					return err
				}
			}
			if len(rows) == 0 {
				if !asJSON {
					a.say("nothing is up (stack %s)", a.stack)
				}
				return &exitError{code: exitNothing, err: errors.New("")}
			}
			unready := 0
			var memTotal = map[string]uint64{}
			if !asJSON {
				tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "RUNTIME\tARCH\tSERVICE\tSTATE\tHEALTH\tCPU\tMEMORY\tADDRESS\tMETRICS\tDEAD LETTERS\tDETAIL")
				for _, r := range rows {
					mem := fmt.Sprintf("%.1fMiB", float64(r.MemBytes)/(1<<20))
					if r.MemLimit > 0 && r.MemLimit < 1<<40 {
						mem += fmt.Sprintf(" / %.0fMiB", float64(r.MemLimit)/(1<<20))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f%%\t%s\t%s\t%s\t%s\t%s\n", r.Runtime, r.Arch, r.Service, r.State,
						r.Health, r.CPU, mem, r.Addr, cmp.Or(r.Metrics, "-"), r.DeadLetters, oneLine(r.Detail))
				}
				_ = tw.Flush()
			}
			for _, r := range rows {
				memTotal[r.Runtime+" "+r.Arch] += r.MemBytes
				if r.State != "running" || r.Health != stack.Ready {
					unready++
				}
			}
			if !asJSON {
				keys := make([]string, 0, len(memTotal))
				for k := range memTotal {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					a.say("memory %s: %.1fMiB", k, float64(memTotal[k])/(1<<20))
				}
				for _, k := range keys {
					rt, arch, _ := strings.Cut(k, " ")
					if i := slices.IndexFunc(rows, func(r row) bool { return r.Runtime == rt && r.Arch == arch && r.Budget != nil }); i >= 0 {
						a.say("budget %s: %s", k, rows[i].Budget)
					}
				}
				for _, r := range rows {
					a.sayDeadLetters(r.Runtime, r.Arch, r.DeadLetters)
				}
			}
			// When the certificates expire: a stack left running past that fails every
			// gRPC and NATS connection it makes; the renewer renews them before, up too.
			var dirs []string
			for _, r := range rows {
				if r.TLSDir != "" && !slices.Contains(dirs, r.TLSDir) {
					dirs = append(dirs, r.TLSDir)
				}
			}
			if tooling := filepath.Join(a.pki(), identity.Tooling); len(dirs) > 0 && !slices.Contains(dirs, tooling) {
				if _, err := os.Stat(tooling); err == nil {
					dirs = append(dirs, tooling) // the tools' (mitosis events, grpcurl), renewed by up too
				}
			}
			lines, warn := certificates(dirs, time.Now())
			for _, l := range lines {
				if asJSON {
					if warn {
						fmt.Fprintln(a.errOut, l)
					}
					continue
				}
				a.say("%s", l)
			}
			if unready > 0 {
				return &exitError{code: exitUnready, err: fmt.Errorf("%d service(s) not running or not ready", unready)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// metricsURL is where Prometheus scrapes the service of the status line s (its published
// topology.MetricsPort), or "" for a service that serves none (NATS).
func metricsURL(s stack.Status) string {
	addr, ok := s.Ports[topology.MetricsPort]
	if !ok {
		return ""
	}
	return "http://" + addr + telemetry.MetricsPath
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

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

func (a *app) pushCmd() *cobra.Command {
	var opts imagebuild.PushOptions
	cmd := &cobra.Command{
		Use:   "push --to REGISTRY/PREFIX [image...]",
		Short: "Copy the topology's images (every platform) to an OCI registry",
		Long: `push builds what changed, then copies each image's index (every platform) to
REGISTRY/PREFIX/<image>:<tag>, for example
123456789012.dkr.ecr.eu-west-1.amazonaws.com/mitosis. Credentials come from the Docker
config and its credential helpers (docker-credential-ecr-login for ECR). Registries on
localhost and 127.0.0.1 are reached over plain HTTP; --insecure allows it elsewhere.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Repo == "" {
				return usageError{errors.New("push needs --to REGISTRY/PREFIX")}
			}
			t, err := a.topology()
			if err != nil {
				return err
			}
			imgs, err := a.build(cmd.Context(), t, args, false, false)
			if err != nil {
				return err
			}
			for _, im := range t.Images() {
				img, ok := imgs[im.Name]
				if !ok {
					continue
				}
				refs, err := imagebuild.Push(cmd.Context(), img, opts)
				if err != nil {
					return err
				}
				for _, r := range refs {
					a.say("pushed %s", r)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Repo, "to", os.Getenv("MITOSIS_PUSH_TO"), "destination REGISTRY/PREFIX [MITOSIS_PUSH_TO]")
	cmd.Flags().StringSliceVar(&opts.Tags, "tag", nil, "tags to push (default the version)")
	cmd.Flags().BoolVar(&opts.Insecure, "insecure", false, "allow plain HTTP to the registry")
	cmd.Flags().StringSliceVar(&a.platforms, "platform", nil, "platforms to build (default linux/amd64,linux/arm64) [MITOSIS_PLATFORMS]")
	return cmd
}
