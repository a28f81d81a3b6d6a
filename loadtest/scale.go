package loadtest

import (
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Scaling is the scaling gain of a run (report.json's "scaling"): an architecture against a
// variant of it whose hottest group runs as several replicas, at the same total budget
// (platform/topology shares a group's part among its replicas), both measured by the same
// ladder of the same run. The gain is the variant's highest rate within the SLO over the
// architecture's: what independent scaling of the hottest process buys, without more
// resources.
type Scaling struct {
	Base    string `json:"base"`    // the architecture
	Variant string `json:"variant"` // the same placement, one group with replicas
	// Hottest is the base's process that used the most CPU over the run's steps, among those
	// a variant could give replicas (not NATS, not the edge's); HottestShare is its share of
	// the base's CPU.
	Hottest      string  `json:"hottest"`
	HottestShare float64 `json:"hottest_cpu_share"`
	// Scaled is the service the variant runs as several processes, and Replicas how many
	// (from its processes' names, <service>-<n>).
	Scaled          string  `json:"scaled"`
	Replicas        int     `json:"replicas"`
	MaxRateOne      float64 `json:"max_rate_one"` // the base's highest rate within the SLO
	BoundOne        string  `json:"max_rate_one_bound"`
	FailOne         float64 `json:"first_failing_one,omitempty"` // the lowest rate that failed above it
	MaxRateReplicas float64 `json:"max_rate_replicas"`           // the variant's
	BoundReplicas   string  `json:"max_rate_replicas_bound"`
	FailReplicas    float64 `json:"first_failing_replicas,omitempty"`
	Gain            float64 `json:"gain"`                    // max_rate_replicas / max_rate_one; 0 when either is unknown
	CPUOne          float64 `json:"cpu_limit_one"`           // the architectures' CPU limits in total, as the report read them (0: unknown)
	CPUReplicas     float64 `json:"cpu_limit_replicas"`      //
	Note            string  `json:"note,omitempty"`          // what to keep in mind reading the gain
	Split           string  `json:"variant_split,omitempty"` // the variant's placement, when the run was told it
}

// Hottest is the process of arch that used the most CPU over the steps, among those
// eligible says may be given replicas, with its share of all of arch's CPU; ok is false
// when the steps measured none.
func Hottest(steps []Step, arch string, eligible func(process string) bool) (name string, share float64, ok bool) {
	cpu := map[string]float64{}
	for _, s := range steps {
		if s.Arch != arch || !s.Resources.Measured {
			continue
		}
		for _, p := range s.Resources.Processes {
			cpu[p.Name] += p.CPUSeconds
		}
	}
	return HottestOf(cpu, eligible)
}

// HottestOf is the process of cpu (CPU used, by process: seconds, or cores of one step) with
// the most, among those eligible, and its share of the whole.
func HottestOf(cpu map[string]float64, eligible func(process string) bool) (name string, share float64, ok bool) {
	var total float64
	for _, c := range cpu {
		total += c
	}
	for _, n := range slices.Sorted(maps.Keys(cpu)) {
		if eligible(n) && (!ok || cpu[n] > cpu[name]) {
			name, ok = n, true
		}
	}
	if !ok || total <= 0 {
		return "", 0, false
	}
	return name, cpu[name] / total, true
}

// Replicable says which processes of an architecture could be given replicas: not NATS,
// nor the edge's process (edge: its service's name), whose replicas nothing on one machine
// would front (platform/topology).
func Replicable(edge string) func(process string) bool {
	return func(process string) bool { return process != topology.NATSService && process != edge }
}

// AddScaling puts the scaling gain of base against variant into the report, from its
// summary, its steps and its architectures' limits: edge is the service of base's edge
// (Edge.Service; "" when unknown), split, if known, the variant's placement.
func (r *Report) AddScaling(base, variant, edge, split string) error {
	sum := func(arch string) (ArchSummary, bool) {
		i := slices.IndexFunc(r.Summary, func(s ArchSummary) bool { return s.Arch == arch })
		if i < 0 {
			return ArchSummary{}, false
		}
		return r.Summary[i], true
	}
	one, ok1 := sum(base)
	many, ok2 := sum(variant)
	if !ok1 || !ok2 {
		return fmt.Errorf("scaling: the run did not measure both %s and %s", base, variant)
	}
	sc := &Scaling{Base: base, Variant: variant, Split: split, MaxRateOne: one.MaxRate, BoundOne: one.MaxRateBound, FailOne: one.FirstFailing,
		MaxRateReplicas: many.MaxRate, BoundReplicas: many.MaxRateBound, FailReplicas: many.FirstFailing}
	sc.Hottest, sc.HottestShare, _ = Hottest(r.Steps, base, Replicable(edge))
	// The variant's replicated service: the one whose processes are named <service>-<n>.
	counts := map[string]int{}
	for _, a := range r.Architectures {
		switch a.Name {
		case base:
			sc.CPUOne = a.Limits.CPUs
		case variant:
			sc.CPUReplicas = a.Limits.CPUs
			for _, p := range a.Processes {
				if s := ServiceOf(p.Name); s != p.Name {
					counts[s]++
				}
			}
		}
	}
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		if counts[s] > sc.Replicas {
			sc.Scaled, sc.Replicas = s, counts[s]
		}
	}
	if sc.MaxRateOne > 0 && sc.MaxRateReplicas > 0 {
		sc.Gain = sc.MaxRateReplicas / sc.MaxRateOne
	}
	var notes []string
	if sc.BoundOne != "found" || sc.BoundReplicas != "found" {
		notes = append(notes, fmt.Sprintf("a rate bound is not exact (%s: %s, %s: %s): the gain is as loose", base, sc.BoundOne, variant, sc.BoundReplicas))
	}
	if sc.Scaled != "" && sc.Hottest != "" && sc.Scaled != sc.Hottest {
		notes = append(notes, fmt.Sprintf("the variant gives replicas to %s, but the hottest process of %s in this run was %s", sc.Scaled, base, sc.Hottest))
	}
	if sc.Scaled == "" {
		notes = append(notes, fmt.Sprintf("no process of %s is named as a replica (<service>-<n>): is it the variant?", variant))
	}
	if sc.CPUOne > 0 && sc.CPUReplicas > 0 && cmp.Compare(sc.CPUOne, sc.CPUReplicas) != 0 {
		notes = append(notes, fmt.Sprintf("the two ran under different CPU limits (%g and %g): not the same budget", sc.CPUOne, sc.CPUReplicas))
	}
	sc.Note = strings.Join(notes, "; ")
	r.Scaling = sc
	if sc.Note != "" {
		r.Warnings = append(r.Warnings, "scaling gain: "+sc.Note)
	}
	return nil
}

// scalingMarkdown writes the scaling gain's section.
func (r *Report) scalingMarkdown(p func(string, ...any)) {
	sc := r.Scaling
	if sc == nil {
		return
	}
	p("")
	p("## Scaling gain: %s with %s ×%d", sc.Base, orNone(sc.Scaled), sc.Replicas)
	p("")
	p("%s against %s, the same placement with %s run by %d replicas sharing its part of the same budget. The hottest process of %s in this run: %s (%.0f%% of its CPU).",
		sc.Variant, sc.Base, orNone(sc.Scaled), sc.Replicas, sc.Base, orNone(sc.Hottest), 100*sc.HottestShare)
	p("")
	p("| | %s | %s | gain |", sc.Base, sc.Variant)
	p("|---|---|---|---|")
	p("| max rate within SLO | %s | %s | %s |", fmtBound(sc.MaxRateOne, sc.BoundOne, sc.FailOne), fmtBound(sc.MaxRateReplicas, sc.BoundReplicas, sc.FailReplicas), fmtRatio(sc.Gain))
	if sc.Split != "" {
		p("")
		p("The variant: `--split '%s'`.", sc.Split)
	}
}

// fmtBound prints a rate with its bound, as the headline does.
func fmtBound(rate float64, bound string, firstFailing float64) string {
	return fmtRate(ArchSummary{MaxRate: rate, MaxRateBound: bound, FirstFailing: firstFailing})
}

var scalingSection = template.Must(template.New("scaling").Funcs(template.FuncMap{
	"bound": fmtBound, "ratio": fmtRatio, "none": orNone, "pct": func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) },
}).Parse(`{{with .Scaling}}
<h2 id="scaling">Scaling gain: {{.Base}} with {{none .Scaled}} ×{{.Replicas}}</h2>
<p>{{.Variant}} against {{.Base}}, the same placement with {{none .Scaled}} run by {{.Replicas}} replicas sharing its part of the same budget. The hottest process of {{.Base}} in this run: {{none .Hottest}} ({{pct .HottestShare}} of its CPU).</p>
<table><tr><th></th><th>{{.Base}}</th><th>{{.Variant}}</th><th>gain</th></tr>
<tr><td>max rate within SLO</td><td>{{bound .MaxRateOne .BoundOne .FailOne}}</td><td>{{bound .MaxRateReplicas .BoundReplicas .FailReplicas}}</td><td>{{ratio .Gain}}</td></tr></table>
{{with .Split}}<p class="note">The variant: <code>--split '{{.}}'</code>.</p>{{end}}
{{end}}`))

// scalingHTML is the scaling gain's section of report.html ("" without one).
func (r *Report) scalingHTML() (template.HTML, error) {
	if r.Scaling == nil {
		return "", nil
	}
	var b strings.Builder
	if err := scalingSection.Execute(&b, r); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil // the template escaped every value
}
