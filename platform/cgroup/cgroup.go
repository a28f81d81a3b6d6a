// Package cgroup makes the control groups that put a whole architecture under one CPU and
// memory limit (`mitosis up --budget shared`): one group per architecture,
// <root>/mitosis/<stack>/<arch>, limited to the architecture's total, which Podman uses as the
// cgroup parent of the architecture's pods and the process runtime moves its processes into.
// It reads the limits back, tells whether a process is inside, reads the group's CPU and
// memory (the working set; both for any group too: a Podman container's), and
// removes the groups of one stack once they hold no process.
//
// Both cgroup versions: v1 (one hierarchy per controller, /sys/fs/cgroup/{cpu,cpuacct,memory},
// the CFS quota in cpu.cfs_quota_us over cpu.cfs_period_us and the limit in
// memory.limit_in_bytes) and v2 (one unified hierarchy, cpu.max and memory.max, the
// controllers enabled in cgroup.subtree_control down to the group).
//
// It is a few files per version, written by hand: runc's and containers/common's managers
// hard-wire /sys/fs/cgroup and make a group in every controller, where mitosis needs three
// files, a root it is given (tests pass one that cannot hold groups) and to leave everything
// outside mitosis/<stack> alone.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultRoot is where Linux mounts the cgroup filesystem.
const DefaultRoot = "/sys/fs/cgroup"

// Top is the group under the root that holds every group mitosis makes.
const Top = "mitosis"

// Period is the CFS period of every quota mitosis writes, as Podman's (100 ms).
const Period = 100_000 // µs

// Filesystem magic numbers (statfs f_type) and the read-only mount flag (ST_RDONLY).
const (
	cgroup1Magic = 0x27e0eb
	cgroup2Magic = 0x63677270
	stRdonly     = 0x1
)

// ErrNotAvailable wraps every reason the machine does not let mitosis make a group.
var ErrNotAvailable = errors.New("cgroups not available")

// FS is a cgroup filesystem mitosis can make groups in.
type FS struct {
	Root    string
	Version int // 1 or 2
	// dirs are the hierarchies a group is made in and joined: v1, the mount of each of cpu,
	// cpuacct (when mounted apart from cpu: it counts the group's CPU) and memory, keyed by
	// controller; v2, the root alone, keyed "".
	dirs map[string]string
}

// Open finds the cgroup filesystem at root and checks that mitosis may make groups there:
// root is a cgroup v2 mount with the cpu and memory controllers, or holds cgroup v1
// hierarchies of cpu and memory, none mounted read-only, and this process may write to them
// (root, in practice). Anything else is ErrNotAvailable, saying why.
func Open(root string) (*FS, error) {
	notAvailable := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrNotAvailable, fmt.Sprintf(format, args...))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		return nil, notAvailable("%s: %v", root, err)
	}
	f := &FS{Root: root, dirs: map[string]string{}}
	if st.Type == cgroup2Magic {
		b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		if err != nil {
			return nil, notAvailable("%s: %v", root, err)
		}
		ctrls := strings.Fields(string(b))
		for _, c := range []string{"cpu", "memory"} {
			if !slices.Contains(ctrls, c) {
				return nil, notAvailable("%s: cgroup v2 without the %s controller (cgroup.controllers: %s)", root, c, strings.TrimSpace(string(b)))
			}
		}
		f.Version, f.dirs[""] = 2, root
		return f, writable(f, notAvailable)
	}
	if st.Type == cgroup1Magic {
		return nil, notAvailable("%s is one cgroup v1 hierarchy, not the folder of them", root)
	}
	// v1: each controller's hierarchy is a directory of the root (a tmpfs) holding its files;
	// co-mounted controllers (cpu,cpuacct) are one directory under two names.
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, notAvailable("%s: %v", root, err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		real, err := filepath.EvalSymlinks(dir)
		if err != nil || seen[real] {
			continue
		}
		var hst syscall.Statfs_t
		if syscall.Statfs(real, &hst) != nil || hst.Type != cgroup1Magic {
			continue
		}
		seen[real] = true
		for ctrl, file := range map[string]string{"cpu": "cpu.cfs_quota_us", "cpuacct": "cpuacct.usage", "memory": "memory.limit_in_bytes"} {
			if _, err := os.Stat(filepath.Join(real, file)); err == nil {
				f.dirs[ctrl] = real
			}
		}
	}
	for _, c := range []string{"cpu", "memory"} {
		if f.dirs[c] == "" {
			return nil, notAvailable("%s holds no cgroup v1 hierarchy of the %s controller, nor is it a cgroup v2 mount", root, c)
		}
	}
	if f.dirs["cpuacct"] == f.dirs["cpu"] {
		delete(f.dirs, "cpuacct") // co-mounted: joining cpu joins it
	}
	f.Version = 1
	return f, writable(f, notAvailable)
}

