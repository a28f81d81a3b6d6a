package cgroup_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/proctest"
)

// The test binary runs as a helper process when asked: blocked on a pipe, or spinning.
func TestMain(m *testing.M) {
	switch os.Getenv("CGROUP_TEST_HELPER") {
	case "wait":
		_, _ = os.Stdin.Read(make([]byte, 1))
		os.Exit(0)
	case "spin":
		for {
		}
	}
	if args, ok := strings.CutPrefix(os.Getenv("CGROUP_TEST_HELPER"), "write "); ok {
		stack, dir, _ := strings.Cut(args, " ")
		os.Exit(writeHelper(stack, dir))
	}
	os.Exit(m.Run())
}

// writeHelper joins the group of stack's "arch" (its memory counts there from then on),
// touches 16 MiB of its own memory and writes 32 MiB to a file in dir, reading none of it
// back, then says so and holds both until the test ends (proctest).
func writeHelper(stack, dir string) int {
	fs, err := cgroup.Open(cgroup.DefaultRoot)
	if err == nil {
		err = fs.Group(stack, "arch").Add(os.Getpid())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	held := make([]byte, 16<<20)
	for i := range held {
		held[i] = byte(i)
	}
	f, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	chunk := make([]byte, 1<<20) // written 32 times: the file's pages, not the process's, grow
	for range 32 {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if err = errors.Join(err, f.Close()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	proctest.Serve("ready")
	runtime.KeepAlive(held)
	return 0
}

// helper starts the test binary as a helper process ("wait" or "spin"); the test kills it at
// the end.
func helper(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CGROUP_TEST_HELPER="+mode, "GOMAXPROCS=1")
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// realFS is the machine's cgroup filesystem, or a skip saying why mitosis cannot make groups
// in it here (not root, a read-only mount), unless REQUIRE_CGROUPS=1.
func realFS(t *testing.T) *cgroup.FS {
	t.Helper()
	fs, err := cgroup.Open(cgroup.DefaultRoot)
	if err != nil {
		if os.Getenv("REQUIRE_CGROUPS") == "1" {
			t.Fatalf("%v (REQUIRE_CGROUPS=1)", err)
		}
		t.Skipf("no cgroups to make here: %v", err)
	}
	return fs
}

// A folder is not a cgroup filesystem, however it is laid out: Open says so rather than
// let a runtime write limits nothing enforces.
func TestOpenRefusesWhatIsNoCgroupFilesystem(t *testing.T) {
	fake := t.TempDir()
	for file, value := range map[string]string{"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000", "memory/memory.limit_in_bytes": "9223372036854771712"} {
		p := filepath.Join(fake, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o555); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(value), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	// One v1 hierarchy is not the folder of them (on a v2 machine there is no such folder).
	oneHierarchy := "no such file or directory"
	if _, err := os.Stat(filepath.Join(cgroup.DefaultRoot, "cpu", "cpu.cfs_quota_us")); err == nil {
		oneHierarchy = "is one cgroup v1 hierarchy, not the folder of them"
	}
	for root, want := range map[string]string{
		fake:                                     "holds no cgroup v1 hierarchy of the cpu controller, nor is it a cgroup v2 mount",
		filepath.Join(fake, "nonexistent"):       "no such file or directory",
		filepath.Join(cgroup.DefaultRoot, "cpu"): oneHierarchy,
	} {
		_, err := cgroup.Open(root)
		if !errors.Is(err, cgroup.ErrNotAvailable) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): %v, want ErrNotAvailable saying %q", root, err, want)
		}
	}
	// A hybrid machine (this one) mounts a cgroup v2 hierarchy beside the v1 ones, with no
	// controller in it: a group there would limit nothing.
	unified := filepath.Join(cgroup.DefaultRoot, "unified")
	if b, err := os.ReadFile(filepath.Join(unified, "cgroup.controllers")); err == nil && strings.TrimSpace(string(b)) == "" {
		if _, err := cgroup.Open(unified); !errors.Is(err, cgroup.ErrNotAvailable) || !strings.Contains(err.Error(), "cgroup v2 without the cpu controller") {
			t.Errorf("Open(%s), a v2 mount without controllers: %v", unified, err)
		}
	}
}

// A group made on this machine holds the limits asked for in its files, takes a process in
// every hierarchy that limits it, and goes only once empty, with its stack's folder.
func TestMakeAddRemove(t *testing.T) {
	fs := realFS(t)
	stackName := stacktest.StackName(t)
	t.Cleanup(func() { _, _ = fs.Remove(stackName, "arch", 5*time.Second) })
	g, err := fs.Make(stackName, "arch", cgroup.Limits{CPUs: 1.5, MemoryMB: 640})
	if err != nil {
		t.Fatal(err)
	}
	if g.Path != "/mitosis/"+stackName+"/arch" {
		t.Errorf("path %s", g.Path)
	}
	// The kernel's own files say 150 ms every 100 ms and 640 MiB.
	files := map[string]string{"cpu.cfs_quota_us": "150000", "cpu.cfs_period_us": "100000", "memory.limit_in_bytes": strconv.Itoa(640 << 20)}
	if fs.Version == 2 {
		files = map[string]string{"cpu.max": "150000 100000", "memory.max": strconv.Itoa(640 << 20)}
	}
	for file, want := range files {
		found := false
		for _, d := range g.Dirs() {
			if b, err := os.ReadFile(filepath.Join(d, file)); err == nil {
				found = true
				if strings.TrimSpace(string(b)) != want {
					t.Errorf("%s/%s = %q, want %q", d, file, strings.TrimSpace(string(b)), want)
				}
			}
		}
		if !found {
			t.Errorf("no %s in %v", file, g.Dirs())
		}
	}
	if l, err := g.Limits(); err != nil || l != (cgroup.Limits{CPUs: 1.5, MemoryMB: 640}) {
		t.Errorf("limits read back: %+v, %v", l, err)
	}

	p := helper(t, "wait")
	if in, err := g.Contains(p.Process.Pid); err != nil || in {
		t.Fatalf("a new process is in the group already: %v, %v", in, err)
	}
	if err := g.Add(p.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if in, err := g.Contains(p.Process.Pid); err != nil || !in {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Process.Pid))
		t.Fatalf("after Add, not in the group (%v):\n%s", err, b)
	}
	// (v1 leaves the memory a process had with its old group: only what it takes from now on
	// counts here.)
	if u, err := g.Usage(); err != nil || u.CPUSeconds < 0 {
		t.Errorf("usage %+v, %v", u, err)
	}
	if archs, err := fs.Archs(stackName); err != nil || strings.Join(archs, ",") != "arch" {
		t.Errorf("archs of the stack: %v, %v", archs, err)
	}

	// Busy: it stays, and says what holds it.
	if _, err := fs.Remove(stackName, "arch", 0); !errors.Is(err, cgroup.ErrBusy) {
		t.Errorf("remove with a process inside: %v, want ErrBusy", err)
	}
	if l, err := g.Limits(); err != nil || l.CPUs != 1.5 {
		t.Errorf("the busy group after Remove: %+v, %v", l, err)
	}
	_ = p.Process.Kill()
	_ = p.Wait()
	found, err := fs.Remove(stackName, "arch", 5*time.Second)
	if err != nil || !found {
		t.Fatalf("remove: %v, %v", found, err)
	}
	for _, d := range g.Dirs() {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", d, err)
		}
		if _, err := os.Stat(filepath.Dir(d)); !os.IsNotExist(err) {
			t.Errorf("the stack's folder %s left: %v", filepath.Dir(d), err)
		}
	}
	if found, err := fs.Remove(stackName, "arch", 0); found || err != nil {
		t.Errorf("removing twice: %v, %v", found, err)
	}
}

// A group's memory is its working set: what its processes hold, not the page cache of the
// files they wrote, which the kernel drops first (a store's files would otherwise fill a
// group's figure up to its limit). A process in a new group holds 16 MiB and writes 32 MiB to
// a file on disk without reading it back: the kernel counts both in the group's usage, and
// Usage and Read count the 16 MiB only.
func TestMemoryIsTheWorkingSet(t *testing.T) {
	fs := realFS(t)
	stackName := stacktest.StackName(t)
	t.Cleanup(func() { _, _ = fs.Remove(stackName, "arch", 5*time.Second) })
	g, err := fs.Make(stackName, "arch", cgroup.Limits{CPUs: 1, MemoryMB: 512})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == 0x01021994 { // tmpfs: its pages are shared memory, which no kernel drops
		if dir, err = os.MkdirTemp(".", "pagecache-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	if line := proctest.Start(t, "CGROUP_TEST_HELPER=write "+stackName+" "+dir); line != "ready" {
		t.Fatalf("helper said %q", line)
	}

	// What the kernel charges the group: its usage, page cache included.
	var usage int64 = -1
	for _, d := range g.Dirs() {
		for _, f := range []string{"memory.usage_in_bytes", "memory.current"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				if usage, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if usage < 48<<20 {
		t.Fatalf("the group's usage is %d bytes after its process held 16 MiB and wrote 32 MiB: the kernel charged it less than both", usage)
	}
	u, err := g.Usage()
	if err != nil {
		t.Fatal(err)
	}
	r, err := cgroup.Read(cgroup.DefaultRoot, g.Path)
	if err != nil {
		t.Fatal(err)
	}
	// Read finds the group's CPU counter by its path as Group.Usage does through the
	// hierarchies it found: the helper's CPU, read after Usage's.
	if r.CPUSeconds <= 0 || r.CPUSeconds < u.CPUSeconds {
		t.Errorf("Read: %v CPU seconds, Usage before it %v: want the same growing counter", r.CPUSeconds, u.CPUSeconds)
	}
	ws := r.MemBytes
	const mib = 1 << 20
	for name, v := range map[string]uint64{"Usage": u.MemBytes, "Read": ws} {
		if v < 16*mib || v > uint64(usage)-24*mib {
			t.Errorf("%s: %.1f MiB of the group's %.1f MiB usage, want the 16 MiB its process holds and not most of the 32 MiB file it wrote", name, float64(v)/mib, float64(usage)/mib)
		}
	}
	t.Logf("usage %.1f MiB, working set %.1f MiB (Usage), %.1f MiB (Read)", float64(usage)/mib, float64(u.MemBytes)/mib, float64(ws)/mib)
}

// What a shared budget buys: a process under the architecture's one limit may use more CPU
// than its per-service share would let it. Two busy processes side by side, one in a group
// limited to payments' per-service share of the services' budget, one in a group limited to
// the whole budget. The capped one never gets more than its quota allows (the kernel's CFS
// bandwidth control, checked at every sample) and is throttled; the other passes twice that
// allowance. Only a machine that gives a busy process less than twice payments' share for
// the whole minute would fail it.
func TestSharedBudgetLetsOneProcessUseMoreThanItsShare(t *testing.T) {
	fs := realFS(t)
	topo, err := topology.Get(topology.Services, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	payments, _ := topo.Archs[0].Service("payments")
	share, total := payments.CPUs, topo.Archs[0].Budget.CPUs
	stackName := stacktest.StackName(t)
	t.Cleanup(func() {
		for _, a := range []string{"per-service", "shared"} {
			if _, err := fs.Remove(stackName, a, 5*time.Second); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	capped, err := fs.Make(stackName, "per-service", cgroup.Limits{CPUs: share, MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	shared, err := fs.Make(stackName, "shared", cgroup.Limits{CPUs: total, MemoryMB: 640})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a, b := helper(t, "spin"), helper(t, "spin")
	if err := capped.Add(a.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := shared.Add(b.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// The groups count from the moves on; slack covers the CFS period in progress.
	const slack = 0.05
	deadline := time.Now().Add(time.Minute)
	var cu, su cgroup.Usage
	for {
		if cu, err = capped.Usage(); err != nil {
			t.Fatal(err)
		}
		if su, err = shared.Usage(); err != nil {
			t.Fatal(err)
		}
		allowance := share*time.Since(start).Seconds() + slack
		if cu.CPUSeconds > allowance {
			t.Fatalf("the capped process used %.3f s of CPU in %s, over its quota's %.3f s", cu.CPUSeconds, time.Since(start), allowance)
		}
		if su.CPUSeconds > 2*allowance && su.CPUSeconds > 0.5 && cu.Throttled > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: shared %.3f s of CPU, capped %.3f s (throttled %d periods); the shared one never passed twice the %.3f-core share",
				time.Since(start), su.CPUSeconds, cu.CPUSeconds, cu.Throttled, share)
		}
		time.Sleep(100 * time.Millisecond) // CPU accrues; nothing announces it
	}
	el := time.Since(start).Seconds()
	t.Logf("in %.1f s: under payments' per-service share (%.3f CPUs) %.3f s of CPU (%.3f cores, throttled in %d periods); under the architecture's %.2f CPUs %.3f s (%.3f cores)",
		el, share, cu.CPUSeconds, cu.CPUSeconds/el, cu.Throttled, total, su.CPUSeconds, su.CPUSeconds/el)
}
