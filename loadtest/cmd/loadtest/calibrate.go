package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// calibrate measures what each service of one architecture uses under the mix at one rate,
// and writes it as the calibration of the architecture's placement.
func calibrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := repoRoot()
	fs := flag.NewFlagSet("calibrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	edgesFlag := fs.String("edges", "", "the architecture to measure, by name: one that a runtime of -stack runs (mitosis status), under any budget mode (required)")
	rate := fs.Float64("rate", 50, "offered rate of the step, requests/s: one the architecture sustains within a few percent")
	duration := fs.Duration("duration", 20*time.Second, "duration of the step")
	warmup := fs.Duration("warmup", 5*time.Second, "warm-up at the same rate first (results discarded)")
	users := fs.Int("users", 200, "virtual users")
	mixFlag := fs.String("mix", "", "weights list,search,product,cart-add,checkout (default 25,15,35,15,10): the mix the limits are sized for")
	declined := fs.Float64("declined", loadtest.DefaultMix().Declined, "share of checkouts paid with the declined card")
	seed := fs.Uint64("seed", 1, "seed of the traffic mix")
	state := fs.String("state", envOr("MITOSIS_STATE", filepath.Join(root, ".mitosis")), "mitosis state folder: admin-token, the runtimes' records; the calibration goes to <state>/calibration")
	stackName := fs.String("stack", envOr("MITOSIS_STACK", stack.DefaultName), "mitosis stack name")
	resources := fs.String("resources", "auto", "how to measure CPU and memory: auto, process, podman")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	asked, err := loadtest.ParseEdges(*edgesFlag)
	if err != nil {
		return fmt.Errorf("-edges: %w", err)
	}
	if len(asked) != 1 || asked[0].URL != "" {
		return errors.New("-edges: name the one architecture to calibrate (services, services-shared...), without a URL: its placement is what its runtime reports")
	}
	arch := asked[0].Arch
	mix, err := parseMix(*mixFlag, *declined)
	if err != nil {
		return err
	}
	plan := loadtest.CalibrationPlan(mix, *rate, *duration, *warmup, *users)
	plan.Seed = *seed
	if err := plan.Validate(); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }

	// Its placement and budget, and the services it must measure, as its runtime reports them.
	rows, notes := statusRows(ctx, *state, *stackName)
	var budget *stack.Budget
	var services []string
	for _, r := range rows {
		if r.Arch == arch {
			services = append(services, r.Service)
			budget = cmp.Or(budget, r.Budget)
		}
	}
	if budget == nil || budget.Placement == "" {
		return fmt.Errorf("calibrate: no runtime of stack %s runs %s with a budget it reports (mitosis status) %v: bring it up with mitosis up -t %s", *stackName, arch, notes, arch)
	}
	choice := edgeChoice{edges: arch, state: *state, stack: *stackName, topologies: filepath.Join(root, "topologies")}
	targets, err := choice.choose(ctx, say)
	if err != nil {
		return err
	}
	t := targets[0]
	if err := loopbackOnly(t.URL); err != nil {
		return err
	}
	token := loadtest.AdminToken(filepath.Join(*state, "admin-token"))
	shop, products, ids, _, _, err := readyShop(ctx, t, token, plan, say)
	if err != nil {
		return err
	}
	sc, err := loadtest.NewScenario(loadtest.ScenarioConfig{BaseURL: shop.BaseURL, Mix: mix, Users: *users, Products: ids,
		Terms: loadtest.SearchTerms(products), Prefix: "cal" + strconv.FormatInt(time.Now().Unix()%1_000_000, 36), Seed: *seed})
	if err != nil {
		return err
	}
	a := &loadtest.Arch{Name: arch, BaseURL: shop.BaseURL, Scenario: sc}
	info := loadtest.ArchInfo{Name: arch, BaseURL: shop.BaseURL}
	sampler := discover(ctx, *resources, *state, *stackName, choice.topologies, arch, shop.BaseURL, a, &info)
	say("%s: placement %s, budget %s; %s", arch, budget.Placement, budget.Mode, resourcesLine(sampler, info))
	cal, err := loadtest.Calibration{
		Arch: a, Placement: budget.Placement, Split: budget.Split, Mode: budget.Mode, Runtime: info.Runtime,
		Budget: &topology.Budget{CPUs: budget.CPUs, MemoryMB: budget.MemoryMB}, Services: services, Plan: plan,
		Env: loadtest.ReadEnvironment(ctx, root), Progress: stderr,
	}.Run(ctx)
	if err != nil {
		return err
	}
	path, err := cal.Write(filepath.Join(*state, "calibration"))
	if err != nil {
		return err
	}
	total := 0.0
	for _, s := range cal.Services {
		total += s.CPUCores
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tCPU CORES\tSHARE\tPEAK MEMORY")
	for _, s := range cal.Services {
		fmt.Fprintf(tw, "%s\t%.3f\t%.1f%%\t%.1fMiB\n", s.Name, s.CPUCores, 100*s.CPUCores/total, float64(s.PeakMemBytes)/(1<<20))
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "%s at %g req/s for %s (%.1f req/s achieved, %.2f%% errors): %.3f cores in all\n",
		arch, cal.RateRPS, *duration, cal.AchievedRPS, 100*cal.ErrorRate, total)
	fmt.Fprintf(stdout, "wrote %s: mitosis up -t %s@measured (or --budget measured) sizes each service by it\n", path, budget.Placement)
	return nil
}
