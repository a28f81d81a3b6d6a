package podmanrt

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/pods"
	"github.com/containers/podman/v4/pkg/domain/entities"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Status reports every pod of the stack: state, readiness (its probe through the published
// port), CPU and memory.
func (r *Runtime) Status(ctx context.Context) ([]stack.Status, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	list, err := pods.List(c, new(pods.ListOptions).WithFilters(r.filter()))
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(r.filter()))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	byName := map[string]entities.ListContainer{}
	alive := make([]bool, len(ctrs))
	restarts := map[string]int32{} // by container ID; Podman 4.3's list leaves Restarts at 0
	var check sync.WaitGroup
	var mu sync.Mutex
	for i, ct := range ctrs {
		for _, n := range ct.Names {
			byName[n] = ct
		}
		if ct.State == "running" {
			check.Add(1)
			go func() {
				defer check.Done()
				alive[i] = r.processAlive(c, ct.ID)
				d, err := containers.Inspect(c, ct.ID, nil)
				if err != nil {
					return
				}
				if d.State != nil {
					r.cgroups.Store(ct.ID, d.State.CgroupPath) // for Usage: no second inspect
				}
				if d.RestartCount > 0 {
					mu.Lock()
					restarts[ct.ID] = d.RestartCount
					mu.Unlock()
				}
			}()
		}
	}
	check.Wait()
	var running []string // one lost container fails the whole stats call
	lost := map[string]bool{}
	for i, ct := range ctrs {
		switch {
		case alive[i]:
			running = append(running, ct.ID)
		case ct.State == "running":
			lost[ct.ID] = true
		}
	}
	var usage map[string]Usage
	if len(running) > 0 {
		usage, _ = r.Usage(c, running) // a status without figures beats none
	}
	out := make([]stack.Status, len(list))
	budgets := map[string]*stack.Budget{}
	var wg sync.WaitGroup
	for i, p := range list {
		st := stack.Status{
			Arch:      p.Labels[stack.LabelArch],
			Service:   p.Labels[stack.LabelService],
			ReplicaOf: p.Labels[stack.LabelReplica],
			Name:      p.Name,
			State:     strings.ToLower(p.Status),
			Health:    stack.Unknown,
			TLSDir:    p.Labels[labelTLS],
		}
		if _, ok := budgets[st.Arch]; !ok {
			budgets[st.Arch] = r.budgetStatus(st.Arch, p.Labels[labelBudget], list)
		}
		st.Budget = budgets[st.Arch]
		ct, ok := byName[containerName(p.Name)]
		if !ok {
			st.State, st.Detail = "broken", "no app container"
			out[i] = st
			continue
		}
		st.State = ct.State
		switch {
		case lost[ct.ID]:
			st.State, st.Health = "lost", stack.Unready
			st.Detail = lostDetail + "; `mitosis up` remakes it"
		case ct.State != "running":
			st.Health = stack.Unready
			st.Detail = fmt.Sprintf("exit code %d", ct.ExitCode)
		case restarts[ct.ID] > 0:
			// The supervisor (restartPolicy) did its job: say so, or nobody would know.
			st.Detail = fmt.Sprintf("restarted %d time(s) by Podman after its process exited; see `mitosis logs %s/%s`", restarts[ct.ID], st.Arch, st.Service)
		}
		if u, ok := usage[ct.ID]; ok {
			st.CPU, st.MemBytes, st.MemLimit = u.CPU, u.MemBytes, u.MemLimit
		}
		out[i] = st
		probe, ok := parseProbe(p.Labels[labelProbe])
		if !ok || st.State != "running" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ports, err := r.hostPorts(c, p.Name)
			if err != nil {
				out[i].Health, out[i].Detail = stack.Unknown, err.Error()
				return
			}
			out[i].Ports = ports
			addr, ok := ports[probe.Port]
			if !ok {
				out[i].Health, out[i].Detail = stack.Unknown, fmt.Sprintf("pod %s publishes no host port for %d", p.Name, probe.Port)
				return
			}
			out[i].Addr = addr
			if err := stack.CheckSteady(c, probe, addr, p.Labels[labelTLS]); err != nil {
				out[i].Health, out[i].Detail = stack.Unready, err.Error()
				return
			}
			out[i].Health = stack.Ready
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Arch != out[j].Arch {
			return out[i].Arch < out[j].Arch
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func parseProbe(s string) (topology.Probe, bool) {
	f := strings.SplitN(s, " ", 3)
	if len(f) < 2 {
		return topology.Probe{}, false
	}
	port, err := strconv.Atoi(f[1])
	if err != nil {
		return topology.Probe{}, false
	}
	p := topology.Probe{Kind: topology.ProbeKind(f[0]), Port: port}
	if len(f) == 3 {
		p.Path = f[2]
	}
	return p, true
}

// processAlive tells whether a container Podman calls running still has its process.
// Podman's record keeps saying "running" when the process and its conmon were killed behind
// its back (every process of the machine killed without a reboot, as a suspended sandbox or
// a reused CI machine does); nothing serves then, and its published ports' forwarding rules
// lead nowhere. Asking for the container's processes is what tells.
func (r *Runtime) processAlive(c context.Context, ctr string) bool {
	_, err := containers.Top(c, ctr, nil)
	return err == nil
}

// hostAddr is where a pod's container port is published on the host.
func (r *Runtime) hostAddr(c context.Context, pod string, port int) (string, error) {
	ports, err := r.hostPorts(c, pod)
	if err != nil {
		return "", err
	}
	return portAddr(pod, ports, port)
}

// portAddr is where ports (hostPorts of pod) publish port.
func portAddr(pod string, ports map[int]string, port int) (string, error) {
	if addr, ok := ports[port]; ok {
		return addr, nil
	}
	return "", fmt.Errorf("pod %s publishes no host port for %d", pod, port)
}

// hostPorts is where each of a pod's published TCP container ports is on the host.
func (r *Runtime) hostPorts(c context.Context, pod string) (map[int]string, error) {
	data, err := pods.Inspect(c, pod, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect pod %s: %w", pod, err)
	}
	out := map[int]string{}
	if data.InfraConfig == nil {
		return out, nil
	}
	for key, binds := range data.InfraConfig.PortBindings {
		p, ok := strings.CutSuffix(key, "/tcp")
		port, err := strconv.Atoi(p)
		if !ok || err != nil {
			continue
		}
		for _, b := range binds {
			if b.HostPort != "" && b.HostPort != "0" {
				ip := b.HostIP
				if ip == "" {
					ip = "127.0.0.1"
				}
				out[port] = net.JoinHostPort(ip, b.HostPort)
				break
			}
		}
	}
	return out, nil
}
