package podmanrt

import (
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"

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

// Usage reads the CPU and memory of the running containers ids, by ID, through Podman's stats
// API, which also gives the CPU percent and the memory limit. Memory is the working
// set (cgroup.Read: what the processes hold, without the page cache of the files they
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
				if cg, err := cgroup.Read(r.cgroupRoot, path); err == nil {
					u.MemBytes = cg.MemBytes
				}
			}
			out[s.ContainerID] = u
		}
	}
	return out, nil
}

// Counters reads the CPU counter (CPUNano) and the working set (MemBytes) of the running
// containers ids, by ID, from their cgroups' files where they are on this machine, and
// through Usage for the others (Podman on another host). It is for what samples often: a
// stats call costs Podman's service about 40 ms of CPU for nine containers (2-core VM,
// Podman 4.3), so the load test's samples, four a second, took a tenth of a core from the
// machine whose architectures it was measuring, more with more containers; reading the same
// counters from the kernel costs microseconds. A container that is not running is left
// out: its group is gone while its pod's is here (Podman's stats would give it as zeros).
func (r *Runtime) Counters(ctx context.Context, ids []string) (map[string]Usage, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	out := make(map[string]Usage, len(ids))
	var remote []string
	for _, id := range ids {
		path := r.cgroupOf(c, id)
		if path == "" {
			remote = append(remote, id)
			continue
		}
		cg, err := cgroup.Read(r.cgroupRoot, path)
		if err != nil {
			if _, perr := cgroup.Read(r.cgroupRoot, filepath.Dir(path)); perr != nil {
				remote = append(remote, id) // its pod's group is not here either
			}
			continue
		}
		out[id] = Usage{CPUNano: nanoseconds(cg.CPUSeconds), MemBytes: cg.MemBytes}
	}
	if len(remote) > 0 {
		u, err := r.Usage(ctx, remote)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, u)
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

// nanoseconds is the counter of s seconds, which the kernel counts in whole microseconds (or
// nanoseconds): rounded, since s × 1e9 in floating point can land a hair below the whole
// number, and truncating it would give one nanosecond less than Podman's stats give for the
// same counter.
func nanoseconds(s float64) uint64 { return uint64(math.Round(s * 1e9)) }
