package loadtest

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// The trade sheet opens a report: for each topology of the run, what its split costs (CPU
// per request, latency, memory, the highest rate within the SLO under each budget mode) and
// what it buys (fault isolation, the deploy blast radius, the scaling gain), side by side,
// each figure naming the step or the section of the report it came from. It is computed
// from the report's own sections, never measured apart, so that every figure in it can be
// checked against the part it came from.

// TradeSheet is the report's first table.
type TradeSheet struct {
	Rows []TradeRow `json:"rows"`
	// Split says how much of each topology's gap to the first one is the split itself
	// (under a shared budget) and how much is the budget's fragmentation (per service
	// against shared), where the run measured both.
	Split []SplitCost `json:"split,omitempty"`
	Notes []string    `json:"notes,omitempty"`
}

// TradeRow is one topology (a placement, under every budget mode the run measured).
type TradeRow struct {
	Placement string   `json:"placement"`
	Archs     []string `json:"archs"` // the run's architectures of this placement, one per budget mode

	// Costs, of the placement under its per-service budget (or its only architecture), at
	// the common rate of the run.
	CPUPerReqMS *Figure `json:"cpu_per_request_ms,omitempty"`
	P50MS       *Figure `json:"p50_ms,omitempty"`
	P99MS       *Figure `json:"p99_ms,omitempty"`
	PeakMemMiB  *Figure `json:"peak_mem_mib,omitempty"` // the largest over the run
	// MaxRate is the highest rate within the SLO by budget mode (per-service, shared,
	// measured: those the run measured).
	MaxRate map[topology.Mode]*Figure `json:"max_rate_within_slo"`

	// Benefits.
	Faults  *TradeFaults `json:"faults,omitempty"`
	Roll    *TradeRoll   `json:"roll,omitempty"`
	Scaling *Figure      `json:"scaling_gain,omitempty"` // the variant's max rate over the placement's
}

// Figure is one number of the sheet and where it came from.
type Figure struct {
	Value float64 `json:"value"`
	Arch  string  `json:"arch"`
	// Ref is the anchor in report.html of the step or section the figure came from
	// (step-12, faults-services, roll-services, scaling).
	Ref  string `json:"ref"`
	Note string `json:"note,omitempty"` // e.g. "at least": no rate tried failed
	// Below, for a rate, is the lowest rate tried when even it failed: the figure is "under
	// Below", Value 0 says nothing.
	Below float64 `json:"below,omitempty"`
}

// TradeFaults sums up an architecture's fault matrix.
type TradeFaults struct {
	Arch string `json:"arch"`
	// Answered is the share of requests that succeeded while one process was down, over
	// every process killed: what a single fault leaves of the shop.
	Answered float64 `json:"answered_during_outages"`
	// Unhurt counts the (process, kind of request) pairs that kept at least 99% success
	// during the outage, of Cells.
	Unhurt int `json:"kinds_unhurt"`
	Cells  int `json:"kinds_total"`
	// WorstRecoveryS is the longest time from a start until every kind answered again,
	// and WorstProcess whose; nil when one never recovered within the watch.
	WorstRecoveryS *float64 `json:"worst_recovery_s"`
	WorstProcess   string   `json:"worst_process"`
	Invariants     bool     `json:"invariants_held"`
	Ref            string   `json:"ref"`
}

// TradeRoll sums up an architecture's roll.
type TradeRoll struct {
	Arch     string  `json:"arch"`
	Context  string  `json:"context"`
	Failed   int64   `json:"failed"`
	Requests int64   `json:"requests"` // from the roll's start to the end of the window after it
	RollS    float64 `json:"roll_s"`
	P99MS    float64 `json:"p99_during_ms"`
	Ref      string  `json:"ref"`
}

