// Command loadtest drives any number of the shop's architectures with the same open-model
// traffic and writes a report of the difference, each against the first, into
// loadtest/out/<timestamp>/: report.json, report.md and report.html (self-contained, inline
// SVG charts).
//
//	loadtest -preset load       # under 2 minutes: a quick look (make load)
//	loadtest -preset compare    # make compare's ladder and bisection, about 5 minutes an architecture
//	loadtest -edges services,hybrid,monolith=http://127.0.0.1:8080
//	loadtest edges [-need monolith,services]
//	loadtest calibrate -edges services -rate 100 -duration 20s
//	loadtest faults [-report loadtest/out/<timestamp>/report.json | -rate 20] [-edges ...] [-processes payments,gateway]
//	loadtest roll -context catalog -up-args '-t monolith,services' [-edges ...]
//	loadtest scale -arch services -up-args '-t monolith,services' -- -preset compare
//	loadtest saturate -url http://127.0.0.1:8080/v1/products -c 32 -d 10s
//	loadtest render loadtest/out/<timestamp>/report.json
//
// Which architectures: -edges lists them in the report's order, the first the baseline of
// every ratio, each as name=URL or as a name alone, whose edge the runtimes report
// (`mitosis status`). Without it, every architecture that is up: those the process runtime
// and Podman report for the stack (-stack), and the monolith and the microservices at their
// well-known edges (127.0.0.1:8080 and :8081) when they answer there (`make run`), in the
// order monolith, services, then the others by name. When nothing answers anywhere, the two
// well-known edges are tried, and the run says they are not up. -monolith URL and -services
// URL are shorthands for an -edges entry, placed before -edges' own; an empty value leaves
// that architecture out of the default.
//
// edges prints the edges the run would drive and fails when one named by -need is not up and
// ready: make's loadtest-stack asks it before bringing anything up.
//
// calibrate runs one step of the mix at -rate for -duration against one architecture that is
// up (-edges NAME) and writes what each of its services used to
// <state>/calibration/<placement>.json, which `mitosis up --budget measured` sizes each
// service's limits by.
//
// faults is the fault-isolation phase (loadtest.FaultRunner): each process of each
// architecture killed and started again in turn under a steady rate, then the shop's
// invariants checked; it exits non-zero when a kill or start failed or an invariant broke.
// A run's -faults runs it after the ladder, at half the first architecture's max rate.
//
// roll rolls one context in each architecture under a steady load and reports the deploy
// blast radius (roll.go); the main run does the same after its ladder with -roll CONTEXT.
//
// scale measures the scaling gain (scale.go): an architecture against the same placement
// with its hottest group as replicas, at the same budget.
//
// saturate is a closed-model saturation of one URL (a fixed number of connections, each
// sending its next request when the last answered, as wrk does), for cross-checking the
// generator's throughput against wrk's.
//
// render writes report.md and report.html again from a report.json (after a change of the
// page, or for a report.json copied from elsewhere).
//
// The admin token (to top stock up before a run) is SHOP_ADMIN_TOKEN, else
// <state>/admin-token. Traffic goes to loopback addresses only: the command refuses any other
// target.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/loadtest/podmanstats"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/apitest"
)

