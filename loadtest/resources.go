package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Usage is one process's or pod's resources at a moment: CPU seconds used since it started
// (user + system, a counter) and the memory it holds now.
type Usage struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	MemBytes   uint64  `json:"mem_bytes"`
}

// ResourceSampler reads the resources of every process or pod of one architecture, keyed
// by a name stable across samples (the service's). A step takes one sample before and one
// after (CPU is their difference) and more in between (peak memory is their maximum).
type ResourceSampler interface {
	Sample(ctx context.Context) (map[string]Usage, error)
	// Describe says where the figures come from, for the report ("process runtime, /proc").
	Describe() string
}

// Proc is one local process to measure.
type Proc struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
}

// ProcSampler measures local processes through /proc: CPU from utime+stime of
// /proc/<pid>/stat, memory as the resident set (VmRSS). A process that has gone is left out
// of a sample, so a step that loses one shows it as missing, not as zero.
type ProcSampler struct {
	Procs  []Proc
	Source string // for Describe
}

// Describe implements ResourceSampler.
func (p *ProcSampler) Describe() string { return p.Source }

// Sample implements ResourceSampler.
func (p *ProcSampler) Sample(context.Context) (map[string]Usage, error) {
	out := make(map[string]Usage, len(p.Procs))
	for _, pr := range p.Procs {
		u, err := procUsage(pr.PID)
		if err != nil {
			continue
		}
		out[pr.Name] = u
	}
	if len(out) == 0 && len(p.Procs) > 0 {
		return nil, fmt.Errorf("none of the %d processes is alive", len(p.Procs))
	}
	return out, nil
}

// clockTicks is USER_HZ: 100 on every Linux architecture Go supports.
const clockTicks = 100

func procUsage(pid int) (Usage, error) {
	cpu, err := procCPU(pid)
	if err != nil {
		return Usage{}, err
	}
	mem, err := procRSS(pid)
	if err != nil {
		return Usage{}, err
	}
	return Usage{CPUSeconds: cpu, MemBytes: mem}, nil
}

// procCPU reads utime+stime of a process, in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: fields count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ")": state(3) ppid(4) ... utime(14) stime(15), so indexes 11 and 12 here.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(ut+st) / clockTicks, nil
}

func procPPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return strconv.Atoi(f[1])
}

// procRSS reads VmRSS of a process, in bytes.
func procRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status VmRSS: %w", pid, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS (a kernel thread or a zombie)", pid)
}

// SelfCPU is this process's CPU seconds: the load generator's own.
func SelfCPU() float64 {
	cpu, _ := procCPU(os.Getpid()) // /proc/self always exists on Linux; 0 elsewhere
	return cpu
}

// MachineCPU reads /proc/stat: busy and total CPU seconds of the whole machine, counters.
func MachineCPU() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	var sum, idle float64
	for i, s := range f[1:] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i == 8 || i == 9 { // guest time is already counted in user
			continue
		}
		sum += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return (sum - idle) / clockTicks, sum / clockTicks, nil
}

// processRecord is what platform/processrt writes for each process it runs, in
// <state>/run/<stack>/<arch>/<service>.json; only the fields read here.
type processRecord struct {
	Arch    string `json:"arch"`
	Service string `json:"service"`
	PID     int    `json:"pid"`
}

