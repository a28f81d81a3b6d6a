package processrt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// notPerProcess is why a per-service (or measured) budget is not enforced here.
const notPerProcess = "the process runtime sets no limits per process; Podman does (--runtime podman), and --budget shared puts an architecture's processes under one cgroup here"

// budgetRun applies one architecture's budget while Up starts its services: with a shared
// budget, the group its processes join.
type budgetRun struct {
	r        *Runtime
	arch     string
	rec      stack.Budget
	group    *cgroup.Group // nil unless a shared budget's group is made
	progress io.Writer

	mu      sync.Mutex
	outside []string // processes that could not join the group, and why
}

// budget prepares the architecture's budget: for a shared one, its group made and limited,
// or a warning saying why it cannot be. The collector's architecture has none (nil).
func (r *Runtime) budget(a topology.Arch, opts stack.UpOptions) *budgetRun {
	if a.Mode == "" {
		return nil
	}
	b := &budgetRun{r: r, arch: a.Name, rec: stack.BudgetOf(a), progress: progressOr(opts.Progress)}
	if a.Mode != topology.Shared {
		b.rec.Detail = notPerProcess
		return b
	}
	fs, err := cgroup.Open(r.opts.CgroupRoot)
	if err == nil {
		b.group, err = fs.Make(r.opts.Stack, a.Name, cgroup.Limits{CPUs: a.Budget.CPUs, MemoryMB: a.Budget.MemoryMB})
	}
	if err != nil {
		b.rec.Detail = "no cgroup could be made: " + err.Error()
		b.warn()
		return b
	}
	b.rec.Enforced = true
	b.rec.Detail = fmt.Sprintf("%s, group %s", fs, b.group.Path)
	return b
}

func (b *budgetRun) warn() {
	msg := fmt.Sprintf("warning: %s: its shared budget (%g CPUs, %d MiB) is NOT ENFORCED: %s; its processes share the whole machine", b.arch, b.rec.CPUs, b.rec.MemoryMB, b.rec.Detail)
	fmt.Fprintln(b.progress, msg)
	b.r.opts.Logger.Warn("shared budget not enforced", "arch", b.arch, "why", b.rec.Detail)
}

// cgroupPath is the group the architecture's processes run in, "" for none.
func (b *budgetRun) cgroupPath() string {
	if b == nil || b.group == nil {
		return ""
	}
	return b.group.Path
}

// join moves a process into the architecture's group, when there is one.
func (b *budgetRun) join(svc string, pid int) {
	if b == nil || b.group == nil {
		return
	}
	if err := b.group.Add(pid); err != nil {
		b.mu.Lock()
		b.outside = append(b.outside, fmt.Sprintf("%s (pid %d): %v", svc, pid, err))
		b.mu.Unlock()
	}
}

// finish records the budget as applied, beside the processes' records, warning when a
// process stayed outside its group; an architecture that left a shared budget loses its group
// (its processes, restarted to leave it, are out).
func (b *budgetRun) finish() error {
	if b == nil {
		return nil
	}
	if len(b.outside) > 0 {
		b.rec.Enforced = false
		b.rec.Detail = "processes outside the group " + b.group.Path + ": " + strings.Join(b.outside, "; ")
		b.warn()
	}
	if b.rec.Mode != topology.Shared {
		if fs, err := cgroup.Open(b.r.opts.CgroupRoot); err == nil {
			if _, err := fs.Remove(b.r.opts.Stack, b.arch, 5*time.Second); err != nil {
				fmt.Fprintf(b.progress, "warning: %s: the group of its former shared budget: %v\n", b.arch, err)
			}
		}
	}
	by, err := json.MarshalIndent(b.rec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(b.r.budgetPath(b.arch), by, 0o644)
}

// budgetStatus is an architecture's budget as recorded by Up, its enforcement checked now:
// a shared budget's group still holds the limits and every live process of the architecture.
// nil when none was recorded.
func (r *Runtime) budgetStatus(arch string, recs []record) *stack.Budget {
	by, err := os.ReadFile(r.budgetPath(arch))
	if err != nil {
		return nil
	}
	var b stack.Budget
	if err := json.Unmarshal(by, &b); err != nil {
		return &stack.Budget{Detail: fmt.Sprintf("budget record %s: %v", r.budgetPath(arch), err)}
	}
	if b.Mode != topology.Shared || !b.Enforced {
		return &b
	}
	notEnforced := func(why string) *stack.Budget {
		b.Enforced, b.Detail = false, why
		return &b
	}
	fs, err := cgroup.Open(r.opts.CgroupRoot)
	if err != nil {
		return notEnforced(err.Error())
	}
	g := fs.Group(r.opts.Stack, arch)
	l, err := g.Limits()
	if err != nil {
		return notEnforced(err.Error())
	}
	if want := (cgroup.Limits{CPUs: b.CPUs, MemoryMB: b.MemoryMB}); l != want {
		return notEnforced(fmt.Sprintf("group %s holds %s, not the budget's %s", g.Path, l, want))
	}
	var outside []string
	for _, rec := range recs {
		if rec.Arch != arch || !alive(rec) {
			continue
		}
		if in, err := g.Contains(rec.PID); err != nil || !in {
			outside = append(outside, fmt.Sprintf("%s (pid %d)", rec.Service, rec.PID))
		}
	}
	if len(outside) > 0 {
		return notEnforced(fmt.Sprintf("outside the group %s: %s", g.Path, strings.Join(outside, ", ")))
	}
	return &b
}

// removeCgroups removes the groups of the architectures Down removed (every one of the stack
// when archs is empty), once empty; none can exist where no group can be made.
func (r *Runtime) removeCgroups(archs, dirs []string) (int, error) {
	fs, err := cgroup.Open(r.opts.CgroupRoot)
	if err != nil {
		return 0, nil
	}
	names := archs
	if len(names) == 0 {
		names, err = fs.Archs(r.opts.Stack)
		if err != nil {
			return 0, err
		}
		for _, d := range dirs {
			if !slices.Contains(names, d) {
				names = append(names, d)
			}
		}
	}
	n := 0
	var errs []error
	for _, a := range names {
		found, err := fs.Remove(r.opts.Stack, a, 5*time.Second)
		if found && err == nil {
			n++
		}
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}
