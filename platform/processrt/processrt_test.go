package processrt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// newRuntime returns a process runtime of the repository with opts, State a folder of t's
// and Stack t's own name unless opts says, whose stack goes down, data and all, when t ends.
func newRuntime(t *testing.T, opts processrt.Options) *processrt.Runtime {
	t.Helper()
	opts.Root = repoRoot(t)
	if opts.State == "" {
		opts.State = t.TempDir()
	}
	if opts.Stack == "" {
		opts.Stack = stacktest.StackName(t)
	}
	rt := processrt.New(opts)
	t.Cleanup(func() {
		if _, err := rt.Down(context.Background(), stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("cleanup down: %v", err)
		}
	})
	return rt
}

// TestMonolithAsProcesses: up, a checkout traced into the collector, up again (nothing
// restarts), a killed process shows in status and up restarts it, down leaves no process.
func TestMonolithAsProcesses(t *testing.T) {
	topo, err := topology.Get(topology.Monolith, topology.Options{MonolithEdge: stacktest.AnyPort, Collector: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	rt := newRuntime(t, processrt.Options{State: state})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: &progress}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	base := "http://" + stacktest.EdgeAddr(t, rt, topo, topology.Monolith)
	if code := stacktest.Get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz: %d", code)
	}
	_, traceID := stacktest.CheckoutTraced(t, base, "test-token", "ada")
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var collector string
	for _, s := range sts {
		if s.Arch == topology.Telemetry {
			collector = "http://" + s.Addr
		}
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		return stacktest.CheckoutTrace(ctx, collector, traceID, topology.Monolith, []string{"monolith"})
	})

	pids := func() map[string]int {
		sts, err := rt.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, s := range sts {
			out[s.Service] = s.PID
			if s.State == "running" && (s.Health != stack.Ready || s.MemBytes == 0) {
				t.Errorf("status: %+v", s)
			}
		}
		return out
	}
	before := pids()
	progress.Reset()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("second up: %v\n%s", err, progress.String())
	}
	if after := pids(); fmt.Sprint(after) != fmt.Sprint(before) {
		var logs bytes.Buffer
		_ = rt.Logs(ctx, stack.LogsOptions{Tail: 40}, &logs)
		t.Fatalf("second up restarted processes: %v -> %v\n%s\nlogs:\n%s", before, after, progress.String(), logs.String())
	}

	if err := syscall.Kill(before["monolith"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 10*time.Second, func() (bool, string) {
		sts, err := rt.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range sts {
			if s.Service == "monolith" {
				return s.State != "running", fmt.Sprintf("%+v", s)
			}
		}
		return false, "no monolith"
	})
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("healing up: %v", err)
	}
	if !strings.Contains(stacktest.Orders(t, base, "ada"), `"id"`) {
		t.Error("the order did not survive the monolith's restart")
	}

	var logs bytes.Buffer
	if err := rt.Logs(ctx, stack.LogsOptions{Services: []string{"monolith/monolith"}, Tail: 5}, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(logs.String(), "monolith/monolith | ") {
		t.Errorf("logs:\n%s", logs.String())
	}

	// Down keeps the data, as compose keeps volumes: the next up finds the order. Down with
	// volumes removes it: the next up starts empty.
	for _, volumes := range []bool{false, true} {
		final := pids()
		removed, err := rt.Down(ctx, stack.DownOptions{Volumes: volumes})
		if err != nil || removed.Processes != 4 { // the monolith, NATS, the collector, the renewer
			t.Fatalf("down (volumes %v): %s, %v", volumes, removed, err)
		}
		for svc, pid := range final {
			if runs(pid) {
				t.Errorf("%s (pid %d) still runs after down", svc, pid)
			}
		}
		if sts, _ := rt.Status(ctx); len(sts) != 0 {
			t.Errorf("status after down: %+v", sts)
		}
		if err := rt.Up(ctx, topo, opts); err != nil {
			t.Fatalf("up after down (volumes %v): %v", volumes, err)
		}
		base = "http://" + stacktest.EdgeAddr(t, rt, topo, topology.Monolith) // down forgot the port up picked
		if kept := strings.Contains(stacktest.Orders(t, base, "ada"), `"id"`); kept == volumes {
			t.Errorf("after down (volumes %v) and up, the order is kept: %v", volumes, kept)
		}
	}
}