// SplitCost puts one topology's max rate within the SLO against the first topology's,
// under each budget mode: Split is shared / baseline, Fragmentation per-service / shared.
type SplitCost struct {
	Placement     string  `json:"placement"`
	Baseline      string  `json:"baseline"`
	Split         float64 `json:"split"`         // the split itself: its max rate under one shared budget over the baseline's
	Fragmentation float64 `json:"fragmentation"` // what per-service limits cost on top: per-service over shared
	Measured      float64 `json:"measured,omitempty"`
}

// placementOf is the topology an architecture runs: its name without the -<mode> that
// placement@mode gives it.
func placementOf(a ArchInfo) string {
	if a.Limits.Mode != "" {
		if p, ok := strings.CutSuffix(a.Name, "-"+string(a.Limits.Mode)); ok && p != "" {
			return p
		}
	}
	return a.Name
}

// modeOf is an architecture's budget mode, per-service when the report does not know it.
func modeOf(a ArchInfo) topology.Mode {
	if a.Limits.Mode == "" {
		return topology.PerService
	}
	return a.Limits.Mode
}

// trade is the report's trade sheet: the one it carries, else worked out from its sections
// (nil when it measured no architecture).
func (r *Report) trade() *TradeSheet {
	if r.Trade != nil {
		return r.Trade
	}
	if len(r.Summary) == 0 {
		return nil
	}
	variant := ""
	if r.Scaling != nil {
		variant = r.Scaling.Variant
	}
	t := &TradeSheet{}
	byPlacement := map[string]int{}
	for _, a := range r.Architectures {
		if a.Name == variant {
			continue // its figures are the scaling gain of its base
		}
		p := placementOf(a)
		i, ok := byPlacement[p]
		if !ok {
			i = len(t.Rows)
			byPlacement[p] = i
			t.Rows = append(t.Rows, TradeRow{Placement: p, MaxRate: map[topology.Mode]*Figure{}})
		}
		row := &t.Rows[i]
		row.Archs = append(row.Archs, a.Name)
		mode := modeOf(a)
		sum, ok := r.summaryOf(a.Name)
		if !ok {
			continue
		}
		row.MaxRate[mode] = r.maxRateFigure(sum)
		if mode == topology.PerService || a.Name == p {
			r.costs(row, sum)
		}
	}
	for i := range t.Rows {
		row := &t.Rows[i]
		if row.CPUPerReqMS == nil && len(row.Archs) > 0 { // no per-service architecture: the first
			if sum, ok := r.summaryOf(row.Archs[0]); ok {
				r.costs(row, sum)
			}
		}
		row.Faults = r.tradeFaults(row.Archs)
		row.Roll = r.tradeRoll(row.Archs)
		if sc := r.Scaling; sc != nil && slices.Contains(row.Archs, sc.Base) && sc.Gain > 0 {
			row.Scaling = &Figure{Value: sc.Gain, Arch: sc.Variant, Ref: "scaling",
				Note: fmt.Sprintf("%s ×%d: %g over %g req/s", sc.Scaled, sc.Replicas, sc.MaxRateReplicas, sc.MaxRateOne)}
		}
	}
	t.Split = splitCosts(t.Rows)
	if c := r.Comparison; c != nil {
		t.Notes = append(t.Notes, fmt.Sprintf("Costs at %g req/s, the highest ladder rate every architecture passed (else the lowest); memory the largest over the run.", c.CommonRate))
	}
	if r.Faults == nil {
		t.Notes = append(t.Notes, "No faults phase in this run: fault isolation not measured.")
	}
	if r.Roll == nil {
		t.Notes = append(t.Notes, "No roll in this run: deploy blast radius not measured.")
	}
	if r.Scaling == nil {
		t.Notes = append(t.Notes, "No scaling variant in this run: scaling gain not measured.")
	}
	return t
}

func (r *Report) summaryOf(arch string) (ArchSummary, bool) {
	i := slices.IndexFunc(r.Summary, func(s ArchSummary) bool { return s.Arch == arch })
	if i < 0 {
		return ArchSummary{}, false
	}
	return r.Summary[i], true
}

