package processrt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/stack"
)

// killWait bounds the wait for a killed process to be gone: SIGKILL cannot be caught, so
// only a process stuck in the kernel (uninterruptible I/O) takes longer.
const killWait = 10 * time.Second

// Kill sends SIGKILL to the service's recorded process and its session (it was started as a
// session leader, so nothing it spawned survives), waits until it is gone, and notes the
// kill in its record. Nothing restarts it: this runtime supervises nothing, and only Start
// or Up start it again.
func (r *Runtime) Kill(ctx context.Context, arch, service string) error {
	rec, err := r.recordOf(arch, service)
	if err != nil {
		return err
	}
	if !alive(rec) {
		return fmt.Errorf("%s/%s: %w", arch, service, stack.ErrNotRunning)
	}
	// The session first (pid = pgid of a session leader), then the pid itself in case it
	// left its group.
	_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
	if err := syscall.Kill(rec.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s/%s: kill %d: %w", arch, service, rec.PID, err)
	}
	deadline := time.Now().Add(killWait)
	for alive(rec) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/%s: process %d still there %s after SIGKILL", arch, service, rec.PID, killWait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s/%s: %w", arch, service, ctx.Err())
		case <-time.After(10 * time.Millisecond): // a foreign process: nothing to wait on
		}
	}
	now := time.Now().UTC()
	rec.Killed = &now
	return writeRecord(r.recordPath(arch, service), rec)
}

// Start starts a service that is down again from its record: the same binary, arguments,
// environment, folder and ports, and waits until it is ready. A port someone else took in
// the meantime fails the start rather than letting the probe pass against the newcomer.
func (r *Runtime) Start(ctx context.Context, arch, service string) error {
	rec, err := r.recordOf(arch, service)
	if err != nil {
		return err
	}
	if alive(rec) {
		return fmt.Errorf("%s/%s (pid %d): %w", arch, service, rec.PID, stack.ErrAlreadyRunning)
	}
	if rec.Binary == "" || rec.Env == nil || rec.Dir == "" {
		return fmt.Errorf("%s/%s: its record predates start (no command kept): run `mitosis up` instead", arch, service)
	}
	if _, err := os.Stat(rec.Binary); err != nil {
		return fmt.Errorf("%s/%s: its binary is gone (a later build replaced it): run `mitosis up` instead: %w", arch, service, err)
	}
	for _, hp := range rec.Ports {
		if err := stack.CheckPort(net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))); err != nil {
			return fmt.Errorf("%s/%s: its port %w", arch, service, err)
		}
	}
	rec, exited, err := r.spawn(rec)
	if err != nil {
		return err
	}
	if rec.Cgroup != "" {
		// Back into its architecture's shared budget, or the comparison that killed it
		// would measure it unlimited from now on.
		fs, err := cgroup.Open(r.opts.CgroupRoot)
		if err == nil {
			err = fs.Group(r.opts.Stack, rec.Arch).Add(rec.PID)
		}
		if err != nil {
			stop(rec, 5*time.Second)
			return fmt.Errorf("%s/%s: back into its shared budget's group %s: %w", arch, service, rec.Cgroup, err)
		}
	}
	_, err = r.waitReady(ctx, rec, exited, stack.DefaultReadyTimeout)
	return err
}

// recordOf reads a service's record: stack.ErrNoService when there is none.
func (r *Runtime) recordOf(arch, service string) (record, error) {
	rec, err := readRecord(r.recordPath(arch, service))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, fmt.Errorf("%s/%s in stack %s: %w", arch, service, r.opts.Stack, stack.ErrNoService)
	}
	if err != nil {
		return rec, fmt.Errorf("%s/%s: %w", arch, service, err)
	}
	return rec, nil
}