// version is stamped by the build from git (-X main.version=...: the Makefile).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "saturate":
		err = saturate(ctx, os.Args[2:], os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "render":
		err = render(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "edges":
		err = edgesCmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "calibrate":
		err = calibrate(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "faults":
		err = faultsCmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "roll":
		err = rollCmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "scale":
		err = scaleCmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// preset is a named set of defaults; flags given on the command line win.
type preset struct {
	rates               string
	step, warmup, pause time.Duration
	warmupRate          float64
	repeats, search     int
	searchStep          time.Duration
	users               int
}

var presets = map[string]preset{
	// About 70 s of load for two architectures, plus set-up; 35 s more per architecture.
	"load": {rates: "20,50,100", step: 8 * time.Second, warmup: 5 * time.Second, warmupRate: 20, pause: time.Second,
		repeats: 1, search: 0, users: 200},
	// About 9 minutes for two architectures when neither saturates early (overloaded rates
	// are skipped, which shortens it); 4.5 minutes more per architecture.
	"compare": {rates: "25,50,100,200,400,800", step: 15 * time.Second, warmup: 10 * time.Second, warmupRate: 50,
		pause: 2 * time.Second, repeats: 2, search: 3, searchStep: 10 * time.Second, users: 500},
}

func presetOf(args []string) (string, preset, error) {
	name := "load"
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, "preset="); ok {
			name = v
		} else if a == "preset" && i+1 < len(args) {
			name = args[i+1]
		}
	}
	p, ok := presets[name]
	if !ok {
		return "", preset{}, fmt.Errorf("-preset %q: want load or compare", name)
	}
	return name, p, nil
}

// repoRoot is the folder holding go.work, from the working directory up ("." if none).
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return wd
		}
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	presetName, pr, err := presetOf(args)
	if err != nil {
		return err
	}
	root := repoRoot()
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("preset", presetName, "defaults: load (under 2 minutes) or compare (about 5 minutes an architecture)")
	edgesFlag := fs.String("edges", "", "architectures to compare, in the report's order, the first the baseline of every ratio: name=URL, or a name alone for the edge the runtimes report, comma-separated (monolith,services,hybrid=http://127.0.0.1:8082); default: every architecture up")
	monolithURL := fs.String("monolith", "", "shorthand for -edges monolith=URL, placed before -edges' entries; empty: leave the monolith out of the default")
	servicesURL := fs.String("services", "", "shorthand for -edges services=URL, placed before -edges' entries (after -monolith); empty: leave the services out of the default")
	rates := fs.String("rates", pr.rates, "offered rates of the ladder, requests/s, ascending, comma-separated")
	step := fs.Duration("step", pr.step, "duration of each ladder step")
	warmup := fs.Duration("warmup", pr.warmup, "warm-up per architecture (results discarded)")
	warmupRate := fs.Float64("warmup-rate", pr.warmupRate, "warm-up rate, requests/s")
	repeats := fs.Int("repeats", pr.repeats, "repeats of the whole ladder (even repeats reverse the architectures' order)")
	search := fs.Int("search", pr.search, "bisection steps per architecture to narrow the highest rate within the SLO")
	searchStep := fs.Duration("search-step", pr.searchStep, "duration of each bisection step (0: -step)")
	pause := fs.Duration("pause", pr.pause, "pause between steps")
	sloP99 := fs.Duration("slo-p99", 50*time.Millisecond, "SLO: p99 latency must be below this")
	sloErr := fs.Float64("slo-errors", 0.001, "SLO: error rate must be below this (0.001 = 0.1%)")
	users := fs.Int("users", pr.users, "virtual users per architecture")
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout (a timeout is an error)")
	declined := fs.Float64("declined", loadtest.DefaultMix().Declined, "share of checkouts paid with the declined card")
	mixFlag := fs.String("mix", "", "weights list,search,product,cart-add,checkout (default 25,15,35,15,10)")
	seed := fs.Uint64("seed", 1, "seed of the traffic mix")
	outDir := fs.String("out", filepath.Join(root, "loadtest", "out"), "reports go to <out>/<timestamp>/")
	state := fs.String("state", envOr("MITOSIS_STATE", filepath.Join(root, ".mitosis")), "mitosis state folder: admin-token, process runtime records")
	stackName := fs.String("stack", envOr("MITOSIS_STACK", stack.DefaultName), "mitosis stack name (for the process runtime's records and Podman's labels)")
	resources := fs.String("resources", "auto", "how to measure CPU and memory: auto, process (mitosis' process runtime), podman, port (the process listening on the edge, its launcher and children), none")
	collector := fs.String("collector", envOr("MITOSIS_COLLECTOR", "http://"+topology.DefaultCollectorEdge), "trace collector's query API for the trace breakdown (empty: none)")
	traces := fs.Int("traces", 20, "checkout traces per architecture to compare")
	traceShare := fs.Float64("trace-share", 0.1, "share of requests sent with a traceparent asking to be traced, the rest asking not to be (negative: no traceparent, each stack samples as configured)")
	insecureStack := fs.String("insecure-stack", "", "a second stack, up with --insecure and its architectures named apart (--split-name services-insecure), whose architectures join the run to measure what security costs (security.md); insecure, for comparison only")
	showVersion := fs.Bool("version", false, "print the version and exit")
	faults := fs.Bool("faults", false, "after the ladder, the faults phase (loadtest faults) on the same architectures, at half the first one's max rate within the SLO")
	var ff faultFlags
	ff.register(fs)
	faultsEdges := fs.String("faults-edges", "", "the architectures the -faults phase runs on, by name, comma-separated (default every one of the run)")
	rollEdges := fs.String("roll-edges", "", "the architectures -roll rolls, by name, comma-separated (default every one of the run)")
	roll := addRollFlags(fs, root, "roll-")
	scaling := addScalingFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *showVersion {
		fmt.Fprintln(stdout, version)
		return nil
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	mix, err := parseMix(*mixFlag, *declined)
	if err != nil {
		return err
	}
	rs, err := parseFloats(*rates)
	if err != nil {
		return fmt.Errorf("-rates: %w", err)
	}
	plan := loadtest.Plan{
		Rates: rs, Duration: *step, Warmup: *warmup, WarmupRate: *warmupRate, Repeats: *repeats, Search: *search,
		SearchDuration: *searchStep, Pause: *pause, SLO: loadtest.SLO{P99: *sloP99, ErrorRate: *sloErr}, Mix: mix,
		Users: *users, Timeout: *timeout, Seed: *seed, TraceShare: *traceShare,
	}
	if err := plan.Validate(); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	choice := edgeChoice{edges: *edgesFlag, state: *state, stack: *stackName, topologies: filepath.Join(root, "topologies"), defaults: loadtest.DefaultEdges()}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "monolith":
			choice.shorthands = append(choice.shorthands, loadtest.Edge{Arch: topology.Monolith, URL: loadtest.NormalizeURL(*monolithURL)})
		case "services":
			choice.shorthands = append(choice.shorthands, loadtest.Edge{Arch: topology.Services, URL: loadtest.NormalizeURL(*servicesURL)})
		}
	})
	targets, err := choice.choose(ctx, say)
	if err != nil {
		return err
	}
	stackOf := map[string]string{} // an architecture's stack, when not -stack
	var insecure []string
	if *insecureStack != "" {
		extra, err := insecureEdges(ctx, *state, *insecureStack, choice.topologies, targets, say)
		if err != nil {
			return err
		}
		for _, e := range extra {
			stackOf[e.Arch] = *insecureStack
			insecure = append(insecure, e.Arch)
		}
		targets = append(targets, extra...)
	}
	token := loadtest.AdminToken(filepath.Join(*state, "admin-token"))
	id := time.Now().UTC().Format("20060102-150405")
	dir := filepath.Join(*outDir, id)

	var archs []*loadtest.Arch
	var infos []loadtest.ArchInfo
	var scenarios []*loadtest.Scenario
	var levels, added []int64
	runID := strconv.FormatInt(time.Now().Unix()%1_000_000, 36)
	for i, t := range targets {
		if err := loopbackOnly(t.URL); err != nil {
			return fmt.Errorf("%s: %w", t.Arch, err)
		}
		shop, products, ids, level, n, err := readyShop(ctx, t, token, plan, say)
		if err != nil {
			return err
		}
		sc, err := loadtest.NewScenario(loadtest.ScenarioConfig{
			BaseURL: shop.BaseURL, Mix: mix, Users: *users, Products: ids, Terms: loadtest.SearchTerms(products),
			// The architecture's position, not its name: two edges may be one shop.
			Prefix: "lt" + runID + "-" + strconv.Itoa(i), Seed: *seed, TraceShare: *traceShare,
		})
		if err != nil {
			return err
		}
		a := &loadtest.Arch{Name: t.Arch, BaseURL: shop.BaseURL, Scenario: sc}
		info := loadtest.ArchInfo{Name: t.Arch, BaseURL: shop.BaseURL}
		sampler := discover(ctx, *resources, *state, cmp.Or(stackOf[t.Arch], *stackName), choice.topologies, t.Arch, shop.BaseURL, a, &info)
		say("%s: %s", t.Arch, resourcesLine(sampler, info))
		archs = append(archs, a)
		infos = append(infos, info)
		scenarios = append(scenarios, sc)
		levels, added = append(levels, level), append(added, n)
	}
	env := loadtest.ReadEnvironment(ctx, root)
	// The traces of every step are read as it ends: by the end of the run, the collector
	// has dropped those of the first steps to make room.
	keepSrc := loadtest.TraceSource{Collector: *collector, Last: *traces}
	for _, t := range targets {
		keepSrc.Sides = append(keepSrc.Sides, loadtest.TraceSideSource{Label: t.Arch, Service: t.Service})
	}
	keeper := loadtest.NewTraceKeeper(keepSrc)
	kept, err := os.MkdirTemp("", "loadtest-windows-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(kept)
	keeper.KeepWindows(kept)
	// So are the store round trips of every step: the collector keeps minutes of metrics.
	rtKeeper := loadtest.NewRoundTripKeeper(*collector)
	stepDone := func(st loadtest.Step) {
		keeper.StepDone(st)
		rtKeeper.StepDone(st)
	}
	runner := &loadtest.Runner{Plan: plan, Archs: archs, Progress: stderr, StepDone: stepDone}
	res, err := runner.Run(ctx)
	if err != nil {
		return err
	}
	for i := range infos {
		sc := scenarios[i]
		infos[i].Scenario = loadtest.ScenarioStats{Users: *users, Sent: sc.Sent(), Substitutions: sc.Substitutions(),
			DeclinedSent: sc.DeclinedSent(), Retired: sc.Retired(), StockLevel: levels[i], StockAdded: added[i]}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The traces of the steps at the common rate: every architecture under the same load.
	rate := loadtest.CommonRate(res)
	src := loadtest.TraceSource{Collector: *collector, Last: *traces, Rate: rate, Kept: keeper, NoneSent: mix.Checkout == 0}
	windows := true
	for _, t := range targets {
		from, to := loadtest.StepWindow(res, t.Arch, rate)
		windows = windows && !from.IsZero()
		src.Sides = append(src.Sides, loadtest.TraceSideSource{Label: t.Arch, Service: t.Service, From: from, To: to})
	}
	if !windows { // an interrupted run: the latest traces of each, alike
		for i := range src.Sides {
			src.Sides[i].From, src.Sides[i].To = time.Time{}, time.Time{}
		}
	}
	// Not bound to ctx: an interrupted run still gets its report.
	tr := loadtest.CollectTraces(context.WithoutCancel(ctx), src, dir)
	// Every trace of those steps, kept for `mitosis advise` to read offline.
	if _, err := loadtest.ExportTraces(context.WithoutCancel(ctx), src, dir); err != nil {
		say("keeping the run's traces: %v", err)
	}
	zero := loadtest.ZeroCPU(res) // before BuildReport, which marks their steps not measured
	rep := loadtest.BuildReport(id, res, env, infos, tr)
	rep.RoundTrips = loadtest.CollectRoundTrips(context.WithoutCancel(ctx), src.Collector, src.Sides, rtKeeper)
	rep.RoundTrips.Caveat = loadtest.RoundTripsCaveat(res.Steps)
	var faultsErr error
	if *faults && res.Interrupted == "" {
		rep.Faults, faultsErr = faultsAfterRun(ctx, rep, only(targets, *faultsEdges, func(e loadtest.Edge) string { return e.Arch }),
			plan, ff, *state, *stackName, token, stderr)
	}
	rollArchs := only(archs, *rollEdges, func(a *loadtest.Arch) string { return a.Name })
	if r, err := roll.runRoll(ctx, id, *state, *stackName, *timeout, rollArchs, stderr); !errors.Is(err, errNoRoll) {
		if r != nil {
			rep.AddRoll(r)
		}
		if err != nil {
			rep.Warnings = append(rep.Warnings, "roll: "+err.Error())
		}
	}
	scaling.apply(rep, targets)
	for _, a := range insecure {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: %s (stack %s up --insecure; security.md)", a, loadtest.InsecureNote, *insecureStack))
	}
	if err := rep.WriteFiles(dir); err != nil {
		return err
	}
	if len(insecure) > 0 {
		sc := loadtest.BuildSecurityCost(rep, dir, insecure)
		if err := sc.WriteFiles(dir); err != nil {
			return err
		}
		fmt.Fprintln(stdout, sc.Markdown())
	}
	if rep.Faults != nil {
		fmt.Fprintln(stdout, faultsSummary(rep.Faults))
	}
	printSummary(stdout, rep, dir)
	if len(zero) > 0 {
		return fmt.Errorf("the CPU of %s read zero over the whole run: the report leaves CPU out (see its warnings); %w",
			strings.Join(zero, ", "), errors.Join(faultsErr, errZeroCPU))
	}
	return faultsErr
}

// errZeroCPU fails a run whose CPU figures would have read as free requests.
var errZeroCPU = errors.New("measure with a sampler that sees the serving processes (-resources process or podman)")

// readyShop waits for an architecture's edge, reads its catalog and tops its stock up for
// the plan: its products and their IDs, the stock level and the units added.
func readyShop(ctx context.Context, t loadtest.Edge, token string, plan loadtest.Plan, say func(string, ...any)) (loadtest.Shop, []apitest.Product, []string, int64, int64, error) {
	shop := loadtest.Shop{BaseURL: t.URL, AdminToken: token}
	if err := shop.WaitReady(ctx, 10*time.Second); err != nil {
		return shop, nil, nil, 0, 0, fmt.Errorf("%s is not up: %w (bring it up: make up ARCH=%s, or mitosis up -t %s)", t.Arch, err, t.Arch, t.Arch)
	}
	products, err := shop.Catalog(ctx)
	if err != nil {
		return shop, nil, nil, 0, 0, fmt.Errorf("%s: %w", t.Arch, err)
	}
	ids := make([]string, len(products))
	for i, p := range products {
		ids[i] = p.ID
	}
	level := loadtest.StockLevel(plan, len(ids))
	n, err := shop.Replenish(ctx, ids, level)
	if err != nil {
		return shop, nil, nil, 0, 0, fmt.Errorf("%s: %w", t.Arch, err)
	}
	say("%s: %s ready, %d products, stock topped up to %d each (%d units added)", t.Arch, shop.BaseURL, len(ids), level, n)
	return shop, products, ids, level, n, nil
}

func printSummary(w io.Writer, r *loadtest.Report, dir string) {
	fmt.Fprintln(w)
	for _, s := range r.Summary {
		line := fmt.Sprintf("%-9s max within SLO: %g req/s (%s)", s.Arch, s.MaxRate, s.MaxRateBound)
		if a := s.AtCommon; a != nil {
			line += fmt.Sprintf("; at %g req/s p50 %.2f ms p99 %.2f ms", a.Rate, a.P50MS, a.P99MS)
			if a.CPUPerReqMS > 0 {
				line += fmt.Sprintf(", CPU %.3f ms/req, peak memory %.1f MiB", a.CPUPerReqMS, float64(a.PeakMemBytes)/(1<<20))
			}
		}
		fmt.Fprintln(w, line)
	}
	if c := r.Comparison; c != nil {
		for i, other := range c.Archs[1:] {
			for _, x := range c.Rows {
				if x.Ratios[i+1] != 0 {
					fmt.Fprintf(w, "  %s / %s, %s: %.2f×\n", other, c.Baseline, x.Metric, x.Ratios[i+1])
				}
			}
		}
	}
	for _, x := range r.Warnings {
		fmt.Fprintln(w, "warning:", x)
	}
	fmt.Fprintf(w, "report: %s\n", filepath.Join(dir, "report.html"))
}

// discover picks the resource sampler of one architecture and fills what the report says
// of its runtime and limits; it returns the sampler's name (a -resources value: process,
// podman or port), "" when none measures it (info.Resources then says why).
//
// The order is that of what each sampler sees: the process runtime's records and Podman's
// labels name every process of the architecture, the port only the one that holds it and its
// tree. A port Podman publishes is held by a process of Podman's (conmon, rootlessport), not
// by the shop, so it is never measured by port: a Podman stack that the podman sampler cannot
// read (a build without the bindings, an API out of reach) is not measured rather than
// measured as free (loadtest.ErrContainerPort).
func discover(ctx context.Context, mode, state, stackName, topologies, arch, baseURL string, a *loadtest.Arch, info *loadtest.ArchInfo) string {
	info.Runtime = "unknown"
	var notes []string
	try := func(m string) bool { return mode == "auto" || mode == m }
	if try("process") {
		procs, err := loadtest.ProcsFromProcessRuntime(filepath.Join(state, "run"), stackName, arch)
		if err == nil && len(procs) > 0 {
			a.Sampler = &loadtest.ProcSampler{Procs: procs, Source: fmt.Sprintf("/proc of the %d processes mitosis' process runtime started (stack %s)", len(procs), stackName)}
			info.Runtime = "process"
			info.Limits = processLimits(ctx, state, stackName, topologies, arch)
			setProcs(info, procs)
			info.Resources = a.Sampler.Describe()
			return "process"
		} else if mode == "process" {
			notes = append(notes, fmt.Sprintf("no live process-runtime records under %s", filepath.Join(state, "run", stackName, arch)))
		}
	}
	if try("podman") {
		s, err := podmanstats.New(ctx, stackName, arch)
		if err == nil {
			a.Sampler = s
			info.Runtime = "podman"
			if info.Limits, err = s.Limits(ctx); err != nil {
				info.Limits = topologyLimits(topologies, arch, true)
				info.Limits.Source += " (podman's own could not be read: " + err.Error() + ")"
			}
			if procs, err := s.Processes(ctx); err == nil {
				setProcs(info, procs)
			}
			info.Resources = a.Sampler.Describe()
			return "podman"
		} else if mode == "podman" || podmanstats.Available {
			notes = append(notes, err.Error())
		}
	}
	if try("port") {
		u, _ := url.Parse(baseURL)
		procs, err := loadtest.ProcsByListener(u.Host)
		switch {
		case err == nil && len(procs) > 0:
			a.Sampler = &loadtest.ProcSampler{Procs: procs, Source: fmt.Sprintf("/proc of the process listening on %s and its launcher's tree (%d processes)", u.Host, len(procs))}
			info.Runtime = "local"
			info.Limits = loadtest.Limits{Source: "none: local processes started by hand (make run)"}
			setProcs(info, procs)
			info.Resources = a.Sampler.Describe()
			return "port"
		case errors.Is(err, loadtest.ErrContainerPort) && !podmanstats.Available:
			notes = append(notes, "by port: "+err.Error()+"; this build has no Podman bindings for -resources podman (make build-loadtest has)")
		case err != nil:
			notes = append(notes, "by port: "+err.Error())
		}
	}
	a.Note = "not measured (" + strings.Join(notes, "; ") + ")"
	if mode == "none" {
		a.Note = "not measured (-resources none)"
	}
	info.Resources = a.Note
	return ""
}

// resourcesLine says which sampler measures an architecture (discover's choice) and what it
// reads, or why nothing does.
func resourcesLine(sampler string, info loadtest.ArchInfo) string {
	if sampler == "" {
		return "resources: " + info.Resources
	}
	return fmt.Sprintf("resources: the %s sampler, %s", sampler, info.Resources)
}

func setProcs(info *loadtest.ArchInfo, procs []loadtest.Proc) {
	for _, p := range procs {
		pi := loadtest.ProcInfo{Name: p.Name, PID: p.PID}
		if bi, ok := loadtest.ProcBuildInfo(p.PID); ok {
			pi.BuildInfo = bi
		}
		info.Processes = append(info.Processes, pi)
	}
}

// processLimits are the limits of an architecture the process runtime runs, as it reports
// them (its budget: the mode, and whether a shared one is enforced, checked now); for one it
// started before budgets had modes, the topology's defaults.
func processLimits(ctx context.Context, state, stackName, topologies, arch string) loadtest.Limits {
	sts, err := processrt.New(processrt.Options{State: filepath.Join(state, "run"), Stack: stackName}).Status(ctx)
	if err == nil {
		for _, s := range sts {
			if s.Arch == arch && s.Budget != nil {
				return loadtest.LimitsOf(*s.Budget, "mitosis' process runtime: "+s.Budget.Detail)
			}
		}
	}
	return topologyLimits(topologies, arch, false)
}

// topologyLimits are the limits `mitosis up` gives an architecture by default
// (platform/topology): its topology file's in dir, at the default budget, per service.
func topologyLimits(dir, arch string, enforced bool) loadtest.Limits {
	l := loadtest.Limits{Enforced: enforced, Source: "platform/topology", Mode: topology.PerService}
	t, err := topology.Get(arch, topology.Options{Dir: dir, Collector: topology.NoCollector})
	if err != nil {
		l.Source = "unknown: " + err.Error()
		return l
	}
	for _, a := range t.Archs {
		if a.Name != arch {
			continue
		}
		for _, s := range a.Services {
			for _, p := range s.Processes() { // a limit per replica
				l.CPUs += s.CPUs
				l.MemoryMB += s.MemoryMB
				l.PerService = append(l.PerService, loadtest.ServiceLimit{Name: p.Name, CPUs: s.CPUs, MemoryMB: s.MemoryMB})
			}
		}
	}
	return l
}

// loopbackOnly refuses a target that is not on this machine's loopback: load goes nowhere
// else.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%q: only http:// targets", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the load test only targets this machine", raw)
	}
	return nil
}

// parseMix reads -mix (five weights; "" for the default) and -declined.
func parseMix(weights string, declined float64) (loadtest.Mix, error) {
	mix := loadtest.DefaultMix()
	if weights != "" {
		w, err := parseFloats(weights)
		if err != nil || len(w) != 5 {
			return mix, fmt.Errorf("-mix %q: want five weights", weights)
		}
		mix.List, mix.Search, mix.Product, mix.CartAdd, mix.Checkout = w[0], w[1], w[2], w[3], w[4]
	}
	mix.Declined = declined
	return mix, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// only keeps the items whose name names lists (comma-separated); all of them when names is
// empty. A phase that ran after the ladder on some architectures only (-faults-edges,
// -roll-edges) keeps the run's order.
func only[T any](items []T, names string, name func(T) string) []T {
	if strings.TrimSpace(names) == "" {
		return items
	}
	want := strings.Split(names, ",")
	for i := range want {
		want[i] = strings.TrimSpace(want[i])
	}
	return slices.DeleteFunc(slices.Clone(items), func(it T) bool { return !slices.Contains(want, name(it)) })
}