// costs fills row's costs from an architecture's summary at the common rate.
func (r *Report) costs(row *TradeRow, sum ArchSummary) {
	if at := sum.AtCommon; at != nil {
		ref := r.stepRef(sum.Arch, at.Rate, func(s Step) bool { return s.Phase == "ladder" })
		row.CPUPerReqMS = &Figure{Value: at.CPUPerReqMS, Arch: sum.Arch, Ref: ref}
		row.P50MS = &Figure{Value: at.P50MS, Arch: sum.Arch, Ref: ref}
		row.P99MS = &Figure{Value: at.P99MS, Arch: sum.Arch, Ref: ref}
	}
	if sum.PeakMemBytes > 0 {
		ref, peak := "", uint64(0)
		for _, s := range r.Steps {
			if s.Arch == sum.Arch && s.Resources.PeakMemBytes > peak {
				ref, peak = fmt.Sprintf("step-%d", s.Index), s.Resources.PeakMemBytes
			}
		}
		row.PeakMemMiB = &Figure{Value: float64(sum.PeakMemBytes) / (1 << 20), Arch: sum.Arch, Ref: ref}
	}
}

// maxRateFigure is an architecture's max rate within the SLO, from the step that passed it.
func (r *Report) maxRateFigure(sum ArchSummary) *Figure {
	f := &Figure{Value: sum.MaxRate, Arch: sum.Arch, Ref: "result"}
	if ref := r.stepRef(sum.Arch, sum.MaxRate, func(s Step) bool { return s.SLOPass }); ref != "" {
		f.Ref = ref
	}
	switch sum.MaxRateBound {
	case "at_least":
		f.Note = "at least: no rate tried failed"
	case "below_lowest":
		f.Note = fmt.Sprintf("below the lowest rate, %g req/s", sum.FirstFailing)
		f.Below = sum.FirstFailing
	case "not_run":
		f.Note = "not run"
	}
	return f
}

// stepRef is the anchor of the last step of arch at rate that ok accepts, "" when none.
func (r *Report) stepRef(arch string, rate float64, ok func(Step) bool) string {
	ref := ""
	for _, s := range r.Steps {
		if s.Arch == arch && math.Abs(s.Offered-rate) < 1e-9 && ok(s) {
			ref = fmt.Sprintf("step-%d", s.Index)
		}
	}
	return ref
}

// tradeFaults sums up the fault matrix of the first of archs the faults phase ran.
func (r *Report) tradeFaults(archs []string) *TradeFaults {
	if r.Faults == nil {
		return nil
	}
	for _, name := range archs {
		i := slices.IndexFunc(r.Faults.Archs, func(a FaultArch) bool { return a.Arch == name })
		if i < 0 {
			continue
		}
		a := r.Faults.Archs[i]
		tf := &TradeFaults{Arch: a.Arch, Invariants: a.passed(), Ref: "faults-" + a.Arch}
		ok, all := 0, 0
		worst := -1.0
		for _, c := range a.Cycles {
			for _, cell := range c.Classes {
				ok += cell.Outage.OK
				all += cell.Outage.Requests
				if cell.Outage.Success != nil {
					tf.Cells++
					if *cell.Outage.Success >= 0.99 {
						tf.Unhurt++
					}
				}
			}
			switch {
			case c.RecoveryS == nil:
				worst, tf.WorstProcess = math.Inf(1), c.Process
			case *c.RecoveryS > worst:
				worst, tf.WorstProcess = *c.RecoveryS, c.Process
			}
		}
		if all > 0 {
			tf.Answered = float64(ok) / float64(all)
		}
		if worst >= 0 && !math.IsInf(worst, 1) {
			tf.WorstRecoveryS = &worst
		}
		return tf
	}
	return nil
}

