package processrt_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// TestMonolithAsProcesses: up, a checkout traced into the collector, up again (nothing
// restarts), a killed process shows in status and up restarts it, down leaves no process.
func TestMonolithAsProcesses(t *testing.T) {
	edge := stacktest.FreeAddr(t)
	topo, err := topology.Get(topology.Monolith, topology.Options{MonolithEdge: edge, Collector: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	rt := processrt.New(processrt.Options{Root: repoRoot(t), State: state, Stack: stacktest.StackName(t)})
	t.Cleanup(func() {
		if _, err := rt.Down(context.Background(), nil); err != nil {
			t.Errorf("cleanup down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: &progress}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	base := "http://" + edge
	if code := stacktest.Get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz: %d", code)
	}
	_, traceID := stacktest.CheckoutTraced(t, base, "test-token", "ada")
	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var collector string
	for _, s := range sts {
		if s.Arch == topology.Telemetry {
			collector = "http://" + s.Addr
		}
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		return stacktest.CheckoutTrace(ctx, collector, traceID, topology.Monolith, []string{"monolith"})
	})

	pids := func() map[string]int {
		sts, err := rt.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, s := range sts {
			out[s.Service] = s.PID
			if s.State == "running" && (s.Health != stack.Ready || s.MemBytes == 0) {
				t.Errorf("status: %+v", s)
			}
		}
		return out
	}
	before := pids()
	progress.Reset()
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("second up: %v\n%s", err, progress.String())
	}
	if after := pids(); fmt.Sprint(after) != fmt.Sprint(before) {
		var logs bytes.Buffer
		_ = rt.Logs(ctx, stack.LogsOptions{Tail: 40}, &logs)
		t.Fatalf("second up restarted processes: %v -> %v\n%s\nlogs:\n%s", before, after, progress.String(), logs.String())
	}

	if err := syscall.Kill(before["monolith"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 10*time.Second, func() (bool, string) {
		sts, err := rt.Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, s := range sts {
			if s.Service == "monolith" {
				return s.State != "running", fmt.Sprintf("%+v", s)
			}
		}
		return false, "no monolith"
	})
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("healing up: %v", err)
	}
	if !strings.Contains(stacktest.Orders(t, base, "ada"), `"id"`) {
		t.Error("the order did not survive the monolith's restart")
	}

	var logs bytes.Buffer
	if err := rt.Logs(ctx, stack.LogsOptions{Services: []string{"monolith/monolith"}, Tail: 5}, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(logs.String(), "monolith/monolith | ") {
		t.Errorf("logs:\n%s", logs.String())
	}

	final := pids()
	removed, err := rt.Down(ctx, nil)
	if err != nil || removed.Processes != 3 {
		t.Fatalf("down: %s, %v", removed, err)
	}
	for svc, pid := range final {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still runs after down", svc, pid)
		}
	}
	if sts, _ := rt.Status(ctx); len(sts) != 0 {
		t.Errorf("status after down: %+v", sts)
	}
}
