package loadtest

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestCalibrateAgainstProcessStack is a real calibration, short: the monolith placement as
// processes (mitosis' process runtime), the mix at 20 requests/s for 3 s, each process's CPU
// through /proc; then a measured budget sized by it shares the same total by what was
// measured.
func TestCalibrateAgainstProcessStack(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the monolith placement")
	}
	root := repoRootForTest(t)
	topo, err := topology.Get(topology.Monolith, topology.Options{MonolithEdge: stacktest.AnyPort, Collector: topology.NoCollector, Dir: filepath.Join(root, "topologies")})
	if err != nil {
		t.Fatal(err)
	}
	state, name := t.TempDir(), stacktest.StackName(t)
	rt := processrt.New(processrt.Options{Root: root, State: filepath.Join(state, "run"), Stack: name, AnyPorts: true})
	t.Cleanup(func() {
		if _, err := rt.Down(context.Background(), stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	const token = "calibrate-token"
	if err := rt.Up(ctx, topo, stack.UpOptions{AdminToken: token, RequestKey: "k", ReadyTimeout: time.Minute, Progress: &progress}); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	base := "http://" + stacktest.EdgeAddr(t, rt, topo, topology.Monolith)
	shop := Shop{BaseURL: base, AdminToken: token}
	products, err := shop.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(products))
	for i, p := range products {
		ids[i] = p.ID
	}
	plan := CalibrationPlan(DefaultMix(), 20, 3*time.Second, time.Second, 20)
	plan.SampleEvery = 100 * time.Millisecond
	if _, err := shop.Replenish(ctx, ids, StockLevel(plan, len(ids))); err != nil {
		t.Fatal(err)
	}
	sc, err := NewScenario(ScenarioConfig{BaseURL: base, Mix: plan.Mix, Users: 20, Products: ids, Terms: SearchTerms(products), Prefix: "cal-test", Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := ProcsFromProcessRuntime(filepath.Join(state, "run"), name, topology.Monolith)
	if err != nil || len(procs) != 2 {
		t.Fatalf("processes: %+v, %v", procs, err)
	}
	a := &Arch{Name: topology.Monolith, BaseURL: base, Scenario: sc, Sampler: &ProcSampler{Procs: procs, Source: "test"}}
	arch := topo.Archs[0]
	budget := arch.Budget
	c := Calibration{Arch: a, Placement: arch.Placement, Split: arch.Split, Mode: arch.Mode, Runtime: "process", Budget: &budget,
		Services: []string{"monolith", "nats"}, Plan: plan, Env: ReadEnvironment(ctx, root), Progress: &progress}
	cal, err := c.Run(ctx)
	if err != nil {
		t.Fatalf("calibrate: %v\n%s", err, progress.String())
	}
	t.Logf("calibration: %+v", cal.Services)
	if cal.Placement != topology.Monolith || cal.Split != arch.Split || cal.Mode != topology.PerService || cal.RateRPS != 20 ||
		cal.AchievedRPS < 18 || cal.GitRevision == "" || cal.Mix["checkout"] != DefaultMix().Checkout || len(cal.Services) != 2 {
		t.Errorf("calibration %+v", cal)
	}
	cores := map[string]float64{}
	for _, s := range cal.Services {
		cores[s.Name] = s.CPUCores
		if s.PeakMemBytes < 1<<20 || s.CPUCores <= 0 || s.CPUCores > 2 {
			t.Errorf("%s: %.3f cores, %d bytes at peak", s.Name, s.CPUCores, s.PeakMemBytes)
		}
	}
	dir := filepath.Join(state, "calibration")
	path, err := cal.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	measured, err := topology.Get("monolith@measured", topology.Options{CalibrationDir: dir, Collector: topology.NoCollector, Dir: filepath.Join(root, "topologies")})
	if err != nil {
		t.Fatal(err)
	}
	m := measured.Archs[0]
	mono, _ := m.Service("monolith")
	nats, _ := m.Service("nats")
	if m.Calibration == nil || m.Calibration.File != path || math.Round((mono.CPUs+nats.CPUs)*1000) != topology.DefaultCPUs*1000 {
		t.Errorf("measured: monolith %g CPUs, nats %g CPUs, by %+v", mono.CPUs, nats.CPUs, m.Calibration)
	}
	// Each its floor (0.05) and its measured share of the rest, to the millicore.
	for _, s := range []topology.Service{mono, nats} {
		want := 0.05 + (topology.DefaultCPUs-0.1)*cores[s.Name]/(cores["monolith"]+cores["nats"])
		if math.Abs(s.CPUs-want) > 0.0015 {
			t.Errorf("measured: %s gets %g CPUs, want %.4f by the calibration %v", s.Name, s.CPUs, want, cores)
		}
	}
	t.Logf("measured budget: monolith %g CPUs %d MiB, nats %g CPUs %d MiB", mono.CPUs, mono.MemoryMB, nats.CPUs, nats.MemoryMB)

	// A service the placement has that was not measured: no calibration.
	c.Services = append(c.Services, "ghost")
	c.Plan = CalibrationPlan(DefaultMix(), 10, time.Second, 0, 20)
	if _, err := c.Run(ctx); err == nil || !strings.Contains(err.Error(), "no figures for ghost") {
		t.Errorf("a service not measured: %v", err)
	}
}