// tradeRoll sums up the roll of the first of archs the roll ran on.
func (r *Report) tradeRoll(archs []string) *TradeRoll {
	if r.Roll == nil {
		return nil
	}
	for _, name := range archs {
		i := slices.IndexFunc(r.Roll.Archs, func(a RollArch) bool { return a.Arch == name })
		if i < 0 {
			continue
		}
		a := r.Roll.Archs[i]
		return &TradeRoll{Arch: a.Arch, Context: r.Roll.Context, Failed: a.Failed, Requests: int64(a.During.Requests + a.After.Requests),
			RollS: a.RollS, P99MS: a.During.Latency.P99, Ref: "roll-" + a.Arch}
	}
	return nil
}

// splitCosts puts each topology after the first against it, where both have the rates.
func splitCosts(rows []TradeRow) []SplitCost {
	if len(rows) < 2 {
		return nil
	}
	base := rows[0]
	baseRate := figValue(base.MaxRate[topology.PerService])
	if f := base.MaxRate[topology.Shared]; f != nil { // a monolith's one process: the same either way
		baseRate = f.Value
	}
	var out []SplitCost
	for _, row := range rows[1:] {
		shared, per := figValue(row.MaxRate[topology.Shared]), figValue(row.MaxRate[topology.PerService])
		if baseRate <= 0 || shared <= 0 || per <= 0 {
			continue
		}
		sc := SplitCost{Placement: row.Placement, Baseline: base.Placement, Split: shared / baseRate, Fragmentation: per / shared}
		if m := figValue(row.MaxRate[topology.Measured]); m > 0 {
			sc.Measured = m / shared
		}
		out = append(out, sc)
	}
	return out
}

func figValue(f *Figure) float64 {
	if f == nil {
		return 0
	}
	return f.Value
}

// tradeModes are the budget modes in the sheet's order.
var tradeModes = []topology.Mode{topology.PerService, topology.Shared, topology.Measured}

// tradeMarkdown writes the sheet as the report's first section.
func (r *Report) tradeMarkdown(p func(string, ...any)) {
	t := r.trade()
	if t == nil || len(t.Rows) == 0 {
		return
	}
	p("## Trade sheet")
	p("")
	p("| topology | CPU / request | p50 / p99 | peak memory | max rate within the SLO: per-service / shared / measured | answered during single-process outages (kinds unhurt, worst recovery) | deploy blast radius | scaling gain |")
	p("|---|---|---|---|---|---|---|---|")
	for _, row := range t.Rows {
		p("| %s | %s | %s / %s | %s | %s | %s | %s | %s |", row.Placement, fig(row.CPUPerReqMS, "%.2f ms"),
			fig(row.P50MS, "%.1f"), fig(row.P99MS, "%.1f ms"), fig(row.PeakMemMiB, "%.0f MiB"),
			strings.Join(modeRates(row), " / "), faultsCell(row.Faults), rollCell(row.Roll), fig(row.Scaling, "%.2f×"))
	}
	p("")
	for _, s := range t.Split {
		p("- %s", splitSentence(s))
	}
	for _, n := range t.Notes {
		p("- %s", n)
	}
	p("")
	p("Each figure is taken from a step or section of this report (report.html links each to it).")
	p("")
}

func fig(f *Figure, format string) string {
	if f == nil {
		return "–"
	}
	if f.Below > 0 {
		return "< " + fmt.Sprintf(format, f.Below)
	}
	s := fmt.Sprintf(format, f.Value)
	if f.Note != "" && strings.HasPrefix(f.Note, "at least") {
		s = "≥ " + s
	}
	return s
}

func modeRates(row TradeRow) []string {
	var out []string
	for _, m := range tradeModes {
		out = append(out, fig(row.MaxRate[m], "%g"))
	}
	return out
}

