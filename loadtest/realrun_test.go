package loadtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/advise"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/shop/logtest"
)

// repoRootForTest is the workspace root: loadtest's parent.
func repoRootForTest(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Skipf("no go.work above loadtest: %v", err)
	}
	return root
}

// TestShortRunAgainstMonolith is a real run, short and slow: the real monolith, the real
// mix at 5 and 10 requests/s for 2 s each, resources through /proc, a report written.
func TestShortRunAgainstMonolith(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the monolith")
	}
	const token = "loadtest-token"
	base, pid := stacktest.StartMonolith(t, repoRootForTest(t), token)
	ctx := context.Background()
	plan := Plan{Rates: []float64{5, 10}, Duration: 2 * time.Second, Warmup: time.Second, WarmupRate: 5, Repeats: 1,
		SLO: SLO{P99: 3 * time.Second, ErrorRate: 0.001}, Mix: DefaultMix(), Users: 20, Timeout: 5 * time.Second, SampleEvery: 100 * time.Millisecond}
	shop := Shop{BaseURL: base, AdminToken: token}
	products, err := shop.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(products))
	for i, p := range products {
		ids[i] = p.ID
	}
	level := StockLevel(plan, len(ids))
	if _, err := shop.Replenish(ctx, ids, level); err != nil {
		t.Fatal(err)
	}
	if st, err := shop.Stock(ctx, ids[0]); err != nil || st.Available != level {
		t.Fatalf("stock after replenish: %+v, %v; want %d available", st, err, level)
	}
	sc, err := NewScenario(ScenarioConfig{BaseURL: base, Mix: Mix{List: 2, Search: 1, Product: 2, CartAdd: 3, Checkout: 3, Declined: 0.2},
		Users: 20, Products: ids, Terms: SearchTerms(products), Prefix: "lt-test-m", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	procs, err := ProcsByListener(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 1 || procs[0].PID != pid {
		t.Fatalf("processes behind %s: %+v, want the monolith (pid %d) alone", base, procs, pid)
	}
	if bi, ok := ProcBuildInfo(pid); !ok || !strings.HasPrefix(bi.GoVersion, "go1.") {
		t.Errorf("build info of the monolith: %+v", bi)
	}
	var progress logtest.Buffer
	r := &Runner{Plan: plan, Progress: &progress, Archs: []*Arch{
		{Name: "monolith", BaseURL: base, Scenario: sc, Sampler: &ProcSampler{Procs: procs, Source: "test"}},
	}}
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(res.Steps) != 2 {
		t.Fatalf("%d steps, want 2\n%s", len(res.Steps), progress.String())
	}
	for _, s := range res.Steps {
		tr := s.Traffic
		if want := int64(s.Offered * s.Seconds); tr.Requests < want-1 || tr.Requests > want+1 {
			t.Errorf("step %d: %d requests, want %d", s.Index, tr.Requests, want)
		}
		if tr.ErrorRate != 0 {
			t.Errorf("step %d: errors %v\n%s", s.Index, tr.Errors, progress.String())
		}
		if !s.Resources.Measured || s.Resources.CPUSeconds <= 0 || s.Resources.PeakMemBytes < 1<<20 || s.Resources.CPUPerReqMS <= 0 {
			t.Errorf("step %d: resources %+v", s.Index, s.Resources)
		}
	}
	sent := sc.Sent()
	if sent[KindCheckout] == 0 || sent[KindCartAdd] == 0 {
		t.Errorf("sent %v: want cart adds and checkouts", sent)
	}
	dir := t.TempDir()
	rep := BuildReport("test", res, ReadEnvironment(ctx, repoRootForTest(t)), []ArchInfo{{Name: "monolith", BaseURL: base, Runtime: "local"}},
		Traces{Reason: "test"})
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Schema != Schema || len(back.Steps) != 2 {
		t.Fatalf("report.json: %v, schema %q, %d steps", err, back.Schema, len(back.Steps))
	}
	if back.Environment.GitRevision == "" {
		t.Error("no git revision in the report")
	}
	if !slices.ContainsFunc(back.Summary, func(s ArchSummary) bool { return s.Arch == "monolith" && s.MaxRate == 10 }) {
		t.Errorf("summary %+v: want the monolith within a 3 s p99 at 10 req/s", back.Summary)
	}
	// mitosis advise reads the report as written: CPU per request, per-process CPU and the
	// latencies by kind at a rate.
	run, err := advise.ReadRun(dir, 10, false)
	if err != nil {
		t.Fatal(err)
	}
	m := run.Measured["monolith"]
	pt, _ := findPoint(back.Points, "monolith", 10)
	if m == nil || m.CPUPerReqMS != pt.CPUPerReqMS || m.Latency.P50 != pt.Traffic.Latency.P50 || len(m.Processes) != 1 ||
		m.Kinds[string(KindCheckout)].P99 != pt.Traffic.ByKind[KindCheckout].Latency.P99 || m.Mix[string(KindCartAdd)] <= 0 {
		t.Errorf("advise read %+v from the point %+v", m, pt)
	}
}
