package podmanrt

import (
	"context"
	"fmt"

	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
)

// Usage is what one container uses now.
type Usage struct {
	CPUNano  uint64  // CPU time since it started
	CPU      float64 // percent of one core since it started, as `podman stats` has it
	MemBytes uint64  // its working set (see Runtime.Usage)
	MemLimit uint64
}

// Usage reads the CPU and memory of the running containers ids, by ID. Memory is the working
// set (cgroup.WorkingSet: what the processes hold, without the page cache of the files they
// read and wrote), the figure the process runtime's resident set compares with. Podman's own
// (`podman stats`) is the cgroup's whole usage, in which NATS's file store fills its pod up to
// the limit: it stands only where the container's cgroup is not on this machine (Podman on
// another host).
func (r *Runtime) Usage(ctx context.Context, ids []string) (map[string]Usage, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	ch, err := containers.Stats(c, ids, new(containers.StatsOptions).WithStream(false))
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	out := map[string]Usage{}
	for rep := range ch {
		if rep.Error != nil {
			return nil, fmt.Errorf("stats: %w", rep.Error)
		}
		for _, s := range rep.Stats {
			u := Usage{CPUNano: s.CPUNano, CPU: s.CPU, MemBytes: s.MemUsage, MemLimit: s.MemLimit}
			if path := r.cgroupOf(c, s.ContainerID); path != "" {
				if ws, err := cgroup.WorkingSet(r.cgroupRoot, path); err == nil {
					u.MemBytes = ws
				}
			}
			out[s.ContainerID] = u
		}
	}
	return out, nil
}

// cgroupOf is the cgroup of the container id as Podman names it, "" when Podman does not say.
// A container keeps its group for life: each is asked once.
func (r *Runtime) cgroupOf(c context.Context, id string) string {
	if p, ok := r.cgroups.Load(id); ok {
		return p.(string)
	}
	d, err := containers.Inspect(c, id, nil)
	if err != nil || d.State == nil {
		return ""
	}
	r.cgroups.Store(id, d.State.CgroupPath)
	return d.State.CgroupPath
}
