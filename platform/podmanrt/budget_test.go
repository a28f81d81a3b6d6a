package podmanrt_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/pods"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/podmanrt/podmanrttest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestSharedBudgetPods runs the monolith placement three times in Podman: per service, under
// a shared budget and under a measured one. The shared one's pods have one cgroup parent
// whose files hold the architecture's total, their containers no limit of their own and
// their processes inside it; the others' containers keep their own quota and limit under
// Podman's default parent, adding up to the total exactly (the measured shares are not round
// in floating point: 0.141 CPUs is 14099.99... µs). Status says each is enforced and how; down
// removes the group, in every hierarchy.
func TestSharedBudgetPods(t *testing.T) {
	conn := podmanrttest.Require(t)
	fs, err := cgroup.Open(cgroup.DefaultRoot)
	if err != nil {
		t.Skipf("no cgroups to make here: %v", err)
	}
	const arch = "monolith-shared"
	cal := t.TempDir()
	if _, err := (topology.Calibration{Placement: topology.Monolith, Split: "edge+catalog+cart+inventory+payments+orders+shipping+notify",
		Services: []topology.CalibratedService{{Name: "nats", CPUCores: 0.091, PeakMemBytes: 20 << 20}, {Name: "monolith", CPUCores: 1.059, PeakMemBytes: 60 << 20}}}).Write(cal); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Get("monolith,monolith@shared,monolith@measured", topology.Options{MonolithEdge: stacktest.AnyPort,
		Edges: map[string]string{arch: stacktest.AnyPort, "monolith-measured": stacktest.AnyPort}, Collector: topology.NoCollector,
		Budget: topology.Budget{CPUs: 1.25, MemoryMB: 512}, CalibrationDir: cal})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := topo.Archs[2].Service("nats"); n.CPUs != 0.141 {
		t.Fatalf("measured NATS gets %g CPUs, want 0.141 (a quota that truncates)", n.CPUs)
	}
	imgs := buildImages(t, topo)
	name := stacktest.StackName(t)
	rt := connect(t, name, imgs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	if err := rt.Up(ctx, topo, stack.UpOptions{PKI: t.TempDir(), AdminToken: "test-token", RequestKey: "k", ReadyTimeout: time.Minute, Progress: &progress}); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	stacktest.Checkout(t, "http://"+stacktest.EdgeAddr(t, rt, topo, arch), "test-token", "ada")

	group := cgroup.Path(name, arch)
	files := map[string]string{"cpu/cpu.cfs_quota_us": "125000", "cpu/cpu.cfs_period_us": "100000", "memory/memory.limit_in_bytes": strconv.Itoa(512 << 20)}
	if fs.Version == 2 {
		files = map[string]string{"cpu.max": "125000 100000", "memory.max": strconv.Itoa(512 << 20)}
	}
	for file, want := range files {
		dir, base := filepath.Split(file)
		b, err := os.ReadFile(filepath.Join(cgroup.DefaultRoot, dir, group, base))
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s of %s: %q, %v; want %q", file, group, b, err, want)
		}
	}
	for _, a := range topo.Archs {
		var quotas int64
		for _, s := range a.Services {
			pod := stack.ObjectName(name, a.Name, s.Name)
			pd, err := pods.Inspect(conn, pod, nil)
			if err != nil {
				t.Fatal(err)
			}
			ct, err := containers.Inspect(conn, pod+"-app", nil)
			if err != nil {
				t.Fatal(err)
			}
			hc := ct.HostConfig
			cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", ct.State.Pid))
			if err != nil {
				t.Fatal(err)
			}
			inGroup := strings.Contains(string(cg), ":"+group+"/")
			if a.Name == arch {
				if pd.CgroupParent != group || !strings.HasPrefix(pd.CgroupPath, group+"/") || hc.CpuQuota != 0 || hc.Memory != 0 || !inGroup {
					t.Errorf("%s: cgroup parent %q, path %q, container quota %d memory %d, in the group %v:\n%s",
						pod, pd.CgroupParent, pd.CgroupPath, hc.CpuQuota, hc.Memory, inGroup, cg)
				}
				continue
			}
			if pd.CgroupParent == group || inGroup || hc.CpuQuota != int64(math.Round(s.CPUs*100000)) || hc.Memory != int64(s.MemoryMB)<<20 {
				t.Errorf("%s (%s): cgroup parent %q, quota %d, memory %d; want %g CPUs and %d MiB of its own",
					pod, a.Mode, pd.CgroupParent, hc.CpuQuota, hc.Memory, s.CPUs, s.MemoryMB)
			}
			quotas += hc.CpuQuota
		}
		if a.Name != arch && quotas != 125000 {
			t.Errorf("%s: the containers' quotas add up to %d µs per 100 ms, want the budget's 125000", a.Name, quotas)
		}
	}
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slices.DeleteFunc(sts, func(s stack.Status) bool { return topology.StackArch(s.Arch) }) { // the renewer: in no budget
		b := s.Budget
		want := map[string]topology.Mode{arch: topology.Shared, "monolith-measured": topology.Measured}[s.Arch]
		if want == "" {
			want = topology.PerService
		}
		if (b != nil && b.Calibration != nil) != (want == topology.Measured) {
			t.Errorf("status %s/%s: calibration %+v", s.Arch, s.Service, b.Calibration)
		}
		if b == nil || b.Mode != want || !b.Enforced || b.CPUs != 1.25 || b.MemoryMB != 512 || b.Placement != topology.Monolith {
			t.Errorf("status %s/%s: budget %+v, want %s, enforced", s.Arch, s.Service, b, want)
		}
	}

	removed, err := rt.Down(ctx, stack.DownOptions{Volumes: true})
	if err != nil || removed.Pods != 7 || removed.Cgroups != 1 {
		t.Fatalf("down: %s, %v; want 7 pods (the renewer's too) and 1 cgroup", removed, err)
	}
	left, _ := filepath.Glob(filepath.Join(cgroup.DefaultRoot, "*", cgroup.Top, name))
	if v2, _ := filepath.Glob(filepath.Join(cgroup.DefaultRoot, cgroup.Top, name)); len(v2) > 0 {
		left = append(left, v2...)
	}
	if len(left) > 0 {
		t.Errorf("groups left after down: %v", left)
	}
}

// Where mitosis cannot make the group (here a root that is no cgroup filesystem), a shared
// budget on Podman stops up before it makes anything: its pods would run with no limit.
func TestSharedBudgetPodsRefusedWithoutCgroups(t *testing.T) {
	conn := podmanrttest.Require(t)
	topo, err := topology.Get("monolith@shared", topology.Options{Edges: map[string]string{"monolith-shared": stacktest.AnyPort}, Collector: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	name := stacktest.StackName(t)
	rt, err := podmanrt.Connect(context.Background(), podmanrt.Options{Stack: name, CgroupRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	err = rt.Up(context.Background(), topo, stack.UpOptions{PKI: t.TempDir(), AdminToken: "t", RequestKey: "k"})
	if err == nil || !strings.Contains(err.Error(), "monolith-shared: a shared budget needs a cgroup for its pods: cgroups not available") {
		t.Errorf("up: %v", err)
	}
	assertNothingLeft(t, conn, name)
}
