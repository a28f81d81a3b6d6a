package topology

import (
	"fmt"
	"math"
	"runtime"
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

// NATSService is the name of every architecture's NATS server, and NATS's ports.
const (
	NATSService     = "nats"
	NATSPort        = 4222
	NATSMonitorPort = 8222
)

// nats is an architecture's NATS server: its store and its event stream.
func nats() Service {
	return Service{
		Name:    NATSService,
		Image:   "nats-server",
		Package: "./platform/cmd/nats-server",
		Ports:   []int{NATSPort, NATSMonitorPort, MetricsPort},
		Args:    []string{"-addr", "{{listen}}", "-http", "{{listen:8222}}", "-store", "{{data}}", "-metrics", "{{listen:" + strconv.Itoa(MetricsPort) + "}}"},
		// Its users (platform/natsauth), where the runtime gives them; none lets anyone in.
		// And its identity (platform/identity.NATS), where the runtime gives one: TLS only.
		Env:     map[string]string{NATSUsersEnv: "{{nats_users}}", NATSTLSDirEnv: "{{tls}}"},
		Probe:   Probe{Kind: HTTP, Port: NATSMonitorPort, Path: "/healthz?js-enabled-only=true"},
		DataDir: "/data",
	}
}

// NATSUsersEnv is the NATS server's users file (platform/cmd/nats-server -users).
const NATSUsersEnv = "NATS_USERS_FILE"

// NATSTLSDirEnv is the NATS server's identity folder (platform/cmd/nats-server -tls): set,
// it speaks TLS only and asks every client for a certificate of the stack.
const NATSTLSDirEnv = "NATS_TLS_DIR"

// NATS does the same work in both architectures (every store operation and event goes
// through it) and used about the same CPU in both under the load test's mix (0.26 to 0.36
// cores at 400 req/s), so it gets the same fixed part of every budget; one description then
// serves both architectures (the Kubernetes base holds one NATS).
//
// Its memory part is sized by its heap, which is most of what it needs: nats-server keeps an
// index entry for every key the buckets hold, and a cache of up to a whole block (4 or 8 MiB)
// for every block it writes or reads, which it lets go at the next garbage collection
// (weakly held). At a quarter of the default budget (160 MiB, GOMEMLIMIT 120 MiB) the heap's
// goal sat a few MB above the live heap (natsLiveHeapMB), so the collector ran two to seven
// times a second under any traffic, each time dropping the block caches the next reads
// loaded again: 0.25 to 0.41 of its 0.45 cores at 25 req/s for minutes after an overload,
// where it needs 0.03 (what failed the services' second pass of run 20261205-002307). Every
// other process peaked at 10 to 36 MiB of its 59 there, and the monolith at 31 of 480, so
// the part comes from them.
const (
	natsCPUPart    = 0.3
	natsMemoryPart = 0.35
)

// natsLiveHeapMB is NATS's live heap after a collection (GODEBUG=gctrace=1), in MB, under the
// load test's mix at 800 and then 25 req/s on the data of a day of load tests (300,000 keys,
// 212 MB stored): 95 to 104. natsHeadroom is how far above it NATS's GOMEMLIMIT must be under
// the default budget, so that the heap grows by half between collections instead of pinning
// the collector's goal to the limit. The live heap grows with the keys NATS holds (109 to 137
// MB at 384,000 keys, where the default budget still collected 1 to 4 times in 30 s): a stack
// that keeps more history than that needs a larger budget (--memory), or fresh data.
const (
	natsLiveHeapMB = 104
	natsHeadroom   = 1.5
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
//
// A replica is a process of its group's size, as a Kubernetes replica is a pod of the same
// requests: a group of N replicas weighs N times its weight, so each replica gets about the
// part the group would get as one process, and the architecture's total stays its budget by
// the other groups' parts shrinking. That is what scaling one context out buys under a fixed
// budget: more of it where the load is, taken from where it is not (halving the group's part
// between two replicas instead would measure only what a second process costs). The group's
// part is rounded down to a whole multiple of N millicores and MiB, and raised to N floors if
// below them; what that frees or takes goes to or comes from the groups of one process
// (there is always one: the edge's), a unit at a time in the order of their weights, none
// below its floor.
func share(a *Arch, b Budget) error {
	milli := int(math.Round(b.CPUs * 1000))
	natsMilli := max(minMilliCPU, int(math.Round(float64(milli)*natsCPUPart)))
	procs := 0
	for _, s := range a.Services {
		if s.Name != NATSService {
			procs += s.Count()
		}
	}
	natsMem := natsMemory(b, procs)
	if milli-natsMilli < minMilliCPU*procs || b.MemoryMB-natsMem < minMemoryMB*procs {
		return fmt.Errorf("%s: a budget of %g CPUs and %d MiB is too small for %d processes besides NATS, which takes %d%% of it (each at least %g CPUs and %d MiB)",
			a.Name, b.CPUs, b.MemoryMB, procs, int(natsCPUPart*100), float64(minMilliCPU)/1000, minMemoryMB)
	}
	var rest []Service
	var cpuSum, memSum float64
	for _, s := range a.Services {
		if s.Name == NATSService {
			continue
		}
		if s.weight.CPU <= 0 || s.weight.Memory <= 0 {
			return fmt.Errorf("%s/%s: no share of the budget", a.Name, s.Name)
		}
		rest = append(rest, s)
		cpuSum += s.weight.CPU * float64(s.Count())
		memSum += s.weight.Memory * float64(s.Count())
	}
	cpus, err := apportion(milli-natsMilli, minMilliCPU, rest, func(s Service) float64 { return s.weight.CPU * float64(s.Count()) / cpuSum })
	if err != nil {
		return fmt.Errorf("%s: CPU: %w", a.Name, err)
	}
	mems, err := apportion(b.MemoryMB-natsMem, minMemoryMB, rest, func(s Service) float64 { return s.weight.Memory * float64(s.Count()) / memSum })
	if err != nil {
		return fmt.Errorf("%s: memory: %w", a.Name, err)
	}
	parts := map[string][2]int{NATSService: {natsMilli, natsMem}}
	for i, s := range rest {
		parts[s.Name] = [2]int{cpus[i] / s.Count(), mems[i] / s.Count()}
	}
	for i := range a.Services {
		s := &a.Services[i]
		s.CPUs = float64(parts[s.Name][0]) / 1000
		s.MemoryMB = parts[s.Name][1]
		s.Env["GOMEMLIMIT"] = GoMemLimit(s.MemoryMB)
	}
	return nil
}

// fits checks the budget covers the floors of every process (each replica one).
func fits(a *Arch, b Budget) error {
	milli := int(math.Round(b.CPUs * 1000))
	procs := 0
	for _, s := range a.Services {
		procs += s.Count()
	}
	if milli < minMilliCPU*procs || b.MemoryMB < minMemoryMB*procs {
		return fmt.Errorf("%s: a budget of %g CPUs and %d MiB is too small for %d processes (at least %g CPUs and %d MiB)",
			a.Name, b.CPUs, b.MemoryMB, procs, float64(minMilliCPU*procs)/1000, minMemoryMB*procs)
	}
	return nil
}

// natsMemory is NATS's fixed part of a budget's memory, or what the floors of the other
// processes besides it leave in a budget too small for that.
func natsMemory(b Budget, others int) int {
	return max(minMemoryMB, min(int(float64(b.MemoryMB)*natsMemoryPart), b.MemoryMB-minMemoryMB*others))
}

// GoMemLimit is the Go runtime's soft memory limit of a service given memoryMB, as
// GOMEMLIMIT takes it.
func GoMemLimit(memoryMB int) string { return strconv.Itoa(GoMemLimitMB(memoryMB)) + "MiB" }

// GoMemLimitMB is the Go runtime's soft memory limit of a service given memoryMB, in MiB: 3/4
// of it, so that the garbage collector works harder before the kernel kills.
func GoMemLimitMB(memoryMB int) int { return memoryMB * 3 / 4 }

// HeapGrowsWithStores tells whether service's heap grows with the data its stores hold, so
// that emptying them (mitosis down --volumes) brings it down: NATS's, which indexes every
// key, a few for every checkout.
func HeapGrowsWithStores(service string) bool { return service == NATSService }

// NearGoMemLimit tells whether a service of memoryMB that holds memBytes is within 10% of
// its GOMEMLIMIT, or past it: there its garbage collector runs without end and takes its CPU
// (NATS, as its stores fill up).
func NearGoMemLimit(memBytes uint64, memoryMB int) bool {
	limit := uint64(GoMemLimitMB(memoryMB)) << 20
	return memoryMB > 0 && memBytes*10 >= limit*9
}

// GoMaxProcs is the GOMAXPROCS of a process with a quota of cpus cores on a machine of
// machineCPUs: the quota rounded up, at least one, at most the machine's (services/host.FitProcs
// fits a process to its cgroup's quota by it; see there for why one P below a core).
func GoMaxProcs(cpus float64, machineCPUs int) int {
	return max(1, min(machineCPUs, int(math.Ceil(cpus))))
}

// applyBudget gives an architecture its budget in its mode (Arch.Mode). Per service, each
// service its share by weights (share); measured, by a calibration in dir (measure); shared,
// no limit of its own to any service (the runtime puts them all under the architecture's
// total), each keeping the GOMEMLIMIT and the GOMAXPROCS of its per-service share, so that
// its garbage collector and its scheduler work as they do per service and a comparison of
// the two modes differs only in the limits. A process without a quota of its own fits no
// GOMAXPROCS to one (services/host.FitProcs): it kept Go's default of one P per core of the
// machine, and paid for the second P's spinning on every call, which a service with its
// fraction of a core does not (make compare 20261205-062705: 2.27× the monolith's CPU per
// request shared, 1.87× per service).
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
			s := &a.Services[i]
			s.Env["GOMAXPROCS"] = strconv.Itoa(GoMaxProcs(s.CPUs, runtime.NumCPU()))
			s.CPUs, s.MemoryMB = 0, 0
		}
		return nil
	}
	return fmt.Errorf("%s: unknown budget mode %q", a.Name, a.Mode)
}

