package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Schema names report.json's format; README.md documents it field by field. A change that
// removes or renames a field changes the version. v2 (any number of architectures): the
// comparison holds a value and a ratio per architecture, and the trace breakdown a side per
// architecture and a comparison of each with the first.
const Schema = "mitosis.loadtest/v2"

// Report is report.json.
type Report struct {
	Schema        string        `json:"schema"`
	ID            string        `json:"id"` // the output folder's name
	Started       time.Time     `json:"started"`
	Finished      time.Time     `json:"finished"`
	Interrupted   string        `json:"interrupted,omitempty"`
	Settings      Settings      `json:"settings"`
	Environment   Environment   `json:"environment"`
	Architectures []ArchInfo    `json:"architectures"`
	Summary       []ArchSummary `json:"summary"`
	Comparison    *Comparison   `json:"comparison,omitempty"`
	Points        []Point       `json:"points"`
	Steps         []Step        `json:"steps"`
	Skipped       []string      `json:"skipped"`
	IdleCPU       []IdleCPU     `json:"idle_cpu"` // each architecture's CPU with no traffic, before the run
	Traces        Traces        `json:"traces"`
	Warnings      []string      `json:"warnings"`
	Trade         *TradeSheet   `json:"trade,omitempty"`   // what each topology's split costs and buys (trade.go)
	Faults        *FaultsReport `json:"faults,omitempty"`  // the faults phase, when it ran (faults_report.go)
	Roll          *Roll         `json:"roll,omitempty"`    // the deploy blast radius (roll.go)
	Scaling       *Scaling      `json:"scaling,omitempty"` // the scaling gain (scale.go)

	// RoundTrips are the store round trips per request, from the collector's metrics
	// (roundtrips.go).
	RoundTrips *RoundTrips `json:"store_round_trips,omitempty"`
}

// Settings are the run's knobs.
type Settings struct {
	Rates        []float64 `json:"rates_rps"`
	StepS        float64   `json:"step_s"`
	WarmupS      float64   `json:"warmup_s"`
	WarmupRate   float64   `json:"warmup_rps"`
	Repeats      int       `json:"repeats"`
	Search       int       `json:"search_steps"`
	SearchStepS  float64   `json:"search_step_s"`
	PauseS       float64   `json:"pause_s"`
	SLOP99MS     float64   `json:"slo_p99_ms"`
	SLOErrorRate float64   `json:"slo_max_error_rate"`
	Mix          Mix       `json:"mix"`
	Users        int       `json:"users_per_arch"`
	TimeoutS     float64   `json:"request_timeout_s"`
	Seed         uint64    `json:"seed"`
	TraceShare   float64   `json:"trace_share"` // share of requests sent asking to be traced; negative: the stacks decided
	Order        string    `json:"order"`
	Model        string    `json:"model"`
}

// ArchInfo describes one architecture as it was measured.
type ArchInfo struct {
	Name      string        `json:"name"`
	BaseURL   string        `json:"base_url"`
	Runtime   string        `json:"runtime"`   // "podman", "process" (mitosis), "local" (found by port), "unknown"
	Resources string        `json:"resources"` // where CPU and memory come from, or why they are missing
	Processes []ProcInfo    `json:"processes"`
	Limits    Limits        `json:"limits"`
	Scenario  ScenarioStats `json:"scenario"`
}

// ProcInfo is one measured process or pod.
type ProcInfo struct {
	Name string `json:"name"`
	PID  int    `json:"pid,omitempty"`
	BuildInfo
}

// Limits are the CPU and memory an architecture was given.
type Limits struct {
	CPUs       float64        `json:"cpus"`      // total, in cores; 0 when none
	MemoryMB   int            `json:"memory_mb"` // total
	Enforced   bool           `json:"enforced"`  // by the runtime (cgroups: Podman's, or a shared budget's)
	PerService []ServiceLimit `json:"per_service"`
	Source     string         `json:"source,omitempty"`
	// Mode is how the budget was shared out (topology.Mode): per-service, shared (one limit
	// for every process, PerService empty) or measured; "" when unknown.
	Mode topology.Mode `json:"mode,omitempty"`
	// Calibration is the calibration a measured budget was sized by.
	Calibration *topology.CalibrationRef `json:"calibration,omitempty"`
}

// Shares says how l shares the budget out among the services, and which calibration sized
// the shares of a measured budget; "" for one shared limit.
func (l Limits) Shares() string {
	var parts []string
	for _, s := range l.PerService {
		parts = append(parts, fmt.Sprintf("%s %g CPUs %d MiB", s.Name, s.CPUs, s.MemoryMB))
	}
	out := strings.Join(parts, ", ")
	if c := l.Calibration; c != nil {
		out += fmt.Sprintf("; sized by the calibration %s (%s under %s at %g req/s, %s, git revision %s)",
			c.File, c.Arch, orNone(string(c.Mode)), c.RateRPS, c.When.UTC().Format(time.RFC3339), orNone(c.GitRevision))
	}
	return out
}

