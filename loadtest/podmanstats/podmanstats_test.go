//go:build remote

package podmanstats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v4/libpod/define"
	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestSamplerOnAPodmanStack brings a monolith stack of its own up in Podman (images built
// here, a stack name and edge of its own), finds its edge from the pods' status as the load
// test does by default, then samples it: CPU counters and memory of both containers, and the
// limits Podman enforces, which must be the topology's budget. It skips
// without Podman, unless REQUIRE_CONTAINERS=1.
func TestSamplerOnAPodmanStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := bindings.NewConnection(ctx, socket()); err != nil {
		if os.Getenv("REQUIRE_CONTAINERS") == "1" {
			t.Fatalf("podman: %v (REQUIRE_CONTAINERS=1)", err)
		}
		t.Skipf("no Podman API at %s: %v", socket(), err)
	}
	name := stacktest.StackName(t)
	if _, err := New(ctx, name, topology.Monolith); !errors.Is(err, ErrNoContainers) {
		t.Fatalf("New before the stack is up: %v, want ErrNoContainers", err)
	}

	budget := topology.Budget{CPUs: 1.2, MemoryMB: 500}
	topo, err := topology.Get(topology.Monolith, topology.Options{MonolithEdge: stacktest.AnyPort, Collector: topology.NoCollector, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	rt := up(ctx, t, name, topo)
	base := "http://" + stacktest.EdgeAddr(t, rt, topo, topology.Monolith)
	stacktest.Checkout(t, base, "test-token", "sampler")

	// What runs, as `mitosis status` reports it: the load test's default edges.
	rows, err := Status(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	edges, skipped := loadtest.EdgesFromStatus(ctx, rows, filepath.Join(repoRoot(t), "topologies"))
	if want := (loadtest.Edge{Arch: topology.Monolith, URL: base, Service: "monolith"}); len(edges) != 1 || edges[0] != want || len(skipped) > 0 {
		t.Errorf("edges from podman's status %+v (left out %q), want %+v", edges, skipped, want)
	}

	s, err := New(ctx, name, topology.Monolith)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 {
		t.Errorf("sample %v: want the monolith and its NATS", first)
	}
	for name, u := range first {
		if u.CPUSeconds <= 0 || u.MemBytes == 0 {
			t.Errorf("%s: %+v, want CPU seconds and memory of a running container", name, u)
		}
	}
	for range 50 { // work the monolith for the counter to move
		if code := stacktest.Get(t, base+"/v1/products"); code != http.StatusOK {
			t.Fatalf("GET /v1/products: %d", code)
		}
	}
	second, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second["monolith"].CPUSeconds <= first["monolith"].CPUSeconds {
		t.Errorf("monolith CPU went from %v to %v over 50 requests: want a growing counter",
			first["monolith"].CPUSeconds, second["monolith"].CPUSeconds)
	}

	l, err := s.Limits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Enforced || math.Abs(l.CPUs-budget.CPUs) > 0.0005 || l.MemoryMB != budget.MemoryMB || len(l.PerService) != 2 {
		t.Errorf("limits %+v, want the budget %+v over 2 containers", l, budget)
	}
	for _, sl := range l.PerService {
		svc, ok := topo.Archs[0].Service(sl.Name)
		if !ok || math.Abs(sl.CPUs-svc.CPUs) > 0.0005 || sl.MemoryMB != svc.MemoryMB {
			t.Errorf("%s: podman enforces %g CPUs and %d MiB, the topology says %g and %d", sl.Name, sl.CPUs, sl.MemoryMB, svc.CPUs, svc.MemoryMB)
		}
	}
	// The processes the report names, each with what its binary says of its build: both are
	// Go binaries built here.
	procs, err := s.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 2 || procs[0].Name != "monolith" || procs[1].Name != "nats" {
		t.Fatalf("processes %+v: want the monolith and its NATS", procs)
	}
	for _, p := range procs {
		bi, ok := loadtest.ProcBuildInfo(p.PID)
		if p.PID <= 0 || !ok || !strings.HasPrefix(bi.GoVersion, "go") {
			t.Errorf("%s: pid %d, build %+v (read: %v), want a Go binary's", p.Name, p.PID, bi, ok)
		}
	}

	// Memory is the working set: at least what each process holds of its own (its anonymous
	// resident memory, read just before; a collection may give some back meanwhile), at most
	// Podman's usage (read just after), which adds the page cache of NATS's store.
	anon := map[string]uint64{}
	for _, p := range procs {
		anon[p.Name] = rssAnon(t, p.PID)
	}
	third, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	usage := podmanUsage(ctx, t, s)
	fourth, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const slack = 4 << 20
	for _, p := range procs {
		ws, pu := third[p.Name].MemBytes, usage[p.Name]
		if ws+slack < anon[p.Name] || ws > pu.MemUsage {
			t.Errorf("%s: memory %d bytes; its process holds %d anonymous, Podman says the container uses %d", p.Name, ws, anon[p.Name], pu.MemUsage)
		}
		t.Logf("%s: working set %.1f MiB, anonymous resident %.1f MiB, Podman's usage %.1f MiB", p.Name, float64(ws)/(1<<20), float64(anon[p.Name])/(1<<20), float64(pu.MemUsage)/(1<<20))
		// The CPU the sampler reads from the cgroup is the counter Podman's stats report:
		// between the samples taken before and after Podman's.
		podman := float64(pu.CPUNano) / 1e9
		if before, after := third[p.Name].CPUSeconds, fourth[p.Name].CPUSeconds; podman < before || podman > after {
			t.Errorf("%s: Podman's stats say %.6f CPU seconds between samples of %.6f and %.6f: the sampler reads another counter", p.Name, podman, before, after)
		}
	}

	// A container that stops between samples (a fault, a roll) is left out of the next
	// sample, not an error: the sampler finds its cgroup gone and lists the containers again.
	var natsID string
	for _, ct := range s.ctrs {
		if ct.name == "nats" {
			natsID = ct.id
		}
	}
	c, cancel := s.with(ctx)
	defer cancel()
	if err := containers.Stop(c, natsID, new(containers.StopOptions).WithTimeout(0)); err != nil {
		t.Fatal(err)
	}
	fifth, err := s.Sample(ctx)
	if err != nil {
		t.Fatalf("sample after NATS's container stopped: %v", err)
	}
	if _, ok := fifth["nats"]; ok || len(fifth) != 1 || fifth["monolith"].CPUSeconds < fourth["monolith"].CPUSeconds {
		t.Errorf("sample after NATS's container stopped: %+v, want the monolith's alone", fifth)
	}

	if _, err := rt.Down(ctx, stack.DownOptions{Volumes: true}); err != nil {
		t.Fatal(err)
	}
}

// rssAnon is the anonymous resident memory of process pid (RssAnon in /proc/<pid>/status).
func rssAnon(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no RssAnon in /proc/%d/status", pid)
	return 0
}

// podmanUsage is what Podman's stats API says of each of s's containers, by service.
func podmanUsage(ctx context.Context, t *testing.T, s *Sampler) map[string]define.ContainerStats {
	t.Helper()
	ctrs, err := s.list(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := s.with(ctx)
	defer cancel()
	out := map[string]define.ContainerStats{}
	for _, ct := range ctrs {
		ch, err := containers.Stats(c, []string{ct.id}, new(containers.StatsOptions).WithStream(false))
		if err != nil {
			t.Fatal(err)
		}
		for rep := range ch {
			for _, st := range rep.Stats {
				out[ct.name] = st
			}
		}
	}
	return out
}

// repoRoot is the repository: loadtest/podmanstats's grandparent.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// up builds the topology's images and brings it up, taking it down when the test ends.
func up(ctx context.Context, t *testing.T, name string, topo topology.Topology) *podmanrt.Runtime {
	t.Helper()
	imgs := stacktest.BuildImages(t, repoRoot(t), topo, "mitosis-loadtest")
	rt, err := podmanrt.Connect(ctx, podmanrt.Options{Stack: name, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := rt.Down(ctx, stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("cleanup down: %v", err)
		}
	})
	if err := rt.Up(ctx, topo, stack.UpOptions{PKI: t.TempDir(), AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: 2 * time.Minute}); err != nil {
		t.Fatalf("up: %v", err)
	}
	return rt
}
