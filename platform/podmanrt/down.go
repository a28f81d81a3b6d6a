package podmanrt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/network"
	"github.com/containers/podman/v4/pkg/bindings/pods"
	"github.com/containers/podman/v4/pkg/bindings/volumes"
	"github.com/containers/podman/v4/pkg/domain/entities"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Down removes the stack's pods (and their containers), its networks and its volumes; with
// archs, only those architectures', and the collector with the last of them
// (stack.DownArchs, from the pods listed here: no call more).
func (r *Runtime) Down(ctx context.Context, opts stack.DownOptions) (stack.Removed, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	start := time.Now()
	defer func() { r.logger.Debug("down", "took", time.Since(start)) }()
	var removed stack.Removed
	var errs []error
	list, err := pods.List(c, new(pods.ListOptions).WithFilters(r.filter()))
	if err != nil {
		return removed, fmt.Errorf("list pods: %w", err)
	}
	present := make([]string, len(list))
	for i, p := range list {
		present[i] = p.Labels[stack.LabelArch]
	}
	archs := stack.DownArchs(present, opts.Archs)
	// The processes stop phase by phase, each with its network and its peers still there;
	// a phase's pods go as soon as its processes have stopped, side by side with the next
	// phase's stop (Podman tears their networks down one at a time).
	var mu sync.Mutex
	var drops sync.WaitGroup
	sem := make(chan struct{}, removeConcurrency)
	for _, phase := range removalPhases(list, archs) {
		var stops sync.WaitGroup
		for _, p := range phase {
			stops.Go(func() { r.stopApps(c, p.Name) })
		}
		stops.Wait()
		for _, p := range phase {
			drops.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				err := r.dropPod(c, p.Name)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				removed.Pods++
				removed.Containers += len(p.Containers)
			})
		}
	}
	r.logger.Debug("processes stopped", "took", time.Since(start))
	drops.Wait()
	r.logger.Debug("pods removed", "took", time.Since(start))
	// Containers outside a pod (none, unless something failed half-way).
	ctrs, err := containers.List(c, new(containers.ListOptions).WithAll(true).WithFilters(r.filter()))
	if err != nil {
		errs = append(errs, fmt.Errorf("list containers: %w", err))
	}
	for _, ct := range ctrs {
		if !wantArch(archs, ct.Labels[stack.LabelArch]) {
			continue
		}
		if _, err := containers.Remove(c, ct.ID, new(containers.RemoveOptions).WithForce(true).WithVolumes(true)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", ct.ID, err))
			continue
		}
		removed.Containers++
	}
	nets, err := network.List(c, new(network.ListOptions).WithFilters(r.filter()))
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	// A collector that stays leaves the networks that go: removing a network by force
	// removes what is still attached to it, which would be the collector. The pods' list
	// says which collector pod stays, its infra container (whose network namespace the
	// collector shares) and the networks that one is attached to.
	var staying *entities.ListPodsReport
	if !wantArch(archs, topology.Telemetry) {
		if i := slices.IndexFunc(list, func(p *entities.ListPodsReport) bool { return p.Labels[stack.LabelArch] == topology.Telemetry }); i >= 0 {
			staying = list[i]
		}
	}
	for _, n := range nets {
		if !wantArch(archs, n.Labels[stack.LabelArch]) {
			continue
		}
		force := true
		if staying != nil {
			force = false // what is left attached is an error to report, not to remove
			if slices.Contains(staying.Networks, n.Name) {
				if err := network.Disconnect(c, n.Name, staying.InfraId, new(network.DisconnectOptions).WithForce(true)); err != nil && !isNotFound(err) && !strings.Contains(err.Error(), "not connected") {
					// The removal below says whether it is still attached.
					r.logger.Warn("collector: leave network", "network", n.Name, "err", err)
				}
			}
		}
		if _, err := network.Remove(c, n.Name, new(network.RemoveOptions).WithForce(force)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed.Networks++
	}
	r.logger.Debug("networks removed", "took", time.Since(start))
	var vols []*entities.VolumeListReport
	if opts.Volumes {
		vols, err = volumes.List(c, new(volumes.ListOptions).WithFilters(r.filter()))
		if err != nil {
			errs = append(errs, fmt.Errorf("list volumes: %w", err))
		}
	}
	for _, v := range vols {
		if !wantArch(archs, v.Labels[stack.LabelArch]) {
			continue
		}
		if err := volumes.Remove(c, v.Name, new(volumes.RemoveOptions).WithForce(true)); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		removed.Volumes++
	}
	n, err := r.removeCgroups(archs)
	removed.Cgroups += n
	errs = append(errs, err)
	return removed, errors.Join(errs...)
}

