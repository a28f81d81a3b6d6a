package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/loadtest/podmanstats"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// defaultFaultRate is the faults phase's rate when neither -rate nor -report says.
const defaultFaultRate = 20

// faultFlags are the faults phase's settings, shared by `loadtest faults` and the run's
// -faults.
type faultFlags struct {
	processes                             string
	warmup, baseline, down, after, window time.Duration
	settle                                time.Duration
}

func (f *faultFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.processes, "processes", "", "the processes to kill, comma-separated, as `mitosis status` names them (default every process of each architecture: its contexts' processes, then the edge, then NATS)")
	fs.DurationVar(&f.warmup, "fault-warmup", loadtest.DefaultFaultBaseline, "traffic before the first kill of each architecture, not counted")
	fs.DurationVar(&f.baseline, "baseline", loadtest.DefaultFaultBaseline, "traffic before each kill")
	fs.DurationVar(&f.down, "down", loadtest.DefaultFaultDown, "how long a killed process stays down")
	fs.DurationVar(&f.after, "after", loadtest.DefaultFaultAfter, "traffic watched after the start")
	fs.DurationVar(&f.window, "recovery-window", 0, "recovered: the first window this long after the start in which every kind of request succeeded (0: 1 s, or longer when the rarest kind is sent less than 3 times a second)")
	fs.DurationVar(&f.settle, "settle", loadtest.DefaultFaultSettle, "how long the invariant checks may wait for the stack to settle (retries, reservations, shipping, refunds)")
}

// faultsCmd is `loadtest faults`: the fault-isolation phase on its own, its report in
// <out>/<timestamp>/. It fails when a kill or start failed or an invariant broke.
func faultsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := repoRoot()
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	fs.SetOutput(stderr)
	edgesFlag := fs.String("edges", "", "architectures, as for a run: name=URL or a name alone, comma-separated; default every architecture up")
	reportFlag := fs.String("report", "", "a report.json of a ladder run: the rate is half its first architecture's max within the SLO")
	rate := fs.Float64("rate", defaultFaultRate, "the steady rate, requests/s, when no -report gives one (it wins over -report when given)")
	users := fs.Int("users", 200, "virtual users per architecture")
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout")
	declined := fs.Float64("declined", loadtest.DefaultMix().Declined, "share of checkouts paid with the declined card")
	mixFlag := fs.String("mix", "", "weights list,search,product,cart-add,checkout (default 25,15,35,15,10)")
	seed := fs.Uint64("seed", 1, "seed of the traffic mix")
	outDir := fs.String("out", filepath.Join(root, "loadtest", "out"), "the report goes to <out>/<timestamp>/")
	state := fs.String("state", envOr("MITOSIS_STATE", filepath.Join(root, ".mitosis")), "mitosis state folder: admin-token, process runtime records")
	stackName := fs.String("stack", envOr("MITOSIS_STACK", stack.DefaultName), "mitosis stack name")
	var ff faultFlags
	ff.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	mix, err := parseMix(*mixFlag, *declined)
	if err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	plan := loadtest.FaultPlan{Rate: *rate, Users: *users, Timeout: *timeout, Mix: mix, Seed: *seed}
	source := fmt.Sprintf("-rate %g", *rate)
	rateSet := false
	fs.Visit(func(f *flag.Flag) { rateSet = rateSet || f.Name == "rate" })
	if *reportFlag != "" && !rateSet {
		if plan.Rate, source, err = rateFromReport(*reportFlag); err != nil {
			return err
		}
	} else if !rateSet {
		source = fmt.Sprintf("the default %d req/s (no -report)", defaultFaultRate)
	}
	choice := edgeChoice{edges: *edgesFlag, state: *state, stack: *stackName, topologies: filepath.Join(root, "topologies"), defaults: loadtest.DefaultEdges()}
	edges, err := choice.choose(ctx, say)
	if err != nil {
		return err
	}
	token := loadtest.AdminToken(filepath.Join(*state, "admin-token"))
	env := loadtest.ReadEnvironment(ctx, root)
	rep, err := runFaults(ctx, edges, plan, source, ff, *state, *stackName, token, stderr)
	if rep == nil {
		return err
	}
	id := time.Now().UTC().Format("20060102-150405")
	report := &loadtest.Report{Schema: loadtest.Schema, ID: id, Started: rep.Started, Finished: rep.Finished,
		Environment: env, Faults: rep, Steps: []loadtest.Step{}, Points: []loadtest.Point{}, Skipped: []string{}, IdleCPU: []loadtest.IdleCPU{},
		Warnings: []string{}, Traces: loadtest.Traces{Reason: "the faults phase reads no traces"}}
	for _, a := range rep.Archs {
		report.Architectures = append(report.Architectures, loadtest.ArchInfo{Name: a.Arch, BaseURL: a.BaseURL, Runtime: a.Runtime})
	}
	dir := filepath.Join(*outDir, id)
	if werr := report.WriteFiles(dir); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintln(stdout, faultsSummary(rep))
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	return faultsVerdict(rep)
}