// writable checks every hierarchy of f can take a new group.
func writable(f *FS, notAvailable func(string, ...any) error) error {
	for _, dir := range f.hierarchies() {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return notAvailable("%s: %v", dir, err)
		}
		if st.Flags&stRdonly != 0 {
			return notAvailable("%s is mounted read-only", dir)
		}
		if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
			return notAvailable("%s is not writable by this user (uid %d): %v", dir, os.Geteuid(), err)
		}
	}
	return nil
}

// hierarchies are the directories a group lives in, once each, in a stable order.
func (f *FS) hierarchies() []string {
	var out []string
	for _, d := range f.dirs {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// String says which cgroup filesystem this is, for messages.
func (f *FS) String() string { return fmt.Sprintf("cgroup v%d at %s", f.Version, f.Root) }

// Path is the group of one architecture of one stack, as a path inside every hierarchy:
// /mitosis/<stack>/<arch>. It is what Podman takes as a pod's cgroup parent.
func Path(stack, arch string) string { return "/" + path.Join(Top, stack, arch) }

// Limits are a group's CPU quota and memory limit; zero means none.
type Limits struct {
	CPUs     float64 // cores: quota over period
	MemoryMB int
}

func (l Limits) String() string {
	cpu, mem := "no CPU limit", "no memory limit"
	if l.CPUs > 0 {
		cpu = strconv.FormatFloat(l.CPUs, 'g', -1, 64) + " CPUs"
	}
	if l.MemoryMB > 0 {
		mem = strconv.Itoa(l.MemoryMB) + " MiB"
	}
	return cpu + ", " + mem
}

// Group is one architecture's group.
type Group struct {
	fs   *FS
	Path string // Path(stack, arch)
}

// Group returns the group of stack and arch, which may not exist.
func (f *FS) Group(stack, arch string) *Group { return &Group{fs: f, Path: Path(stack, arch)} }

// dir is the group's directory in the hierarchy of ctrl ("" on v2).
func (g *Group) dir(ctrl string) string { return filepath.Join(g.fs.dirs[ctrl], g.Path) }

// Dirs are the group's directories, one per hierarchy it is made in.
func (g *Group) Dirs() []string {
	var out []string
	for _, h := range g.fs.hierarchies() {
		out = append(out, filepath.Join(h, g.Path))
	}
	return out
}

// Make makes the group of stack and arch (or finds it) and sets its limits.
func (f *FS) Make(stack, arch string, l Limits) (*Group, error) {
	if l.CPUs <= 0 || l.MemoryMB <= 0 {
		return nil, fmt.Errorf("cgroup %s: limits %s: both must be positive", Path(stack, arch), l)
	}
	g := f.Group(stack, arch)
	for _, h := range f.hierarchies() {
		// Another stack's Remove may take mitosis/ away between two of MkdirAll's steps
		// (it removes it once empty): try again.
		var err error
		for range 3 {
			if err = os.MkdirAll(filepath.Join(h, g.Path), 0o755); !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", g.Path, err)
		}
	}
	quota := int64(math.Round(l.CPUs * Period))
	mem := int64(l.MemoryMB) << 20
	var writes [][2]string // file, value
	if f.Version == 2 {
		// A controller works in a group only when every ancestor enables it for its children.
		for _, anc := range []string{"/", "/" + Top, path.Dir(g.Path)} {
			writes = append(writes, [2]string{filepath.Join(f.Root, anc, "cgroup.subtree_control"), "+cpu +memory"})
		}
		writes = append(writes,
			[2]string{filepath.Join(g.dir(""), "cpu.max"), fmt.Sprintf("%d %d", quota, Period)},
			[2]string{filepath.Join(g.dir(""), "memory.max"), strconv.FormatInt(mem, 10)})
	} else {
		writes = append(writes,
			[2]string{filepath.Join(g.dir("cpu"), "cpu.cfs_period_us"), strconv.Itoa(Period)},
			[2]string{filepath.Join(g.dir("cpu"), "cpu.cfs_quota_us"), strconv.FormatInt(quota, 10)},
			[2]string{filepath.Join(g.dir("memory"), "memory.limit_in_bytes"), strconv.FormatInt(mem, 10)})
	}
	for _, w := range writes {
		if err := writeFile(w[0], w[1]); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", g.Path, err)
		}
	}
	got, err := g.Limits()
	if err != nil {
		return nil, err
	}
	if got != (Limits{CPUs: float64(quota) / Period, MemoryMB: l.MemoryMB}) {
		return nil, fmt.Errorf("cgroup %s: wrote %s, reads back %s", g.Path, l, got)
	}
	return g, nil
}

// writeFile writes one value to a control file. A control file must exist: creating a plain
// file would pass for success on a folder that is no cgroup.
func writeFile(name, value string) error {
	fh, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = fh.WriteString(value)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, name, err)
	}
	return nil
}

