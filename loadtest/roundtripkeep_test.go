package loadtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// A long run: by the time the report is written, the collector's metric window has let go
// of the early steps' points. Read at the end, an early step has no figure; read as it
// ended, every step has its own, and the section at the common rate uses it.
func TestRoundTripKeeperKeepsStepsTheCollectorLetGo(t *testing.T) {
	// A small byte bound stands for the 10 minutes a long run outlasts: later pushes push the
	// early points out, as later minutes do.
	c := startCollectorWith(t, tracecollect.Config{MaxMetricBytes: 24 << 10})
	ctx := t.Context()
	url := "http://" + c.QueryAddr()
	keeper := NewRoundTripKeeper(url)
	keeper.settle = 10 * time.Second // polled: the services' pushes come after their step is done
	mono := newProcess(t, c, "monolith", "monolith")
	gw, orders := newProcess(t, c, "services", "gateway"), newProcess(t, c, "services", "orders")
	pushAll := func(ps ...*process) {
		for _, p := range ps {
			p.push(t)
		}
	}
	step := func(index int, arch string, rate float64, from, to time.Time) Step {
		return Step{Index: index, Arch: arch, Phase: "ladder", Offered: rate, Started: from, Seconds: to.Sub(from).Seconds()}
	}

	// Before the first steps: the stack warming up.
	mono.requests(ctx, 5)
	mono.roundTrips(ctx, "Keys", "catalog_products", 50)
	gw.requests(ctx, 3)
	orders.roundTrips(ctx, "Get", "orders_sagas", 30)
	pushAll(mono, gw, orders)

	// Step 1, the monolith at 25 req/s: 8 round trips a request.
	from1 := time.Now()
	mono.requests(ctx, 20)
	mono.roundTrips(ctx, "Get", "orders_sagas", 100)
	mono.roundTrips(ctx, "Create", "payments_charges", 60)
	pushAll(mono)
	to1 := time.Now()
	pushAll(mono)         // its next push, idle while the services run
	mono.requests(ctx, 4) // the next step's, pushed after this one ended
	mono.roundTrips(ctx, "Update", "cart_carts", 90)
	pushAll(mono)
	keeper.StepDone(step(1, "monolith", 25, from1, to1))

	// Step 2, the services at 25 req/s: 10 a request. Its processes push after the step is
	// done, as a stack's do every 10 seconds: the keeper waits for them.
	from2 := time.Now()
	gw.requests(ctx, 20)
	orders.roundTrips(ctx, "Get", "orders_sagas", 180)
	orders.publishes(ctx, "order.paid", 20)
	pushAll(gw, orders)
	to2 := time.Now()
	keeper.StepDone(step(2, "services", 25, from2, to2))
	keeper.StepDone(Step{Index: 3, Arch: "services", Phase: "search", Offered: 40, Started: to2, Seconds: 1}) // not kept
	// Their next push, idle.
	pushAll(gw, orders)
	gw.requests(ctx, 1)
	pushAll(gw, orders)
	keeper.Wait()

	// Step 3, the monolith at 50 req/s, then long enough for the early points to go.
	from3 := time.Now()
	mono.requests(ctx, 10)
	mono.roundTrips(ctx, "Get", "orders_sagas", 30)
	pushAll(mono)
	to3 := time.Now()
	pushAll(mono)
	keeper.StepDone(step(4, "monolith", 50, from3, to3))
	keeper.Wait()
	for i := 0; ; i++ {
		early := c.Metrics().Series(tracecollect.MetricQuery{End: to2})
		if len(early) == 0 {
			break
		}
		if i == 200 {
			t.Fatalf("after %d pushes the collector still holds %d series of the early steps", i, len(early))
		}
		mono.requests(ctx, 1)
		gw.requests(ctx, 1)
		pushAll(mono, gw, orders)
	}

	sides := []TraceSideSource{{Label: "monolith", From: from1, To: to1}, {Label: "services", From: from2, To: to2}}
	if rt := CollectRoundTrips(ctx, url, sides, nil); len(rt.Sides) == 2 && (rt.Sides[0].Requests != 0 || rt.Sides[1].Requests != 0) {
		t.Fatalf("the early steps are still in the collector (%+v): the test shows nothing", rt.Sides)
	}
	rt := CollectRoundTrips(ctx, url, sides, keeper)
	if rt.Reason != "" || len(rt.Sides) != 2 {
		t.Fatalf("section: %+v", rt)
	}
	if m := rt.Sides[0]; m.Arch != "monolith" || m.Requests != 20 || m.RoundTrips != 160 || m.PerRequest != 8 ||
		len(m.Top) != 2 || m.Top[0] != (RoundTripOp{"Get", "orders_sagas", 5}) {
		t.Errorf("monolith at the common rate: %+v", m)
	}
	if s := rt.Sides[1]; s.Arch != "services" || s.Requests != 20 || s.RoundTrips != 200 || s.PerRequest != 10 {
		t.Errorf("services at the common rate: %+v", s)
	}

	want := []struct {
		step                 int
		arch                 string
		offered              float64
		requests, roundTrips float64
	}{{1, "monolith", 25, 20, 160}, {2, "services", 25, 20, 200}, {4, "monolith", 50, 10, 30}}
	if len(rt.Steps) != len(want) {
		t.Fatalf("steps kept: %+v, want the %d ladder steps", rt.Steps, len(want))
	}
	for i, w := range want {
		if s := rt.Steps[i]; s.Step != w.step || s.Arch != w.arch || s.Offered != w.offered || s.Requests != w.requests || s.RoundTrips != w.roundTrips || s.Note != "" {
			t.Errorf("step %d: %+v, want %+v", i, s, w)
		}
	}

	out := rendered(t, &Report{Schema: Schema, ID: "rt", RoundTrips: rt})
	for name, out := range out {
		if !strings.Contains(out, stepsIntro) || !strings.Contains(out, "Get orders_sagas 3.00") || !strings.Contains(out, "10.00") {
			t.Errorf("%s lacks the steps:\n%s", name, out)
		}
	}
	if !strings.Contains(out["report.md"], "| 4 | monolith | 50 | 10 | 30 | 3.00 | Get orders_sagas 3.00 |") {
		t.Errorf("report.md lacks step 4's row:\n%s", out["report.md"])
	}
}

// Without a collector the keeper keeps nothing and costs nothing.
func TestRoundTripKeeperWithoutCollector(t *testing.T) {
	k := NewRoundTripKeeper("")
	k.StepDone(Step{Index: 1, Arch: "monolith", Phase: "ladder", Offered: 25, Started: time.Now(), Seconds: 1})
	if k != nil || k.Steps() != nil {
		t.Fatalf("keeper without a collector: %+v", k)
	}
	if rt := CollectRoundTrips(context.Background(), "", nil, k); rt.Reason == "" || rt.Steps != nil {
		t.Errorf("section without a collector: %+v", rt)
	}
}
