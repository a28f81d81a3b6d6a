package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// The scaling gain: an architecture against its variant whose hottest group runs as
// replicas, at the same budget (loadtest.Scaling). `loadtest scale` finds the hottest
// process (from a report, or a short calibration step), brings the variant up beside the
// architecture with `mitosis up --split ... --split-name ...`, and runs the load test on
// both; the main run's -scaling BASE=VARIANT adds the section to any run of the two.

// scalingFlags are the main run's flags for the scaling gain's section.
type scalingFlags struct {
	pair, split *string
}

func addScalingFlags(fs *flag.FlagSet) *scalingFlags {
	return &scalingFlags{
		pair:  fs.String("scaling", "", "BASE=VARIANT: report the scaling gain of VARIANT, the placement of BASE with its hottest group as replicas (see loadtest scale), against BASE; both must be in the run"),
		split: fs.String("scaling-split", "", "the variant's placement as --split writes it, for the report"),
	}
}

// apply adds the section to rep, or says in its warnings why it could not.
func (f *scalingFlags) apply(rep *loadtest.Report, targets []loadtest.Edge) {
	if *f.pair == "" {
		return
	}
	base, variant, ok := strings.Cut(*f.pair, "=")
	edge := ""
	for _, t := range targets {
		if t.Arch == base {
			edge = t.Service
		}
	}
	err := errors.New("-scaling wants BASE=VARIANT")
	if ok {
		err = rep.AddScaling(base, variant, edge, *f.split)
	}
	if err != nil {
		rep.Warnings = append(rep.Warnings, "scaling gain: "+err.Error())
	}
}

// scaleCmd is `loadtest scale`.
func scaleCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := repoRoot()
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: loadtest scale [flags] [-- flags of the load test run]