func readInt(name string) (int64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q: %w", name, s, err)
	}
	return v, nil
}

// unlimitedMemory is where v1 reports "no limit": the largest page-aligned int64.
const unlimitedMemory = math.MaxInt64 &^ 4095

// Limits reads the group's quota and memory limit back from its files.
func (g *Group) Limits() (Limits, error) {
	var quota, period, mem int64
	var err error
	if g.fs.Version == 2 {
		b, rerr := os.ReadFile(filepath.Join(g.dir(""), "cpu.max"))
		if rerr != nil {
			return Limits{}, fmt.Errorf("cgroup %s: %w", g.Path, rerr)
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			return Limits{}, fmt.Errorf("cgroup %s: cpu.max %q", g.Path, b)
		}
		quota = -1
		if f[0] != "max" {
			quota, err = strconv.ParseInt(f[0], 10, 64)
		}
		if err == nil {
			period, err = strconv.ParseInt(f[1], 10, 64)
		}
		if err == nil {
			mem, err = readInt(filepath.Join(g.dir(""), "memory.max"))
		}
	} else {
		quota, err = readInt(filepath.Join(g.dir("cpu"), "cpu.cfs_quota_us"))
		if err == nil {
			period, err = readInt(filepath.Join(g.dir("cpu"), "cpu.cfs_period_us"))
		}
		if err == nil {
			mem, err = readInt(filepath.Join(g.dir("memory"), "memory.limit_in_bytes"))
		}
	}
	if err != nil {
		return Limits{}, fmt.Errorf("cgroup %s: %w", g.Path, err)
	}
	var l Limits
	if quota > 0 && period > 0 {
		l.CPUs = float64(quota) / float64(period)
	}
	if mem > 0 && mem < unlimitedMemory {
		l.MemoryMB = int(mem >> 20)
	}
	return l, nil
}

// Add moves a process into the group, in every hierarchy. Threads go with it; children it
// starts later are born inside.
func (g *Group) Add(pid int) error {
	for _, h := range g.fs.hierarchies() {
		if err := writeFile(filepath.Join(h, g.Path, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup %s: add process %d: %w", g.Path, pid, err)
		}
	}
	return nil
}

// Contains tells whether a process is in the group, or in a group below it (a pod's), for
// each controller that limits it: /proc/<pid>/cgroup.
func (g *Group) Contains(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false, err
	}
	in := func(p string) bool { return p == g.Path || strings.HasPrefix(p, g.Path+"/") }
	need := map[string]bool{"cpu": false, "memory": false}
	if g.fs.Version == 2 {
		need = map[string]bool{"": false}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if done, ok := need[c]; ok && !done {
				if !in(f[2]) {
					return false, nil
				}
				need[c] = true
			}
		}
	}
	for _, done := range need {
		if !done {
			return false, nil
		}
	}
	return true, nil
}

// Usage is what a group has used: CPU since it was made, memory now, and how often its quota
// stopped it.
type Usage struct {
	CPUSeconds float64
	MemBytes   uint64 // the working set (see Read)
	Throttled  int64  // CFS periods in which the group ran out of quota
}

// Usage reads the group's counters: v1 cpuacct.usage and cpu.stat's nr_throttled, v2 cpu.stat's
// usage_usec and nr_throttled, and its working set.
func (g *Group) Usage() (Usage, error) {
	acct := "cpuacct"
	if g.fs.dirs[acct] == "" {
		acct = "cpu" // co-mounted
	}
	u, err := usage(g.fs.Version, g.dir(map[int]string{1: "cpu", 2: ""}[g.fs.Version]), g.dir(acct), g.dir(map[int]string{1: "memory", 2: ""}[g.fs.Version]))
	if err != nil {
		return u, fmt.Errorf("cgroup %s: %w", g.Path, err)
	}
	return u, nil
}

// Read reads the counters of any group at path (as /proc/<pid>/cgroup or Podman's inspect
// name it) in the cgroup filesystem at root, as Group.Usage does for a group of mitosis: a
// few files the kernel keeps, where asking Podman's stats API for a container's costs its
// service tens of milliseconds of CPU (what the load test measures with should not take the
// CPU of what it measures). v1 reads the conventional mounts, root/cpu, root/cpuacct and
// root/memory (separate or co-mounted under those names, as systemd links them).
//
// Memory is the working set: the group's usage less the page cache on the kernel's inactive
// list, which it reclaims first when the group nears its limit. That is the working set as
// the kubelet (container_memory_working_set_bytes), cAdvisor and `docker stats` count it, and
// close to what the process runtime reports (the resident set). The usage alone (`podman
// stats`) also counts every page of every file the group has read or written: a store's
// files fill it up to the limit without the store needing them.
func Read(root, path string) (Usage, error) {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		dir := filepath.Join(root, path)
		return usage(2, dir, dir, dir)
	}
	return usage(1, filepath.Join(root, "cpu", path), filepath.Join(root, "cpuacct", path), filepath.Join(root, "memory", path))
}

