//go:build remote

// Package podmanstats measures the pods of one architecture of a mitosis stack for the load
// test (a loadtest.ResourceSampler): cumulative CPU nanoseconds and current memory (the
// working set) of each container that carries the stack's labels, as platform/podmanrt reads
// them (Runtime.Counters), with the limits Podman enforces and the processes inside. Status
// passes platform/podmanrt's on: what runs, for the load test's default edges.
//
// It compiles only with the podman bindings' build tags (remote, ...; see DESIGN.md); without
// them New says so, and the load test falls back to the process figures or none.
package podmanstats

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// socket is where Podman's API listens: CONTAINER_HOST, else the root socket that
// platform/setup/podman.sh starts (as platform/podmanrt has it).
func socket() string {
	if s := os.Getenv("CONTAINER_HOST"); s != "" {
		return s
	}
	return "unix:///run/podman/podman.sock"
}

// Available reports whether this build can reach Podman at all.
const Available = true

// Status is what `mitosis status` says of the stack's pods (platform/podmanrt): which
// architectures run, and where each service's main port answers on the host.
func Status(ctx context.Context, stackName string) ([]stack.Status, error) {
	rt, err := podmanrt.Connect(ctx, podmanrt.Options{Socket: socket(), Stack: stackName})
	if err != nil {
		return nil, err
	}
	return rt.Status(ctx)
}

// Runtime is the Podman runtime of the stack (platform/podmanrt), for what acts on its pods:
// the faults phase kills and starts them through it.
func Runtime(ctx context.Context, stackName string) (stack.Runtime, error) {
	return podmanrt.Connect(ctx, podmanrt.Options{Socket: socket(), Stack: stackName})
}

// Sampler is a loadtest.ResourceSampler over the containers of one architecture.
type Sampler struct {
	conn        context.Context
	rt          *podmanrt.Runtime // what the stack's containers use (Runtime.Counters)
	stack, arch string

	mu     sync.Mutex
	ctrs   []container // the architecture's running containers, as last listed
	listed time.Time
}

// relistEvery is how long a sample trusts the list of containers it last took. Podman's list
// costs its service about 65 ms of CPU (2-core VM, Podman 4.3, five stacks up), more than
// reading every container's counters: listed before every sample, four a second, it took
// over a tenth of a core from the machine under test. A container that stops or is replaced
// is missing from the counters, which lists again at once; the period bounds how long a new one
// (a replica started during a step) goes unseen: its CPU is not lost (its counter starts
// at zero, loadtest.PeakTracker counts it whole), only the memory it held meanwhile.
const relistEvery = 5 * time.Second

// New connects to the Podman API (CONTAINER_HOST, else /run/podman/podman.sock) and returns a sampler of the
// containers labelled with stackName and arch. It fails when there are none.
func New(ctx context.Context, stackName, arch string) (*Sampler, error) {
	conn, err := bindings.NewConnection(context.WithoutCancel(ctx), socket())
	if err != nil {
		return nil, fmt.Errorf("podman: %w", err)
	}
	rt, err := podmanrt.Connect(ctx, podmanrt.Options{Socket: socket(), Stack: stackName})
	if err != nil {
		return nil, fmt.Errorf("podman: %w", err)
	}
	s := &Sampler{conn: conn, rt: rt, stack: stackName, arch: arch}
	ctrs, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	if len(ctrs) == 0 {
		return nil, fmt.Errorf("podman: stack %s, arch %s: %w", stackName, arch, ErrNoContainers)
	}
	return s, nil
}

// Describe implements loadtest.ResourceSampler.
func (s *Sampler) Describe() string {
	return "the cgroups' CPU counters and working sets of the " + s.arch + " pods of stack " + s.stack + " (Podman lists them)"
}

func (s *Sampler) with(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(s.conn)
	stop := context.AfterFunc(ctx, cancel)
	return c, func() { stop(); cancel() }
}

// container is one running container of the architecture.
type container struct {
	id, name string // name: its service's
	pid      int    // its main process, in the host's PID namespace
}

// list returns the architecture's running containers.
func (s *Sampler) list(ctx context.Context) ([]container, error) {
	c, cancel := s.with(ctx)
	defer cancel()
	filters := map[string][]string{"label": {stack.LabelStack + "=" + s.stack, stack.LabelArch + "=" + s.arch}}
	ctrs, err := containers.List(c, new(containers.ListOptions).WithFilters(filters))
	if err != nil {
		return nil, fmt.Errorf("podman: list containers: %w", err)
	}
	var out []container
	for _, ct := range ctrs {
		// The pod's infra container carries the pod's labels too; it only holds the
		// namespaces, and would take the service's name in the samples.
		if ct.State != "running" || ct.IsInfra {
			continue
		}
		name := ct.Labels[stack.LabelService]
		if name == "" && len(ct.Names) > 0 {
			name = ct.Names[0]
		}
		out = append(out, container{id: ct.ID, name: name, pid: ct.Pid})
	}
	return out, nil
}