func faultsCell(f *TradeFaults) string {
	if f == nil {
		return "–"
	}
	rec := "never"
	if f.WorstRecoveryS != nil {
		rec = fmt.Sprintf("%.1f s", *f.WorstRecoveryS)
	}
	inv := "invariants held"
	if !f.Invariants {
		inv = "INVARIANTS BROKEN"
	}
	return fmt.Sprintf("%.0f%% (%d of %d, worst %s: %s); %s", 100*f.Answered, f.Unhurt, f.Cells, f.WorstProcess, rec, inv)
}

func rollCell(r *TradeRoll) string {
	if r == nil {
		return "–"
	}
	return fmt.Sprintf("%s: %d of %d failed, %.1f s, p99 %.0f ms", r.Context, r.Failed, r.Requests, r.RollS, r.P99MS)
}

func splitSentence(s SplitCost) string {
	out := fmt.Sprintf("%s against %s, max rate within the SLO: %.2f× under one shared budget (the split itself), then %.2f× of that with per-service limits (the budget's fragmentation)",
		s.Placement, s.Baseline, s.Split, s.Fragmentation)
	if s.Measured > 0 {
		out += fmt.Sprintf(", %.2f× with limits sized from a calibration", s.Measured)
	}
	return out + "."
}

// tradeHTML is the sheet as the first section of report.html, each figure a link to where
// it came from.
func (r *Report) tradeHTML() template.HTML {
	t := r.trade()
	if t == nil || len(t.Rows) == 0 {
		return ""
	}
	var b strings.Builder
	if err := tradeTemplate.Execute(&b, t); err != nil {
		return template.HTML("<p class=\"missing\">trade sheet: " + template.HTMLEscapeString(err.Error()) + "</p>")
	}
	return template.HTML(b.String()) // the template escaped every value
}

var tradeTemplate = template.Must(template.New("trade").Funcs(template.FuncMap{
	"fig": func(f *Figure, format string) template.HTML {
		if f == nil {
			return "–"
		}
		title := f.Arch
		if f.Note != "" {
			title += ": " + f.Note
		}
		return template.HTML(fmt.Sprintf(`<a href="#%s" title="%s">%s</a>`, template.HTMLEscapeString(f.Ref),
			template.HTMLEscapeString(title), template.HTMLEscapeString(fig(f, format))))
	},
	"rate":   func(row TradeRow, m topology.Mode) *Figure { return row.MaxRate[m] },
	"modes":  func() []topology.Mode { return tradeModes },
	"faults": faultsCell, "roll": rollCell, "split": splitSentence,
}).Parse(`<h2 id="trade">Trade sheet</h2>
<table class="trade"><tr><th rowspan="2">topology</th><th colspan="4">what the split costs</th><th colspan="3">max rate within the SLO</th><th colspan="3">what it buys</th></tr>
<tr><th>CPU / request</th><th>p50</th><th>p99</th><th>peak memory</th>{{range modes}}<th>{{.}}</th>{{end}}<th>single-process outages: answered (kinds unhurt, worst recovery)</th><th>deploy blast radius</th><th>scaling gain</th></tr>
{{range .Rows}}{{$row := .}}<tr><td>{{.Placement}}</td><td>{{fig .CPUPerReqMS "%.2f ms"}}</td><td>{{fig .P50MS "%.1f ms"}}</td><td>{{fig .P99MS "%.1f ms"}}</td><td>{{fig .PeakMemMiB "%.0f MiB"}}</td>{{range modes}}<td>{{fig (rate $row .) "%g req/s"}}</td>{{end}}<td>{{with .Faults}}<a href="#{{.Ref}}">{{faults .}}</a>{{else}}–{{end}}</td><td>{{with .Roll}}<a href="#{{.Ref}}">{{roll .}}</a>{{else}}–{{end}}</td><td>{{fig .Scaling "%.2f×"}}</td></tr>
{{end}}</table>
{{if or .Split .Notes}}<ul class="note">{{range .Split}}<li>{{split .}}</li>{{end}}{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
`))