// ServiceLimit is one service's share of an architecture's limits.
type ServiceLimit struct {
	Name     string  `json:"name"`
	CPUs     float64 `json:"cpus"`
	MemoryMB int     `json:"memory_mb"`
}

// ScenarioStats is what the traffic generator did for one architecture.
type ScenarioStats struct {
	Users         int            `json:"users"`
	Sent          map[Kind]int64 `json:"sent"`
	Substitutions int64          `json:"substitutions"`
	DeclinedSent  int64          `json:"declined_checkouts_sent"`
	Retired       int            `json:"users_retired"`
	StockLevel    int64          `json:"stock_level"`
	StockAdded    int64          `json:"stock_added"`
}

// At is one architecture's figures at one rate.
type At struct {
	Rate         float64 `json:"rate_rps"`
	Achieved     float64 `json:"achieved_rps"`
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
	ErrorRate    float64 `json:"error_rate"`
	CPUPerReqMS  float64 `json:"cpu_per_request_ms"`
	CPUCores     float64 `json:"cpu_cores"`
	PeakMemBytes uint64  `json:"peak_mem_bytes"`
}

// ArchSummary is the headline of one architecture.
type ArchSummary struct {
	Arch         string  `json:"arch"`
	MaxRate      float64 `json:"max_rate_within_slo"`
	MaxRateBound string  `json:"max_rate_bound"` // found, at_least, below_lowest, not_run
	FirstFailing float64 `json:"first_failing_rate,omitempty"`
	AtCommon     *At     `json:"at_common_rate,omitempty"`
	AtMax        *At     `json:"at_max_rate,omitempty"`
	PeakMemBytes uint64  `json:"peak_mem_bytes"` // over the whole run
}

// Comparison puts every architecture against the first (the baseline).
type Comparison struct {
	Baseline   string   `json:"baseline"`
	Archs      []string `json:"archs"`           // every architecture, the baseline first: the order of each row's values and ratios
	CommonRate float64  `json:"common_rate_rps"` // the highest ladder rate every architecture passed, else the lowest
	Rows       []Ratio  `json:"rows"`
}

// Ratio is one metric of every architecture, and each one's figure over the baseline's.
type Ratio struct {
	Metric string    `json:"metric"`
	Unit   string    `json:"unit"`
	Better string    `json:"better"` // "higher" or "lower"
	Values []float64 `json:"values"` // one per architecture, in Comparison.Archs order
	Ratios []float64 `json:"ratios"` // value / the baseline's, in the same order (the baseline's is 1); 0 when the baseline's is 0
}

// Traces is the trace breakdown section: where the time of a checkout went in each
// architecture, and how each differs from the first, from platform/tracecompare.
type Traces struct {
	Collected   bool              `json:"collected"`        // at least one architecture's traces were analysed
	Reason      string            `json:"reason,omitempty"` // why none were
	Collector   string            `json:"collector,omitempty"`
	Operation   string            `json:"operation,omitempty"`
	Window      string            `json:"window,omitempty"` // which traces: of which steps
	Sides       []TraceSide       `json:"sides,omitempty"`  // one per architecture, in report order
	Comparisons []TraceComparison `json:"comparisons,omitempty"`
}

// TraceSide is one architecture's traces: medians in milliseconds.
type TraceSide struct {
	Label        string             `json:"label"`             // the architecture
	Missing      string             `json:"missing,omitempty"` // why it has no traces; the figures are then zero
	Traces       int                `json:"traces"`
	Incomplete   int                `json:"incomplete_traces,omitempty"` // traces lacking spans (tracecompare's gaps)
	RootP50MS    float64            `json:"root_latency_p50_ms"`
	RootP90MS    float64            `json:"root_latency_p90_ms"`
	CriticalPath map[string]float64 `json:"critical_path_median_ms"` // domain, store, transport, queueing
	Spans        float64            `json:"spans_median"`
	RemoteHops   float64            `json:"remote_hops_median"`
	Services     []string           `json:"services"`
}

// TraceComparison is one architecture's traces against the baseline's.
type TraceComparison struct {
	Baseline    string            `json:"baseline"`
	Other       string            `json:"other"`
	File        string            `json:"file,omitempty"` // tracecompare's page of the two, beside the report
	Differences []TraceDifference `json:"differences"`
}

// TraceDifference is one part of the critical path that differs between two architectures.
type TraceDifference struct {
	Category   string  `json:"category"`
	Span       string  `json:"span"`
	BaselineMS float64 `json:"baseline_ms"`
	OtherMS    float64 `json:"other_ms"`
	DeltaMS    float64 `json:"delta_ms"` // other − baseline
}

