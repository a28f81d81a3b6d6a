// Package stack holds what both runtimes of the mitosis CLI share: the Runtime interface that
// `up`, `down`, `status` and `logs` call, the status report, the labels and names of what a
// runtime makes, and the readiness probes (HTTP, gRPC health, TCP) run against 127.0.0.1.
//
// It knows nothing of Podman or processes: podmanrt and processrt implement Runtime.
package stack

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Labels every object a runtime makes carries, so that `down` removes exactly those.
const (
	LabelStack   = "mitosis.stack"   // the stack's name ("mitosis", or a test's own)
	LabelArch    = "mitosis.arch"    // "monolith", "services" or "telemetry" (the collector)
	LabelService = "mitosis.service" // the topology service, or the replica (<service>-<n>) of one with several
	LabelReplica = "mitosis.replica" // on a replica: the topology service it is one of
	LabelSpec    = "mitosis.spec"    // hash of everything the object was made from
)

// DefaultName is the stack's name when none is given.
const DefaultName = "mitosis"

// Runtime runs topologies. Up is idempotent: what already runs as asked is left alone, what
// is missing, stopped or changed is (re)made. Down removes what Up made and nothing else.
type Runtime interface {
	Name() string // "podman" or "process"
	Up(ctx context.Context, t topology.Topology, opts UpOptions) error
	Down(ctx context.Context, opts DownOptions) (Removed, error)
	Status(ctx context.Context) ([]Status, error)
	Logs(ctx context.Context, opts LogsOptions, w io.Writer) error
	// Kill kills one service of an architecture at once (SIGKILL: a crash, no drain) and
	// leaves it down: nothing restarts it until Start (or Up) does. ErrNoService when the
	// stack has no such service, ErrNotRunning when it is down already.
	Kill(ctx context.Context, arch, service string) error
	// Start starts a service that is down again as it was made (the same command,
	// environment and ports) and waits until it is ready, for at most DefaultReadyTimeout
	// or until ctx ends. ErrNoService when the stack has no such service,
	// ErrAlreadyRunning when it runs.
	Start(ctx context.Context, arch, service string) error
}

// DownOptions say what Down removes: everything up made of the stack (or of Archs, when
// given), but its data, the stores' volumes and folders, unless Volumes; as compose keeps
// volumes unless asked with -v, so that a down and an up keep carts, orders and stock.
type DownOptions struct {
	Archs   []string
	Volumes bool
}

// UpOptions are the inputs of Up besides the topology.
//
// A service with replicas whose spec changed (a new image, another environment value) is
// rolled: its replicas are remade one at a time, each new one ready, and then given
// bounded.RedialWithin for every caller to connect to it, before the next old one is
// stopped; a stopping replica drains (services/host): its callers move to the others, the
// calls in flight finish. A service of one process is stopped, then started again.
type UpOptions struct {
	AdminToken   string
	RequestKey   string            // keys the hash of checkout requests (RequestKey)
	ReadyTimeout time.Duration     // per service; default DefaultReadyTimeout
	Env          map[string]string // added to every service's environment (OTEL_* for example)
	Progress     io.Writer         // one line per step; nil for none
	// PKI is the folder of the stack's CA (Identities): every service that serves or calls
	// gRPC gets a certificate of it, mounted read-only (Podman) or passed by path
	// (processes). Required unless Insecure.
	PKI string
	// Insecure runs gRPC in plaintext without authorization (SHOP_INSECURE), to measure
	// what security costs; never otherwise.
	Insecure bool
}

// LogsOptions select and shape logs.
type LogsOptions struct {
	Services []string // "arch/service" or "service" (every arch); empty for all
	Follow   bool
	Tail     int // lines from the end of each; 0 for all
}

// Removed counts what Down removed.
type Removed struct {
	Pods, Containers, Networks, Volumes, Processes int
	Cgroups                                        int // architectures' groups of a shared budget
}

