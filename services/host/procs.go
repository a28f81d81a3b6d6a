package host

import (
	"fmt"
	"runtime"

	"go.uber.org/automaxprocs/maxprocs"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// FitProcs sets GOMAXPROCS to the CPU quota of the process's cgroup rounded up, at most the
// machine's CPUs (topology.GoMaxProcs): Go's own rule, without its floor of two. A process limited to less than
// one core (each service of the microservices under the default budget has a fraction of one)
// then runs one P instead of two. Its quota is the same either way; what the second P costs
// is the spinning: each call that wakes the process readies goroutines in turn (the
// connection's reader, a stream worker, the writer), and with a P idle every one of them
// wakes a second thread that looks for work, finds none and sleeps again. Measured on the
// 2-core test machine: an empty gRPC call across two processes costs 81 µs of CPU with two
// Ps each and 62 µs with one (go test -bench EmptyCallAcrossProcesses ./services/host); the
// microservices as processes, each in a cgroup of the quota `make compare` gives it, under
// the load test's mix at 200 req/s spend 1.66-1.72 ms of CPU a request against 1.95-2.02
// (the monolith: 0.82-0.88 either way; services/README.md, "The split tax").
//
// GOMAXPROCS in the environment wins; no quota (a plain process, a shared budget's
// processes started before their group took them) leaves Go's default. Once set, the
// runtime no longer follows a quota changed under a running process (Go otherwise checks
// it every second): a quota changed later counts from the next start. It returns what it
// did, for the log.
func FitProcs() (string, error) {
	var did string
	undo, err := maxprocs.Set(maxprocs.RoundQuotaFunc(func(quota float64) int {
		n := topology.GoMaxProcs(quota, runtime.NumCPU())
		did = fmt.Sprintf("GOMAXPROCS %d for a CPU quota of %.2f", n, quota)
		return n
	}))
	if err != nil {
		undo()
		return "", fmt.Errorf("GOMAXPROCS from the CPU quota: %w", err)
	}
	return did, nil
}