// faultsVerdict is the phase's failure, if it failed: loud, for the exit status.
func faultsVerdict(rep *loadtest.FaultsReport) error {
	if rep.Passed {
		return nil
	}
	var broken []string
	for _, a := range rep.Archs {
		for _, c := range a.Invariants.Checks {
			if !c.Passed && c.Skipped == "" {
				broken = append(broken, a.Arch+": "+c.Name)
			}
		}
		for _, c := range a.Cycles {
			if c.Error != "" {
				broken = append(broken, a.Arch+"/"+c.Process+": "+c.Error)
			}
		}
	}
	if rep.Interrupted != "" {
		broken = append(broken, "interrupted: "+rep.Interrupted)
	}
	return fmt.Errorf("FAULTS PHASE FAILED: %s (the report has the evidence)", strings.Join(broken, "; "))
}

// faultsSummary is a line per architecture and process: success during the outage per kind,
// and the time to recover.
func faultsSummary(rep *loadtest.FaultsReport) string {
	var b strings.Builder
	for _, a := range rep.Archs {
		verdict := "invariants held"
		if !a.Invariants.Passed {
			verdict = "INVARIANTS BROKEN"
		}
		fmt.Fprintf(&b, "%s (%s): %s\n", a.Arch, a.Runtime, verdict)
		for _, c := range a.Cycles {
			var cells []string
			for _, cell := range c.Classes {
				s := "–"
				if cell.Outage.Success != nil {
					s = fmt.Sprintf("%.0f%%", 100**cell.Outage.Success)
				}
				cells = append(cells, string(cell.Kind)+" "+s)
			}
			rec := "not recovered"
			if c.RecoveryS != nil {
				rec = fmt.Sprintf("recovered %.2f s after the start", *c.RecoveryS)
			}
			if c.Error != "" {
				rec = c.Error
			}
			fmt.Fprintf(&b, "  %-20s down: %s; %s\n", c.Process, strings.Join(cells, ", "), rec)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// rateFromReport is half the first architecture's max rate within the SLO in a report.json.
func rateFromReport(path string) (float64, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	var r loadtest.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, "", fmt.Errorf("%s: %w", path, err)
	}
	if len(r.Summary) == 0 || r.Summary[0].MaxRate <= 0 {
		return 0, "", fmt.Errorf("%s: its first architecture has no max rate within the SLO: give -rate", path)
	}
	s := r.Summary[0]
	return s.MaxRate / 2, fmt.Sprintf("half of %s's max within the SLO, %g req/s, in report %s", s.Arch, s.MaxRate, r.ID), nil
}

// runFaults finds the runtime and processes of each edge's architecture and runs the phase.
func runFaults(ctx context.Context, edges []loadtest.Edge, plan loadtest.FaultPlan, rateSource string, ff faultFlags,
	state, stackName, token string, progress io.Writer) (*loadtest.FaultsReport, error) {
	plan.Warmup, plan.Baseline, plan.Down, plan.After, plan.Window, plan.Settle = ff.warmup, ff.baseline, ff.down, ff.after, ff.window, ff.settle
	targets, err := faultTargets(ctx, edges, state, stackName, ff.processes, token)
	if err != nil {
		return nil, err
	}
	for _, e := range edges {
		if err := loopbackOnly(e.URL); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Arch, err)
		}
	}
	fmt.Fprintf(progress, "faults phase at %g req/s (%s)\n", plan.Rate, rateSource)
	r := &loadtest.FaultRunner{Plan: plan, Targets: targets, Progress: progress}
	rep, err := r.Run(ctx)
	if rep != nil {
		rep.Settings.RateSource = rateSource
	}
	return rep, err
}

