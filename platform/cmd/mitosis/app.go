package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
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
		a.kubeCmd(), a.deployCmd(), a.eventsCmd(), a.killCmd(), a.startCmd(), a.certsCmd(), a.adviseCmd())
	root.AddCommand(tracesCmd())
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

func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }

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

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
