package podmanrt_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/pods"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestSupervisorRestartsAProcessThatDies runs the monolith as Podman pods and kills the
// monolith's process behind Podman's back (SIGKILL from the host, as the OOM killer or a
// crash ends it: exit code 137): the restart policy made through the API brings it back, a
// new process in the same container, ready and taking a checkout. Then it kills the pod the
// way mitosis kill and the faults phase do (a stop): that one stays down, for several times
// what the restart took, until Start.
func TestSupervisorRestartsAProcessThatDies(t *testing.T) {
	topo, rt, name, edge := monolithStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := upOptions(t, &progress)
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	conn := podmanConn(ctx, t)
	base := "http://" + edge
	ctr := stack.ObjectName(name, topology.Monolith, "monolith") + "-app"
	before, err := containers.Inspect(conn, ctr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := before.HostConfig.RestartPolicy; p == nil || p.Name != "on-failure" {
		t.Fatalf("restart policy %+v, want on-failure", p)
	}

	// A crash: the process dies from outside, Podman did not stop it.
	if err := syscall.Kill(before.State.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill pid %d: %v", before.State.Pid, err)
	}
	killed := time.Now()
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		d, err := containers.Inspect(conn, ctr, nil)
		if err != nil {
			return false, err.Error()
		}
		return d.State.Running && d.State.Pid != before.State.Pid && d.RestartCount > before.RestartCount,
			d.State.Status
	})
	restarted := time.Since(killed)
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		code, err := statusCode(base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, http.StatusText(code)
	})
	t.Logf("killed from outside: running again after %s, ready after %s", restarted.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	after, err := containers.Inspect(conn, ctr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != before.ID {
		t.Errorf("container %s -> %s, want the same container restarted", before.ID, after.ID)
	}
	stacktest.Checkout(t, base, "test-token", "ada")
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if restarted := strings.Contains(s.Detail, "restarted 1 time(s) by Podman"); restarted != (s.Service == "monolith") || s.Health != stack.Ready {
			t.Errorf("status after the supervisor's restart: %+v", s)
		}
	}

	// A stop is not undone: watch it stay down for several times the restart's time.
	if err := rt.Kill(ctx, topology.Monolith, "monolith"); err != nil {
		t.Fatal(err)
	}
	watch := max(5*restarted, 3*time.Second)
	for end := time.Now().Add(watch); time.Now().Before(end); {
		d, err := containers.Inspect(conn, ctr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.State.Running || d.RestartCount != after.RestartCount {
			t.Fatalf("killed by mitosis kill, the container came back: %s, restarts %d -> %d", d.State.Status, after.RestartCount, d.RestartCount)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond): // sampling the state, not waiting for it
		}
	}
	if code, err := statusCode(base + "/healthz"); err == nil {
		t.Errorf("the killed monolith's edge still answers: %d", code)
	}
	if err := rt.Start(ctx, topology.Monolith, "monolith"); err != nil {
		t.Fatalf("start after kill: %v", err)
	}
	if code := stacktest.Get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("after start: /readyz %d", code)
	}
}

// statusCode is GET url's status, or the error of a request that got none.
func statusCode(url string) (int, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestUpFailsFastWhenAProcessCannotStart: a monolith that exits at once (its configuration is
// wrong: SHOP_RPC_TIMEOUT=soon) is restarted by the supervisor over and over; up does not
// wait for the ready timeout but says the container exited (seen between two restarts) or
// was restarted (its restart count grew), and which logs to read.
func TestUpFailsFastWhenAProcessCannotStart(t *testing.T) {
	topo, rt, _, _ := monolithStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := upOptions(t, &progress)
	opts.ReadyTimeout, opts.Env = 3*time.Minute, map[string]string{"SHOP_RPC_TIMEOUT": "soon"}
	err := rt.Up(ctx, topo, opts)
	if err == nil {
		t.Fatalf("up of a monolith that cannot start succeeded:\n%s", progress.String())
	}
	t.Logf("up: %v", err)
	if !strings.Contains(err.Error(), "see `mitosis logs monolith/monolith`") || strings.Contains(err.Error(), "within 3m") {
		t.Errorf("up: %v, want the container's exit or restarts named, not the ready timeout", err)
	}
}

// TestUpRefusesAnEdgeAnotherProgramHolds: a monolith whose edge another program listens on
// fails up, with an error naming the address and its service, not after tries that blame a
// port Podman picked; the pod that could not start is not left behind. Held before up, the
// address fails it before any pod is made; taken between the pod's creation and its start,
// it fails the check up makes of the pod's ports before it starts the pod (given
// releaseWait to come free, as a pod removed a moment ago holds it), and the pod is never
// started.
func TestUpRefusesAnEdgeAnotherProgramHolds(t *testing.T) {
	for _, when := range []string{"before up", "before the start"} {
		t.Run(when, func(t *testing.T) {
			_, rt, name, _ := monolithStack(t)
			pod := name + "-monolith-monolith"
			edge := stacktest.FreeAddr(t)
			take := func() { // also on up's goroutines: no Fatal
				other, err := net.Listen("tcp", edge)
				if err != nil {
					t.Errorf("take %s: %v", edge, err)
					return
				}
				t.Cleanup(func() { other.Close() })
			}
			if when == "before up" {
				take()
			}
			var made int
			rt.AfterCreate(func(p string) {
				if p != pod {
					return
				}
				if made++; made == 1 && when == "before the start" {
					take()
				}
			})
			topo, err := topology.Get(topology.Monolith, topology.Options{MonolithEdge: edge, Collector: topology.NoCollector})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var progress bytes.Buffer
			err = rt.Up(ctx, topo, upOptions(t, &progress))
			var taken *stack.AddrTakenError
			if !errors.As(err, &taken) || taken.Addr != edge || taken.Arch != topology.Monolith || taken.Service != "monolith" {
				t.Fatalf("up with the edge %s taken: %v, want an AddrTakenError naming monolith/monolith and the address\n%s", edge, err, progress.String())
			}
			if want := map[string]int{"before up": 0, "before the start": 1}[when]; made != want {
				t.Errorf("the monolith's pod was made %d times, want %d", made, want)
			}
			if exists, err := pods.Exists(podmanConn(ctx, t), pod, nil); err != nil || exists {
				t.Errorf("pod %s after the refused up: exists %t (%v), want it removed", pod, exists, err)
			}
		})
	}
}