// faultTargets asks the runtimes of the stack which one runs each architecture, and which
// processes it has: the process runtime's records first, then Podman's pods.
func faultTargets(ctx context.Context, edges []loadtest.Edge, state, stackName, only, token string) ([]loadtest.FaultTarget, error) {
	type held struct {
		rt   stack.Runtime
		rows []stack.Status
	}
	var runtimes []held
	proc := processrt.New(processrt.Options{State: filepath.Join(state, "run"), Stack: stackName})
	var notes []string
	if rows, err := proc.Status(ctx); err == nil {
		runtimes = append(runtimes, held{proc, rows})
	} else {
		notes = append(notes, "process runtime: "+err.Error())
	}
	if pm, err := podmanstats.Runtime(ctx, stackName); err == nil {
		if rows, err := pm.Status(ctx); err == nil {
			runtimes = append(runtimes, held{pm, rows})
		} else {
			notes = append(notes, "podman: "+err.Error())
		}
	} else {
		notes = append(notes, "podman: "+err.Error())
	}
	var wanted []string
	for _, p := range strings.Split(only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			wanted = append(wanted, p)
		}
	}
	found := map[string]bool{}
	var out []loadtest.FaultTarget
	for _, e := range edges {
		var h *held
		var rows []stack.Status
		for i := range runtimes {
			for _, r := range runtimes[i].rows {
				if r.Arch == e.Arch {
					rows = append(rows, r)
				}
			}
			if len(rows) > 0 {
				h = &runtimes[i]
				break
			}
		}
		if h == nil {
			return nil, fmt.Errorf("%s: no runtime of stack %s runs it (%s): the faults phase kills and starts its processes through the runtime that runs them (mitosis up)",
				e.Arch, stackName, cmp.Or(strings.Join(notes, "; "), "nothing up"))
		}
		t := loadtest.FaultTarget{Arch: e.Arch, BaseURL: e.URL, AdminToken: token, Runtime: h.rt,
			Note: fmt.Sprintf("%s runtime, stack %s", h.rt.Name(), stackName)}
		for _, p := range killOrder(rows, e.Service) {
			if len(wanted) == 0 || slices.Contains(wanted, p) {
				t.Processes = append(t.Processes, p)
				found[p] = true
			}
		}
		for _, r := range rows {
			if addr, ok := r.Ports[topology.NATSPort]; ok {
				// As the stack's NATS admin, whose password `mitosis up` keeps in its PKI folder.
				url, err := natsauth.AdminURL(stack.PKIDir(state, stackName), addr)
				if err != nil {
					return nil, err
				}
				if t.NATSTLS, err = natsauth.AdminTLS(stack.PKIDir(state, stackName)); err != nil {
					return nil, err
				}
				t.NATSURL = url
			}
		}
		out = append(out, t)
	}
	for _, p := range wanted {
		if !found[p] {
			return nil, fmt.Errorf("-processes: no architecture has a process %q", p)
		}
	}
	return out, nil
}

// killOrder lists an architecture's processes in the order the phase kills them: the
// contexts' processes by name, then the edge, then NATS, whose outage is the widest.
func killOrder(rows []stack.Status, edge string) []string {
	rank := func(r stack.Status) int {
		switch {
		case r.Service == edge:
			return 1
		case r.Ports[topology.NATSPort] != "":
			return 2
		}
		return 0
	}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b stack.Status) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a.Service, b.Service))
	})
	var out []string
	for _, r := range sorted {
		out = append(out, r.Service)
	}
	return out
}

// faultsAfterRun is the run's -faults: the faults phase on the run's architectures, at half
// the first one's max rate within the SLO that the run just found. It returns the phase's
// report (nil when it could not run, with a warning added to rep) and its failure.
func faultsAfterRun(ctx context.Context, rep *loadtest.Report, edges []loadtest.Edge, p loadtest.Plan, ff faultFlags,
	state, stackName, token string, progress io.Writer) (*loadtest.FaultsReport, error) {
	if len(rep.Summary) == 0 || rep.Summary[0].MaxRate <= 0 {
		rep.Warnings = append(rep.Warnings, "faults phase not run: the first architecture has no max rate within the SLO to take half of")
		return nil, nil
	}
	s := rep.Summary[0]
	plan := loadtest.FaultPlan{Rate: s.MaxRate / 2, Users: p.Users, Timeout: p.Timeout, Mix: p.Mix, Seed: p.Seed}
	source := fmt.Sprintf("half of %s's max within the SLO in this run, %g req/s", s.Arch, s.MaxRate)
	fr, err := runFaults(ctx, edges, plan, source, ff, state, stackName, token, progress)
	if err != nil && fr == nil {
		rep.Warnings = append(rep.Warnings, "faults phase not run: "+err.Error())
		return nil, err
	}
	if err == nil {
		err = faultsVerdict(fr)
	}
	return fr, err
}
