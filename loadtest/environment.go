package loadtest

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func numCPU() int { return runtime.NumCPU() }

// Machine is where a run ran.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model,omitempty"`
	MemBytes uint64 `json:"mem_bytes"`
	Kernel   string `json:"kernel,omitempty"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	Hostname string `json:"hostname,omitempty"`
	// LoadAvg is the 1-minute load average when the run started: a machine busy with
	// something else makes every figure worse.
	LoadAvg float64 `json:"load_avg_1m"`
}

// Environment is what a reader needs to judge whether two runs can be compared.
type Environment struct {
	Machine      Machine `json:"machine"`
	GoVersion    string  `json:"go_version"` // of the load generator
	GitRevision  string  `json:"git_revision,omitempty"`
	GitDirty     bool    `json:"git_dirty"`
	GOMAXPROCS   int     `json:"generator_gomaxprocs"`
	GeneratorPID int     `json:"generator_pid"`
}

// ReadEnvironment gathers the environment; repoRoot is where git is asked (empty: the
// working directory). Anything it cannot read stays empty.
func ReadEnvironment(ctx context.Context, repoRoot string) Environment {
	e := Environment{GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), GeneratorPID: os.Getpid()}
	e.Machine = Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	e.Machine.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Machine.Kernel = strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				e.Machine.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				e.Machine.MemBytes = kb * 1024
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			e.Machine.LoadAvg, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repoRoot
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	if rev, err := git("rev-parse", "HEAD"); err == nil {
		e.GitRevision = rev
		if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil {
			e.GitDirty = st != ""
		}
	}
	return e
}
