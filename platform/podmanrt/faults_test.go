package podmanrt_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestKillAndStartPodman runs the monolith topology as Podman pods, kills one pod and starts
// it again, the monolith's and then NATS's: killed, the pod's container is not running and
// the edge refuses, the other pod is untouched (same container, same start); started, it is
// the same container again, ready through its published port, with its data, and up finds
// it as it made it.
func TestKillAndStartPodman(t *testing.T) {
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
	stacktest.Checkout(t, base, "test-token", "ada")

	// started is each app container's ID and start time: a container killed and started
	// keeps its ID and gets a new start time; one left alone keeps both.
	type run struct{ id, at string }
	started := func() map[string]run {
		t.Helper()
		out := map[string]run{}
		for _, svc := range []string{"monolith", "nats"} {
			d, err := containers.Inspect(conn, stack.ObjectName(name, topology.Monolith, svc)+"-app", nil)
			if err != nil {
				t.Fatal(err)
			}
			out[svc] = run{d.ID, d.State.StartedAt.String()}
		}
		return out
	}
	for _, victim := range []string{"monolith", "nats"} {
		other := map[string]string{"monolith": "nats", "nats": "monolith"}[victim]
		before := started()
		begin := time.Now()
		if err := rt.Kill(ctx, topology.Monolith, victim); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s killed in %s", victim, time.Since(begin).Round(time.Millisecond))
		for _, s := range statusByService(t, rt) {
			switch s.Service {
			case victim:
				if s.State == "running" || s.Health == stack.Ready {
					t.Errorf("%s after kill: %+v", victim, s)
				}
			case other:
				if s.State != "running" {
					t.Errorf("%s after %s's kill: %+v", other, victim, s)
				}
			}
		}
		if victim == "monolith" {
			if _, err := http.Get(base + "/healthz"); err == nil {
				t.Error("the killed monolith's edge still answers")
			}
		}
		if err := rt.Kill(ctx, topology.Monolith, victim); !errors.Is(err, stack.ErrNotRunning) {
			t.Errorf("second kill of %s: %v, want ErrNotRunning", victim, err)
		}
		begin = time.Now()
		if err := rt.Start(ctx, topology.Monolith, victim); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s started and ready in %s", victim, time.Since(begin).Round(time.Millisecond))
		after := started()
		if after[other] != before[other] {
			t.Errorf("%s was touched by %s's kill and start: %s -> %s", other, victim, before[other], after[other])
		}
		if b, a := before[victim], after[victim]; b.id != a.id || b.at == a.at {
			t.Errorf("%s: container %s -> %s, want the same container started again", victim, before[victim], after[victim])
		}
		if err := rt.Start(ctx, topology.Monolith, victim); !errors.Is(err, stack.ErrAlreadyRunning) {
			t.Errorf("second start of %s: %v, want ErrAlreadyRunning", victim, err)
		}
		// The monolith reconnects to a NATS started again by itself: wait for its readiness.
		stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
			code := stacktest.Get(t, base+"/readyz")
			return code == http.StatusOK, http.StatusText(code)
		})
		if !strings.Contains(stacktest.Orders(t, base, "ada"), `"id"`) {
			t.Errorf("ada's order is gone after %s's restart", victim)
		}
	}
	if err := rt.Kill(ctx, topology.Monolith, "no-such"); !errors.Is(err, stack.ErrNoService) {
		t.Errorf("kill of an unknown service: %v, want ErrNoService", err)
	}
	progress.Reset()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up after start: %v", err)
	}
	if !strings.Contains(progress.String(), "monolith/monolith: unchanged") || !strings.Contains(progress.String(), "monolith/nats: unchanged") {
		t.Errorf("up remade a started pod:\n%s", progress.String())
	}
}

func statusByService(t *testing.T, rt stack.Runtime) []stack.Status {
	t.Helper()
	sts, err := rt.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 3 { // the monolith, its NATS, the stack's renewer
		t.Fatalf("status: %+v", sts)
	}
	return sts
}
