package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// sampleResult is a run of three architectures over three rates: the services slower and
// costlier than the monolith (failing the SLO at 100 req/s), the hybrid between them, with
// resources measured: what a real run produces, without the wait.
func sampleResult() *Result {
	plan := Plan{Rates: []float64{25, 50, 100}, Duration: 10 * time.Second, Warmup: 5 * time.Second, WarmupRate: 25, Repeats: 1,
		Search: 1, SLO: DefaultSLO(), Mix: DefaultMix(), Users: 100, Timeout: 5 * time.Second, Seed: 1}
	res := &Result{Plan: plan, Started: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), Archs: []string{"monolith", "services", "hybrid"}}
	res.Finished = res.Started.Add(80 * time.Second)
	idx := 0
	add := func(arch, phase string, rate float64, lat time.Duration, cpuPerReq float64, mem uint64, fail int) {
		idx++
		rec := NewRecorder()
		base := res.Started.Add(time.Duration(idx) * 15 * time.Second)
		n := int(rate * 10)
		for i := range n {
			at := base.Add(time.Duration(i) * time.Second / time.Duration(rate))
			l := lat + time.Duration(i%10)*lat/10
			r := &vegeta.Result{Code: 200, Method: "GET", URL: "http://127.0.0.1:8080/v1/products?page_size=20", Timestamp: at, Latency: l}
			if i < fail {
				r.Code, r.Error = 503, "503 Service Unavailable"
			}
			rec.Add(r, at)
		}
		cpu := cpuPerReq * float64(n) / 1000
		st := Step{Index: idx, Arch: arch, Phase: phase, Repeat: 1, Offered: rate, Seconds: 10, Started: base, rec: rec,
			Traffic: rec.Traffic(10),
			Resources: Resources{Measured: true, Source: "test", CPUSeconds: cpu, CPUCores: cpu / 10, CPUPerReqMS: cpuPerReq, PeakMemBytes: mem,
				Processes: []ProcUsage{{Name: arch, CPUSeconds: cpu, PeakMemBytes: mem}}},
			Generator: Generator{CPUCores: 0.1, MachineBusy: 0.8, OtherCores: 0.2, MachineCores: 2}}
		st.SLOPass = plan.SLO.Pass(st.Traffic)
		res.Steps = append(res.Steps, st)
	}
	for _, rate := range plan.Rates {
		add("monolith", "ladder", rate, 2*time.Millisecond, 0.4, 60<<20, 0)
		lat := 6 * time.Millisecond
		if rate == 100 {
			lat = 70 * time.Millisecond
		}
		add("services", "ladder", rate, lat, 1.2, 180<<20, 0)
		add("hybrid", "ladder", rate, 4*time.Millisecond, 0.8, 120<<20, 0)
	}
	add("services", "search", 75, 20*time.Millisecond, 1.3, 190<<20, 0)
	res.Points = points(res.Steps, plan.SLO)
	return res
}

func sampleReport(traces Traces) *Report {
	env := Environment{Machine: Machine{CPUs: 2, CPUModel: "Test CPU", MemBytes: 24 << 30, OS: "linux", Arch: "amd64", Kernel: "6.1"},
		GoVersion: "go1.26.8", GitRevision: "0123456789abcdef", GOMAXPROCS: 2}
	archs := []ArchInfo{
		{Name: "monolith", BaseURL: "http://127.0.0.1:8080", Runtime: "podman", Resources: "test",
			Limits: Limits{CPUs: 1.5, MemoryMB: 384, Enforced: true, Mode: topology.Measured,
				PerService: []ServiceLimit{{Name: "monolith", CPUs: 1.23, MemoryMB: 320}, {Name: "nats", CPUs: 0.27, MemoryMB: 64}},
				Calibration: &topology.CalibrationRef{File: "c.json", Arch: "monolith", Mode: topology.PerService, RateRPS: 50,
					When: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC), GitRevision: "abc123"}},
			Processes: []ProcInfo{{Name: "monolith", PID: 4242, BuildInfo: BuildInfo{GoVersion: "go1.26.8", Revision: "fedcba9876543210", Modified: true}}, {Name: "nats"}}},
		{Name: "services", BaseURL: "http://127.0.0.1:8081", Runtime: "podman", Resources: "test",
			Limits: Limits{CPUs: 2.75, MemoryMB: 672, Enforced: true}, Processes: []ProcInfo{{Name: "gateway"}, {Name: "orders"}}},
		{Name: "hybrid", BaseURL: "http://127.0.0.1:8082", Runtime: "podman", Resources: "test",
			Limits: Limits{CPUs: 1.5, MemoryMB: 384, Enforced: true}, Processes: []ProcInfo{{Name: "gateway"}, {Name: "cart-payments-orders"}}},
	}
	return BuildReport("20261130-120000", sampleResult(), env, archs, traces)
}

