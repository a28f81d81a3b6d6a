package podmanrt

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/containers/podman/v4/pkg/domain/entities"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// cgroupParent is the cgroup parent of an architecture's pods: under a shared budget, its
// group, made (or found) and limited to its total; else "", Podman's default. Podman must
// run on this machine, since the group is made in this machine's cgroup filesystem; a
// shared budget that cannot be enforced is an error here, not a warning: the pods would run
// with no limit at all.
func (r *Runtime) cgroupParent(a topology.Arch) (string, error) {
	if a.Mode != topology.Shared {
		return "", nil
	}
	if u, err := url.Parse(r.socket); err != nil || u.Scheme != "unix" {
		return "", fmt.Errorf("%s: a shared budget needs Podman on this machine, to make the cgroup its pods share; %s is not a local socket (use --budget per-service)", a.Name, r.socket)
	}
	fs, err := cgroup.Open(r.cgroupRoot)
	if err != nil {
		return "", fmt.Errorf("%s: a shared budget needs a cgroup for its pods: %w (use --budget per-service, or run as root)", a.Name, err)
	}
	g, err := fs.Make(r.stack, a.Name, cgroup.Limits{CPUs: a.Budget.CPUs, MemoryMB: a.Budget.MemoryMB})
	if err != nil {
		return "", fmt.Errorf("%s: %w", a.Name, err)
	}
	return g.Path, nil
}

// budgetStatus is an architecture's budget as its pods' label records it, with its
// enforcement checked now: per service, each container's limits, which Podman applies or
// fails to start it; shared, the group that every pod of the architecture has as its cgroup
// parent must hold the total. nil for a pod made before budgets had modes.
func (r *Runtime) budgetStatus(arch, label string, pods []*entities.ListPodsReport) *stack.Budget {
	if label == "" {
		return nil
	}
	var b stack.Budget
	if err := json.Unmarshal([]byte(label), &b); err != nil {
		return &stack.Budget{Detail: fmt.Sprintf("label %s: %v", labelBudget, err)}
	}
	if b.Mode != topology.Shared {
		b.Enforced, b.Detail = true, "each container's own CFS quota and memory limit (Podman)"
		return &b
	}
	fs, err := cgroup.Open(r.cgroupRoot)
	if err != nil {
		b.Detail = err.Error()
		return &b
	}
	g := fs.Group(r.stack, arch)
	l, err := g.Limits()
	if err != nil {
		b.Detail = err.Error()
		return &b
	}
	if want := (cgroup.Limits{CPUs: b.CPUs, MemoryMB: b.MemoryMB}); l != want {
		b.Detail = fmt.Sprintf("group %s holds %s, not the budget's %s", g.Path, l, want)
		return &b
	}
	var outside []string
	for _, p := range pods {
		if p.Labels[stack.LabelArch] == arch && p.Cgroup != g.Path {
			outside = append(outside, fmt.Sprintf("%s (cgroup parent %q)", p.Name, p.Cgroup))
		}
	}
	if len(outside) > 0 {
		b.Detail = "pods outside the group " + g.Path + ": " + strings.Join(outside, ", ")
		return &b
	}
	b.Enforced = true
	b.Detail = fmt.Sprintf("%s, group %s, the cgroup parent of every pod; no container has a limit of its own", fs, g.Path)
	return &b
}

// removeCgroups removes the groups of the architectures Down removed (every one of the
// stack's when archs is empty), once their pods' groups are gone: Podman removes a pod's
// group in the controllers it manages and leaves the rest (name=systemd, the unified mount
// of a hybrid) empty.
func (r *Runtime) removeCgroups(archs []string) (int, error) {
	fs, err := cgroup.Open(r.cgroupRoot)
	if err != nil {
		return 0, nil // none can have been made
	}
	if len(archs) == 0 {
		if archs, err = fs.Archs(r.stack); err != nil {
			return 0, err
		}
	}
	n := 0
	var errs []error
	for _, a := range archs {
		found, err := fs.Remove(r.stack, a, 10*time.Second)
		if found && err == nil {
			n++
		}
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}
