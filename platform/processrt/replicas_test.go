package processrt_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// TestReplicasAsProcesses runs a split whose catalog+inventory and cart+payments+orders
// groups have two replicas each, as processes (about 1.5 minutes with a warm build cache on
// 2 cores: go test -run TestReplicasAsProcesses ./platform/processrt):
//
//   - each replica is a process of its own, named <group>-1 and -2, and both serve: the
//     traces of product pages show the catalog's spans from both processes;
//   - killing one replica of each leaves the shop answering (pages and a checkout), and up
//     starts the killed ones again, leaving the others be;
//   - up with a changed variable for both groups rolls them, one replica at a time, under a
//     small load that sees no failed request, and the new processes carry the variable;
//   - the gateway, alone, rolled the same way under the same load: failures, counted.
func TestReplicasAsProcesses(t *testing.T) {
	topo, err := topology.Get("", topology.Options{Split: "catalog+inventory*2,cart+payments+orders*2,shipping+notify",
		Edges: map[string]string{topology.SplitName: stacktest.AnyPort}, Collector: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	rt := newRuntime(t, processrt.Options{Stack: hsStack(t), AnyPorts: true})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := stack.UpOptions{AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: time.Minute, Progress: &progress}
	up := func(what string, t2 topology.Topology) {
		t.Helper()
		progress.Reset()
		start := time.Now()
		if err := rt.Up(ctx, t2, opts); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, progress.String())
		}
		t.Logf("%s in %s", what, time.Since(start).Round(time.Millisecond))
	}
	up("up", topo)
	base := "http://" + stacktest.EdgeAddr(t, rt, topo, topology.SplitName)
	status := func() map[string]stack.Status {
		t.Helper()
		sts, err := rt.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]stack.Status{}
		for _, s := range sts {
			out[s.Service] = s
		}
		return out
	}
	groups := map[string][]string{
		"catalog-inventory":    {"catalog-inventory-1", "catalog-inventory-2"},
		"cart-payments-orders": {"cart-payments-orders-1", "cart-payments-orders-2"},
	}
	sts := status()
	for group, replicas := range groups {
		for _, name := range replicas {
			s, ok := sts[name]
			if !ok || s.ReplicaOf != group || s.State != "running" || s.Health != stack.Ready || s.PID == 0 {
				t.Fatalf("%s: %+v, want a running, ready replica of %s", name, s, group)
			}
		}
		if _, ok := sts[group]; ok {
			t.Errorf("a process named %s beside its replicas", group)
		}
	}

	// Both catalog replicas serve the gateway's calls.
	collector := "http://" + sts["collector"].Addr
	var traces []string
	for i := range 30 {
		_, trace := get(t, fmt.Sprintf("%s/v1/products/sku-%04d", base, 1+i%10))
		traces = append(traces, trace)
	}
	want := []int{sts["catalog-inventory-1"].PID, sts["catalog-inventory-2"].PID}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		pids := servingPIDs(ctx, collector, traces, "catalog-inventory")
		return slices.Contains(pids, want[0]) && slices.Contains(pids, want[1]),
			fmt.Sprintf("catalog spans from processes %v, want both of %v", pids, want)
	})
	stacktest.Checkout(t, base, "test-token", "ada")

	// One replica of each killed: the shop answers.
	for _, name := range []string{"catalog-inventory-1", "cart-payments-orders-2"} {
		if err := syscall.Kill(sts[name].PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	stacktest.WaitFor(t, 10*time.Second, func() (bool, string) {
		now := status()
		return now["catalog-inventory-1"].State != "running" && now["cart-payments-orders-2"].State != "running", "killed replicas still running"
	})
	for i := range 20 {
		if code, _ := get(t, fmt.Sprintf("%s/v1/products/sku-%04d", base, 1+i%10)); code != http.StatusOK {
			t.Errorf("product page %d with a replica down: %d", i, code)
		}
	}
	stacktest.Checkout(t, base, "test-token", "bob")
	up("up after the kills", topo)
	healed := status()
	for name, s := range healed {
		killed := name == "catalog-inventory-1" || name == "cart-payments-orders-2"
		if killed == (s.PID == sts[name].PID) || s.Health != stack.Ready {
			t.Errorf("%s after up: pid %d (was %d), %s; want only the killed ones restarted", name, s.PID, sts[name].PID, s.Health)
		}
	}

	// Roll both groups under load: no failed request.
	rolled := withEnv(t, topo, "inventory:ROLL=1", "orders:ROLL=1")
	load := stacktest.StartLoad(base, 4, 20000)
	waitSent(t, load, 100)
	before := load.Sent()
	up("rolling up", rolled)
	during := load.Sent() - before
	sent, failed := load.Stop()
	t.Logf("rolling two groups of two replicas: %d requests during the roll, %d in all, %d failed %v", during, sent, stacktest.Failures(failed), failed)
	if stacktest.Failures(failed) > 0 || during == 0 {
		t.Errorf("rolling replicas: %d requests during the roll, failures %v; want some, and none failed", during, failed)
	}
	if n := strings.Count(progress.String(), "rolling replica"); n != 4 {
		t.Errorf("%d replicas rolled, want 4:\n%s", n, progress.String())
	}
	after := status()
	for _, replicas := range groups {
		for _, name := range replicas {
			s := after[name]
			if s.PID == healed[name].PID || !hasEnv(t, s.PID, "ROLL=1") {
				t.Errorf("%s after the roll: pid %d (was %d), want a new process with ROLL=1", name, s.PID, healed[name].PID)
			}
		}
	}
	if after["gateway"].PID != healed["gateway"].PID || after["shipping-notify"].PID != healed["shipping-notify"].PID {
		t.Error("the roll restarted a service whose spec did not change")
	}

	// The gateway, one process, rolled the same way: a restart, its failures counted.
	load = stacktest.StartLoad(base, 4, 20000)
	waitSent(t, load, 100)
	up("rolling the gateway", withEnv(t, rolled, "inventory:ROLL=1", "orders:ROLL=1", "gateway:ROLL=1"))
	sent, failed = load.Stop()
	t.Logf("rolling the gateway (one process): %d requests, %d failed %v", sent, stacktest.Failures(failed), failed)
}

// hsStack is a stack name of this helper's own: hs-<random>.
func hsStack(t *testing.T) string {
	return "hs-" + strings.TrimPrefix(stacktest.StackName(t), "mitosis-test-")
}

func withEnv(t *testing.T, topo topology.Topology, specs ...string) topology.Topology {
	t.Helper()
	opts := topology.Options{Split: topo.Archs[0].Split, Edges: map[string]string{topology.SplitName: topo.Archs[0].Edge}, Collector: "127.0.0.1:0"}
	for _, s := range specs {
		e, err := topology.ParseEnv(s)
		if err != nil {
			t.Fatal(err)
		}
		opts.Env = append(opts.Env, e)
	}
	out, err := topology.Get("", opts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitSent waits until the load has had n answers: it runs, before the stack changes.
func waitSent(t *testing.T, l *stacktest.Load, n int) {
	t.Helper()
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) { return l.Sent() >= n, fmt.Sprintf("%d sent", l.Sent()) })
}

// get GETs url and returns the status and the trace ID of the answer (its traceresponse).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	trace := ""
	if f := strings.Split(resp.Header.Get("traceresponse"), "-"); len(f) == 4 {
		trace = f[1]
	}
	return resp.StatusCode, trace
}

// servingPIDs lists the process IDs (the process.pid resource attribute) of the spans that
// the service made in the traces.
func servingPIDs(ctx context.Context, collector string, traces []string, service string) []int {
	var out []int
	for _, id := range traces {
		td, err := tracecollect.Client{BaseURL: collector}.Trace(ctx, id)
		if err != nil {
			continue
		}
		for _, rs := range td.GetResourceSpans() {
			name, pid := "", 0
			for _, kv := range rs.GetResource().GetAttributes() {
				switch kv.GetKey() {
				case "service.name":
					name = kv.GetValue().GetStringValue()
				case "process.pid":
					pid = int(kv.GetValue().GetIntValue())
				}
			}
			if name == service && pid > 0 && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	slices.Sort(out)
	return out
}

// hasEnv tells whether the process pid runs with the variable kv ("KEY=VALUE").
func hasEnv(t *testing.T, pid int, kv string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Errorf("environment of %d: %v", pid, err)
		return false
	}
	return slices.Contains(strings.Split(string(b), "\x00"), kv)
}