// ProcsFromProcessRuntime finds the live processes of one architecture that `mitosis up
// --runtime process` started, from the process runtime's records under runDir
// (<state>/run). It returns none when there are no such records.
func ProcsFromProcessRuntime(runDir, stack, arch string) ([]Proc, error) {
	paths, err := filepath.Glob(filepath.Join(runDir, stack, arch, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var rec processRecord
		if json.Unmarshal(b, &rec) != nil || rec.PID <= 0 || rec.Arch != arch {
			continue
		}
		if syscall.Kill(rec.PID, 0) != nil {
			continue // a record of a process that is gone
		}
		out = append(out, Proc{Name: rec.Service, PID: rec.PID})
	}
	slices.SortFunc(out, func(a, b Proc) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ErrContainerPort: the port is one a container runtime publishes. The process that holds it
// forwards to a container and is none of the container's processes, which would read as
// requests served for nothing.
var ErrContainerPort = errors.New("a container's published port, whose processes are the container's, not its holder's: measure them with -resources podman")

// containerPortHolders are the programs that hold a port Podman publishes: conmon (rootful),
// rootlessport, pasta or slirp4netns (rootless); and Docker's docker-proxy.
var containerPortHolders = []string{"conmon", "rootlessport", "rootlessport-child", "pasta", "pasta.avx2", "slirp4netns", "docker-proxy"}

// ProcsByListener finds the processes behind a loopback address: the process listening on
// it, then up its parents while they run a binary from the same folder (a launcher starting
// binaries it sits beside), then every descendant of that top process. So `make run` finds
// the monolith alone (with the NATS it embeds), as does a host started by hand. It is the
// last resort: what mitosis' runtimes started (`make up`, `make run-services`, whose
// processes are not the edge's children) is found from their records or labels, per
// architecture. A port a container runtime publishes is an error (ErrContainerPort).
func ProcsByListener(addr string) ([]Proc, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portStr, err)
	}
	inodes, err := listenInodes(port)
	if err != nil {
		return nil, err
	}
	if len(inodes) == 0 {
		return nil, fmt.Errorf("nothing listens on port %d", port)
	}
	pid, err := pidOfSocket(inodes)
	if err != nil {
		return nil, err
	}
	if name := procName(pid); slices.Contains(containerPortHolders, name) {
		return nil, fmt.Errorf("port %d is held by %s (pid %d): %w", port, name, pid, ErrContainerPort)
	}
	top := pid
	dir := filepath.Dir(exe(pid))
	for {
		pp, err := procPPID(top)
		if err != nil || pp <= 1 || dir == "." || filepath.Dir(exe(pp)) != dir {
			break
		}
		top = pp
	}
	children := childrenMap()
	var out []Proc
	var walk func(int)
	walk = func(p int) {
		out = append(out, Proc{Name: procName(p), PID: p})
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(top)
	// Two processes of one binary get distinct names.
	seen := map[string]int{}
	for i := range out {
		seen[out[i].Name]++
		if n := seen[out[i].Name]; n > 1 {
			out[i].Name += "#" + strconv.Itoa(n)
		}
	}
	return out, nil
}

func exe(pid int) string {
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(p, " (deleted)")
}

func procName(pid int) string {
	if e := exe(pid); e != "" {
		return filepath.Base(e)
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// listenInodes returns the socket inodes listening on port (TCP, IPv4 and IPv6).
func listenInodes(port int) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if i == 0 || len(fields) < 10 || fields[3] != "0A" { // 0A is LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 32); err == nil && int(p) == port {
				out[fields[9]] = true
			}
		}
	}
	return out, nil
}

// pidOfSocket finds the process holding one of the socket inodes.
func pidOfSocket(inodes map[string]bool) (int, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err != nil {
				continue
			}
			if ino, ok := strings.CutPrefix(l, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
				return pid, nil
			}
		}
	}
	return 0, errors.New("no process holds the listening socket (another user's or a container's?)")
}

func childrenMap() map[int][]int {
	out := map[int][]int{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if pp, err := procPPID(pid); err == nil {
			out[pp] = append(out[pp], pid)
		}
	}
	for _, c := range out {
		slices.Sort(c)
	}
	return out
}

// BuildInfo is what a measured binary says of how it was built.
type BuildInfo struct {
	GoVersion string `json:"go_version,omitempty"`
	Revision  string `json:"vcs_revision,omitempty"`
	Modified  bool   `json:"vcs_modified,omitempty"`
}