Measures the scaling gain of an architecture (a topology file's): finds its hottest process
that may have replicas (not NATS, not the edge's) from the per-process CPU of a run (-from
report.json) or of a short calibration step, brings up beside it the same placement with
that group run by -replicas replicas, sharing its part of the same budget (mitosis up
--split ... --split-name ARCH-xN), then runs the load test on both (flags after --, e.g.
-preset compare) with the scaling gain's section: the variant's highest rate within the SLO
over the architecture's. The variant is removed afterwards unless -keep.`)
		fs.PrintDefaults()
	}
	arch := fs.String("arch", topology.Services, "the architecture: the name of a topology file, up in the stack")
	from := fs.String("from", "", "a report.json whose steps measured the architecture's processes; empty: a calibration step now")
	calRate := fs.Float64("calibrate-rate", 100, "the calibration step's rate, requests/s")
	calFor := fs.Duration("calibrate", 15*time.Second, "the calibration step's length")
	replicas := fs.Int("replicas", 2, "replicas of the hottest group in the variant")
	variant := fs.String("variant", "", "the variant's architecture name (default ARCH-xN)")
	variantEdge := fs.String("variant-edge", "", "the variant's edge, host:port on loopback (default: a free port)")
	mitosisBin := fs.String("mitosis", filepath.Join(root, "bin", "mitosis"), "the mitosis binary")
	upArgs := fs.String("up-args", "", "the arguments of the `mitosis up` that brought the stack up, whitespace-separated: the variant is brought up with them, its --split, --split-name and --edge added")
	keep := fs.Bool("keep", false, "leave the variant up afterwards")
	printOnly := fs.Bool("print", false, "print the variant's placement (its --split) and stop: nothing is brought up")
	users := fs.Int("users", 200, "virtual users of the calibration step")
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout of the calibration step")
	state := fs.String("state", envOr("MITOSIS_STATE", filepath.Join(root, ".mitosis")), "mitosis state folder")
	stackName := fs.String("stack", envOr("MITOSIS_STACK", stack.DefaultName), "mitosis stack name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	say := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	topo, err := topology.Get(*arch, topology.Options{Dir: filepath.Join(root, "topologies"), Collector: topology.NoCollector})
	if err != nil {
		return fmt.Errorf("-arch %s: %w", *arch, err)
	}
	base := topo.Archs[0]
	edgeSvc := ""
	for _, s := range base.Services {
		if s.Edge != "" { // published on the architecture's edge: the group that holds it
			edgeSvc = s.Name
		}
	}
	if *variant == "" {
		*variant = *arch + "-x" + strconv.Itoa(*replicas)
	}

	// The hottest process: from a report, else from the placement's calibration (loadtest
	// calibrate, which a measured budget is sized by), else from a step measured now.
	var steps []loadtest.Step
	source := ""
	var hottest string
	var share float64
	var found bool
	if cal, err := topology.ReadCalibration(filepath.Join(*state, "calibration"), *arch); *from == "" && err == nil {
		cpu := map[string]float64{}
		for _, s := range cal.Services {
			cpu[s.Name] = s.CPUCores
		}
		hottest, share, found = loadtest.HottestOf(cpu, loadtest.Replicable(edgeSvc))
		source = fmt.Sprintf("the calibration of %s (%s, %g req/s)", *arch, cal.When.Format(time.RFC3339), cal.RateRPS)
	} else if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		var r loadtest.Report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", *from, err)
		}
		steps, source = r.Steps, *from
	} else {
		res, err := measureStep(ctx, *arch, *calRate, *calFor, *users, *timeout, *state, *stackName, root, say)
		if err != nil {
			return err
		}
		steps, source = res.Steps, fmt.Sprintf("a calibration step at %g req/s for %s", *calRate, *calFor)
	}
	if !found {
		hottest, share, found = loadtest.Hottest(steps, *arch, loadtest.Replicable(edgeSvc))
	}
	if !found {
		return fmt.Errorf("no process CPU of %s in %s: measured runs only (resources by process or Podman)", *arch, source)
	}
	split, err := base.ScaledSplit(hottest, *replicas)
	if err != nil {
		return err
	}
	say("scale: the hottest process of %s is %s (%.0f%% of its CPU, from %s): the variant %s is --split '%s'", *arch, hottest, 100*share, source, *variant, split)
	if *printOnly {
		fmt.Fprintln(stdout, split)
		return nil
	}

	// The variant, beside it.
	if *variantEdge == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		*variantEdge = l.Addr().String()
		l.Close()
	}
	global := []string{"--stack", *stackName, "--state", *state}
	ua := strings.Fields(*upArgs)
	for _, f := range []string{"--root", "--runtime", "--socket"} { // what down needs to find it again
		if i := slices.Index(ua, f); i >= 0 && i+1 < len(ua) {
			global = append(global, f, ua[i+1])
		}
	}
	mitosis := func(args ...string) error {
		cmd := exec.CommandContext(ctx, *mitosisBin, args...)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w", *mitosisBin, strings.Join(args, " "), err)
		}
		return nil
	}
	up := slices.Concat([]string{"--stack", *stackName, "--state", *state, "up"}, ua, []string{"--split", split, "--split-name", *variant, "--edge", *variantEdge})
	if err := mitosis(up...); err != nil {
		return err
	}
	if !*keep {
		defer func() {
			if err := mitosis(append(slices.Clone(global), "down", "-t", *variant, "--volumes")...); err != nil {
				say("scale: removing the variant: %v", err)
			}
		}()
	}
	runArgs := slices.Concat([]string{"-edges", *arch + "," + *variant + "=http://" + *variantEdge, "-scaling", *arch + "=" + *variant,
		"-scaling-split", split, "-state", *state, "-stack", *stackName}, rest)
	return run(ctx, runArgs, stdout, stderr)
}

// measureStep runs one measured step of arch, for its processes' CPU.
func measureStep(ctx context.Context, arch string, rate float64, d time.Duration, users int, timeout time.Duration, state, stackName, root string,
	say func(string, ...any)) (*loadtest.Result, error) {
	choice := edgeChoice{edges: arch, state: state, stack: stackName, topologies: filepath.Join(root, "topologies"), defaults: loadtest.DefaultEdges()}
	targets, err := choice.choose(ctx, say)
	if err != nil {
		return nil, err
	}
	plan := loadtest.Plan{Rates: []float64{rate}, Duration: d, Mix: loadtest.DefaultMix(), Users: users, Timeout: timeout,
		SLO: loadtest.DefaultSLO(), Seed: 1, TraceShare: -1}
	id := time.Now().UTC().Format("20060102-150405")
	a, info, err := rollArch(ctx, targets[0], 0, loadtest.AdminToken(filepath.Join(state, "admin-token")), plan, users, 1, "cal"+id, say)
	if err != nil {
		return nil, err
	}
	discover(ctx, "auto", state, stackName, choice.topologies, arch, a.BaseURL, a, &info)
	if a.Sampler == nil {
		return nil, fmt.Errorf("%s: resources not measured: %s", arch, info.Resources)
	}
	say("scale: calibrating %s at %g req/s for %s", arch, rate, d)
	return (&loadtest.Runner{Plan: plan, Archs: []*loadtest.Arch{a}, Progress: nil}).Run(ctx)
}