func TestReportSummaryAndComparison(t *testing.T) {
	r := sampleReport(Traces{Reason: "no collector"})
	if len(r.Summary) != 3 {
		t.Fatalf("summary %+v", r.Summary)
	}
	m, s, h := r.Summary[0], r.Summary[1], r.Summary[2]
	if m.MaxRate != 100 || m.MaxRateBound != "at_least" {
		t.Errorf("monolith max %g (%s), want at least 100", m.MaxRate, m.MaxRateBound)
	}
	if s.MaxRate != 75 || s.MaxRateBound != "found" || s.FirstFailing != 100 {
		t.Errorf("services max %g (%s, first failing %g), want 75 found by the search", s.MaxRate, s.MaxRateBound, s.FirstFailing)
	}
	if h.Arch != "hybrid" || h.MaxRate != 100 || h.MaxRateBound != "at_least" {
		t.Errorf("hybrid summary %+v, want at least 100", h)
	}
	c := r.Comparison
	if c == nil || c.CommonRate != 50 || c.Baseline != "monolith" || !slices.Equal(c.Archs, []string{"monolith", "services", "hybrid"}) {
		t.Fatalf("comparison %+v, want the three against the monolith at 50 req/s (the highest all passed)", c)
	}
	ratios := map[string][]float64{}
	for _, row := range c.Rows {
		if len(row.Values) != 3 || len(row.Ratios) != 3 || row.Ratios[0] != 1 {
			t.Errorf("%s: values %v, ratios %v: want three of each, the baseline's ratio 1", row.Metric, row.Values, row.Ratios)
		}
		ratios[row.Metric] = row.Ratios
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 0.01 }
	for _, tc := range []struct {
		metric           string
		services, hybrid float64
	}{
		{MetricMaxRate, 0.75, 1},
		{"CPU per request at 50 req/s", 3, 2},
		{"peak memory at 50 req/s", 3, 2},
		{"peak memory, whole run", 190.0 / 60, 2},
	} {
		got := ratios[tc.metric]
		if len(got) != 3 || !near(got[1], tc.services) || !near(got[2], tc.hybrid) {
			t.Errorf("%s: ratios %v, want services %g and hybrid %g", tc.metric, got, tc.services, tc.hybrid)
		}
	}
	if got := ratios["p50 at 50 req/s"]; len(got) != 3 || got[1] < 2.5 || got[2] < 1.5 || got[2] > got[1] {
		t.Errorf("p50 ratios %v: want services about 3, hybrid about 2", got)
	}
	var order []string
	for _, p := range r.Points {
		if p.Phase == "ladder" && !slices.Contains(order, p.Arch) {
			order = append(order, p.Arch)
		}
	}
	if !slices.Equal(order, c.Archs) {
		t.Errorf("points by architecture in the order %v, want the report's %v", order, c.Archs)
	}
	var unequal []string
	var sawTraces bool
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, "unequal limits") {
			unequal = append(unequal, w)
		}
		sawTraces = sawTraces || strings.HasPrefix(w, "trace breakdown missing")
	}
	if len(unequal) != 1 || !strings.Contains(unequal[0], "services has 2.75 CPUs") || strings.Contains(unequal[0], "hybrid") || !sawTraces {
		t.Errorf("warnings %q: want the services' unequal limits (not the hybrid's, equal to the monolith's) and the missing traces", r.Warnings)
	}
}