// stopApps stops the pod's app containers, side by side, each given the stop timeout to
// finish its work, and leaves the infra container running. They are stopped before the pod
// itself: a pod stop stops the infra container with them, and Podman tears the pod's
// network down as the infra container stops, so a process still shutting down (finishing
// its calls, draining its NATS connection, flushing its spans) would lose its network
// halfway and sit out the whole stop timeout before SIGKILL.
func (r *Runtime) stopApps(c context.Context, name string) {
	data, err := pods.Inspect(c, name, nil)
	if err != nil {
		return // gone already, or dropPod says what is wrong
	}
	var wg sync.WaitGroup
	for _, ctr := range data.Containers {
		if ctr.ID == data.InfraContainerID {
			continue
		}
		wg.Go(func() {
			start := time.Now()
			if err := containers.Stop(c, ctr.ID, new(containers.StopOptions).WithTimeout(uint(stopTimeout))); err != nil && !isNotFound(err) {
				r.logger.Warn("stop container", "pod", name, "container", ctr.Name, "err", err)
			}
			r.logger.Debug("container stopped", "container", ctr.Name, "took", time.Since(start))
		})
	}
	wg.Wait()
}

// dropPod removes the pod, once stopApps has stopped its processes: in one call, which
// kills what still runs (the infra container, which has nothing to finish, and a process
// that outlived its stop timeout) rather than asking it to stop again and wait.
func (r *Runtime) dropPod(c context.Context, name string) error {
	start := time.Now()
	defer func() { r.logger.Debug("pod removed", "pod", name, "took", time.Since(start)) }()
	if _, err := pods.Remove(c, name, new(pods.RemoveOptions).WithForce(true).WithTimeout(0)); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove pod %s: %w", name, err)
	}
	return nil
}

// removeConcurrency bounds the pods Down removes at once. More would not be faster: what a
// removal costs is mostly the network teardown of the pod's infra container, and Podman 4.3
// runs those one at a time under one lock (CNI's cni.lock), whichever process does it: the
// API service, or the `podman container cleanup` that conmon starts as the infra container
// dies (that one, in a debug log of a pod removal, which then found the network clean). A
// teardown runs the plugins bridge, portmap, firewall, tuning and dnsname, some twenty
// iptables calls; portmap's are half of them, and none for a pod that publishes nothing.
// Measured on this machine (2 cores, loaded; the API's pod removal of an infra-only pod in a
// network like the stack's, 4-5 runs each): 0.35-0.38 s with two published ports, 0.27-0.32 s
// with one, 0.13-0.25 s with none. Both architectures (fourteen attachments: the collector is
// in three networks) so take 3.5-4.5 s whatever the concurrency (3 and 8 measured alike;
// 5.5-6.5 s while every pod also joined the collector's network, see upArch). What side by
// side does win is the rest of each removal (the infra container's stop, the containers'
// storage), which overlaps the others' teardowns and the next phase's stops.
const removeConcurrency = 8

// removalPhases orders the pods of archs (every architecture when none) for Down: the
// architectures' pods by their start level, the last level first, then the collector's; the
// processes of one phase are stopped side by side, once the phase before has stopped, so
// that every process stops with its peers, its NATS and its collector still there. A pod
// without a level label (made before there were any) goes with level 0.
func removalPhases(list []*entities.ListPodsReport, archs []string) [][]*entities.ListPodsReport {
	byLevel := map[int][]*entities.ListPodsReport{}
	var collector []*entities.ListPodsReport
	for _, p := range list {
		if !wantArch(archs, p.Labels[stack.LabelArch]) {
			continue
		}
		if p.Labels[stack.LabelArch] == topology.Telemetry {
			collector = append(collector, p)
			continue
		}
		l, _ := strconv.Atoi(p.Labels[labelLevel])
		byLevel[l] = append(byLevel[l], p)
	}
	var phases [][]*entities.ListPodsReport
	for _, l := range slices.Backward(slices.Sorted(maps.Keys(byLevel))) {
		phases = append(phases, byLevel[l])
	}
	if len(collector) > 0 {
		phases = append(phases, collector)
	}
	return phases
}
