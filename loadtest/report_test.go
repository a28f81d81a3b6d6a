package loadtest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// sampleResult is a run of two architectures over three rates, the second slower and
// costlier, with resources measured: what a real run produces, without the wait.
func sampleResult() *Result {
	plan := Plan{Rates: []float64{25, 50, 100}, Duration: 10 * time.Second, Warmup: 5 * time.Second, WarmupRate: 25, Repeats: 1,
		Search: 1, SLO: DefaultSLO(), Mix: DefaultMix(), Users: 100, Timeout: 5 * time.Second, Seed: 1}
	res := &Result{Plan: plan, Started: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), Archs: []string{"monolith", "services"}}
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
			Limits: Limits{CPUs: 1.5, MemoryMB: 384, Enforced: true}, Processes: []ProcInfo{{Name: "monolith"}, {Name: "nats"}}},
		{Name: "services", BaseURL: "http://127.0.0.1:8081", Runtime: "podman", Resources: "test",
			Limits: Limits{CPUs: 2.75, MemoryMB: 672, Enforced: true}, Processes: []ProcInfo{{Name: "gateway"}, {Name: "orders"}}},
	}
	return BuildReport("20261130-120000", sampleResult(), env, archs, traces)
}

func TestReportSummaryAndComparison(t *testing.T) {
	r := sampleReport(Traces{Reason: "no collector"})
	if len(r.Summary) != 2 {
		t.Fatalf("summary %+v", r.Summary)
	}
	m, s := r.Summary[0], r.Summary[1]
	if m.MaxRate != 100 || m.MaxRateBound != "at_least" {
		t.Errorf("monolith max %g (%s), want at least 100", m.MaxRate, m.MaxRateBound)
	}
	if s.MaxRate != 75 || s.MaxRateBound != "found" || s.FirstFailing != 100 {
		t.Errorf("services max %g (%s, first failing %g), want 75 found by the search", s.MaxRate, s.MaxRateBound, s.FirstFailing)
	}
	c := r.Comparison
	if c == nil || c.CommonRate != 50 {
		t.Fatalf("comparison %+v, want common rate 50 (the highest both passed)", c)
	}
	ratio := map[string]float64{}
	for _, row := range c.Rows {
		ratio[row.Metric] = row.Ratio
	}
	if got := ratio["max rate within SLO"]; got != 0.75 {
		t.Errorf("max rate ratio %g, want 0.75", got)
	}
	if got := ratio["CPU per request at 50 req/s"]; got < 2.99 || got > 3.01 {
		t.Errorf("CPU per request ratio %g, want 3", got)
	}
	if got := ratio["peak memory at 50 req/s"]; got != 3 {
		t.Errorf("memory ratio %g, want 3", got)
	}
	var sawUnequal, sawTraces bool
	for _, w := range r.Warnings {
		sawUnequal = sawUnequal || strings.HasPrefix(w, "unequal limits")
		sawTraces = sawTraces || strings.HasPrefix(w, "trace breakdown missing")
	}
	if !sawUnequal || !sawTraces {
		t.Errorf("warnings %q: want the unequal limits and the missing traces", r.Warnings)
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
		"architectures.0.processes.0.name", "architectures.0.scenario.sent",
		"summary.0.arch", "summary.0.max_rate_within_slo", "summary.0.max_rate_bound",
		"summary.0.at_common_rate.p50_ms", "summary.0.at_common_rate.p99_ms", "summary.0.at_common_rate.cpu_per_request_ms",
		"summary.0.at_common_rate.peak_mem_bytes", "summary.0.peak_mem_bytes",
		"comparison.baseline", "comparison.other", "comparison.common_rate_rps", "comparison.rows.0.metric", "comparison.rows.0.ratio",
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
	for _, field := range []string{"max_rate_within_slo", "cpu_per_request_ms", "peak_mem_bytes", "p99_9", "machine_busy_cores", "max_send_lag_ms", "common_rate_rps"} {
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
	for _, want := range []string{"## Result", "| max rate within SLO | ≥ 100 req/s (no rate tried failed) | 75 req/s (100 failed) |",
		"| p50 / p99 at 50 req/s |", "Traces were not collected", "## Warnings", "unequal limits"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dir, "report.html"))
	html := string(page)
	if n := strings.Count(html, "<svg"); n < 6 {
		t.Errorf("report.html has %d SVG charts, want at least 6 (latency, throughput, 2 percentile, CPU, memory)", n)
	}
	for _, want := range []string{"Latency vs offered load", "Percentiles per step: monolith", "CPU per request", `id="traces-missing"`, "Traces were not collected."} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
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
	tr := Traces{Collected: true, Collector: "http://127.0.0.1:16686", Operation: "POST /v1/checkout", File: "traces.html",
		Sides: []TraceSide{
			{Label: "monolith", Traces: 20, RootP50MS: 4, CriticalPath: map[string]float64{"domain": 1, "store": 2.5, "transport": 0, "queueing": 0.5}},
			{Label: "services", Traces: 20, RootP50MS: 9, CriticalPath: map[string]float64{"domain": 1.5, "store": 2.6, "transport": 4, "queueing": 0.6}},
		},
		Differences: []TraceDifference{{Category: "transport", Span: "orders.Orders/Checkout", AMS: 0, BMS: 2.1, DeltaMS: 2.1}}}
	var buf bytes.Buffer
	r := sampleReport(tr)
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{"Critical path of POST /v1/checkout", `href="traces.html"`, "orders.Orders/Checkout"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	if strings.Contains(html, "traces-missing") {
		t.Error("report.html says traces are missing")
	}
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, "trace breakdown missing") {
			t.Errorf("warning %q with traces collected", w)
		}
	}
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