// TestSharedBudgetAsProcesses: the monolith placement twice, per service and under a shared
// budget. The shared one's processes run in one cgroup whose files hold the architecture's
// total, status says it is enforced, and down removes the group; the per-service one's are
// in no group of mitosis', and status says its limits are not enforced.
func TestSharedBudgetAsProcesses(t *testing.T) {
	fs, err := cgroup.Open(cgroup.DefaultRoot)
	if err != nil {
		if os.Getenv("REQUIRE_CGROUPS") == "1" {
			t.Fatalf("%v (REQUIRE_CGROUPS=1)", err)
		}
		t.Skipf("no cgroups to make here: %v (TestSharedBudgetNotEnforcedWarns covers that)", err)
	}
	const arch = "monolith-shared"
	topo, err := topology.Get("monolith,monolith@shared", topology.Options{MonolithEdge: stacktest.AnyPort,
		Edges: map[string]string{arch: stacktest.AnyPort}, Collector: topology.NoCollector, Budget: topology.Budget{CPUs: 1.25, MemoryMB: 512}})
	if err != nil {
		t.Fatal(err)
	}
	name := stacktest.StackName(t)
	rt := newRuntime(t, processrt.Options{Stack: name, AnyPorts: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: &progress}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	if strings.Contains(progress.String(), "NOT ENFORCED") {
		t.Errorf("up warned:\n%s", progress.String())
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
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sts = slices.DeleteFunc(sts, func(s stack.Status) bool { return topology.StackArch(s.Arch) }) // the renewer: in no budget
	if len(sts) != 4 {
		t.Fatalf("status: %d services, want 4", len(sts))
	}
	for _, s := range sts {
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", s.PID))
		if err != nil {
			t.Fatal(err)
		}
		in := 0
		for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
			f := strings.SplitN(line, ":", 3)
			ctrls := strings.Split(f[1], ",")
			limiting := slices.Contains(ctrls, "cpu") || slices.Contains(ctrls, "memory") || (fs.Version == 2 && f[1] == "")
			if limiting && f[2] == group {
				in++
			}
			if strings.HasPrefix(f[2], "/"+cgroup.Top+"/") && s.Arch != arch {
				t.Errorf("%s/%s (per service) runs in %s", s.Arch, s.Service, line)
			}
		}
		b := s.Budget
		switch s.Arch {
		case arch:
			if want := map[int]int{1: 2, 2: 1}[fs.Version]; in != want {
				t.Errorf("%s/%s (pid %d): /proc/%d/cgroup does not point at %s for cpu and memory:\n%s", s.Arch, s.Service, s.PID, s.PID, group, cg)
			}
			// No quota of its own to fit GOMAXPROCS to: that of its per-service share.
			if svc, ok := topo.Archs[1].Service(s.Service); !ok || svc.Env["GOMAXPROCS"] != "1" || !hasEnv(t, s.PID, "GOMAXPROCS=1") {
				t.Errorf("%s/%s (pid %d): want GOMAXPROCS=1 in its environment (the topology's: %q)", s.Arch, s.Service, s.PID, svc.Env["GOMAXPROCS"])
			}
			if b == nil || b.Mode != topology.Shared || !b.Enforced || b.CPUs != 1.25 || b.MemoryMB != 512 || b.Placement != topology.Monolith || len(b.PerService) != 0 {
				t.Errorf("%s/%s: budget %+v, want shared, enforced, 1.25 CPUs and 512 MiB", s.Arch, s.Service, b)
			}
		default:
			if b == nil || b.Mode != topology.PerService || b.Enforced || !strings.Contains(b.Detail, "no limits per process") || len(b.PerService) != 2 {
				t.Errorf("%s/%s: budget %+v, want per-service, not enforced", s.Arch, s.Service, b)
			}
		}
	}

	removed, err := rt.Down(ctx, stack.DownOptions{Volumes: true})
	if err != nil || removed.Processes != 5 || removed.Cgroups != 1 {
		t.Fatalf("down: %s, %v; want 5 processes (the renewer's too) and 1 cgroup", removed, err)
	}
	for dir := range files {
		d := filepath.Join(cgroup.DefaultRoot, filepath.Dir(dir), group)
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left after down: %v", d, err)
		}
	}
}