// A process whose memory came within 10% of its Go memory limit is named, with the steps:
// its collector, running without end, makes its architecture's figures. The sample's
// processes stay far below theirs.
func TestReportWarnsOfAProcessAtItsGoMemoryLimit(t *testing.T) {
	near := func(r *Report) []string {
		return slices.DeleteFunc(slices.Clone(r.Warnings), func(w string) bool { return !strings.HasPrefix(w, "memory: ") })
	}
	r := sampleReport(Traces{Reason: "test"})
	if got := near(r); len(got) != 0 {
		t.Fatalf("warnings %q: no process of the sample nears its limit", got)
	}
	// The monolith's limit is 320 MiB, its GOMEMLIMIT 240: 216 MiB is 90% of it.
	var steps []string
	for i, s := range r.Steps {
		if s.Arch == "monolith" && s.Offered == 50 {
			r.Steps[i].Resources.Processes[0].PeakMemBytes = 216 << 20
			steps = append(steps, fmt.Sprintf("#%d", s.Index))
		}
	}
	r.Warnings = warnings(r)
	got := near(r)
	if len(steps) == 0 || len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("memory: monolith's monolith held up to 216 MiB in %d step(s) (%s), 90%% of its Go memory limit (GOMEMLIMIT 240 MiB, of its 320 MiB)", len(steps), strings.Join(steps, ", "))) {
		t.Errorf("warnings %q: want the monolith at 90%% of its Go memory limit in steps %v", got, steps)
	}
}

// A split's limits are unknown (no topology file): not called unequal.
func TestReportUnknownLimitsAreNotUnequal(t *testing.T) {
	r := sampleReport(Traces{Reason: "test"})
	r.Architectures[1].Limits = Limits{Source: "unknown: no topology file"}
	r.Warnings = warnings(r)
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, "unequal limits") {
			t.Errorf("warning %q: the services' limits are unknown, the hybrid's equal the monolith's", w)
		}
	}
	r.Architectures[2].Limits.CPUs = 3
	if w := warnings(r); !slices.ContainsFunc(w, func(s string) bool {
		return strings.HasPrefix(s, "unequal limits") && strings.Contains(s, "hybrid has 3 CPUs")
	}) {
		t.Errorf("warnings %q: want the hybrid's unequal limits", w)
	}
}

// A ladder that passes above its first failure is called out: its max within the SLO stops
// at a failure that noise made as much as load. One that fails at its top rate is not.
func TestReportWarnsOfALadderPassingAboveItsFailure(t *testing.T) {
	fragile := func(r *Report) []string {
		return slices.DeleteFunc(slices.Clone(r.Warnings), func(w string) bool { return !strings.Contains(w, "and passed it above") })
	}
	if got := fragile(sampleReport(Traces{Reason: "test"})); len(got) != 0 {
		t.Errorf("warnings %q: the services fail at the top rate only, the others never", got)
	}
	res := sampleResult()
	for i := range res.Points {
		if p := &res.Points[i]; p.Arch == "hybrid" && p.Phase == "ladder" && p.Offered == 50 {
			p.SLOPass = false
		}
	}
	r := BuildReport("fragile", res, Environment{}, []ArchInfo{{Name: "monolith"}, {Name: "services"}, {Name: "hybrid"}}, Traces{Reason: "test"})
	want := "hybrid failed the SLO at 50/s and passed it above, at 100/s: its max within the SLO (25/s) is read up to the first failure"
	if got := fragile(r); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("warnings %q, want one that starts %q", got, want)
	}
}

// One architecture is a report too: its own column, no ratio.
func TestReportOfOneArchitecture(t *testing.T) {
	res := sampleResult()
	res.Archs = []string{"hybrid"}
	res.Points = slices.DeleteFunc(res.Points, func(p Point) bool { return p.Arch != "hybrid" })
	res.Steps = slices.DeleteFunc(res.Steps, func(s Step) bool { return s.Arch != "hybrid" })
	r := BuildReport("one", res, Environment{}, []ArchInfo{{Name: "hybrid"}}, Traces{Reason: "test"})
	if r.Comparison == nil || !slices.Equal(r.Comparison.Archs, []string{"hybrid"}) || r.Comparison.CommonRate != 100 {
		t.Fatalf("comparison %+v, want the hybrid alone at 100 req/s", r.Comparison)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| | hybrid |\n") || strings.Contains(md.String(), " / hybrid") {
		t.Errorf("report.md's result:\n%s", md.String())
	}
}