// Processes returns the main process of each running container, by its service's name, for
// the report to read what each binary says of its build (loadtest.ProcBuildInfo).
func (s *Sampler) Processes(ctx context.Context) ([]loadtest.Proc, error) {
	ctrs, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]loadtest.Proc, 0, len(ctrs))
	for _, ct := range ctrs {
		out = append(out, loadtest.Proc{Name: ct.name, PID: ct.pid})
	}
	slices.SortFunc(out, func(a, b loadtest.Proc) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Limits reads the CPU and memory limits Podman enforces on each running container of the
// architecture (its cgroup's CFS quota and memory limit), so the report states what ran,
// whatever `mitosis up` was asked for; under a shared budget, the architecture's group's
// (platform/podmanrt reads them back from the cgroup files).
func (s *Sampler) Limits(ctx context.Context) (loadtest.Limits, error) {
	ctrs, err := s.list(ctx)
	if err != nil {
		return loadtest.Limits{}, err
	}
	c, cancel := s.with(ctx)
	defer cancel()
	l := loadtest.Limits{Enforced: true, Source: "podman: the containers' cgroup limits"}
	milli := 0
	for _, ct := range ctrs {
		data, err := containers.Inspect(c, ct.id, nil)
		if err != nil {
			return loadtest.Limits{}, fmt.Errorf("podman: inspect %s: %w", ct.name, err)
		}
		var sl loadtest.ServiceLimit
		sl.Name = ct.name
		if hc := data.HostConfig; hc != nil {
			if hc.CpuQuota > 0 && hc.CpuPeriod > 0 {
				m := int(hc.CpuQuota * 1000 / int64(hc.CpuPeriod))
				sl.CPUs = float64(m) / 1000
				milli += m
			}
			sl.MemoryMB = int(hc.Memory >> 20)
			l.MemoryMB += sl.MemoryMB
		}
		l.PerService = append(l.PerService, sl)
	}
	l.CPUs = float64(milli) / 1000
	sort.Slice(l.PerService, func(i, j int) bool { return l.PerService[i].Name < l.PerService[j].Name })
	// The budget's mode, as platform/podmanrt reports it; a shared budget's limits are its
	// pods' cgroup parent's, not the containers' (which have none).
	sts, err := Status(ctx, s.stack)
	if err != nil {
		return loadtest.Limits{}, err
	}
	for _, st := range sts {
		if b := st.Budget; st.Arch == s.arch && b != nil {
			l.Mode, l.Calibration = b.Mode, b.Calibration
			if b.Mode == topology.Shared {
				l = loadtest.LimitsOf(*b, "podman: "+b.Detail)
			}
			break
		}
	}
	return l, nil
}

// Sample implements loadtest.ResourceSampler.
func (s *Sampler) Sample(ctx context.Context) (map[string]loadtest.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh := s.ctrs == nil || time.Since(s.listed) >= relistEvery
	if fresh {
		if err := s.relist(ctx); err != nil {
			return nil, err
		}
	}
	out, err := s.counters(ctx)
	if (err != nil || len(out) < len(s.ctrs)) && !fresh { // one stopped or was replaced
		if err := s.relist(ctx); err != nil {
			return nil, err
		}
		out, err = s.counters(ctx)
	}
	return out, err
}

// relist lists the architecture's running containers again.
func (s *Sampler) relist(ctx context.Context) error {
	ctrs, err := s.list(ctx)
	if err != nil {
		return err
	}
	if len(ctrs) == 0 {
		return errors.New("podman: no running container")
	}
	s.ctrs, s.listed = ctrs, time.Now()
	return nil
}

// counters reads the listed containers' counters, by service.
func (s *Sampler) counters(ctx context.Context) (map[string]loadtest.Usage, error) {
	ids := make([]string, len(s.ctrs))
	names := map[string]string{}
	for i, ct := range s.ctrs {
		ids[i], names[ct.id] = ct.id, ct.name
	}
	usage, err := s.rt.Counters(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("podman: %w", err)
	}
	out := make(map[string]loadtest.Usage, len(usage))
	for id, u := range usage {
		out[names[id]] = loadtest.Usage{CPUSeconds: float64(u.CPUNano) / 1e9, MemBytes: u.MemBytes}
	}
	return out, nil
}
