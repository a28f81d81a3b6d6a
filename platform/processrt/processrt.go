// Package processrt runs a topology as local processes: the runtime for a machine without
// Podman, and the quickest loop while developing. Each service is its binary (built for the
// host with `go build`, in a build folder shared by the repository's stacks so that an
// unchanged binary is not linked again) started in its own session on 127.0.0.1,
// with its output in a log file and a record (pid, ports, spec hash) under the state folder,
// so that a later `mitosis` call finds, checks and stops it.
//
// Ports: an edge keeps its address; every other port is the service's own number
// (9101 and up for the contexts, as DESIGN.md says) when it is free, else any free port. A
// process's ports are kept across `up` calls while it runs, and when it stopped, while they
// are free. Each replica of a service is a process with ports of its own, named
// <service>-<n>; its callers are told every replica's address (topology.Arch.Addr).
//
// It isolates nothing, with one exception: no per-process limits, no read-only root (that is
// what containers are for). The exception is a shared budget (topology.Shared): where the
// machine lets it make cgroups (root, a writable cgroup filesystem), every process of such an
// architecture is moved, right after it starts, into one cgroup limited to the
// architecture's total (platform/cgroup); where it does not, Up warns, and Status says the
// budget is not enforced.
package processrt

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Options configure a Runtime.
type Options struct {
	Root   string // the repository: packages are built from here
	State  string // records, logs and data: <State>/<stack>/<arch>/...
	Stack  string
	Logger *slog.Logger
	// Binaries are the host's binaries by image name (imagebuild's, extracted from the
	// images); Up builds with `go build` those it lacks.
	Binaries map[string]string
	// AnyPorts gives every port but the edges a free port, never the service's own number:
	// for stacks that run side by side with others (tests), where two could pick 9101 at once.
	AnyPorts bool
	// CgroupRoot is the cgroup filesystem a shared budget's groups are made in; default
	// cgroup.DefaultRoot.
	CgroupRoot string
}

// Runtime is the process runtime of one stack.
type Runtime struct {
	opts Options
}

var _ stack.Runtime = (*Runtime)(nil)

// New returns the process runtime of a stack.
func New(opts Options) *Runtime {
	if opts.Stack == "" {
		opts.Stack = stack.DefaultName
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = cgroup.DefaultRoot
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runtime{opts: opts}
}

// Name is "process".
func (r *Runtime) Name() string { return "process" }

// record is what the runtime keeps about a started process: enough to find, check and stop
// it, and to start it again as it was (Start).
type record struct {
	Arch    string         `json:"arch"`
	Service string         `json:"service"`              // the process's name: the service's, or a replica's
	Of      string         `json:"replica_of,omitempty"` // the service a replica is one of
	PID     int            `json:"pid"`
	Binary  string         `json:"binary"`
	Args    []string       `json:"args"`
	Env     []string       `json:"env"` // the whole environment it got: secrets too, hence the record's mode 0600
	Dir     string         `json:"dir"`
	Ports   map[string]int `json:"ports"` // container port -> host port
	Hash    string         `json:"hash"`
	Probe   topology.Probe `json:"probe"`
	Started time.Time      `json:"started"`
	Killed  *time.Time     `json:"killed,omitempty"` // when Kill killed it; nil once started again
	Cgroup  string         `json:"cgroup,omitempty"` // the shared budget's group it runs in (Start puts it back)
}

func (r *Runtime) stackDir() string { return filepath.Join(r.opts.State, r.opts.Stack) }

// DefaultPKI is where Up keeps the stack's CA, identities and NATS users when its options name
// no PKI folder: beside the stack's records.
func (r *Runtime) DefaultPKI() string { return filepath.Join(r.stackDir(), "pki") }

func (r *Runtime) archDir(arch string) string {
	return filepath.Join(r.stackDir(), arch)
}
func (r *Runtime) binDir() string { return filepath.Join(r.opts.State, "bin") }

// budgetPath is where the architecture's budget is recorded (stack.Budget as JSON); not
// .json, which would read as a process's record.
func (r *Runtime) budgetPath(arch string) string { return filepath.Join(r.archDir(arch), "budget") }

func (r *Runtime) recordPath(arch, svc string) string {
	return filepath.Join(r.archDir(arch), svc+".json")
}

func (r *Runtime) logPath(arch, svc string) string {
	return filepath.Join(r.archDir(arch), svc+".log")
}

func readRecord(path string) (record, error) {
	var rec record
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("record %s: %w", path, err)
	}
	return rec, nil
}

func writeRecord(path string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	// 0600: the environment holds the admin token and the request key.
	return os.WriteFile(path, b, 0o600)
}

// alive tells whether pid runs the binary it was started as (a recycled pid does not count).
func alive(rec record) bool {
	if rec.PID <= 0 {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", rec.PID))
	if err != nil {
		return syscall.Kill(rec.PID, 0) == nil && !isZombie(rec.PID)
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	return exe == rec.Binary && !isZombie(rec.PID)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// tlsDirOf is the identity a probe of rec's process presents: its own (any identity of the
// stack may ask health), none for a process without one or run insecure.
func tlsDirOf(rec record) string {
	env := envOf(rec)
	if env[topology.InsecureEnv] == "true" {
		return ""
	}
	return env[topology.TLSDirEnv]
}

// identityDirOf is the folder of rec's process's own identity, a service's or NATS's; ""
// for a process without one or run insecure.
func identityDirOf(rec record) string {
	env := envOf(rec)
	if env[topology.InsecureEnv] == "true" {
		return ""
	}
	return cmp.Or(env[topology.TLSDirEnv], env[topology.NATSTLSDirEnv])
}

// envOf is rec's process's environment, by variable.
func envOf(rec record) map[string]string {
	env := map[string]string{}
	for _, kv := range rec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func (r *Runtime) records() ([]record, error) {
	paths, err := filepath.Glob(filepath.Join(r.stackDir(), "*", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []record
	for _, p := range paths {
		rec, err := readRecord(p)
		if err != nil {
			continue
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Arch != out[j].Arch {
			return out[i].Arch < out[j].Arch
		}
		return out[i].Service < out[j].Service
	})
	return out, nil
}