// TestReportJSONSchema checks that report.json carries every field README.md documents,
// under its documented name.
func TestReportJSONSchema(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport(Traces{Reason: "no collector"}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["schema"] != Schema {
		t.Errorf("schema %v", doc["schema"])
	}
	for _, path := range []string{
		"id", "started", "finished",
		"settings.rates_rps", "settings.step_s", "settings.warmup_s", "settings.repeats", "settings.search_steps",
		"settings.slo_p99_ms", "settings.slo_max_error_rate", "settings.mix.checkout", "settings.mix.declined_share",
		"settings.users_per_arch", "settings.request_timeout_s", "settings.order", "settings.model",
		"environment.machine.cpus", "environment.machine.mem_bytes", "environment.machine.load_avg_1m",
		"environment.go_version", "environment.git_revision", "environment.git_dirty",
		"architectures.0.name", "architectures.0.base_url", "architectures.0.runtime", "architectures.0.resources",
		"architectures.0.limits.cpus", "architectures.0.limits.memory_mb", "architectures.0.limits.enforced",
		"architectures.0.limits.mode", "architectures.0.limits.calibration.file", "architectures.0.limits.calibration.rate_rps",
		"architectures.0.processes.0.name", "architectures.0.scenario.sent",
		"summary.0.arch", "summary.0.max_rate_within_slo", "summary.0.max_rate_bound",
		"summary.0.at_common_rate.p50_ms", "summary.0.at_common_rate.p99_ms", "summary.0.at_common_rate.cpu_per_request_ms",
		"summary.0.at_common_rate.peak_mem_bytes", "summary.0.peak_mem_bytes",
		"comparison.baseline", "comparison.archs.2", "comparison.common_rate_rps", "comparison.rows.0.metric",
		"comparison.rows.0.values.2", "comparison.rows.0.ratios.2", "comparison.rows.0.better",
		"points.0.arch", "points.0.offered_rps", "points.0.phase", "points.0.traffic.achieved_rps", "points.0.cpu_per_request_ms",
		"points.0.peak_mem_bytes", "points.0.slo_pass",
		"steps.0.index", "steps.0.arch", "steps.0.phase", "steps.0.repeat", "steps.0.offered_rps", "steps.0.duration_s",
		"steps.0.traffic.requests", "steps.0.traffic.ok", "steps.0.traffic.error_rate", "steps.0.traffic.errors",
		"steps.0.traffic.latency_ms.p50", "steps.0.traffic.latency_ms.p90", "steps.0.traffic.latency_ms.p99",
		"steps.0.traffic.latency_ms.p99_9", "steps.0.traffic.latency_ms.max", "steps.0.traffic.by_kind.list.latency_ms.p99",
		"steps.0.traffic.max_send_lag_ms",
		"steps.0.resources.measured", "steps.0.resources.cpu_seconds", "steps.0.resources.cpu_per_request_ms",
		"steps.0.resources.peak_mem_bytes", "steps.0.resources.processes.0.cpu_seconds",
		"steps.0.generator.cpu_cores", "steps.0.generator.machine_busy_cores", "steps.0.generator.other_cores",
		"steps.0.slo_pass", "skipped", "traces.collected", "traces.reason", "warnings",
	} {
		if _, ok := lookup(doc, path); !ok {
			t.Errorf("report.json lacks %s", path)
		}
	}
	// The README documents the same names.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"max_rate_within_slo", "cpu_per_request_ms", "peak_mem_bytes", "p99_9", "machine_busy_cores", "max_send_lag_ms", "common_rate_rps",
		"archs", "values", "ratios", "comparisons", "missing", "baseline_ms", "other_ms", "mode", "calibration", Schema} {
		if !bytes.Contains(readme, []byte("`"+field+"`")) {
			t.Errorf("README.md does not document %s", field)
		}
	}
}

func lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			x, ok := v[part]
			if !ok {
				return nil, false
			}
			cur = x
		case []any:
			i := 0
			for _, c := range part {
				if c < '0' || c > '9' {
					return nil, false
				}
				i = i*10 + int(c-'0')
			}
			if i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func TestReportMarkdownAndHTML(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport(Traces{Reason: "no trace collector answered at http://127.0.0.1:16686"})
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"## Result",
		"| | monolith | services | hybrid | services / monolith | hybrid / monolith |",
		"| max rate within SLO | ≥ 100 req/s (no rate tried failed) | 75 req/s (100 failed) | ≥ 100 req/s (no rate tried failed) | 0.75× | 1.00× |",
		"| CPU per request at 50 req/s | 0.400 ms | 1.200 ms | 0.800 ms | 3.00× | 2.00× |",
		"| p50 at 50 req/s |", "| p99 at 50 req/s |", "Ratios are each architecture's figure over monolith's",
		"Traces were not collected", "## Warnings", "unequal limits",
		"  - monolith: pid 4242, go1.26.8, revision fedcba987654 (with uncommitted changes)\n", "  - nats: build unknown\n"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	html := string(page)
	if n := strings.Count(html, "<svg"); n < 7 {
		t.Errorf("report.html has %d SVG charts, want at least 7 (latency, throughput, 3 percentile, CPU, memory)", n)
	}
	for _, want := range []string{"Latency vs offered load", "Percentiles per step: monolith", "Percentiles per step: hybrid", "CPU per request",
		"<th>hybrid / monolith</th>", `<td class="worse">3.00×</td>`, `<td class="worse">0.75×</td>`, `id="traces-missing"`, "Traces were not collected."} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// One colour per architecture, the same in every chart.
	for i, a := range []string{"monolith", "services", "hybrid"} {
		if n := strings.Count(html, `stroke="`+archColor(i)+`"`); n < 3 {
			t.Errorf("%s's colour %s drawn %d times, want its lines and legend entries", a, archColor(i), n)
		}
	}
	// Self-contained: no script, and nothing fetched from elsewhere.
	if strings.Contains(html, "<script") {
		t.Error("report.html has a script")
	}
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:)?//`)
	if m := ext.FindString(html); m != "" {
		t.Errorf("report.html loads an external resource: %s", m)
	}
	if strings.Contains(html, "url(http") || strings.Contains(html, "@import") {
		t.Error("report.html's style loads an external resource")
	}
}