// BuildReport turns a run's result into a report.
func BuildReport(id string, res *Result, env Environment, archs []ArchInfo, traces Traces) *Report {
	p := res.Plan
	r := &Report{
		Schema: Schema, ID: id, Started: res.Started, Finished: res.Finished, Interrupted: res.Interrupted,
		Environment: env, Architectures: archs, Points: res.Points, Steps: res.Steps,
		Skipped: append([]string{}, res.Skipped...), IdleCPU: append([]IdleCPU{}, res.IdleCores...), Traces: traces, Warnings: append([]string{}, res.Warnings...),
		Settings: Settings{
			Rates: p.Rates, StepS: p.Duration.Seconds(), WarmupS: p.Warmup.Seconds(), WarmupRate: p.WarmupRate,
			Repeats: max(p.Repeats, 1), Search: p.Search, SearchStepS: p.searchDuration().Seconds(), PauseS: p.Pause.Seconds(),
			SLOP99MS: float64(p.SLO.P99.Microseconds()) / 1000, SLOErrorRate: p.SLO.ErrorRate, Mix: p.Mix, Users: p.Users,
			TimeoutS: p.Timeout.Seconds(), Seed: p.Seed, TraceShare: p.TraceShare,
			Order: "each rate runs every architecture in turn (A, B, C...); even repeats reverse the order (... C, B, A)",
			Model: "open: constant arrival rate (vegeta's constant pacer, workers without a cap); latency from each request's scheduled time",
		},
	}
	if r.Steps == nil {
		r.Steps = []Step{}
	}
	if r.Points == nil {
		r.Points = []Point{}
	}
	if len(res.Archs) == 0 {
		for _, a := range archs {
			res.Archs = append(res.Archs, a.Name)
		}
	}
	for _, a := range ZeroCPU(res) {
		// Reported as it is: not measured, and said loudly, never as free requests.
		note := "CPU read zero over the whole run though requests were answered: the sampler does not see the processes that serve"
		for i := range r.Steps {
			if s := &r.Steps[i]; s.Arch == a {
				s.Resources.Measured, s.Resources.Note = false, note
			}
		}
		for i := range r.Points {
			if pt := &r.Points[i]; pt.Arch == a {
				pt.CPUPerReqMS, pt.CPUCores = 0, 0
			}
		}
		for i := range r.Architectures {
			if info := &r.Architectures[i]; info.Name == a {
				info.Resources = "not measured: " + note + " (it was: " + info.Resources + ")"
			}
		}
		r.Warnings = append(r.Warnings, a+": "+note+"; CPU figures left out (a Podman stack wants -resources podman, which the Makefile's build of loadtest has)")
	}
	names := res.Archs
	common := CommonRate(res)
	for _, a := range names {
		s := ArchSummary{Arch: a}
		s.MaxRate, s.MaxRateBound, s.FirstFailing = MaxWithinSLO(res.Points, a, p.Rates)
		if pt, ok := findPoint(res.Points, a, common); ok {
			s.AtCommon = at(pt)
		}
		if s.MaxRate > 0 {
			if pt, ok := findPoint(res.Points, a, s.MaxRate); ok {
				s.AtMax = at(pt)
			}
		}
		for _, pt := range res.Points {
			if pt.Arch == a {
				s.PeakMemBytes = max(s.PeakMemBytes, pt.PeakMemBytes)
			}
		}
		r.Summary = append(r.Summary, s)
	}
	if len(r.Summary) > 0 {
		r.Comparison = compare(r.Summary, common)
	}
	r.Warnings = append(r.Warnings, warnings(r)...)
	return r
}

func at(pt Point) *At {
	return &At{Rate: pt.Offered, Achieved: pt.Traffic.Achieved, P50MS: pt.Traffic.Latency.P50, P99MS: pt.Traffic.Latency.P99,
		ErrorRate: pt.Traffic.ErrorRate, CPUPerReqMS: pt.CPUPerReqMS, CPUCores: pt.CPUCores, PeakMemBytes: pt.PeakMemBytes}
}

// StepWindow is when the last ladder step of an architecture at a rate ran (zero times
// when none did).
func StepWindow(res *Result, arch string, rate float64) (from, to time.Time) {
	for _, s := range res.Steps {
		if s.Arch == arch && s.Phase == "ladder" && s.Offered == rate {
			from, to = s.Started, s.Started.Add(time.Duration(s.Seconds*float64(time.Second)))
		}
	}
	return from, to
}

// findPoint prefers the ladder's point (repeats merged) at a rate, else a search step's.
func findPoint(pts []Point, arch string, rate float64) (Point, bool) {
	var found *Point
	for i, p := range pts {
		if p.Arch == arch && p.Offered == rate {
			if p.Phase == "ladder" {
				return p, true
			}
			found = &pts[i]
		}
	}
	if found != nil {
		return *found, true
	}
	return Point{}, false
}