// ProcBuildInfo reads the Go build information of a running process's binary.
func ProcBuildInfo(pid int) (BuildInfo, bool) {
	bi, err := buildinfo.ReadFile(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return BuildInfo{}, false
	}
	out := BuildInfo{GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Revision = s.Value
		case "vcs.modified":
			out.Modified = s.Value == "true"
		}
	}
	return out, true
}

// PeakTracker samples a ResourceSampler during a step: CPU is the difference between the
// first and last samples; memory, per process, the largest seen, and for the architecture
// the largest sum of one sample.
type PeakTracker struct {
	sampler ResourceSampler
	first   map[string]Usage
	last    map[string]Usage
	peak    map[string]uint64
	sumPeak uint64
	errs    int
	firstAt time.Time // when the first sample was taken
	lastAt  time.Time // ... the last successful one
}

// NewPeakTracker takes the first sample.
func NewPeakTracker(ctx context.Context, s ResourceSampler) (*PeakTracker, error) {
	t := &PeakTracker{sampler: s, peak: map[string]uint64{}}
	u, err := s.Sample(ctx)
	if err != nil {
		return nil, err
	}
	t.first, t.firstAt = u, time.Now()
	t.observe(u)
	return t, nil
}

func (t *PeakTracker) observe(u map[string]Usage) {
	var sum uint64
	for name, x := range u {
		t.peak[name] = max(t.peak[name], x.MemBytes)
		sum += x.MemBytes
	}
	t.sumPeak = max(t.sumPeak, sum)
	t.last, t.lastAt = u, time.Now()
}

// Span is the time between the first and the last sample: the interval the CPU figures
// cover.
func (t *PeakTracker) Span() time.Duration { return t.lastAt.Sub(t.firstAt) }

// Sample takes one more sample; a failed one is counted, not fatal.
func (t *PeakTracker) Sample(ctx context.Context) {
	u, err := t.sampler.Sample(ctx)
	if err != nil {
		t.errs++
		return
	}
	t.observe(u)
}

// Run samples every interval until ctx ends.
func (t *PeakTracker) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.Sample(ctx)
		}
	}
}

// Result takes the last sample and returns the step's resources.
func (t *PeakTracker) Result(ctx context.Context) Resources {
	t.Sample(ctx)
	r := Resources{Measured: true, Source: t.sampler.Describe(), PeakMemBytes: t.sumPeak, SampleErrors: t.errs}
	names := make([]string, 0, len(t.last))
	for n := range t.last {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		cpu := t.last[n].CPUSeconds - t.first[n].CPUSeconds // a newcomer's first is zero: all of its CPU
		if cpu < 0 {
			cpu = t.last[n].CPUSeconds // restarted during the step: its counter began again
		}
		r.CPUSeconds += cpu
		r.Processes = append(r.Processes, ProcUsage{Name: n, CPUSeconds: cpu, PeakMemBytes: t.peak[n]})
	}
	for n := range t.first {
		if _, ok := t.last[n]; !ok {
			r.Missing = append(r.Missing, n)
		}
	}
	slices.Sort(r.Missing)
	return r
}

// Resources is what one architecture used during a step.
type Resources struct {
	Measured     bool        `json:"measured"`
	Source       string      `json:"source,omitempty"`
	CPUSeconds   float64     `json:"cpu_seconds"`
	CPUCores     float64     `json:"cpu_cores"`          // CPU seconds per second of the step
	CPUPerReqMS  float64     `json:"cpu_per_request_ms"` // CPU milliseconds per completed request
	PeakMemBytes uint64      `json:"peak_mem_bytes"`     // the largest total of one sample
	Processes    []ProcUsage `json:"processes"`          // each process or pod
	Missing      []string    `json:"missing,omitempty"`  // gone during the step
	SampleErrors int         `json:"sample_errors,omitempty"`
	Note         string      `json:"note,omitempty"` // why not measured
}

// ProcUsage is one process's or pod's share of a step.
type ProcUsage struct {
	Name         string  `json:"name"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakMemBytes uint64  `json:"peak_mem_bytes"`
}
