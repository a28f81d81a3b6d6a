package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/advise"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// copyRun copies a recorded run of platform/advise's testdata into a folder of its own, so
// that advise writes its page and topology file there.
func copyRun(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(repoRoot(t), "platform", "advise", "testdata", name)
	dst := filepath.Join(t.TempDir(), "loadtest", "out", "20261204-000000-"+name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// advise on a recorded run: the table names the model, the check and the recommendation
// with its --split; --json is the whole report; the page and the topology file land in the
// run's folder, and the topology file is one mitosis up reads.
func TestAdviseOnARecordedRun(t *testing.T) {
	run, hop := copyRun(t, "run"), copyRun(t, "hop")
	root := repoRoot(t)
	code, out, errOut := runCLI(t, "advise", "--root", root, "--run", run, "--check", hop, "--max-groups", "3", "--objective", "balanced")
	if code != exitOK {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"model: CPU/req = monolith's", "the model's check", "Bell(7) = 877", "recommended (objective balanced)",
		"mitosis up -t monolith --split '", "edge→catalog", "orders→payments", "shop.events.order-paid"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	page, err := os.ReadFile(filepath.Join(run, "advise.html"))
	if err != nil || !strings.Contains(string(page), "<svg") || !strings.Contains(string(page), "Pareto front") {
		t.Errorf("advise.html: %v", err)
	}
	f, err := topology.ReadFile(filepath.Join(run, "advised.yaml"))
	if err != nil || len(f.Groups) < 2 {
		t.Errorf("advised.yaml: %+v, %v", f, err)
	}

	code, out, errOut = runCLI(t, "advise", "--root", root, "--run", run, "--json", "--isolate", "payments", "--together", "cart,orders",
		"--max-groups", "4", "--objective", "cpu", "--html", "none", "--topology-out", "none")
	if code != exitOK {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var rep struct {
		Search struct {
			Objective   string `json:"objective"`
			Recommended struct {
				Split  string `json:"split"`
				Groups int    `json:"groups"`
			} `json:"recommended"`
			Front []json.RawMessage `json:"pareto_front"`
		} `json:"search"`
		Graph struct {
			Calls []struct {
				From, To  string
				PerSecond float64 `json:"per_second"`
			} `json:"calls"`
		} `json:"graph"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rec := rep.Search.Recommended
	if rep.Search.Objective != "cpu" || rec.Groups > 4 || len(rep.Search.Front) == 0 || len(rep.Graph.Calls) == 0 {
		t.Errorf("report %+v", rep)
	}
	if rec.Split != advise.Monolith {
		groups := strings.Split(rec.Split, ",")
		if !strings.Contains(rec.Split, ",payments,") && !strings.HasSuffix(rec.Split, ",payments") && !strings.HasPrefix(rec.Split, "payments,") {
			t.Errorf("%s: payments not alone", rec.Split)
		}
		for _, g := range groups {
			if strings.Contains(g, "cart") != strings.Contains(g, "orders") {
				t.Errorf("%s: cart and orders apart", rec.Split)
			}
		}
	}
}

// Bad input is refused with exit 2 and says why; a run without traces says how to get one.
func TestAdviseBadInput(t *testing.T) {
	run := copyRun(t, "run")
	root := repoRoot(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--objective", "fast"}, "objective"},
		{[]string{"--isolate", "billing"}, "unknown context"},
		{[]string{"--together", "cart"}, "at least two"},
		{[]string{"--name", "a/b"}, "--name"},
		{[]string{"--verify-repeats", "-1"}, "--verify-repeats"},
		{[]string{"--verify-step", "-2s"}, "--verify-step"},
		{[]string{"--verify-warmup", "-1s"}, "--verify-warmup"},
	} {
		code, _, errOut := runCLI(t, append([]string{"advise", "--root", root, "--run", run}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	empty := t.TempDir()
	code, _, errOut := runCLI(t, "advise", "--root", empty, "--state", t.TempDir())
	if code != exitUsage || !strings.Contains(errOut, "no load-test run with traces") {
		t.Errorf("no run: exit %d, %q", code, errOut)
	}
	if err := os.Remove(filepath.Join(run, advise.ManifestFile)); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "advise", "--root", root, "--run", run)
	if code != exitFailure || !strings.Contains(errOut, "keeps no traces") {
		t.Errorf("a run without traces: exit %d, %q", code, errOut)
	}
}

// A verification brings the monolith up only when the stack has none (and removes only
// that one after), and refuses a name the stack has: it removes its own architecture after.
func TestVerifyPlan(t *testing.T) {
	for _, tc := range []struct {
		present []string
		name    string
		mono    bool
		err     string
	}{
		{nil, "advised", true, ""},
		{[]string{"monolith", "telemetry"}, "advised", false, ""},
		{[]string{"services"}, "advised", true, ""},
		{[]string{"monolith", "advised"}, "advised", false, "has an architecture named advised already"},
		{[]string{"monolith"}, "monolith", false, "named monolith already"},
	} {
		present := map[string]bool{}
		for _, p := range tc.present {
			present[p] = true
		}
		mono, err := verifyPlan(present, tc.name, "hv")
		if mono != tc.mono || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v, --name %s: monolith %v, %v; want %v, %q", tc.present, tc.name, mono, err, tc.mono, tc.err)
		}
	}
}

// needProcessRuntime skips a test where the process runtime cannot run (it reads /proc, and
// builds the shop's binaries with the go command), and under -short; under CI, where it
// must run, a missing piece fails the test instead.
func needProcessRuntime(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: brings a process stack up and load-tests it")
	}
	why := ""
	if runtime.GOOS != "linux" {
		why = "the process runtime reads /proc: Linux only, not " + runtime.GOOS
	} else if _, err := exec.LookPath("go"); err != nil {
		why = "no go command on PATH to build the images and the load test: " + err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("under CI the process runtime must run: %s", why)
	}
	t.Skip(why)
}

// statusRow is a line of mitosis status --json.
type statusRow struct {
	Arch    string `json:"arch"`
	Service string `json:"service"`
	State   string `json:"state"`
	Health  string `json:"health"`
	PID     int    `json:"pid"`
}

func stackStatus(t *testing.T, common []string) []statusRow {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"status", "--json"}, common...)...)
	var rows []statusRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || (code != exitOK && code != exitNothing) {
		t.Fatalf("status: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	slices.SortFunc(rows, func(a, b statusRow) int { return strings.Compare(a.Arch+"/"+a.Service, b.Arch+"/"+b.Service) })
	return rows
}

// runningFrom lists the processes of the machine whose binary lies under dir.
func runningFrom(t *testing.T, dir string) []int {
	t.Helper()
	exes, err := filepath.Glob("/proc/[0-9]*/exe")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range exes {
		target, err := os.Readlink(e)
		if err != nil || !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			continue // gone meanwhile, or another user's, or another binary
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(e)))
		if err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// TestVerifyAdviceOnAProcessStack runs advise --verify for real on the process runtime: the
// recorded run's advice with payments alone in at most three groups (orders' charge cut, a
// synchronous call, so the hop's cost is in the figures) comes up beside a monolith already
// running, the load test runs its short steps against both, and the report compares
// predicted with measured figures; then the advice's processes and data are gone and the
// monolith runs on, untouched. No accuracy bound: steps of 2 s on a shared machine are noise
// (the figures are logged). About a minute on 2 busy cores once the images and the load test
// are built (kept in a folder of the system's temporary one, per repository, for the next
// run); a first run builds them, a few minutes more.
func TestVerifyAdviceOnAProcessStack(t *testing.T) {
	needProcessRuntime(t)
	start := time.Now()
	root := repoRoot(t)
	state := t.TempDir()
	// The images and the load test's binary are kept for the next run, per repository: the
	// images' inputs hash and the go command's build ID make a run with the same sources
	// build neither again.
	cache := filepath.Join(os.TempDir(), fmt.Sprintf("mitosis-cli-test-%x", sha256.Sum256([]byte(root)))[:len("mitosis-cli-test-")+12])
	if err := os.MkdirAll(filepath.Join(cache, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(cache, "images"), filepath.Join(state, "images")); err != nil {
		t.Fatal(err)
	}
	loadtestBin := filepath.Join(cache, "loadtest")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", loadtestBin, "./loadtest/cmd/loadtest")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./loadtest/cmd/loadtest: %v\n%s", err, out)
	}
	t.Logf("the load test built in %s", time.Since(start).Round(time.Millisecond))
	stackName := stacktest.StackName(t)
	common := []string{"--runtime", "process", "--root", root, "--state", state, "--stack", stackName}
	t.Cleanup(func() { runBinary(context.Background(), t, append([]string{"down", "--volumes"}, common...)...) })
	if code, out, errOut := runBinary(t.Context(), t, append([]string{"up", "-t", "monolith", "--monolith-edge", stacktest.AnyPort, "--collector-edge", "none"}, common...)...); code != exitOK {
		t.Fatalf("up -t monolith: exit %d\n%s\n%s", code, out, errOut)
	}
	before := stackStatus(t, common)
	bins := filepath.Join(state, "run", "bin") // where the process runtime runs the images' binaries from
	pidsBefore := runningFrom(t, bins)
	if len(before) != 3 || len(pidsBefore) != 3 {
		t.Fatalf("the monolith's stack: %+v, processes %v; want the monolith, its NATS and the stack's renewer", before, pidsBefore)
	}
	t.Logf("the monolith up after %s", time.Since(start).Round(time.Millisecond))

	advisedRun := copyRun(t, "run")
	verifyOut := t.TempDir()
	verify := func(extra ...string) (int, string, string) {
		args := append([]string{"advise", "--run", advisedRun, "--isolate", "payments", "--max-groups", "3", "--verify",
			"--verify-step", "2s", "--verify-warmup", "1s", "--verify-repeats", "1", "--verify-out", verifyOut, "--loadtest", loadtestBin,
			"--json", "--html", "none", "--topology-out", "none", "--edge", stacktest.AnyPort, "--monolith-edge", stacktest.AnyPort,
			"--collector-edge", "none"}, common...)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		return runBinary(ctx, t, append(args, extra...)...)
	}
	// A name already up is refused before anything starts: the verification removes its own.
	if code, _, errOut := verify("--name", "monolith"); code != exitFailure || !strings.Contains(errOut, "has an architecture named monolith already") {
		t.Errorf("--verify --name monolith: exit %d, want 1 and a refusal:\n%s", code, errOut)
	}

	verifyStart := time.Now()
	code, out, errOut := verify()
	took := time.Since(verifyStart)
	if code != exitOK {
		t.Fatalf("advise --verify: exit %d\n%s\n%s", code, out, errOut)
	}
	var rep struct {
		Model struct {
			Monolith advise.Measured `json:"monolith"`
		} `json:"model"`
		Search struct {
			Recommended advise.Prediction `json:"recommended"`
		} `json:"search"`
		Verify *advise.Verification `json:"verify"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rec, v := rep.Search.Recommended, rep.Verify
	groups := strings.Split(rec.Split, ",")
	if !slices.Contains(groups, "payments") || rec.CutCalls <= 0 {
		t.Fatalf("recommended %s, %.2f cut calls per request: want payments alone, a synchronous call cut", rec.Split, rec.CutCalls)
	}
	if v == nil || v.Arch != "advised" || v.Split != rec.Split || v.Rate != 25 || !strings.HasPrefix(v.Run, verifyOut) {
		t.Fatalf("verification %+v of %s: want the advice as advised at 25 req/s, its run under %s", v, rec.Split, verifyOut)
	}
	for _, want := range []string{"advised/payments: started", "advised/shipping: started", "the monolith of stack " + stackName + " runs already", "-step 2s -warmup 1s", "removed 4 processes"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("advise's log lacks %q:\n%s", want, errOut)
		}
	}
	rows := map[string]advise.VerifyRow{}
	for _, r := range v.Rows {
		rows[r.Metric] = r
	}
	mono := rep.Model.Monolith // the monolith as the advised run measured it: the prediction's base
	for _, tc := range []struct {
		metric                 string
		predicted, monoPredict float64
	}{
		{"CPU per request, ms", rec.CPUPerReqMS, mono.CPUPerReqMS},
		{"p50, ms", rec.Latency.P50, mono.Latency.P50},
	} {
		r, ok := rows[tc.metric]
		if !ok {
			t.Errorf("no %q row in %+v", tc.metric, v.Rows)
			continue
		}
		// Both architectures, predicted and measured: the advice's prediction and the
		// monolith's of the advised run, the advice's and the monolith's measured now.
		if r.Predicted != tc.predicted || r.Predicted <= 0 || tc.monoPredict <= 0 || r.Measured <= 0 || r.Monolith <= 0 {
			t.Errorf("%s: predicted %g (recommendation %g), monolith predicted %g, measured %g, monolith measured %g: want all positive",
				tc.metric, r.Predicted, tc.predicted, tc.monoPredict, r.Measured, r.Monolith)
		}
		anchored := r.Monolith + tc.predicted - tc.monoPredict
		errPct, rawPct := (anchored-r.Measured)/r.Measured*100, (tc.predicted-r.Measured)/r.Measured*100
		if math.Abs(r.Anchored-anchored) > 1e-9 || math.Abs(r.ErrorPct-errPct) > 1e-9 || math.Abs(r.RawErrorPct-rawPct) > 1e-9 {
			t.Errorf("%s: anchored %g, error %g%%, raw %g%%; from the figures %g, %g%%, %g%%", tc.metric, r.Anchored, r.ErrorPct, r.RawErrorPct, anchored, errPct, rawPct)
		}
		t.Logf("%s: advice predicted %.2f, anchored %.2f, measured %.2f: error %+.1f%% (raw %+.1f%%); monolith predicted %.2f, measured %.2f",
			tc.metric, r.Predicted, r.Anchored, r.Measured, r.ErrorPct, r.RawErrorPct, tc.monoPredict, r.Monolith)
	}
	t.Logf("the rest of the machine used %.2f cores during the advice's steps, %.2f during the monolith's; verify took %s",
		v.OtherCores[0], v.OtherCores[1], took.Round(time.Millisecond))

	// The advice's processes ran and were measured, each group's and its NATS.
	b, err := os.ReadFile(filepath.Join(v.Run, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vrep struct {
		Steps []struct {
			Arch      string `json:"arch"`
			Resources struct {
				Processes []struct {
					Name       string  `json:"name"`
					CPUSeconds float64 `json:"cpu_seconds"`
				} `json:"processes"`
			} `json:"resources"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(b, &vrep); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"monolith": {"monolith", "nats"}, "advised": {"nats"}}
	for _, g := range groups {
		want["advised"] = append(want["advised"], strings.ReplaceAll(g, "+", "-"))
	}
	for arch, names := range want {
		slices.Sort(names)
		var got []string
		cpu := 0.0
		for _, s := range vrep.Steps {
			if s.Arch != arch {
				continue
			}
			for _, p := range s.Resources.Processes {
				if !slices.Contains(got, p.Name) {
					got = append(got, p.Name)
				}
				cpu += p.CPUSeconds
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, names) || cpu <= 0 {
			t.Errorf("%s's steps measured %v using %g CPU-s, want %v and some CPU", arch, got, cpu, names)
		}
	}

	// Afterwards: the advice is gone, processes, records and data; the monolith runs on,
	// the same processes, and the run is where --verify-out says.
	after := stackStatus(t, common)
	if !slices.Equal(after, before) {
		t.Errorf("the stack after the verification:\n%+v\nbefore:\n%+v", after, before)
	}
	if got := runningFrom(t, bins); !slices.Equal(got, pidsBefore) {
		t.Errorf("processes of the stack's binaries after the verification %v, before %v", got, pidsBefore)
	}
	if _, err := os.Stat(filepath.Join(state, "run", stackName, "advised")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the advice's folder (records, data) after the verification: %v", err)
	}
	t.Logf("the whole test took %s", time.Since(start).Round(time.Millisecond))
}
