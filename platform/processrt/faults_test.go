package processrt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestKillAndStart runs the monolith topology (NATS and the monolith) as real processes on
// free ports, kills the monolith and starts it again: killed, it is not running and its edge
// refuses; NATS is untouched; started, it is ready on the same address with its data, and
// up then finds it as it made it (nothing restarts).
func TestKillAndStart(t *testing.T) {
	topo, err := topology.Get(topology.Monolith, topology.Options{MonolithEdge: stacktest.AnyPort, Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, processrt.Options{AnyPorts: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: &progress}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	base := "http://" + stacktest.EdgeAddr(t, rt, topo, topology.Monolith)
	stacktest.Checkout(t, base, "test-token", "ada")
	before := statusOf(t, rt)

	start := time.Now()
	if err := rt.Kill(ctx, topology.Monolith, "monolith"); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed in %s", time.Since(start).Round(time.Millisecond))
	killed := statusOf(t, rt)
	if m := killed["monolith"]; m.State != "killed" || m.Health == stack.Ready || !strings.Contains(m.Detail, "mitosis start") {
		t.Errorf("monolith after kill: %+v", m)
	}
	if n := killed["nats"]; n.PID != before["nats"].PID || n.State != "running" || n.Health != stack.Ready {
		t.Errorf("nats after the monolith's kill: %+v, was pid %d", n, before["nats"].PID)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the killed monolith's edge still answers")
	}
	if err := rt.Kill(ctx, topology.Monolith, "monolith"); !errors.Is(err, stack.ErrNotRunning) {
		t.Errorf("second kill: %v, want ErrNotRunning", err)
	}
	if st := statusOf(t, rt)["monolith"]; st.State != "killed" {
		t.Errorf("the runtime restarted the killed monolith by itself: %+v", st)
	}

	start = time.Now()
	if err := rt.Start(ctx, topology.Monolith, "monolith"); err != nil {
		t.Fatal(err)
	}
	t.Logf("started and ready in %s", time.Since(start).Round(time.Millisecond))
	after := statusOf(t, rt)
	if m := after["monolith"]; m.State != "running" || m.Health != stack.Ready || m.Addr != before["monolith"].Addr || m.PID == before["monolith"].PID {
		t.Errorf("monolith after start: %+v, before %+v", m, before["monolith"])
	}
	if n := after["nats"]; n.PID != before["nats"].PID {
		t.Errorf("nats restarted: pid %d, was %d", n.PID, before["nats"].PID)
	}
	if !strings.Contains(stacktest.Orders(t, base, "ada"), `"id"`) {
		t.Error("ada's order is gone after the restart")
	}
	if err := rt.Start(ctx, topology.Monolith, "monolith"); !errors.Is(err, stack.ErrAlreadyRunning) {
		t.Errorf("second start: %v, want ErrAlreadyRunning", err)
	}
	for _, f := range []func(context.Context, string, string) error{rt.Kill, rt.Start} {
		if err := f(ctx, topology.Monolith, "no-such"); !errors.Is(err, stack.ErrNoService) {
			t.Errorf("unknown service: %v, want ErrNoService", err)
		}
	}

	// Started as it was made: up finds nothing to change.
	progress.Reset()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up after start: %v", err)
	}
	if again := statusOf(t, rt); again["monolith"].PID != after["monolith"].PID || !strings.Contains(progress.String(), "monolith/monolith: unchanged") {
		t.Errorf("up restarted the started monolith:\n%s", progress.String())
	}
}

func statusOf(t *testing.T, rt stack.Runtime) map[string]stack.Status {
	t.Helper()
	sts, err := rt.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]stack.Status{}
	for _, s := range sts {
		out[s.Service] = s
	}
	if len(out) != 3 { // the monolith, its NATS, the stack's renewer
		t.Fatalf("status: %s", fmt.Sprint(sts))
	}
	return out
}
