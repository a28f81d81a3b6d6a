package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/stack"
)

// The roll phase: the deploy blast radius (loadtest.RollPhase). It rolls a context by running
// the very `mitosis up` a user runs, with one more --env: the way a stack is changed is then
// one piece of code, the CLI's (its image builds, its options, the runtimes' rolling), not
// a second copy of it here that could drift from it; and what is measured is what users get.
// The price: the phase must be told how the stack was brought up (-up-args), since up makes
// what it is asked and would otherwise change more than the context. It checks that: each
// roll's up must remake one service only, or the report warns.

// rollEnv is the variable whose value changes to roll a context.
const rollEnv = "MITOSIS_ROLL"

// rollFlags are the phase's settings, as `loadtest roll` and the main run's -roll take them.
type rollFlags struct {
	context              *string
	rate                 *float64
	before, after, limit *time.Duration
	pause                *time.Duration
	mitosis, upArgs      *string
}

// addRollFlags registers the phase's flags; prefix is "" for `loadtest roll`, "roll-" for
// the main run (whose -roll names the context).
func addRollFlags(fs *flag.FlagSet, root, prefix string) *rollFlags {
	f := &rollFlags{}
	if prefix == "" {
		f.context = fs.String("context", "catalog", "the context to roll: the service that runs it is remade in each architecture (the whole monolith)")
	} else {
		f.context = fs.String("roll", "", "after the ladder, roll this context in each architecture under a steady load (the deploy blast radius; see loadtest roll); empty: no roll")
	}
	f.rate = fs.Float64(prefix+"rate", 50, "the roll's steady offered rate, requests/s, the ladder's mix")
	f.before = fs.Duration(prefix+"before", 5*time.Second, "steady load before each roll")
	f.after = fs.Duration(prefix+"after", 5*time.Second, "steady load after each roll")
	f.limit = fs.Duration(prefix+"max", 5*time.Minute, "the longest a roll may take")
	f.pause = fs.Duration(prefix+"pause", 2*time.Second, "pause between architectures")
	f.mitosis = fs.String("mitosis", filepath.Join(root, "bin", "mitosis"), "the mitosis binary the roll runs `up` with")
	f.upArgs = fs.String("up-args", "", "the arguments of the `mitosis up` that brought the stack up, whitespace-separated (e.g. \"-t monolith,services --runtime process\"); the roll adds --stack, --state and its --env")
	return f
}

// phase is the roll phase over archs, for the stack stackName in state.
func (f *rollFlags) phase(runID, state, stackName string, timeout time.Duration, progress io.Writer) loadtest.RollPhase {
	up := &mitosisUp{bin: *f.mitosis, args: strings.Fields(*f.upArgs), state: state, stack: stackName, context: *f.context, value: runID}
	return loadtest.RollPhase{
		Context: *f.context, Change: fmt.Sprintf("%s=%s through `mitosis up --env ARCH/%s:%s=...`", rollEnv, runID, *f.context, rollEnv),
		Rate: *f.rate, Before: *f.before, After: *f.after, Max: *f.limit, Pause: *f.pause, Timeout: timeout, Progress: progress,
		Prepare: func(ctx context.Context) (loadtest.RollUp, error) { return up.run(ctx, nil) },
		Up: func(ctx context.Context, arch string, n int) (loadtest.RollUp, error) {
			up.rolled = append(up.rolled, arch)
			return up.run(ctx, up.rolled)
		},
	}
}

// mitosisUp runs `mitosis up` as the stack was brought up, with the roll's variable on the
// context of the architectures rolled so far: each roll then changes its own architecture
// only, the earlier ones staying as their roll left them.
type mitosisUp struct {
	bin     string
	args    []string
	state   string
	stack   string
	context string
	value   string
	rolled  []string
}

// readyLine is how both runtimes report a process after up: "<arch>/<process>: started,
// ready on ..." when it was made or remade.
var readyLine = regexp.MustCompile(`^([^/\s]+)/(\S+): (started|unchanged), ready on `)

func (m *mitosisUp) run(ctx context.Context, archs []string) (loadtest.RollUp, error) {
	args := append([]string{"--stack", m.stack, "--state", m.state, "up"}, m.args...)
	for _, a := range archs {
		args = append(args, "--env", a+"/"+m.context+":"+rollEnv+"="+m.value)
	}
	cmd := exec.CommandContext(ctx, m.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	up := loadtest.RollUp{Command: m.bin + " " + strings.Join(args, " ")}
	err := cmd.Run()
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	var lines []string
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if g := readyLine.FindStringSubmatch(line); g != nil && g[3] == "started" {
			up.Remade = append(up.Remade, g[1]+"/"+g[2])
		}
	}
	slices.Sort(up.Remade)
	if err != nil {
		up.Output = strings.Join(lines[max(0, len(lines)-20):], "\n")
		return up, fmt.Errorf("%s: %w", up.Command, err)
	}
	return up, nil
}

