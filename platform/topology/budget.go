package topology

import (
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Budget is the CPU and memory one architecture gets in total. Every architecture gets the
// same, so that a comparison measures the split and not the resources: Get shares the budget
// out among an architecture's services by weights that follow where each one spends (see
// share).
type Budget struct {
	CPUs     float64 `json:"cpus"`      // cores
	MemoryMB int     `json:"memory_mb"` // MiB
}

// The default budget of each architecture: on a 2-core machine, the load generator keeps
// half a core while one architecture runs at full load (the load test drives them in turn).
const (
	DefaultCPUs     = 1.5
	DefaultMemoryMB = 640
)

// NATS ports.
const (
	NATSPort        = 4222
	NATSMonitorPort = 8222
)

// nats is an architecture's NATS server: its store and its event stream.
func nats() Service {
	return Service{
		Name:    "nats",
		Image:   "nats-server",
		Package: "./platform/cmd/nats-server",
		Ports:   []int{NATSPort, NATSMonitorPort},
		Args:    []string{"-addr", "{{listen}}", "-http", "{{listen:8222}}", "-store", "{{data}}"},
		Env:     map[string]string{},
		Probe:   Probe{Kind: HTTP, Port: NATSMonitorPort, Path: "/healthz?js-enabled-only=true"},
		DataDir: "/data",
	}
}

// NATS does the same work in both architectures (every store operation and event goes
// through it) and used about the same CPU in both under the load test's mix (0.26 to 0.36
// cores at 400 req/s), so it gets the same fixed part of every budget; one description then
// serves both architectures (the Kubernetes base holds one NATS).
const (
	natsCPUPart    = 0.3
	natsMemoryPart = 0.25
)

// Floors under a share: below them a Go process spends its quota on the runtime alone, and
// the CFS quota stalls it for most of each 100 ms period.
const (
	minMilliCPU = 50
	minMemoryMB = 32
)

// share sets each service's CPUs and MemoryMB to its part of the budget: NATS's fixed part,
// then the rest by the groups' weights (services/bounded has the contexts' and the edge's) (CPU in whole
// millicores, so that the parts add up to the budget exactly), and its GOMEMLIMIT to 3/4 of
// its memory so the Go runtime collects before the kernel kills.
func share(a *Arch, b Budget) error {
	milli := int(math.Round(b.CPUs * 1000))
	if err := fits(a, b); err != nil {
		return err
	}
	natsMilli := max(minMilliCPU, int(math.Round(float64(milli)*natsCPUPart)))
	natsMem := max(minMemoryMB, int(float64(b.MemoryMB)*natsMemoryPart))
	var rest []Service
	var cpuSum, memSum float64
	for _, s := range a.Services {
		if s.Name == "nats" {
			continue
		}
		if s.weight.CPU <= 0 || s.weight.Memory <= 0 {
			return fmt.Errorf("%s/%s: no share of the budget", a.Name, s.Name)
		}
		rest = append(rest, s)
		cpuSum += s.weight.CPU
		memSum += s.weight.Memory
	}
	cpus := apportion(milli-natsMilli, minMilliCPU, rest, func(s Service) float64 { return s.weight.CPU / cpuSum })
	mems := apportion(b.MemoryMB-natsMem, minMemoryMB, rest, func(s Service) float64 { return s.weight.Memory / memSum })
	parts := map[string][2]int{"nats": {natsMilli, natsMem}}
	for i, s := range rest {
		parts[s.Name] = [2]int{cpus[i], mems[i]}
	}
	for i := range a.Services {
		s := &a.Services[i]
		s.CPUs = float64(parts[s.Name][0]) / 1000
		s.MemoryMB = parts[s.Name][1]
		s.Env["GOMEMLIMIT"] = GoMemLimit(s.MemoryMB)
	}
	return nil
}

// fits checks the budget covers the floors of every service.
func fits(a *Arch, b Budget) error {
	milli := int(math.Round(b.CPUs * 1000))
	if milli < minMilliCPU*len(a.Services) || b.MemoryMB < minMemoryMB*len(a.Services) {
		return fmt.Errorf("%s: a budget of %g CPUs and %d MiB is too small for %d services (at least %g CPUs and %d MiB)",
			a.Name, b.CPUs, b.MemoryMB, len(a.Services), float64(minMilliCPU*len(a.Services))/1000, minMemoryMB*len(a.Services))
	}
	return nil
}

// GoMemLimit is the Go runtime's soft memory limit of a service given memoryMB: 3/4 of it,
// so that the garbage collector works harder before the kernel kills.
func GoMemLimit(memoryMB int) string { return strconv.Itoa(memoryMB*3/4) + "MiB" }

// applyBudget gives an architecture its budget in its mode (Arch.Mode). Per service, each
// service its share by weights (share); measured, by a calibration in dir (measure); shared,
// no limit of its own to any service (the runtime puts them all under the architecture's
// total), each keeping the GOMEMLIMIT of its per-service share, so that its garbage
// collector works as it does per service and a comparison of the two modes differs only in
// the limits.
func applyBudget(a *Arch, b Budget, dir string) error {
	a.Budget = b
	switch a.Mode {
	case PerService:
		return share(a, b)
	case Measured:
		return measure(a, b, dir)
	case Shared:
		if err := share(a, b); err != nil {
			return err
		}
		for i := range a.Services {
			a.Services[i].CPUs, a.Services[i].MemoryMB = 0, 0
		}
		return nil
	}
	return fmt.Errorf("%s: unknown budget mode %q", a.Name, a.Mode)
}

// apportion splits total into whole units by fraction, none below floor, the parts adding up
// to total: the floors first, the rest by fraction rounded down, the units left over to the
// largest fractions.
func apportion(total, floor int, svcs []Service, frac func(Service) float64) []int {
	out := make([]int, len(svcs))
	rest := total - floor*len(svcs)
	left := rest
	for i, s := range svcs {
		out[i] = floor + int(float64(rest)*frac(s))
		left -= out[i] - floor
	}
	order := make([]int, len(svcs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return frac(svcs[order[x]]) > frac(svcs[order[y]]) })
	for i := 0; left > 0; i = (i + 1) % len(order) {
		out[order[i]]++
		left--
	}
	return out
}
