package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// A long run: the collector's bounded store drops the traces of an early step to make room
// for later ones before the report reads them. Read at the end, the early step has no trace
// left; kept as it ended, its traces make the breakdown.
func TestTraceKeeperKeepsStepsTheCollectorDrops(t *testing.T) {
	col, err := tracecollect.Start(tracecollect.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", QueryAddr: "127.0.0.1:0",
		MaxSpans: 12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = col.Close(context.Background()) })

	sides := []TraceSideSource{{Label: "monolith", Service: "monolith"}, {Label: "services", Service: "gateway"}}
	src := TraceSource{Collector: "http://" + col.QueryAddr(), Settle: 50 * time.Millisecond, Sides: sides}
	keeper := NewTraceKeeper(src)

	// The early steps at 25 req/s, one per architecture, each with two traces.
	start := time.Now().Add(-2 * time.Second)
	for i, s := range sides {
		col.Store().Add(edgeTrace(byte(10*i+1), s.Label, s.Service, start.Add(100*time.Millisecond), false))
		col.Store().Add(edgeTrace(byte(10*i+2), s.Label, s.Service, start.Add(200*time.Millisecond), false))
		keeper.StepDone(Step{Arch: s.Label, Phase: "ladder", Offered: 25, Started: start, Seconds: 1})
	}
	keeper.Wait()
	// A later step fills the store (3 spans a trace, 12 at most) with traces of its own.
	later := time.Now()
	for i := range 8 {
		col.Store().Add(edgeTrace(byte(100+i), "services", "gateway", later, false))
	}

	for i := range src.Sides {
		src.Sides[i].From, src.Sides[i].To = start, start.Add(time.Second)
	}
	src.Rate = 25
	if got := CollectTraces(context.Background(), src, ""); got.Collected {
		t.Fatalf("the early step's traces are still in the collector (%+v): the test shows nothing", got.Sides)
	}
	src.Kept = keeper
	got := CollectTraces(context.Background(), src, "")
	if !got.Collected || len(got.Sides) != 2 {
		t.Fatalf("kept traces not used: %+v", got)
	}
	for _, s := range got.Sides {
		if s.Traces != 2 || s.Missing != "" {
			t.Errorf("%s: %d traces (%q), want the 2 of its early step", s.Label, s.Traces, s.Missing)
		}
	}

	// A rate no step was kept at is read from the collector, as without a keeper.
	src.Rate = 50
	if got := CollectTraces(context.Background(), src, ""); got.Collected {
		t.Errorf("a rate never kept used kept traces: %+v", got.Sides)
	}
}