// rollCmd is `loadtest roll`: the roll phase alone, its report in <out>/<time>/.
func rollCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := repoRoot()
	fs := flag.NewFlagSet("roll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: loadtest roll [flags]

Rolls one context in each architecture in turn, under a steady load of the load test's mix,
by running mitosis up as the stack was brought up (-up-args) with one more variable for the
service that runs the context (--env ARCH/CONTEXT:MITOSIS_ROLL=<run>): the deploy blast
radius. Records the requests that failed (by endpoint and by error), p99 before, during and
after, and how long the roll took, into <out>/<time>/report.json, .md and .html.`)
		fs.PrintDefaults()
	}
	edgesFlag := fs.String("edges", "", "architectures to roll, in order: name=URL, or a name alone for the edge the runtimes report, comma-separated; default: every architecture up")
	rf := addRollFlags(fs, root, "")
	users := fs.Int("users", 200, "virtual users per architecture")
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout (a timeout is an error)")
	seed := fs.Uint64("seed", 1, "seed of the traffic mix")
	outDir := fs.String("out", filepath.Join(root, "loadtest", "out"), "reports go to <out>/<timestamp>/")
	state := fs.String("state", envOr("MITOSIS_STATE", filepath.Join(root, ".mitosis")), "mitosis state folder: admin-token, process runtime records")
	stackName := fs.String("stack", envOr("MITOSIS_STACK", stack.DefaultName), "mitosis stack name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if _, err := os.Stat(*rf.mitosis); err != nil {
		return fmt.Errorf("-mitosis %s: %w (make bin/mitosis, or name the binary)", *rf.mitosis, err)
	}
	say := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	choice := edgeChoice{edges: *edgesFlag, state: *state, stack: *stackName, topologies: filepath.Join(root, "topologies"), defaults: loadtest.DefaultEdges()}
	targets, err := choice.choose(ctx, say)
	if err != nil {
		return err
	}
	started := time.Now()
	id := started.UTC().Format("20060102-150405")
	phase := rf.phase(id, *state, *stackName, *timeout, stderr)
	if err := phase.Validate(); err != nil {
		return err
	}
	// Stock for the longest the phase may run, at its rate.
	plan := loadtest.Plan{Rates: []float64{phase.Rate}, Duration: phase.Before + phase.Max + phase.After, Mix: loadtest.DefaultMix()}
	token := loadtest.AdminToken(filepath.Join(*state, "admin-token"))
	var archs []*loadtest.Arch
	var infos []loadtest.ArchInfo
	for i, t := range targets {
		a, info, err := rollArch(ctx, t, i, token, plan, *users, *seed, id, say)
		if err != nil {
			return err
		}
		discover(ctx, "auto", *state, *stackName, choice.topologies, t.Arch, a.BaseURL, &loadtest.Arch{}, &info)
		archs, infos = append(archs, a), append(infos, info)
	}
	roll, err := phase.Run(ctx, archs)
	if roll == nil {
		return err
	}
	rep := loadtest.RollReport(id, started, loadtest.ReadEnvironment(ctx, root), infos, roll)
	if err != nil {
		rep.Interrupted = err.Error()
	}
	dir := filepath.Join(*outDir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := rep.WriteFiles(dir); err != nil {
		return err
	}
	for _, x := range rep.Warnings {
		fmt.Fprintln(stdout, "warning:", x)
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	for _, a := range roll.Archs {
		if a.Error != "" {
			return fmt.Errorf("the roll of %s failed in %s: %s", roll.Context, a.Arch, a.Error)
		}
	}
	return nil
}

// rollArch readies one architecture for the roll: up and ready, stock topped up, and a
// scenario of its own.
func rollArch(ctx context.Context, t loadtest.Edge, i int, token string, plan loadtest.Plan, users int, seed uint64, runID string,
	say func(string, ...any)) (*loadtest.Arch, loadtest.ArchInfo, error) {
	if err := loopbackOnly(t.URL); err != nil {
		return nil, loadtest.ArchInfo{}, fmt.Errorf("%s: %w", t.Arch, err)
	}
	shop := loadtest.Shop{BaseURL: t.URL, AdminToken: token}
	if err := shop.WaitReady(ctx, 10*time.Second); err != nil {
		return nil, loadtest.ArchInfo{}, fmt.Errorf("%s is not up: %w", t.Arch, err)
	}
	products, err := shop.Catalog(ctx)
	if err != nil {
		return nil, loadtest.ArchInfo{}, fmt.Errorf("%s: %w", t.Arch, err)
	}
	ids := make([]string, len(products))
	for j, p := range products {
		ids[j] = p.ID
	}
	level := loadtest.StockLevel(plan, len(ids))
	n, err := shop.Replenish(ctx, ids, level)
	if err != nil {
		return nil, loadtest.ArchInfo{}, fmt.Errorf("%s: %w", t.Arch, err)
	}
	say("%s: %s ready, %d products, stock topped up to %d each (%d units added)", t.Arch, shop.BaseURL, len(ids), level, n)
	sc, err := loadtest.NewScenario(loadtest.ScenarioConfig{BaseURL: shop.BaseURL, Mix: plan.Mix, Users: users, Products: ids,
		Terms: loadtest.SearchTerms(products), Prefix: "roll" + runID + "-" + strconv.Itoa(i), Seed: seed, TraceShare: -1})
	if err != nil {
		return nil, loadtest.ArchInfo{}, err
	}
	return &loadtest.Arch{Name: t.Arch, BaseURL: shop.BaseURL, Scenario: sc}, loadtest.ArchInfo{Name: t.Arch, BaseURL: shop.BaseURL}, nil
}

// errNoRoll: the main run's -roll is off.
var errNoRoll = errors.New("no roll")

// runRoll is the main run's roll phase over its architectures, after the ladder.
func (f *rollFlags) runRoll(ctx context.Context, runID, state, stackName string, timeout time.Duration, archs []*loadtest.Arch, progress io.Writer) (*loadtest.Roll, error) {
	if *f.context == "" {
		return nil, errNoRoll
	}
	if _, err := os.Stat(*f.mitosis); err != nil {
		return nil, fmt.Errorf("-mitosis %s: %w", *f.mitosis, err)
	}
	return f.phase(runID, state, stackName, timeout, progress).Run(ctx, archs)
}
