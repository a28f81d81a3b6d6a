//go:build remote

package loadtest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/podmanrt/podmanrttest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/shop/logtest"
)

// TestFaultRunPodman runs the faults phase, shortened, against a fresh microservices stack
// of Podman pods (images built here, a stack name and edge of its own): payments' pod and the
// gateway's are killed and started again through the Podman runtime. The invariants hold;
// browsing does not need payments, and nothing answers without the edge. It skips without
// Podman, unless REQUIRE_CONTAINERS=1.
func TestFaultRunPodman(t *testing.T) {
	podmanrttest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if testing.Short() {
		t.Skip("-short: runs the microservices as Podman pods")
	}
	topo, err := topology.Get(topology.Services, topology.Options{Dir: repoRootForTest(t) + "/topologies", Collector: topology.NoCollector,
		ServicesEdge: stacktest.AnyPort})
	if err != nil {
		t.Fatal(err)
	}
	imgs := stacktest.BuildImages(t, repoRootForTest(t), topo, "mitosis-test")
	rt, err := podmanrt.Connect(ctx, podmanrt.Options{Stack: stacktest.StackName(t), Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := rt.Down(ctx, stack.DownOptions{Volumes: true}); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	var progress bytes.Buffer
	start := time.Now()
	pki := t.TempDir()
	opts := stack.UpOptions{PKI: pki, AdminToken: faultToken, RequestKey: "faults-request-key", ReadyTimeout: 2 * time.Minute,
		Progress: &progress, Env: map[string]string{"SHOP_RESERVATION_TTL": "20s"}}
	if err := rt.Up(ctx, topo, opts); err != nil {
		t.Fatalf("up: %v\n%s", err, progress.String())
	}
	t.Logf("services up as pods in %s", time.Since(start).Round(time.Millisecond))

	var out logtest.Buffer
	plan := shortFaults()
	// A pod takes 1-3 s to be ready again here (4.1 s seen in CI), and its callers up to
	// services/bounded.RedialWithin (3.4 s) more to reach it: with 8 s, a slow start left
	// a checkout no time to succeed.
	plan.After = 10 * time.Second
	r := &FaultRunner{Plan: plan, Progress: &out,
		Targets: faultTargets(t, rt, topo, map[string][]string{topology.Services: {"payments", "gateway"}}, pki)}
	start = time.Now()
	rep, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("faults phase in %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	a := rep.Archs[0]
	if !rep.Passed {
		t.Errorf("invariants:\n%s", a.Invariants.summary())
	}
	for _, c := range a.Invariants.Checks {
		if c.Skipped != "" {
			t.Errorf("%s skipped: %s", c.Name, c.Skipped)
		}
	}
	if a.Invariants.Checkouts.Orders == 0 {
		t.Error("no order was made: the invariants checked nothing")
	}
	payments, gateway := a.Cycles[0], a.Cycles[1]
	for _, c := range a.Cycles {
		if c.Error != "" || c.RecoveryS == nil {
			t.Errorf("%s: error %q, recovered %v", c.Process, c.Error, c.RecoveryS)
		}
	}
	for _, k := range []Kind{KindList, KindSearch, KindProduct, KindCartAdd} {
		if s := success(t, payments, k, phaseOutage); s != 1 {
			t.Errorf("payments down: %s succeeded %.0f%%, want 100%%", k, 100*s)
		}
	}
	if s := success(t, payments, KindCheckout, phaseOutage); s > 0.5 {
		t.Errorf("payments down: checkouts succeeded %.0f%%", 100*s)
	}
	for _, k := range Kinds() {
		if s := success(t, gateway, k, phaseOutage); s != 0 {
			t.Errorf("gateway down: %s succeeded %.0f%%, want 0%%", k, 100*s)
		}
	}
}