func (r Removed) String() string {
	var parts []string
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(r.Pods, "pod", "pods")
	add(r.Containers, "container", "containers")
	add(r.Networks, "network", "networks")
	add(r.Volumes, "volume", "volumes")
	add(r.Processes, "process", "processes")
	add(r.Cgroups, "cgroup", "cgroups")
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Status is one service as a runtime sees it.
type Status struct {
	Arch    string `json:"arch"`
	Service string `json:"service"`
	Name    string `json:"name"` // the pod's name, or the process's
	// ReplicaOf is the topology service this is a replica of (Service then names the
	// replica, <service>-<n>); "" for a service that runs as one process.
	ReplicaOf string  `json:"replica_of,omitempty"`
	State     string  `json:"state"`  // running, exited, missing, ...
	Health    string  `json:"health"` // ready, unready (with reason), unknown
	Detail    string  `json:"detail,omitempty"`
	Addr      string  `json:"addr,omitempty"` // where its main port answers on 127.0.0.1
	CPU       float64 `json:"cpu_percent"`
	// MemBytes is the memory it holds, without the page cache of the files it reads and
	// writes: the resident set of a process, the working set of a pod's container
	// (cgroup.Read).
	MemBytes uint64 `json:"mem_bytes"`
	MemLimit uint64 `json:"mem_limit_bytes,omitempty"`
	PID      int    `json:"pid,omitempty"`
	// TLSDir is the folder of the workload identity the process reads (platform/identity),
	// on this machine; "" for one without, or up insecure. status reads when its
	// certificate expires there.
	TLSDir string `json:"tls_dir,omitempty"`

	// Ports is the host address of each of its published container ports, for what reaches
	// a service on another port than its probe's (the CLI reaches NATS's clients port).
	Ports map[int]string `json:"ports,omitempty"`

	// Budget is its architecture's budget, the same on each of its services' lines; nil
	// for the collector's, and for what a runtime made before budgets had modes.
	Budget *Budget `json:"budget,omitempty"`
}

// Budget is an architecture's budget as its runtime applied it: the mode and the limits
// (topology's), and whether they are enforced, which the runtime checks when asked.
type Budget struct {
	Placement   string                   `json:"placement"`       // the topology it runs (topology.Arch.Placement)
	Split       string                   `json:"split,omitempty"` // its groups, as --split writes them
	Mode        topology.Mode            `json:"mode"`
	CPUs        float64                  `json:"cpus"`      // the architecture's total
	MemoryMB    int                      `json:"memory_mb"` // likewise
	PerService  []ServiceLimit           `json:"per_service,omitempty"`
	Calibration *topology.CalibrationRef `json:"calibration,omitempty"` // a measured budget's source
	Enforced    bool                     `json:"enforced"`
	Detail      string                   `json:"detail,omitempty"` // how the limits are enforced, or why they are not
}

// ServiceLimit is one service's own limits; a shared budget gives none.
type ServiceLimit struct {
	Name     string  `json:"name"`
	CPUs     float64 `json:"cpus"`
	MemoryMB int     `json:"memory_mb"`
}

// BudgetOf is what the topology asks of an architecture's budget, before a runtime says
// whether it is enforced.
func BudgetOf(a topology.Arch) Budget {
	b := Budget{Placement: a.Placement, Split: a.Split, Mode: a.Mode, CPUs: a.Budget.CPUs, MemoryMB: a.Budget.MemoryMB, Calibration: a.Calibration}
	if a.Mode != topology.Shared {
		for _, s := range a.Services {
			b.PerService = append(b.PerService, ServiceLimit{Name: s.Name, CPUs: s.CPUs, MemoryMB: s.MemoryMB})
		}
	}
	return b
}

// String is one line for people: "shared: 1.5 CPUs and 640 MiB for the whole architecture,
// enforced (...)".
func (b Budget) String() string {
	what := "for the whole architecture"
	if b.Mode != topology.Shared {
		what = "shared out among its services"
	}
	if b.Calibration != nil {
		what += fmt.Sprintf(" by the calibration of %s at %g req/s (%s, %s)", b.Calibration.Arch, b.Calibration.RateRPS,
			b.Calibration.When.Format("2006-01-02 15:04"), b.Calibration.File)
	}
	enf := "NOT ENFORCED"
	if b.Enforced {
		enf = "enforced"
	}
	if b.Detail != "" {
		enf += " (" + b.Detail + ")"
	}
	return fmt.Sprintf("%s: %g CPUs and %d MiB %s, %s", b.Mode, b.CPUs, b.MemoryMB, what, enf)
}

// Healthy health values.
const (
	Ready   = "ready"
	Unready = "unready"
	Unknown = "unknown"
)

// ObjectName is the name of a runtime object of one service: <stack>-<arch>-<service>.
func ObjectName(stack, arch, service string) string {
	return stack + "-" + arch + "-" + service
}

// Matches tells whether a status line is selected by a LogsOptions.Services entry: a
// service (a replica, or every replica of the service it is one of, replicaOf), maybe after
// its architecture and a slash, or a whole architecture.
func Matches(sel []string, arch, service, replicaOf string) bool {
	if len(sel) == 0 {
		return true
	}
	for _, s := range sel {
		for _, name := range []string{service, replicaOf} {
			if name != "" && (s == name || s == arch+"/"+name) {
				return true
			}
		}
		if s == arch {
			return true
		}
	}
	return false
}

// SyncWriter serialises writes to w: services start concurrently and report on one writer.
// A nil w stays nil.
func SyncWriter(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return &syncWriter{w: w}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