// apportion splits total into whole units by fraction, each service's part at least floor
// for each of its processes, the parts adding up to total: the floors first, the rest by
// fraction rounded down, the units left over to the largest fractions. Then each service of
// several processes (Service.Count) has its part made a whole multiple of them, at least a
// floor each, the difference going to or coming from the services of one process, largest
// fraction first.
func apportion(total, floor int, svcs []Service, frac func(Service) float64) ([]int, error) {
	out := make([]int, len(svcs))
	rest := total
	for _, s := range svcs {
		rest -= floor * s.Count()
	}
	left := rest
	for i, s := range svcs {
		out[i] = floor*s.Count() + int(float64(rest)*frac(s))
		left -= out[i] - floor*s.Count()
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
	// Replicas: an even split, at least their floors.
	var singles []int
	for _, i := range order {
		n := svcs[i].Count()
		if n == 1 {
			singles = append(singles, i)
			continue
		}
		part := max(out[i]/n*n, floor*n)
		left += out[i] - part
		out[i] = part
	}
	for len(singles) > 0 && left != 0 {
		moved := false
		for _, i := range singles {
			switch {
			case left > 0:
				out[i]++
				left--
				moved = true
			case left < 0 && out[i] > floor:
				out[i]--
				left++
				moved = true
			}
			if left == 0 {
				break
			}
		}
		if !moved {
			break
		}
	}
	if left != 0 {
		return nil, fmt.Errorf("the replicas' floors take %d units more than the groups of one process can give", -left)
	}
	return out, nil
}
