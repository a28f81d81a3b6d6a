package loadtest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/advise"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// A long run: the collector's bounded store drops the traces of an early step to make room
// for later ones before the report reads them. Read at the end, the early step has no trace
// left; kept as it ended, its traces make the breakdown.
func TestTraceKeeperKeepsStepsTheCollectorDrops(t *testing.T) {
	col := startCollectorWith(t, tracecollect.Config{MaxSpans: 12})

	sides := []TraceSideSource{{Label: "monolith", Service: "monolith"}, {Label: "services", Service: "gateway"}}
	src := TraceSource{Collector: "http://" + col.QueryAddr(), Settle: 50 * time.Millisecond, Sides: sides}
	keeper := NewTraceKeeper(src)
	keeper.KeepWindows(t.TempDir())

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

	// The whole windows, for mitosis advise, are the early steps' too.
	dir := t.TempDir()
	m, err := ExportTraces(context.Background(), src, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range m.Sides {
		if side.Traces != 2 || side.Missing != "" {
			t.Errorf("exported %s: %+v, want the 2 traces of its early step", side.Arch, side)
			continue
		}
		ts, err := advise.ReadTraces(filepath.Join(dir, side.File))
		if err != nil || len(ts) != 2 {
			t.Errorf("%s: read back %d traces, %v", side.Arch, len(ts), err)
		}
	}
	src.Kept = nil
	if m, err := ExportTraces(context.Background(), src, t.TempDir()); err != nil || m.Sides[0].Traces != 0 {
		t.Errorf("without the keeper the collector still had the early window (%+v, %v): the test shows nothing", m, err)
	}
	src.Kept = keeper

	// A rate no step was kept at is read from the collector, as without a keeper.
	src.Rate = 50
	if got := CollectTraces(context.Background(), src, ""); got.Collected {
		t.Errorf("a rate never kept used kept traces: %+v", got.Sides)
	}
}