func TestReportWithTraces(t *testing.T) {
	tr := Traces{Collected: true, Collector: "http://127.0.0.1:16686", Operation: "POST /v1/checkout",
		Sides: []TraceSide{
			{Label: "monolith", Traces: 20, RootP50MS: 4, CriticalPath: map[string]float64{"domain": 1, "store": 2.5, "transport": 0, "queueing": 0.5}},
			{Label: "services", Traces: 20, RootP50MS: 9, CriticalPath: map[string]float64{"domain": 1.5, "store": 2.6, "transport": 4, "queueing": 0.6}},
			{Label: "hybrid", Missing: "hybrid: no trace of \"POST /v1/checkout\" from service gateway", CriticalPath: map[string]float64{}},
		},
		Comparisons: []TraceComparison{{Baseline: "monolith", Other: "services", File: "traces-monolith-vs-services.html",
			Differences: []TraceDifference{{Category: "transport", Span: "orders.Orders/Checkout", BaselineMS: 0, OtherMS: 2.1, DeltaMS: 2.1}}}}}
	dir := t.TempDir()
	r := sampleReport(tr)
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	html := string(page)
	for _, want := range []string{"Critical path of POST /v1/checkout", `href="traces-monolith-vs-services.html"`, "orders.Orders/Checkout",
		"services against monolith", "no traces: hybrid: no trace of"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(html, "traces-missing") {
		t.Error("report.html says traces are missing")
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"| hybrid | none: hybrid: no trace", "| where (services − monolith) | monolith ms | services ms | Δ ms |",
		"| transport: orders.Orders/Checkout | 0.00 | 2.10 | +2.10 |"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, "trace breakdown missing") {
			t.Errorf("warning %q with traces collected", w)
		}
	}
}

// Six architectures' legend entries wrap onto a second line, inside the chart, and the plot
// starts below them.
func TestLegendWraps(t *testing.T) {
	var items []series
	for _, a := range []string{"monolith", "services", "hybrid", "split", "catalog-apart", "edge-with-catalog", "", "p99", "p50"} {
		items = append(items, series{name: a, legend: a})
	}
	pos, top := legendLayout(items)
	rows := map[float64]bool{}
	for i, p := range pos {
		if items[i].legend == "" {
			continue
		}
		rows[p.y] = true
		if end := p.x + float64(7*len(items[i].legend)+34); p.x < padL || end > chartW-padR {
			t.Errorf("%s from %g to %g: outside the chart", items[i].legend, p.x, end)
		}
	}
	if len(rows) < 2 || top <= padT || float64(top) < maxY(pos)+8 {
		t.Errorf("legend on %d line(s), plot from %d: want the entries wrapped and the plot below them", len(rows), top)
	}
	if _, top := legendLayout(items[:2]); top != padT {
		t.Errorf("two entries: plot from %d, want %d", top, padT)
	}
}

func maxY(pos []xy) float64 {
	m := 0.0
	for _, p := range pos {
		m = max(m, p.y)
	}
	return m
}

