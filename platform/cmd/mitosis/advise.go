package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/advise"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// adviseFlags are advise's own flags.
type adviseFlags struct {
	run, collector, check, checkKind string
	rate                             float64
	isolate, together                []string
	maxGroups                        int
	objective                        string
	json                             bool
	html, topologyOut, name          string
	verify                           bool
	repeats                          int
	step, warmup                     time.Duration
	loadtest, verifyOut              string
}

func (a *app) adviseCmd() *cobra.Command {
	var f adviseFlags
	cmd := &cobra.Command{
		Use:   "advise",
		Short: "Say where to split, from a load test's traces and measured costs",
		Long: `advise reads the traces and the CPU figures of a load-test run of the monolith and the
microservices (its folder under loadtest/out, or the traces from a collector's /api/v3 for
the run's windows), builds the call graph between the contexts, calibrates a cost model on
the two architectures, predicts CPU per request and p50/p99 of every endpoint class for
every placement of the contexts (all 877 partitions of the seven, each with the edge in any
group or alone), and recommends one by --objective within the constraints.

The model: CPU/req = the monolith's + h × cut calls per request + the idle cost of each
process beyond the first, h calibrated from the services' extra CPU over their cut calls;
the latency of each endpoint class moves from the monolith's towards the services' by the
share of its critical path's hop time the placement cuts (platform/advise has it whole).

It writes the recommendation as a --split string, as a topology file (<run>/<name>.yaml by
default; copy it to topologies/ for mitosis up -t <name>), and an HTML page with the call
graph (<run>/advise.html). --check RUN predicts the services from the monolith and the hop
cost of RUN, a load test of one endpoint class alone (-mix 100,0,0,0,0: one call per
request), the model's own check. --verify brings the recommendation up beside the monolith
(mitosis up --split on this stack, as the architecture --name; the monolith too when it is
not up, else the running one is left as it is), runs the same load steps with the load test
(--verify-step and --verify-warmup shorten them), prints predicted against measured figures,
and then removes what it brought up: the recommendation with its data, and the monolith if
it was not up before.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.advise(cmd.Context(), f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.run, "run", "", "the load-test run's folder (default: the newest under <root>/loadtest/out that kept its traces)")
	fl.StringVar(&f.collector, "collector", "", "read the run's traces from this collector's query API (http://127.0.0.1:16686) instead of the run's files")
	fl.Float64Var(&f.rate, "rate", 0, "the run's offered rate to calibrate at, req/s (default: the rate its traces were kept at)")
	fl.StringSliceVar(&f.isolate, "isolate", nil, "contexts each alone in its group (e.g. payments, for PCI scope); repeatable or comma-separated")
	fl.StringArrayVar(&f.together, "together", nil, "contexts kept in one group, comma-separated (cart,orders); repeatable")
	fl.IntVar(&f.maxGroups, "max-groups", 0, "at most this many groups of contexts (0: no limit)")
	fl.StringVar(&f.objective, "objective", string(advise.ObjectiveBalanced), "cpu, latency or balanced")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.StringVar(&f.html, "html", "", "the HTML page (default <run>/advise.html; \"none\": no page)")
	fl.StringVar(&f.topologyOut, "topology-out", "", "the recommendation's topology file (default <run>/<name>.yaml; \"none\": no file)")
	fl.StringVar(&f.name, "name", "advised", "the recommendation's name: its topology file's and, with --verify, its architecture's")
	fl.StringVar(&f.check, "check", "", "a run of one endpoint class alone whose hop cost the model predicts the services with (its own check)")
	fl.StringVar(&f.checkKind, "check-kind", "list", "the check run's endpoint class (list: one call, edge to catalog)")
	fl.BoolVar(&f.verify, "verify", false, "bring the recommendation up beside the monolith on this stack, run the same load steps, compare")
	fl.IntVar(&f.repeats, "verify-repeats", 0, fmt.Sprintf("--verify's repeats of the step, alternating the order of the two (default the run's, at least %d); more repeats, less noise", minVerifyRepeats))
	fl.DurationVar(&f.step, "verify-step", 0, "--verify's step for each architecture (default the run's); shorter, noisier")
	fl.DurationVar(&f.warmup, "verify-warmup", 0, "--verify's warm-up of each architecture (default the run's)")
	fl.StringVar(&f.verifyOut, "verify-out", "", "the folder --verify's load test writes its run under, as verify-<time>/ (default <root>/loadtest/out)")
	fl.StringVar(&f.loadtest, "loadtest", "", "the load test's binary for --verify (default <root>/bin/loadtest: make build-loadtest)")
	return cmd
}

func (a *app) advise(ctx context.Context, f adviseFlags) error {
	obj, err := advise.ParseObjective(f.objective)
	if err != nil {
		return usageError{fmt.Errorf("--objective: %w", err)}
	}
	if f.repeats < 0 {
		return usageError{fmt.Errorf("--verify-repeats %d: want 1 or more (0: the run's)", f.repeats)}
	}
	if f.step < 0 || f.warmup < 0 {
		return usageError{fmt.Errorf("--verify-step %s, --verify-warmup %s: want a positive duration (0: the run's)", f.step, f.warmup)}
	}
	if f.name == "" || strings.ContainsAny(f.name, "/\\ ,+@") {
		return usageError{fmt.Errorf("--name %q: one word, as a topology's name", f.name)}
	}
	var together [][]string
	for _, t := range f.together {
		var set []string
		for _, c := range strings.Split(t, ",") {
			if c = strings.TrimSpace(c); c != "" {
				set = append(set, c)
			}
		}
		together = append(together, set)
	}
	o := advise.Options{Constraints: advise.Constraints{Isolate: f.isolate, Together: together, MaxGroups: f.maxGroups}, Objective: obj, CheckKind: f.checkKind}
	if err := o.Constraints.Validate(bounded.Names()); err != nil {
		return usageError{err}
	}
	var vp *verifyPrep
	if f.verify { // before the search, which takes a while: a verification that cannot run fails now
		if vp, err = a.prepareVerify(ctx, f); err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
	}
	if f.run == "" {
		if f.run, err = latestRun(filepath.Join(a.root, "loadtest", "out")); err != nil {
			return usageError{err}
		}
	}
	run, err := advise.ReadRun(f.run, f.rate, f.collector == "")
	if err != nil {
		return err
	}
	if f.collector != "" {
		if err := advise.FetchTraces(ctx, f.collector, run); err != nil {
			return fmt.Errorf("traces from %s: %w", f.collector, err)
		}
	}
	if f.check != "" {
		if o.Check, err = advise.ReadRun(f.check, 0, false); err != nil {
			return fmt.Errorf("--check: %w", err)
		}
	}
	rep, err := advise.Advise(run, o)
	if err != nil {
		return err
	}
	if vp != nil {
		if rep.Verify, err = a.verifyAdvice(ctx, f, vp, run, rep); err != nil {
			return fmt.Errorf("--verify: %w", err)
		}
	}
	files, err := writeAdvice(f, run.Dir, rep)
	if err != nil {
		return err
	}
	if f.json {
		return rep.JSON(a.out)
	}
	if err := rep.Table(a.out); err != nil {
		return err
	}
	for _, p := range files {
		a.say("wrote %s", p)
	}
	return nil
}

// writeAdvice writes the page and the topology file, and returns their paths.
func writeAdvice(f adviseFlags, dir string, rep *advise.Report) ([]string, error) {
	var out []string
	if f.topologyOut != "none" {
		path := f.topologyOut
		if path == "" {
			path = filepath.Join(dir, f.name+".yaml")
		}
		b, err := rep.Model.Topology(strings.TrimSuffix(filepath.Base(path), ".yaml"), rep.Search.Best)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	if f.html != "none" {
		path := f.html
		if path == "" {
			path = filepath.Join(dir, "advise.html")
		}
		var b bytes.Buffer
		if err := rep.HTML(&b, f.name); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		out = append(out, path)
	}
	return out, nil
}

// latestRun is the newest run folder under dir that kept its traces.
func latestRun(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var runs []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), advise.ManifestFile)); e.IsDir() && err == nil {
			runs = append(runs, e.Name())
		}
	}
	if len(runs) == 0 {
		return "", fmt.Errorf("no load-test run with traces under %s: run one of the monolith and the services (make load ARCH=monolith,services), or give --run", dir)
	}
	slices.Sort(runs) // named by their start, UTC: the last is the newest
	return filepath.Join(dir, runs[len(runs)-1]), nil
}

// verifyPrep is what a verification found before the search: the load test's binary, and
// whether it brings the monolith up.
type verifyPrep struct {
	loadtest     string
	withMonolith bool
}

// prepareVerify finds the load test and reads the stack: which of the architectures a
// verification needs are there already.
func (a *app) prepareVerify(ctx context.Context, f adviseFlags) (*verifyPrep, error) {
	vp := &verifyPrep{loadtest: f.loadtest}
	if vp.loadtest == "" {
		vp.loadtest = filepath.Join(a.root, "bin", "loadtest")
	}
	if _, err := os.Stat(vp.loadtest); err != nil {
		return nil, fmt.Errorf("the load test: %w (make build-loadtest, or --loadtest)", err)
	}
	present, err := a.presentArchs(ctx)
	if err != nil {
		return nil, err
	}
	if vp.withMonolith, err = verifyPlan(present, f.name, a.stack); err != nil {
		return nil, err
	}
	return vp, nil
}

// minVerifyRepeats is the fewest repeats --verify runs of each step unless told: on a
// shared 2-core machine one 30-second step of each side differs by as much as a small split
// costs (single-step verifications missed CPU per request by +15% and −21%, three-step ones
// by 5-9%: README, "Where to split").
const minVerifyRepeats = 3

// verifyAdvice brings the recommendation up beside the monolith on this stack (mitosis up,
// run in this process), runs the advised run's load steps at its rate with the load test
// against both, compares, and removes what it brought up, whatever happened meanwhile.
func (a *app) verifyAdvice(ctx context.Context, f adviseFlags, vp *verifyPrep, advised *advise.Run, rep *advise.Report) (_ *advise.Verification, err error) {
	best := rep.Search.Best
	split := best.SplitArg()
	if split == "" {
		return nil, errors.New("the recommendation is the monolith: nothing to verify beside it")
	}
	withMonolith, loadtest := vp.withMonolith, vp.loadtest
	// Every architecture is named explicitly (-t, --split), so that MITOSIS_TOPOLOGY or
	// MITOSIS_SPLIT in the environment adds none to these up and down.
	common := []string{"--root", a.root, "--state", a.state, "--stack", a.stack, "--runtime", a.runtime}
	mono := []string{"-t", topology.Monolith, "--split="}
	ours := []string{"--topology=", "--split", split, "--split-name", f.name}
	// Down however verify ends, an interrupt included (its context is done by then): the
	// recommendation with its data, which only this verification wrote, and the monolith
	// without, as a plain down leaves it. A monolith that ran before is not touched.
	defer func() {
		downs := [][]string{append(append(slices.Clone(common), "down", "--volumes"), ours...)}
		if withMonolith {
			downs = append(downs, append(append(slices.Clone(common), "down"), mono...))
		}
		for _, down := range downs {
			fmt.Fprintf(a.errOut, "verify: mitosis %s\n", strings.Join(down, " "))
			if code := run(context.WithoutCancel(ctx), down, a.errOut, a.errOut); code != exitOK {
				err = errors.Join(err, fmt.Errorf("mitosis %s: exit %d", strings.Join(down, " "), code))
			}
		}
	}()
	up := append(slices.Clone(common), "up", "--monolith-edge", a.monolithEdge, "--collector-edge", a.collectorEdge,
		"--cpus", strconv.FormatFloat(a.budget.CPUs, 'g', -1, 64), "--memory", strconv.Itoa(a.budget.MemoryMB), "--budget", a.mode)
	if a.splitEdge != "" {
		up = append(up, "--edge", a.splitEdge)
	}
	if a.edges != "" {
		up = append(up, "--edges", a.edges)
	}
	if withMonolith {
		up = append(up, "-t", topology.Monolith, "--split", split, "--split-name", f.name)
	} else {
		fmt.Fprintf(a.errOut, "verify: the monolith of stack %s runs already: it is measured as it runs, with the budget it was brought up with\n", a.stack)
		up = append(up, ours...)
	}
	fmt.Fprintf(a.errOut, "verify: mitosis %s\n", strings.Join(up, " "))
	if code := run(ctx, up, a.errOut, a.errOut); code != exitOK {
		return nil, fmt.Errorf("mitosis up: exit %d", code)
	}
	outDir := f.verifyOut
	if outDir == "" {
		outDir = filepath.Join(a.root, "loadtest", "out")
	}
	out := filepath.Join(outDir, "verify-"+time.Now().UTC().Format("20060102-150405"))
	settings := advised.Settings
	settings.Repeats = max(settings.Repeats, minVerifyRepeats)
	if f.repeats > 0 {
		settings.Repeats = f.repeats
	}
	if f.step > 0 {
		settings.StepS = f.step.Seconds()
	}
	if f.warmup > 0 {
		settings.WarmupS = f.warmup.Seconds()
	}
	args := append([]string{"-stack", a.stack, "-state", a.state, "-edges", topology.Monolith + "," + f.name, "-collector", "", "-out", out},
		settings.LoadtestArgs(advised.Rate)...)
	fmt.Fprintf(a.errOut, "verify: %s %s\n", loadtest, strings.Join(args, " "))
	if err := a.runChild(ctx, loadtest, args...); err != nil {
		return nil, fmt.Errorf("the load test: %w", err)
	}
	entries, err := os.ReadDir(out)
	if err != nil || len(entries) != 1 {
		return nil, fmt.Errorf("the load test left no single run in %s (%v)", out, err)
	}
	vr, err := advise.ReadRun(filepath.Join(out, entries[0].Name()), advised.Rate, false)
	if err != nil {
		return nil, err
	}
	return rep.Model.Verify(best, vr, f.name)
}

// presentArchs are the architectures of this stack that any runtime holds now.
func (a *app) presentArchs(ctx context.Context) (map[string]bool, error) {
	rts, err := a.runtimes(ctx, nil, false)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, rt := range rts {
		sts, err := rt.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rt.Name(), err)
		}
		for _, s := range sts {
			present[s.Arch] = true
		}
	}
	return present, nil
}

// verifyPlan says whether a verification brings the monolith up (and down after) beside the
// recommendation named name, given the architectures present on the stack. It refuses a
// name that is there already: the verification removes its architecture after, which must
// be its own.
func verifyPlan(present map[string]bool, name, stackName string) (withMonolith bool, err error) {
	if present[name] {
		return false, fmt.Errorf("stack %s has an architecture named %s already, and the verification removes its own after: give --name another, or mitosis down --stack %s -t %s", stackName, name, stackName, name)
	}
	return !present[topology.Monolith], nil
}

// runChild runs a command with its output on advise's error stream (the report goes to
// the output).
func (a *app) runChild(ctx context.Context, bin string, args ...string) error {
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdout, c.Stderr = a.errOut, a.errOut
	c.Stdin = nil
	c.WaitDelay = 10 * time.Second
	return c.Run()
}
