package advise

import (
	"fmt"
	"math"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Options are what Advise is asked.
type Options struct {
	Constraints Constraints
	Objective   Objective
	// Check, when set, is a run of one endpoint class alone (CheckKind) whose hop cost the
	// model's own check predicts the services with.
	Check     *Run
	CheckKind string
}

// Report is everything advise says of a run.
type Report struct {
	Run     RunInfo       `json:"run"`
	Model   *Model        `json:"model"`
	Formula string        `json:"formula"` // the model, in words and figures
	Graph   *GraphView    `json:"graph"`
	Search  *Result       `json:"search"`
	Check   *SelfCheck    `json:"check,omitempty"`
	Verify  *Verification `json:"verify,omitempty"`
}

// RunInfo names the run read.
type RunInfo struct {
	Dir    string         `json:"dir"`
	ID     string         `json:"id"`
	Rate   float64        `json:"rate_rps"`
	Traces map[string]int `json:"traces"` // by architecture
}

// GraphView is the call graph as the outputs show it: the mix's edges, per second at the
// run's rate.
type GraphView struct {
	Classes []*Class   `json:"classes"`
	Calls   []EdgeView `json:"calls"`
	Events  []EdgeView `json:"events"`
}

// EdgeView is one edge of the mix.
type EdgeView struct {
	*Edge
	PerSecond float64 `json:"per_second"`
	// OnCriticalPath is whether most of its calls lie on their request's critical path.
	OnCriticalPath bool `json:"on_critical_path"`
}

// SelfCheck is the model predicting the services from the monolith and one measured hop.
type SelfCheck struct {
	HopSource   string  `json:"hop_source"`
	HopCPUMS    float64 `json:"hop_cpu_ms"`
	PredictedMS float64 `json:"predicted_cpu_per_request_ms"`
	MeasuredMS  float64 `json:"measured_cpu_per_request_ms"`
	ErrorPct    float64 `json:"error_pct"`
}

// Advise reads run's traces and measurements and answers: the graph, the model, the search.
func Advise(run *Run, o Options) (*Report, error) {
	for _, arch := range []string{Monolith, Services} {
		if len(run.Traces[arch]) == 0 {
			return nil, fmt.Errorf("run %s has no traces of the %s: advise calibrates on the monolith and the services measured in one run (loadtest -edges monolith,services)", run.ID, arch)
		}
		if run.Measured[arch] == nil {
			return nil, fmt.Errorf("run %s measured no %s at %g req/s", run.ID, arch, run.Rate)
		}
	}
	gm, err := BuildGraph(Monolith, run.Traces[Monolith])
	if err != nil {
		return nil, err
	}
	gs, err := BuildGraph(Services, run.Traces[Services])
	if err != nil {
		return nil, err
	}
	m, err := Calibrate(gm, gs, run.Measured[Monolith], run.Measured[Services])
	if err != nil {
		return nil, err
	}
	r := &Report{Run: RunInfo{Dir: run.Dir, ID: run.ID, Rate: run.Rate, Traces: map[string]int{}}, Model: m}
	for arch, ts := range run.Traces {
		r.Run.Traces[arch] = len(ts)
	}
	if o.Check != nil {
		check := *m
		if err := check.HopFromOneHop(o.Check, o.CheckKind); err != nil {
			return nil, fmt.Errorf("the model's check: %w", err)
		}
		p := check.Predict(check.ServicesPlacement())
		r.Check = &SelfCheck{HopSource: check.HopSource, HopCPUMS: check.HopCPUMS, PredictedMS: p.CPUPerReqMS,
			MeasuredMS: m.Services.CPUPerReqMS, ErrorPct: ErrorPct(p.CPUPerReqMS, m.Services.CPUPerReqMS)}
	}
	r.Graph = m.view()
	r.Formula = m.Formula()
	if o.Objective == "" {
		o.Objective = ObjectiveBalanced
	}
	r.Search, err = m.Search(o.Constraints, o.Objective)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ErrorPct is (predicted − measured) / measured, in percent; NaN when measured is 0 (the
// callers compare measured figures only).
func ErrorPct(predicted, measured float64) float64 {
	if measured == 0 {
		return math.NaN()
	}
	return (predicted - measured) / measured * 100
}

func (m *Model) view() *GraphView {
	v := &GraphView{Classes: m.Calls.Classes}
	for _, e := range m.Calls.Mix() {
		v.Calls = append(v.Calls, EdgeView{Edge: e, PerSecond: e.Calls * m.Rate, OnCriticalPath: e.Critical >= e.Calls/2})
	}
	for _, e := range m.Calls.MixEvents() {
		v.Events = append(v.Events, EdgeView{Edge: e, PerSecond: e.Calls * m.Rate})
	}
	return v
}

// Formula states the calibrated model.
func (m *Model) Formula() string {
	return fmt.Sprintf("CPU/req = monolith's %.3f ms + %.3f ms per cut call per request + %.3f ms per process beyond the first; "+
		"h = %.3f ms from %s. Latency of each endpoint class = monolith's + f × (services' − monolith's), f the share of the class's critical-path hop time (client span − server span, per edge) that the placement cuts. "+
		"Events cross the broker in every placement and add no cost when cut. At %g req/s.",
		m.Mono.CPUPerReqMS, m.HopCPUMS, m.ProcessCPUMS, m.HopCPUMS, m.HopSource, m.Rate)
}

// Topology is p as a topology file named name (topologies/<name>.yaml takes it; mitosis up -t
// reads it from there, --split takes Split).
func (m *Model) Topology(name string, p *Prediction) ([]byte, error) {
	pl := p.Placement()
	f := topology.File{Name: name, Description: "mitosis advise: " + p.Split}
	groups := make([][]string, pl.Groups.Groups())
	if pl.Edge != EdgeAlone {
		groups[pl.Edge] = []string{EdgeNode}
	}
	for i, x := range pl.Groups {
		groups[x] = append(groups[x], m.Contexts[i])
	}
	for _, g := range groups {
		f.Groups = append(f.Groups, topology.FileGroup{Contexts: g})
	}
	if pl.Edge == EdgeAlone {
		f.Groups = append(f.Groups, topology.FileGroup{Name: "gateway", Contexts: []string{EdgeNode}})
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# Written by mitosis advise: %d groups, predicted %.2f ms CPU per request, checkout p99 %.1f ms.\n",
		p.Groups, p.CPUPerReqMS, p.checkoutP99())
	return append([]byte(head), b...), nil
}

// SplitArg is p as `mitosis up --split` takes it: the monolith has no split (-t monolith).
func (p *Prediction) SplitArg() string {
	if p.Split == Monolith {
		return ""
	}
	return p.Split
}

// Describe is one line of a placement's figures.
func (p *Prediction) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d groups, %d processes: CPU %.2f ms/req, p50 %.2f ms, checkout p99 %.1f ms, %.0f%% of calls cut",
		p.Groups, p.Processes, p.CPUPerReqMS, p.Latency.P50, p.checkoutP99(), 100*p.CutShare)
	return b.String()
}