// CommonRate is the highest ladder rate every architecture passed, else the lowest rate:
// the rate at which latencies and costs are compared like for like.
func CommonRate(res *Result) float64 {
	pts, archs, rates := res.Points, res.Archs, res.Plan.Rates
	if len(rates) == 0 {
		return 0
	}
	best := rates[0]
	for _, rate := range rates {
		all := true
		for _, a := range archs {
			p, ok := findPoint(pts, a, rate)
			if !ok || p.Phase != "ladder" || !p.SLOPass {
				all = false
			}
		}
		if all {
			best = rate
		}
	}
	return best
}

func compare(sums []ArchSummary, common float64) *Comparison {
	c := &Comparison{Baseline: sums[0].Arch, CommonRate: common}
	for _, s := range sums {
		c.Archs = append(c.Archs, s.Arch)
	}
	add := func(metric, unit, better string, f func(ArchSummary) float64) {
		r := Ratio{Metric: metric, Unit: unit, Better: better}
		for _, s := range sums {
			r.Values = append(r.Values, f(s))
		}
		for _, v := range r.Values {
			ratio := 0.0
			if r.Values[0] != 0 {
				ratio = v / r.Values[0]
			}
			r.Ratios = append(r.Ratios, ratio)
		}
		c.Rows = append(c.Rows, r)
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	add(MetricMaxRate, "req/s", "higher", func(s ArchSummary) float64 { return s.MaxRate })
	if !slices.ContainsFunc(sums, func(s ArchSummary) bool { return s.AtCommon == nil }) {
		add(fmt.Sprintf("p50 at %g req/s", common), "ms", "lower", func(s ArchSummary) float64 { return s.AtCommon.P50MS })
		add(fmt.Sprintf("p99 at %g req/s", common), "ms", "lower", func(s ArchSummary) float64 { return s.AtCommon.P99MS })
		add(fmt.Sprintf("CPU per request at %g req/s", common), "ms", "lower", func(s ArchSummary) float64 { return s.AtCommon.CPUPerReqMS })
		add(fmt.Sprintf("peak memory at %g req/s", common), "MiB", "lower", func(s ArchSummary) float64 { return mib(s.AtCommon.PeakMemBytes) })
	}
	add("peak memory, whole run", "MiB", "lower", func(s ArchSummary) float64 { return mib(s.PeakMemBytes) })
	return c
}

// MetricMaxRate is the comparison's first row: the highest rate within the SLO.
const MetricMaxRate = "max rate within SLO"

// warnings are the fairness checks a reader must see before trusting a figure.
func warnings(r *Report) []string {
	var w []string
	if r.Interrupted != "" {
		w = append(w, "the run was interrupted ("+r.Interrupted+"): the figures cover only the steps that ran")
	}
	cores := float64(r.Environment.Machine.CPUs)
	var saturated, noisy, lagging []string
	maxOther, maxLag := 0.0, 0.0
	for _, s := range r.Steps {
		g := s.Generator
		label := fmt.Sprintf("#%d %s %g/s", s.Index, s.Arch, s.Offered)
		if cores > 0 && g.MachineBusy > 0.9*cores && g.CPUCores > 0.2*cores {
			saturated = append(saturated, fmt.Sprintf("%s (machine %.2f of %g cores busy, generator %.2f)", label, g.MachineBusy, cores, g.CPUCores))
		}
		if cores > 0 && g.OtherCores > 0.25*cores {
			noisy = append(noisy, label)
			maxOther = max(maxOther, g.OtherCores)
		}
		if s.Traffic.MaxLagMS > 10 {
			lagging = append(lagging, label)
			maxLag = max(maxLag, s.Traffic.MaxLagMS)
		}
	}
	if len(saturated) > 0 {
		w = append(w, fmt.Sprintf("headroom: in %d step(s) the machine was saturated while the load generator itself used more than a fifth of it, so the system under test had less CPU than it would alone; those steps understate its capacity: %s",
			len(saturated), strings.Join(capList(saturated, 6), "; ")))
	}
	if len(noisy) > 0 {
		w = append(w, fmt.Sprintf("noise: processes other than the generator and the architecture under test used up to %.2f of %g cores in %d step(s) (%s); interleaving spreads the noise over every architecture, but absolute figures are lower than on a quiet machine",
			maxOther, cores, len(noisy), strings.Join(capList(noisy, 6), ", ")))
	}
	if len(lagging) > 0 {
		w = append(w, fmt.Sprintf("the generator fell up to %.1f ms behind its schedule in %d step(s) (%s); those delays are inside the latencies (measured from the schedule), not hidden",
			maxLag, len(lagging), strings.Join(capList(lagging, 6), ", ")))
	}
	// A ladder that passes above its first failure failed on noise as much as on load: the
	// max within the SLO stops at the first failure, and a reader must know it is fragile.
	for _, sum := range r.Summary {
		_, first, ok := ladderBracket(r.Points, sum.Arch, r.Settings.Rates)
		if !ok || first == 0 {
			continue
		}
		var above []string
		for _, p := range r.Points {
			if p.Arch == sum.Arch && p.Phase == "ladder" && p.SLOPass && p.Offered > first {
				above = append(above, fmt.Sprintf("%g/s", p.Offered))
			}
		}
		if len(above) > 0 {
			w = append(w, fmt.Sprintf("%s failed the SLO at %g/s and passed it above, at %s: its max within the SLO (%g/s) is read up to the first failure, which noise as much as load made; longer steps (-step) or repeats (-repeats) steady it",
				sum.Arch, first, strings.Join(above, ", "), sum.MaxRate))
		}
	}
	// Limits: equal totals, enforced, known.
	var lim []string
	for _, a := range r.Architectures {
		if !a.Limits.Enforced {
			lim = append(lim, a.Name)
		}
	}
	if len(lim) > 0 {
		w = append(w, "limits not enforced for "+strings.Join(lim, ", ")+": processes share the whole machine; run under Podman (mitosis up) for equal, enforced limits")
	}
	// Unknown limits (zero: a --split has no topology file to read them from) are neither
	// equal nor unequal.
	known := slices.DeleteFunc(slices.Clone(r.Architectures), func(a ArchInfo) bool { return a.Limits.CPUs == 0 && a.Limits.MemoryMB == 0 })
	if len(known) > 1 {
		first := known[0]
		var unequal []string
		enforced := first.Limits.Enforced
		for _, a := range known[1:] {
			if a.Limits.CPUs != first.Limits.CPUs || a.Limits.MemoryMB != first.Limits.MemoryMB {
				unequal = append(unequal, fmt.Sprintf("%s has %g CPUs and %d MiB", a.Name, a.Limits.CPUs, a.Limits.MemoryMB))
				enforced = enforced || a.Limits.Enforced
			}
		}
		if len(unequal) > 0 {
			w = append(w, fmt.Sprintf("unequal limits: %s has %g CPUs and %d MiB, %s (the topology's totals; %s)",
				first.Name, first.Limits.CPUs, first.Limits.MemoryMB, strings.Join(unequal, ", "),
				map[bool]string{true: "enforced by Podman, so the comparison is not at equal resources", false: "not enforced by this runtime"}[enforced]))
		}
	}
	w = append(w, memoryWarnings(r)...)
	for _, a := range r.Architectures {
		measured := false
		for _, s := range r.Steps {
			if s.Arch == a.Name && s.Resources.Measured {
				measured = true
				break
			}
		}
		if !measured && len(r.Steps) > 0 {
			w = append(w, "CPU and memory of "+a.Name+" were not measured: "+a.Resources)
		}
	}
	if !r.Traces.Collected {
		w = append(w, "trace breakdown missing: "+r.Traces.Reason)
	}
	// The load average is a minute's: at the start it still counts work that has ended (make
	// compare's own image build) and says nothing of the steps. Where the steps measured the
	// rest of the machine (the noise warning above), that speaks for them instead.
	if r.Environment.Machine.LoadAvg > cores && cores > 0 && !othersMeasured(r) {
		w = append(w, fmt.Sprintf("the machine's load average was %.2f on %g cores when the run started, and no step measured what the rest of the machine used", r.Environment.Machine.LoadAvg, cores))
	}
	return w
}

// othersMeasured tells whether some step measured what ran besides the generator and the
// architecture under test (Generator.OtherCores, which needs the architecture's CPU).
func othersMeasured(r *Report) bool {
	return slices.ContainsFunc(r.Steps, func(s Step) bool { return s.Resources.Measured && s.Generator.MachineBusy > 0 })
}

// memoryWarnings names every process whose memory came near its Go memory limit (GOMEMLIMIT,
// topology.GoMemLimitMB of its own limit) in some step: there its garbage collector runs
// without end and takes the CPU, so its architecture's CPU and latency say more about what
// the process holds than about the architecture. NATS gets there as its stores fill up, over
// runs on the same data (the services, their NATS holding up to 210 MiB against a 168 MiB
// limit, answered 200 req/s of a checkout-heavy mix at a p50 of 85 ms, 2026-12-06) and in
// the last steps of one `make compare` from empty stores (run 20261206-181505).
func memoryWarnings(r *Report) []string {
	var w []string
	for _, a := range r.Architectures {
		for _, sl := range a.Limits.PerService {
			if sl.MemoryMB <= 0 {
				continue
			}
			limit := uint64(topology.GoMemLimitMB(sl.MemoryMB)) << 20
			var peak uint64
			var at []string
			for _, s := range r.Steps {
				if s.Arch != a.Name {
					continue
				}
				for _, p := range s.Resources.Processes {
					if p.Name == sl.Name && topology.NearGoMemLimit(p.PeakMemBytes, sl.MemoryMB) {
						peak = max(peak, p.PeakMemBytes)
						at = append(at, fmt.Sprintf("#%d", s.Index))
					}
				}
			}
			if peak > 0 {
				w = append(w, fmt.Sprintf("memory: %s's %s held up to %.0f MiB in %d step(s) (%s), %.0f%% of its Go memory limit (GOMEMLIMIT %d MiB, of its %d MiB): near it the garbage collector runs without end and takes the CPU, so %s's CPU and latency there say more about what %s holds than about the architecture%s",
					a.Name, sl.Name, float64(peak)/(1<<20), len(at), strings.Join(capList(at, 6), ", "), 100*float64(peak)/float64(limit),
					topology.GoMemLimitMB(sl.MemoryMB), sl.MemoryMB, a.Name, sl.Name, storeHint(sl.Name)))
			}
		}
	}
	return w
}

// storeHint says, for a service whose heap grows with its stores (NATS), why and what empties it.
func storeHint(service string) string {
	if !topology.HeapGrowsWithStores(service) {
		return ""
	}
	return " (its heap grows with the keys its stores hold, a few for every checkout, within a run as over runs on the same data; make down VOLUMES=1 empties them, as make compare does first)"
}

func capList(l []string, n int) []string {
	if len(l) <= n {
		return l
	}
	return append(slices.Clone(l[:n]), fmt.Sprintf("and %d more", len(l)-n))
}

// WriteJSON writes report.json.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteFiles writes report.json, report.md and report.html into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.Trade = r.trade() // once every section is in
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{{"report.json", r.WriteJSON}, {"report.md", r.WriteMarkdown}, {"report.html", r.WriteHTML}} {
		file, err := os.Create(filepath.Join(dir, f.name))
		if err != nil {
			return err
		}
		if err := f.write(file); err != nil {
			file.Close()
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := file.Close(); err != nil {
			return err
		}
	}
	return nil
}

// fmtRate prints a rate with its bound.
func fmtRate(s ArchSummary) string {
	switch s.MaxRateBound {
	case "at_least":
		return fmt.Sprintf("≥ %g req/s (no rate tried failed)", s.MaxRate)
	case "below_lowest":
		return fmt.Sprintf("< %g req/s (the lowest rate failed)", s.FirstFailing)
	case "not_run":
		return "not run"
	}
	return fmt.Sprintf("%g req/s (%g failed)", s.MaxRate, s.FirstFailing)
}

func fmtRatio(x float64) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

// WriteMarkdown writes report.md: the headline table first, then the steps.
func (r *Report) WriteMarkdown(w io.Writer) error {
	if r.rollOnly() {
		return r.writeRollOnlyMarkdown(w)
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if len(r.Steps) == 0 && r.Faults != nil {
		r.faultsOnlyMarkdown(p)
		_, err := io.WriteString(w, b.String())
		return err
	}
	p("# Load test %s", r.ID)
	p("")
	p("%s, %s to %s (%s). SLO: p99 < %g ms and errors < %g%%. %s.", strings.Join(archNames(r), " vs "),
		r.Started.Format(time.RFC3339), r.Finished.Format("15:04:05Z"), r.Finished.Sub(r.Started).Round(time.Second),
		r.Settings.SLOP99MS, 100*r.Settings.SLOErrorRate, r.Settings.Model)
	if r.Interrupted != "" {
		p("")
		p("**Interrupted:** %s", r.Interrupted)
	}
	p("")
	r.tradeMarkdown(p)
	p("## Result")
	p("")
	if h := r.headline(); len(h.Archs) > 0 {
		p("| | %s |", strings.Join(slices.Concat(h.Archs, h.RatioHeads), " | "))
		p("|---|%s", strings.Repeat("---|", len(h.Archs)+len(h.RatioHeads)))
		for _, row := range h.Rows {
			cells := slices.Clone(row.Cells)
			for _, x := range row.Ratios {
				cells = append(cells, x.Text)
			}
			p("| %s | %s |", row.Label, strings.Join(cells, " | "))
		}
		if len(h.RatioHeads) > 0 {
			p("")
			p("%s", h.Note)
		}
	}
	if len(r.Warnings) > 0 {
		p("")
		p("## Warnings")
		p("")
		for _, x := range r.Warnings {
			p("- %s", x)
		}
	}
	r.faultsMarkdown(p)
	r.rollMarkdown(p)
	r.scalingMarkdown(p)
	r.roundTripsMarkdown(p)
	p("")
	p("## Latency and cost by offered rate (repeats merged)")
	p("")
	p("| arch | phase | offered | achieved | p50 | p90 | p99 | p99.9 | max | errors | CPU cores | CPU/req | peak mem | generator | SLO |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, pt := range r.Points {
		t := pt.Traffic
		p("| %s | %s | %g | %.1f | %.2f | %.2f | %.2f | %.2f | %.1f | %.2f%% | %.2f | %s | %s | %.2f | %s |", pt.Arch, pt.Phase, pt.Offered, t.Achieved,
			t.Latency.P50, t.Latency.P90, t.Latency.P99, t.Latency.P999, t.Latency.Max, 100*t.ErrorRate, pt.CPUCores,
			fmtCPU(pt.CPUPerReqMS), fmtMem(pt.PeakMemBytes), pt.Generator.CPUCores, passFail(pt.SLOPass))
	}
	p("")
	p("## Steps in run order")
	p("")
	p("| # | arch | phase | rep | offered | requests | achieved | p50 | p99 | max | errors | CPU/req | machine busy | other | SLO |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range r.Steps {
		t := s.Traffic
		p("| %d | %s | %s | %d | %g | %d | %.1f | %.2f | %.2f | %.1f | %.2f%%%s | %s | %.2f | %.2f | %s |", s.Index, s.Arch, s.Phase, s.Repeat, s.Offered, t.Requests, t.Achieved,
			t.Latency.P50, t.Latency.P99, t.Latency.Max, 100*t.ErrorRate, topErrors(t.Errors), fmtCPU(s.Resources.CPUPerReqMS),
			s.Generator.MachineBusy, s.Generator.OtherCores, passFail(s.SLOPass))
	}
	if len(r.Skipped) > 0 {
		p("")
		p("Skipped: %s.", strings.Join(r.Skipped, "; "))
	}
	p("")
	p("## Trace breakdown")
	p("")
	if !r.Traces.Collected {
		p("**Traces were not collected:** %s", r.Traces.Reason)
	} else {
		t := r.Traces
		p("Operation `%s`, traces from %s (%s); medians of the request's critical path in ms.", t.Operation, t.Collector, orNone(t.Window))
		p("")
		p("| architecture | traces | root p50 | domain | store | transport | queueing | spans | remote hops |")
		p("|---|---|---|---|---|---|---|---|---|")
		for _, s := range t.Sides {
			if s.Missing != "" {
				p("| %s | none: %s | | | | | | | |", s.Label, s.Missing)
				continue
			}
			cp := s.CriticalPath
			n := strconv.Itoa(s.Traces)
			if s.Incomplete > 0 {
				n += fmt.Sprintf(" (%d incomplete)", s.Incomplete)
			}
			p("| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f |", s.Label, n, s.RootP50MS, cp["domain"], cp["store"], cp["transport"], cp["queueing"], s.Spans, s.RemoteHops)
		}
		for _, c := range t.Comparisons {
			p("")
			p("Where the critical path of %s differs from that of %s (mean per trace; waterfalls in %s):", c.Other, c.Baseline, orNone(c.File))
			p("")
			p("| where (%s − %s) | %s ms | %s ms | Δ ms |", c.Other, c.Baseline, c.Baseline, c.Other)
			p("|---|---|---|---|")
			for _, d := range c.Differences {
				p("| %s: %s | %.2f | %.2f | %+.2f |", d.Category, d.Span, d.BaselineMS, d.OtherMS, d.DeltaMS)
			}
		}
	}
	p("")
	p("## Fairness and environment")
	p("")
	e := r.Environment
	p("- machine: %d CPUs (%s), %s RAM, %s/%s, kernel %s, load average %.2f at start", e.Machine.CPUs, e.Machine.CPUModel,
		fmtMem(e.Machine.MemBytes), e.Machine.OS, e.Machine.Arch, e.Machine.Kernel, e.Machine.LoadAvg)
	dirty := ""
	if e.GitDirty {
		dirty = " (with uncommitted changes)"
	}
	p("- load generator: %s, GOMAXPROCS %d; git revision %s%s", e.GoVersion, e.GOMAXPROCS, orNone(e.GitRevision), dirty)
	for _, ic := range r.IdleCPU {
		p("- %s used %.3f cores with no traffic (measured for 1 s before the warm-up); after each step the runner waits until it is back within 0.05 cores of that, at most 10 s, so a step's leftover work is not billed to the next", ic.Arch, ic.Cores)
	}
	for _, a := range r.Architectures {
		enf := "not enforced"
		if a.Limits.Enforced {
			enf = "enforced"
		}
		p("- %s at %s, runtime %s: limits %g CPUs, %d MiB, budget %s (%s); resources: %s", a.Name, a.BaseURL, a.Runtime, a.Limits.CPUs, a.Limits.MemoryMB, orNone(string(a.Limits.Mode)), enf, a.Resources)
		if sh := a.Limits.Shares(); sh != "" {
			p("  - shares: %s", sh)
		}
		for _, pr := range a.Processes {
			p("  - %s", procLine(pr))
		}
		sent := []string{}
		for _, k := range Kinds() {
			sent = append(sent, fmt.Sprintf("%s %d", k, a.Scenario.Sent[k]))
		}
		p("  - traffic: %d users; sent %s; %d declined-card checkouts; %d substitutions; %d users retired; stock topped up to %d per product (%d units added)",
			a.Scenario.Users, strings.Join(sent, ", "), a.Scenario.DeclinedSent, a.Scenario.Substitutions, a.Scenario.Retired, a.Scenario.StockLevel, a.Scenario.StockAdded)
	}
	s := r.Settings
	p("- settings: rates %v req/s, %gs steps, warm-up %gs at %g req/s, %d repeat(s), %d search step(s) of %gs, %gs pauses, %d users per architecture, %gs request timeout, seed %d, %s; %s",
		s.Rates, s.StepS, s.WarmupS, s.WarmupRate, s.Repeats, s.Search, s.SearchStepS, s.PauseS, s.Users, s.TimeoutS, s.Seed, traceShare(s.TraceShare), s.Order)
	p("- mix (weights): list %g, search %g, product %g, cart add %g, checkout %g, of which %g%% declined cards",
		s.Mix.List, s.Mix.Search, s.Mix.Product, s.Mix.CartAdd, s.Mix.Checkout, 100*s.Mix.Declined)
	_, err := io.WriteString(w, b.String())
	return err
}

// headline is the Result table: one column per architecture, then one ratio column per
// architecture after the first, against the first.
type headline struct {
	Archs      []string
	RatioHeads []string // "services / monolith", ...
	Rows       []headRow
	Note       string
}

type headRow struct {
	Label  string
	Cells  []string    // one per architecture
	Ratios []ratioCell // one per architecture after the first
}

// ratioCell is a ratio and whether it is better or worse than the baseline ("better",
// "worse" or "" for within 1% or unknown): the HTML page colours it.
type ratioCell struct{ Text, Class string }

func (r *Report) headline() headline {
	var h headline
	c := r.Comparison
	if c == nil || len(c.Archs) == 0 {
		return h
	}
	h.Archs = c.Archs
	for _, a := range c.Archs[1:] {
		h.RatioHeads = append(h.RatioHeads, a+" / "+c.Baseline)
	}
	h.Note = fmt.Sprintf("Ratios are each architecture's figure over %s's: for the rate, higher is better; for latency, CPU and memory, lower is.", c.Baseline)
	for _, row := range c.Rows {
		hr := headRow{Label: row.Metric}
		for i, v := range row.Values {
			cell := fmtVal(v, row.Unit)
			switch {
			case row.Metric == MetricMaxRate && i < len(r.Summary) && r.Summary[i].Arch == c.Archs[i]:
				cell = fmtRate(r.Summary[i])
			case v == 0 && row.Unit != "req/s":
				cell = "–" // not measured
			}
			hr.Cells = append(hr.Cells, cell)
		}
		for _, x := range row.Ratios[1:] {
			hr.Ratios = append(hr.Ratios, ratioCell{Text: fmtRatio(x), Class: ratioClass(x, row.Better)})
		}
		h.Rows = append(h.Rows, hr)
	}
	return h
}

func ratioClass(x float64, better string) string {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x-1) < 0.01 {
		return ""
	}
	if (x > 1) == (better == "higher") {
		return "better"
	}
	return "worse"
}

func archNames(r *Report) []string {
	var out []string
	for _, s := range r.Summary {
		out = append(out, s.Arch)
	}
	return out
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

func fmtCPU(ms float64) string {
	if ms == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f ms", ms)
}

func fmtMem(b uint64) string {
	if b == 0 {
		return "–"
	}
	if b >= 4<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "req/s":
		return fmt.Sprintf("%g req/s", v)
	case "ms":
		return fmt.Sprintf("%.3f ms", v)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// procLine says what is known of a measured process: its PID, and how its binary was built
// (nothing of the build when its binary could not be read, as for another user's process).
func procLine(pr ProcInfo) string {
	var parts []string
	if pr.PID > 0 {
		parts = append(parts, fmt.Sprintf("pid %d", pr.PID))
	}
	build := "build unknown"
	if pr.GoVersion != "" {
		build = pr.GoVersion
		if pr.Revision != "" { // images are built without VCS stamps (platform/imagebuild)
			build += ", revision " + shortRev(pr.Revision)
		}
		if pr.Modified {
			build += " (with uncommitted changes)"
		}
	}
	return pr.Name + ": " + strings.Join(append(parts, build), ", ")
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func shortRev(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// traceShare says how much of the traffic was traced.
func traceShare(share float64) string {
	if share < 0 {
		return "tracing as each stack samples"
	}
	return fmt.Sprintf("%g%% of requests traced (sampled traceparent)", 100*share)
}

// ZeroCPU lists the architectures whose steps all measured resources but whose CPU read zero
// over the whole run though requests were answered: a sampler that does not see the
// processes that serve (a Podman stack measured by the process listening on its port, say),
// whose figures would read as requests that cost nothing.
func ZeroCPU(res *Result) []string {
	var out []string
	for _, a := range res.Archs {
		measured, cpu, ok := false, 0.0, int64(0)
		for _, s := range res.Steps {
			if s.Arch != a {
				continue
			}
			if !s.Resources.Measured {
				measured = false
				break
			}
			measured = true
			cpu += s.Resources.CPUSeconds
			ok += int64(s.Traffic.OK)
		}
		if measured && cpu == 0 && ok > 0 {
			out = append(out, a)
		}
	}
	return out
}
