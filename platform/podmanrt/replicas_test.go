package podmanrt_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"

	"github.com/mitosis-dev/mitosis/platform/podmanrt/podmanrttest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// TestReplicasAsPods runs a split whose catalog+inventory group has two replicas as pods
// (about 2 minutes once the images are built, 5 more to build them, on 2 cores: go test -run
// TestReplicasAsPods ./platform/podmanrt):
//
//   - each replica is a pod of its own, and the limits read back from the containers add up
//     to the architecture's budget, the group's part split between its two;
//   - both serve: the catalog's spans come from both pods (their host names);
//   - a replica killed leaves the shop answering, and up remakes it alone;
//   - up with a changed variable rolls the two under a small load without a failed request,
//     and the new containers carry it; the group of one process, rolled the same way,
//     fails requests, counted.
func TestReplicasAsPods(t *testing.T) {
	conn := podmanrttest.Require(t)
	// The edge keeps its address while the gateway's pod is remade under load, so the test
	// picks it, right before the first up: the image build takes minutes on a clean clone, and
	// a port picked before it can be taken meanwhile. Until then "" (the default edge) does
	// for the topology the images are built from.
	var edge string
	const split = "catalog+inventory*2,cart+payments+orders+shipping+notify"
	options := func(env ...string) topology.Options {
		o := topology.Options{Split: split, Edges: map[string]string{topology.SplitName: edge}, Collector: "127.0.0.1:0"}
		for _, s := range env {
			e, err := topology.ParseEnv(s)
			if err != nil {
				t.Fatal(err)
			}
			o.Env = append(o.Env, e)
		}
		return o
	}
	topo, err := topology.Get("", options())
	if err != nil {
		t.Fatal(err)
	}
	imgs := stacktest.BuildImages(t, repoRoot(t), topo, "hs-test")
	edge = stacktest.FreeAddr(t)
	name := "hs-" + strings.TrimPrefix(stacktest.StackName(t), "mitosis-test-")
	rt := connect(t, name, imgs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := stack.UpOptions{PKI: t.TempDir(), AdminToken: "test-token", RequestKey: "test-request-key", ReadyTimeout: 2 * time.Minute, Progress: &progress}
	up := func(what string, o topology.Options) {
		t.Helper()
		tp, err := topology.Get("", o)
		if err != nil {
			t.Fatal(err)
		}
		progress.Reset()
		start := time.Now()
		if err := rt.Up(ctx, tp, opts); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, progress.String())
		}
		t.Logf("%s in %s", what, time.Since(start).Round(time.Millisecond))
	}
	up("up", options())
	base := "http://" + edge
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
	replicas := []string{"catalog-inventory-1", "catalog-inventory-2"}
	sts := status()
	for _, r := range replicas {
		if s := sts[r]; s.ReplicaOf != "catalog-inventory" || s.State != "running" || s.Health != stack.Ready {
			t.Fatalf("%s: %+v, want a running, ready replica of catalog-inventory", r, s)
		}
	}

	// The limits Podman enforces add up to the budget; each replica is of its group's size,
	// about, the others making room (platform/topology's share).
	limits := map[string][2]int{} // service -> millicores, MiB
	ctrs, err := containers.List(conn, new(containers.ListOptions).WithFilters(map[string][]string{
		"label": {stack.LabelStack + "=" + name, stack.LabelArch + "=" + topology.SplitName}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		if c.IsInfra {
			continue
		}
		data, err := containers.Inspect(conn, c.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		limits[c.Labels[stack.LabelService]] = [2]int{int(data.HostConfig.CpuQuota * 1000 / int64(data.HostConfig.CpuPeriod)), int(data.HostConfig.Memory >> 20)}
	}
	milli, mem := 0, 0
	for _, l := range limits {
		milli += l[0]
		mem += l[1]
	}
	if len(limits) != 5 || milli != int(topo.Budget.CPUs*1000+0.5) || mem != topo.Budget.MemoryMB {
		t.Errorf("limits read back %v: %d containers, %d millicores and %d MiB in all; want 5, and the budget %+v", limits, len(limits), milli, mem, topo.Budget)
	}
	one, err := topology.Get("", topology.Options{Split: strings.ReplaceAll(split, "*2", ""), Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	alone, _ := one.Archs[0].Service("catalog-inventory")
	if each, all := limits[replicas[0]][0], int(alone.CPUs*1000+0.5); limits[replicas[0]] != limits[replicas[1]] || each <= all/2 || each > all {
		t.Errorf("replicas' limits %v and %v, want each more than half the group's %g CPUs alone, at most all", limits[replicas[0]], limits[replicas[1]], alone.CPUs)
	}
	t.Logf("limits read back from the containers: %v (millicores, MiB)", limits)

	// Both serve.
	collector := "http://" + sts["collector"].Addr
	var traces []string
	for i := range 30 {
		traces = append(traces, traceOf(t, fmt.Sprintf("%s/v1/products/sku-%04d", base, 1+i%10)))
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		hosts := servingHosts(ctx, collector, traces, "catalog-inventory")
		return slices.Equal(hosts, replicas), fmt.Sprintf("catalog spans from hosts %v, want %v", hosts, replicas)
	})

	// One killed: the shop answers; up remakes it alone.
	victim := stack.ObjectName(name, topology.SplitName, replicas[0]) + "-app"
	if err := containers.Kill(conn, victim, new(containers.KillOptions).WithSignal("SIGKILL")); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) {
		s := status()[replicas[0]]
		return s.State != "running", fmt.Sprintf("%+v", s)
	})
	for i := range 20 {
		if code := stacktest.Get(t, fmt.Sprintf("%s/v1/products/sku-%04d", base, 1+i%10)); code != http.StatusOK {
			t.Errorf("product page %d with a replica down: %d", i, code)
		}
	}
	stacktest.Checkout(t, base, "test-token", "ada")
	up("up after the kill", options())
	if !strings.Contains(progress.String(), replicas[0]+": not running, remaking it") || strings.Count(progress.String(), "remaking") != 1 {
		t.Errorf("up after the kill, want only %s remade:\n%s", replicas[0], progress.String())
	}

	// Rolled under load: no failure, and the new containers have the variable.
	load := stacktest.StartLoad(base, 4, 20000)
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) { return load.Sent() >= 100, fmt.Sprintf("%d sent", load.Sent()) })
	before := load.Sent()
	up("rolling up", options("inventory:ROLL=1"))
	during := load.Sent() - before
	sent, failed := load.Stop()
	t.Logf("rolling a group of two pods: %d requests during the roll, %d in all, %d failed %v", during, sent, stacktest.Failures(failed), failed)
	if stacktest.Failures(failed) > 0 || during == 0 {
		t.Errorf("rolling replicas: %d requests during the roll, failures %v; want some, and none failed", during, failed)
	}
	if n := strings.Count(progress.String(), "rolling replica"); n != 2 {
		t.Errorf("%d replicas rolled, want 2:\n%s", n, progress.String())
	}
	for _, r := range replicas {
		data, err := containers.Inspect(conn, stack.ObjectName(name, topology.SplitName, r)+"-app", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(data.Config.Env, "ROLL=1") {
			t.Errorf("%s after the roll: env %v, want ROLL=1", r, data.Config.Env)
		}
	}

	// The group of one process, rolled: a restart, whose failures are counted.
	load = stacktest.StartLoad(base, 4, 20000)
	stacktest.WaitFor(t, 30*time.Second, func() (bool, string) { return load.Sent() >= 100, fmt.Sprintf("%d sent", load.Sent()) })
	up("rolling the group of one process", options("inventory:ROLL=1", "cart:ROLL=1"))
	sent, failed = load.Stop()
	t.Logf("rolling cart+payments+orders+shipping+notify (one pod): %d requests, %d failed %v", sent, stacktest.Failures(failed), failed)
}

// traceOf GETs url and returns the trace ID of its answer (traceresponse).
func traceOf(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if f := strings.Split(resp.Header.Get("traceresponse"), "-"); len(f) == 4 {
		return f[1]
	}
	return ""
}

// servingHosts lists the host names (host.name, a pod's hostname: its process's name) of the
// spans the service made in the traces.
func servingHosts(ctx context.Context, collector string, traces []string, service string) []string {
	var out []string
	for _, id := range traces {
		td, err := tracecollect.Client{BaseURL: collector}.Trace(ctx, id)
		if err != nil {
			continue
		}
		for _, rs := range td.GetResourceSpans() {
			name, host := "", ""
			for _, kv := range rs.GetResource().GetAttributes() {
				switch kv.GetKey() {
				case "service.name":
					name = kv.GetValue().GetStringValue()
				case "host.name":
					host = kv.GetValue().GetStringValue()
				}
			}
			if name == service && host != "" && !slices.Contains(out, host) {
				out = append(out, host)
			}
		}
	}
	slices.Sort(out)
	return out
}