// usage reads a group's counters from its directories: cpu (cpu.stat), acct (v1's
// cpuacct.usage) and memory; on v2 they are one.
func usage(version int, cpu, acct, memory string) (Usage, error) {
	var u Usage
	stat, err := readStat(filepath.Join(cpu, "cpu.stat"))
	if err != nil {
		return u, err
	}
	u.Throttled = stat["nr_throttled"]
	if version == 2 {
		u.CPUSeconds = float64(stat["usage_usec"]) / 1e6
	} else {
		ns, err := readInt(filepath.Join(acct, "cpuacct.usage"))
		if err != nil {
			return u, err
		}
		u.CPUSeconds = float64(ns) / 1e9
	}
	u.MemBytes, err = workingSet(memory, version)
	return u, err
}

// workingSet reads the working set of the memory group in dir: v1 memory.usage_in_bytes less
// memory.stat's total_inactive_file (both count the groups below), v2 memory.current less
// inactive_file.
func workingSet(dir string, version int) (uint64, error) {
	usage, inactive := "memory.usage_in_bytes", "total_inactive_file"
	if version == 2 {
		usage, inactive = "memory.current", "inactive_file"
	}
	mem, err := readInt(filepath.Join(dir, usage))
	if err != nil {
		return 0, err
	}
	stat, err := readStat(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return 0, err
	}
	return uint64(max(mem-stat[inactive], 0)), nil
}

func readStat(name string) (map[string]int64, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				out[k] = n
			}
		}
	}
	return out, nil
}

// Archs lists the architectures of stack that have a group, in any hierarchy.
func (f *FS) Archs(stack string) ([]string, error) {
	var out []string
	for _, h := range f.allHierarchies() {
		entries, err := os.ReadDir(filepath.Join(h, Top, stack))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(out, e.Name()) {
				out = append(out, e.Name())
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// allHierarchies are every cgroup mount of the root, not only those a group is made in:
// Podman makes a pod's group in every controller's, under the parent it is given, and on v1
// leaves the empty ones of the controllers it does not manage (name=systemd, the unified
// mount of a hybrid) behind when it removes the pod.
func (f *FS) allHierarchies() []string {
	if f.Version == 2 {
		return []string{f.Root}
	}
	out := f.hierarchies()
	entries, _ := os.ReadDir(f.Root)
	for _, e := range entries {
		real, err := filepath.EvalSymlinks(filepath.Join(f.Root, e.Name()))
		var st syscall.Statfs_t
		if err != nil || slices.Contains(out, real) || syscall.Statfs(real, &st) != nil ||
			(st.Type != cgroup1Magic && st.Type != cgroup2Magic) {
			continue
		}
		out = append(out, real)
	}
	slices.Sort(out)
	return out
}

// ErrBusy is returned by Remove for a group that still holds a process.
var ErrBusy = errors.New("still holds processes")

// Remove removes the group of stack and arch, and the groups below it, in every hierarchy,
// deepest first, each only once it holds no process (the kernel refuses otherwise); then
// mitosis/<stack> and mitosis when nothing is left in them. It waits up to wait for processes
// that are exiting (a pod's conmon). It reports whether there was anything to remove.
func (f *FS) Remove(stack, arch string, wait time.Duration) (bool, error) {
	g := f.Group(stack, arch)
	deadline := time.Now().Add(wait)
	found := false
	for {
		var busy []string
		for _, h := range f.allHierarchies() {
			top := filepath.Join(h, g.Path)
			var dirs []string
			_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			found = found || len(dirs) > 0
			slices.Reverse(dirs) // deepest first
			for _, d := range dirs {
				if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
					busy = append(busy, d)
				}
			}
		}
		if len(busy) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return found, fmt.Errorf("cgroup %s: %w: %s", g.Path, ErrBusy, strings.Join(busy, ", "))
		}
		time.Sleep(50 * time.Millisecond) // the kernel tells no one when a group empties
	}
	for _, h := range f.allHierarchies() {
		// Another stack's (or architecture's) groups keep these: rmdir refuses, and that is fine.
		_ = syscall.Rmdir(filepath.Join(h, Top, stack))
		_ = syscall.Rmdir(filepath.Join(h, Top))
	}
	return found, nil
}