// TestSharedBudgetNotEnforcedWarns: where no cgroup can be made (here a root that is no
// cgroup filesystem, though laid out like one), up runs the processes, warns that the shared
// budget is not enforced and why, and status says so.
func TestSharedBudgetNotEnforcedWarns(t *testing.T) {
	fake := t.TempDir()
	for _, d := range []string{"cpu", "memory"} {
		if err := os.Mkdir(filepath.Join(fake, d), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := topology.Get("monolith@shared", topology.Options{Edges: map[string]string{"monolith-shared": stacktest.AnyPort}, Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, processrt.Options{AnyPorts: true, CgroupRoot: fake})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	if err := rt.Up(ctx, topo, stack.UpOptions{AdminToken: "t", RequestKey: "k", ReadyTimeout: time.Minute, Progress: &progress}); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	want := "warning: monolith-shared: its shared budget (1.5 CPUs, 640 MiB) is NOT ENFORCED: no cgroup could be made: cgroups not available: " + fake + " holds no cgroup v1 hierarchy"
	if !strings.Contains(progress.String(), want) {
		t.Errorf("up said:\n%s\nwant a line with %q", progress.String(), want)
	}
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slices.DeleteFunc(sts, func(s stack.Status) bool { return topology.StackArch(s.Arch) }) {
		if s.State != "running" || s.Budget == nil || s.Budget.Mode != topology.Shared || s.Budget.Enforced ||
			!strings.Contains(s.Budget.Detail, "cgroups not available") || !strings.Contains(s.Budget.String(), "NOT ENFORCED") {
			t.Errorf("status %s: %+v, budget %+v", s.Service, s, s.Budget)
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", s.PID))
		if strings.Contains(string(cg), "/"+cgroup.Top+"/") {
			t.Errorf("%s runs in a group of mitosis':\n%s", s.Service, cg)
		}
	}
}

// runs tells whether process pid runs. A process that exited and waits to be reaped (a
// zombie) does not: the runtime started it from this test binary, whose goroutine reaps it
// a moment after down saw it exit, and the kernel still answers signal 0 for it until then.
func runs(pid int) bool {
	return syscall.Kill(pid, 0) == nil && !processrt.IsZombie(pid)
}

// TestUpRefusesAnEdgeAnotherProgramHolds: an edge address another program listens on fails
// up before anything starts, with an error naming the address and its service; once the
// address is free, up brings the stack up there, and up again finds the edge held by its own
// process and restarts nothing.
func TestUpRefusesAnEdgeAnotherProgramHolds(t *testing.T) {
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	edge := other.Addr().String()
	topo, err := topology.Get(topology.Monolith, topology.Options{MonolithEdge: edge, Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, processrt.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: &progress}

	err = rt.Up(ctx, topo, opts)
	var taken *stack.AddrTakenError
	if !errors.As(err, &taken) || taken.Addr != edge || taken.Arch != topology.Monolith || taken.Service != "monolith" ||
		!errors.Is(err, stack.ErrPortInUse) {
		t.Fatalf("up with the edge %s taken: %v, want an AddrTakenError naming monolith/monolith and the address", edge, err)
	}
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.State == "running" {
			t.Errorf("after the refused up %s/%s runs (pid %d): nothing should have started", s.Arch, s.Service, s.PID)
		}
	}

	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	pid := func() int {
		t.Helper()
		sts, err := rt.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sts {
			if s.Service == "monolith" && s.State == "running" {
				return s.PID
			}
		}
		t.Fatalf("no monolith runs: %+v", sts)
		return 0
	}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up with the edge free: %v\n%s", err, progress.String())
	}
	if code := stacktest.Get(t, "http://"+edge+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz on %s: %d", edge, code)
	}
	before := pid()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up again, the edge held by the stack's own monolith: %v", err)
	}
	if after := pid(); after != before {
		t.Errorf("up again restarted the monolith (pid %d -> %d)", before, after)
	}
}
