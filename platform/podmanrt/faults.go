package podmanrt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/pods"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// killWait bounds the wait for a killed pod's container to be seen stopped.
const killWait = 15 * time.Second

// Kill kills the service's pod as a crash would, and keeps it down: the app container gets
// SIGKILL through a stop with no grace (`podman stop -t 0`), then the pod's infra container,
// which holds the network namespace and the published ports, is killed. A stop, unlike a
// kill, is one the restart policy (restartPolicy) does not undo: the pod stays down until
// Start (or Up) starts it again, so that an outage lasts as long as its caller (mitosis
// kill, the faults phase) means it to. What the supervisor does with a process that dies on
// its own is restartPolicy's.
func (r *Runtime) Kill(ctx context.Context, arch, service string) error {
	c, cancel := r.with(ctx)
	defer cancel()
	pod, err := r.ownPod(c, arch, service)
	if err != nil {
		return err
	}
	if why := r.whyNotRunning(c, pod); why != "" {
		return fmt.Errorf("%s/%s: %w (%s)", arch, service, stack.ErrNotRunning, why)
	}
	data, err := pods.Inspect(c, pod, nil)
	if err != nil {
		return fmt.Errorf("inspect pod %s: %w", pod, err)
	}
	// The app first, stopped: its SIGKILL is the crash, and a stop is not restarted. Then the
	// infra container, which has no restart policy, killed: a stop would wait for its network
	// to be torn down (half a second here), which a kill leaves to Podman's cleanup after it.
	if err := containers.Stop(c, containerName(pod), new(containers.StopOptions).WithTimeout(0)); err != nil && !isNotFound(err) {
		return fmt.Errorf("kill %s: %w", containerName(pod), err)
	}
	if err := containers.Kill(c, data.InfraContainerID, new(containers.KillOptions).WithSignal("SIGKILL")); err != nil &&
		!isNotFound(err) && !strings.Contains(err.Error(), "not running") {
		return fmt.Errorf("kill the infra container of pod %s: %w", pod, err)
	}
	deadline := time.Now().Add(killWait)
	for r.whyNotRunning(c, pod) == "" {
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s still runs %s after SIGKILL", pod, killWait)
		}
		select {
		case <-c.Done():
			return fmt.Errorf("kill pod %s: %w", pod, c.Err())
		case <-time.After(20 * time.Millisecond): // Podman notes the exit on its own time
		}
	}
	return nil
}

// Start starts the service's pod again (`podman pod start`): the same container, so the same
// image, command, environment, limits and volume; its infra container comes back with the
// pod's fixed address and hardware address and its published ports. It then waits until the
// pod's readiness probe passes through its published port.
func (r *Runtime) Start(ctx context.Context, arch, service string) error {
	c, cancel := r.with(ctx)
	defer cancel()
	pod, err := r.ownPod(c, arch, service)
	if err != nil {
		return err
	}
	if why := r.whyNotRunning(c, pod); why == "" {
		return fmt.Errorf("%s/%s: %w", arch, service, stack.ErrAlreadyRunning)
	}
	rep, err := pods.Start(c, pod, nil)
	if err == nil && rep != nil {
		err = errors.Join(rep.Errs...)
	}
	if err != nil {
		return fmt.Errorf("start pod %s: %w", pod, err)
	}
	data, err := pods.Inspect(c, pod, nil)
	if err != nil {
		return fmt.Errorf("inspect pod %s: %w", pod, err)
	}
	probe, ok := parseProbe(data.Labels[labelProbe])
	if !ok {
		return fmt.Errorf("pod %s has no readiness probe label: remake it with `mitosis up`", pod)
	}
	addr, err := r.hostAddr(c, pod, probe.Port)
	if err != nil {
		return err
	}
	alive := r.aliveCheck(c, pod, arch, service)
	if err := stack.WaitReady(c, probe, addr, data.Labels[labelTLS], stack.DefaultReadyTimeout, alive); err != nil {
		return fmt.Errorf("%s: %w", pod, err)
	}
	return nil
}

// ownPod returns the name of the service's pod, stack.ErrNoService when the stack has none
// (or the pod of that name is not this stack's).
func (r *Runtime) ownPod(c context.Context, arch, service string) (string, error) {
	pod := stack.ObjectName(r.stack, arch, service)
	data, err := pods.Inspect(c, pod, nil)
	if isNotFound(err) {
		return "", fmt.Errorf("%s/%s in stack %s: %w", arch, service, r.stack, stack.ErrNoService)
	}
	if err != nil {
		return "", fmt.Errorf("inspect pod %s: %w", pod, err)
	}
	if data.Labels[stack.LabelStack] != r.stack || data.Labels[stack.LabelArch] != arch || data.Labels[stack.LabelService] != service {
		return "", fmt.Errorf("pod %s is not this stack's (labels %v): %w", pod, data.Labels, stack.ErrNoService)
	}
	return pod, nil
}