func TestScaleTicks(t *testing.T) {
	lo, hi := logRange(0.7, 130)
	if lo != 0.5 || hi != 200 {
		t.Errorf("logRange = %g, %g; want 0.5, 200", lo, hi)
	}
	s := scale{lo: lo, hi: hi, log: true, from: 100, to: 0}
	if got := s.ticks(); len(got) != 9 || got[0] != 0.5 || got[len(got)-1] != 200 {
		t.Errorf("log ticks %v", got)
	}
	if y := s.at(hi); y != 0 {
		t.Errorf("top of scale at %g, want 0", y)
	}
	lin := scale{lo: 0, hi: 830}
	if got := lin.ticks(); len(got) < 4 || len(got) > 7 {
		t.Errorf("linear ticks %v", got)
	}
}

// A sampler that saw none of the serving processes reads zero CPU for a whole run: the
// report leaves that architecture's CPU out and says so, instead of requests that cost
// nothing; an architecture whose CPU was measured keeps its figures.
func TestZeroCPUIsNotReported(t *testing.T) {
	res := sampleResult()
	for i := range res.Steps {
		if s := &res.Steps[i]; s.Arch == "services" {
			s.Resources.CPUSeconds, s.Resources.CPUPerReqMS, s.Resources.CPUCores = 0, 0, 0
			for j := range s.Resources.Processes {
				s.Resources.Processes[j].CPUSeconds = 0
			}
		}
	}
	res.Points = points(res.Steps, res.Plan.SLO)
	if got := ZeroCPU(res); len(got) != 1 || got[0] != "services" {
		t.Fatalf("ZeroCPU: %v, want services", got)
	}
	r := BuildReport("zero", res, Environment{}, []ArchInfo{{Name: "monolith", Resources: "test"}, {Name: "services", Resources: "by port"}, {Name: "hybrid", Resources: "test"}}, Traces{})
	for _, s := range r.Steps {
		if s.Arch == "services" && (s.Resources.Measured || !strings.Contains(s.Resources.Note, "read zero")) {
			t.Errorf("step %d of the services: %+v", s.Index, s.Resources)
		}
		if s.Arch == "monolith" && !s.Resources.Measured {
			t.Errorf("the monolith's step %d lost its measure", s.Index)
		}
	}
	if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.HasPrefix(w, "services: CPU read zero") }) {
		t.Errorf("warnings %v", r.Warnings)
	}
	if sum, _ := r.summaryOf("services"); sum.AtCommon != nil && sum.AtCommon.CPUPerReqMS != 0 {
		t.Errorf("services' CPU per request %g", sum.AtCommon.CPUPerReqMS)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "CPU read zero") {
		t.Errorf("report.md does not say the CPU read zero:\n%s", md.String())
	}
}

// A measured budget's shares, and the calibration that sized them, are in both reports,
// beside the mode: what the run measured under.
func TestReportShowsAMeasuredBudgetsShares(t *testing.T) {
	r := sampleReport(Traces{Reason: "test"})
	var md, page bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	want := "monolith 1.23 CPUs 320 MiB, nats 0.27 CPUs 64 MiB; sized by the calibration c.json (monolith under per-service at 50 req/s, 2026-12-05T08:00:00Z, git revision abc123)"
	if !strings.Contains(md.String(), "  - shares: "+want+"\n") {
		t.Errorf("report.md lacks the shares %q:\n%s", want, md.String())
	}
	if !strings.Contains(page.String(), want) {
		t.Errorf("report.html lacks the shares %q", want)
	}
	if strings.Count(md.String(), "  - shares: ") != 1 {
		t.Errorf("report.md gives shares for architectures with none:\n%s", md.String())
	}
}

// The load average at the start warns only for a run whose steps did not measure the rest of
// the machine: a minute's average still counts work that ended before the run (the image
// build of make compare), where the steps' own measurement says what ran beside them.
func TestReportLoadAverageWarnsOnlyWithoutMeasuredSteps(t *testing.T) {
	loadWarning := func(w []string) bool {
		return slices.ContainsFunc(w, func(s string) bool { return strings.HasPrefix(s, "the machine's load average") })
	}
	r := sampleReport(Traces{Reason: "test"})
	r.Environment.Machine.LoadAvg = 4.1
	if w := warnings(r); loadWarning(w) {
		t.Errorf("warnings %q: the steps measured the rest of the machine, the load average at the start must not warn", w)
	}
	for i := range r.Steps {
		r.Steps[i].Generator = Generator{}
	}
	if w := warnings(r); !loadWarning(w) {
		t.Errorf("warnings %q: no step measured the machine, want the load average of 4.10 on 2 cores", w)
	}
	r.Environment.Machine.LoadAvg = 1.5
	if w := warnings(r); loadWarning(w) {
		t.Errorf("warnings %q: a load average under the cores is no warning", w)
	}
}
