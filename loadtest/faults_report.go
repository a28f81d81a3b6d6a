package loadtest

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"
)

// FaultsReport is the faults phase in report.json (`faults`): per architecture, the fault
// matrix (one row per process killed, one column per kind of request) and the invariants.
type FaultsReport struct {
	Settings    FaultSettings `json:"settings"`
	Started     time.Time     `json:"started"`
	Finished    time.Time     `json:"finished"`
	Interrupted string        `json:"interrupted,omitempty"`
	Passed      bool          `json:"passed"` // every kill and start worked and every invariant held
	Archs       []FaultArch   `json:"archs"`
}

// FaultSettings are the phase's knobs.
type FaultSettings struct {
	Rate       float64 `json:"rate_rps"`
	RateSource string  `json:"rate_source"` // how the rate was chosen
	WarmupS    float64 `json:"warmup_s"`
	BaselineS  float64 `json:"baseline_s"`
	DownS      float64 `json:"down_s"`
	AfterS     float64 `json:"after_s"`
	WindowS    float64 `json:"recovery_window_s"`
	BucketS    float64 `json:"timeline_bucket_s"`
	Users      int     `json:"users_per_arch"`
	TimeoutS   float64 `json:"request_timeout_s"`
	SettleS    float64 `json:"settle_deadline_s"`
	Seed       uint64  `json:"seed"`
	Mix        Mix     `json:"mix"`
}

func (p FaultPlan) settings() FaultSettings {
	return FaultSettings{Rate: p.Rate, BaselineS: p.Baseline.Seconds(), DownS: p.Down.Seconds(), AfterS: p.After.Seconds(),
		WarmupS: p.Warmup.Seconds(), WindowS: p.Window.Seconds(), BucketS: p.Bucket.Seconds(), Users: p.Users, TimeoutS: p.Timeout.Seconds(),
		SettleS: p.Settle.Seconds(), Seed: p.Seed, Mix: p.Mix}
}

// FaultArch is one architecture's faults: its matrix and its invariants.
type FaultArch struct {
	Arch       string          `json:"arch"`
	BaseURL    string          `json:"base_url"`
	Runtime    string          `json:"runtime"`   // which runtime killed and started its processes
	Processes  []string        `json:"processes"` // the processes killed, in order
	Cycles     []FaultCycle    `json:"cycles"`    // one per process: the matrix's rows
	Sent       map[Kind]int64  `json:"sent"`      // requests of each kind over the whole phase
	StockAdded int64           `json:"stock_added"`
	Invariants InvariantReport `json:"invariants"`
}

func (a FaultArch) passed() bool {
	return a.Invariants.Passed && !slices.ContainsFunc(a.Cycles, func(c FaultCycle) bool { return c.Error != "" })
}

// FaultCycle is one process killed and started again under traffic.
type FaultCycle struct {
	Process  string    `json:"process"`
	KilledAt time.Time `json:"killed_at"`
	KillMS   float64   `json:"kill_ms"` // how long the runtime's kill took, until the process was gone
	DownS    float64   `json:"down_s"`  // from the process gone to the start
	// KillRequests are the requests in flight when the kill began or scheduled while the
	// runtime was killing: they met a dying process and count in no phase of the matrix.
	KillRequests int                       `json:"kill_requests"`
	StartS       float64                   `json:"start_s"`    // from the start to the process's readiness
	RecoveryS    *float64                  `json:"recovery_s"` // from the start until every kind answers again (RecoveryTime); null: not within the time after
	Error        string                    `json:"error,omitempty"`
	Classes      []FaultCell               `json:"classes"`          // one per kind of request, in Kinds() order
	Errors       map[string]map[string]int `json:"errors,omitempty"` // by phase (baseline, outage, after), the failed requests by kind of error
	Timeline     FaultTimeline             `json:"timeline"`
}

// FaultCell is one kind of request during one cycle.
type FaultCell struct {
	Kind     Kind       `json:"kind"`
	Baseline PhaseCount `json:"baseline"` // scheduled before the kill
	Outage   PhaseCount `json:"outage"`   // from the kill to the start
	After    PhaseCount `json:"after"`    // from the start, for the plan's After
}

// PhaseCount is the requests of one kind in one phase and how many succeeded.
type PhaseCount struct {
	Requests int      `json:"requests"`
	OK       int      `json:"ok"`
	Success  *float64 `json:"success"` // ok / requests; null when there were none
}

func (pc *PhaseCount) setSuccess() {
	if pc.Requests > 0 {
		s := float64(pc.OK) / float64(pc.Requests)
		pc.Success = &s
	}
}

// FaultTimeline is a cycle's requests over time, in buckets, relative to the kill.
type FaultTimeline struct {
	BucketS  float64 `json:"bucket_s"`
	FromS    float64 `json:"from_s"` // the first bucket's start, seconds from the kill (negative)
	Requests []int   `json:"requests"`
	OK       []int   `json:"ok"`
}

func (c FaultCycle) cell(k Kind) (FaultCell, bool) {
	i := slices.IndexFunc(c.Classes, func(x FaultCell) bool { return x.Kind == k })
	if i < 0 {
		return FaultCell{}, false
	}
	return c.Classes[i], true
}

func (c FaultCycle) phase(k Kind, phase string) PhaseCount {
	cell, _ := c.cell(k)
	switch phase {
	case phaseBaseline:
		return cell.Baseline
	case phaseOutage:
		return cell.Outage
	}
	return cell.After
}

// successLine is a phase's success per kind, for the progress log.
func (c FaultCycle) successLine(phase string) string {
	var parts []string
	for _, k := range Kinds() {
		parts = append(parts, string(k)+" "+fmtSuccess(c.phase(k, phase)))
	}
	return strings.Join(parts, ", ")
}

func fmtSuccess(pc PhaseCount) string {
	if pc.Success == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100**pc.Success)
}

func fmtRecovery(c FaultCycle) string {
	switch {
	case c.Error != "":
		return "failed"
	case c.RecoveryS == nil:
		return "not recovered"
	}
	return fmt.Sprintf("%.2f s", *c.RecoveryS)
}

// kindTitle is a kind's column heading.
func kindTitle(k Kind) string {
	return map[Kind]string{KindList: "browse (list)", KindSearch: "search", KindProduct: "product page",
		KindCartAdd: "cart add", KindCheckout: "checkout"}[k]
}

// faultsMarkdown writes the faults section of report.md.
func (r *Report) faultsMarkdown(p func(string, ...any)) {
	f := r.Faults
	if f == nil {
		return
	}
	s := f.Settings
	p("")
	p("## Fault isolation")
	p("")
	verdict := "**Every invariant held.**"
	if !f.Passed {
		verdict = "**FAILED: an invariant broke or a kill or start failed (see below).**"
	}
	if f.Interrupted != "" {
		verdict = "**Interrupted:** " + f.Interrupted
	}
	p("%s Each process of each architecture was killed in turn (SIGKILL) under %g req/s (%s), kept down %gs, started again and watched %gs; %gs of traffic before each kill. Success is the share of requests of each kind that succeeded, during the outage / in the %gs after the start; recovered is the time from the start until a window of %gs has every kind succeeding (README.md defines it).",
		verdict, s.Rate, orNone(s.RateSource), s.DownS, s.AfterS, s.BaselineS, s.AfterS, s.WindowS)
	for _, a := range f.Archs {
		p("")
		p("### %s (%s)", a.Arch, orNone(a.Runtime))
		p("")
		head := []string{"process down"}
		for _, k := range Kinds() {
			head = append(head, kindTitle(k)+" outage / after")
		}
		head = append(head, "ready after start", "recovered")
		p("| %s |", strings.Join(head, " | "))
		p("|---|%s", strings.Repeat("---|", len(head)-1))
		for _, c := range a.Cycles {
			row := []string{c.Process}
			for _, k := range Kinds() {
				row = append(row, fmtSuccess(c.phase(k, phaseOutage))+" / "+fmtSuccess(c.phase(k, phaseAfter)))
			}
			row = append(row, fmt.Sprintf("%.2f s", c.StartS), fmtRecovery(c))
			p("| %s |", strings.Join(row, " | "))
		}
		for _, c := range a.Cycles {
			if c.Error != "" {
				p("")
				p("- **%s: %s**", c.Process, c.Error)
			}
		}
		inv := a.Invariants
		cc := inv.Checkouts
		p("")
		p("Checkouts: %d sent, %d created, %d declined, %d out of stock, %d without a final answer (retried: %d created, %d of them an order made before the retry, %d refused; the longest took %.1f s to get its answer%s), %d unexpected; %d orders of %d users. Checked in %.1f s.",
			cc.Sent, cc.Created, cc.Declined, cc.OutOfStock, cc.Unknown, cc.RetryCreated, cc.RetryExisting, cc.RetryRefused, cc.RetryLongestS, parens(cc.RetryLongest), cc.Unexpected, cc.Orders, cc.Users, inv.SettleS)
		p("")
		if !inv.Passed {
			p("**INVARIANTS BROKEN in %s:**", a.Arch)
			p("")
		}
		p("| invariant | result | checked | took | how |")
		p("|---|---|---|---|---|")
		for _, c := range inv.Checks {
			p("| %s | %s | %d | %.1f s | %s |", c.Name, checkVerdict(c), c.Checked, c.TookS, c.How)
		}
		for _, c := range inv.Checks {
			if len(c.Evidence) == 0 {
				continue
			}
			p("")
			p("**%s broken:**", c.Name)
			p("")
			for _, e := range c.Evidence {
				p("- %s", e)
			}
			if c.Omitted > 0 {
				p("- and %d more", c.Omitted)
			}
		}
	}
}

func checkVerdict(c InvariantCheck) string {
	switch {
	case c.Skipped != "":
		return "skipped: " + c.Skipped
	case c.Passed:
		return "held"
	}
	return "**BROKEN**"
}

// heatColor is a success share's colour in the heat map: red at 0, amber at a half, green
// at 1; grey for no requests.
func heatColor(pc PhaseCount) string {
	if pc.Success == nil {
		return "#e0e0e0"
	}
	s := math.Max(0, math.Min(1, *pc.Success))
	// Two linear ramps: red (#d73027) to amber (#fee08b), amber to green (#1a9850).
	lerp := func(a, b [3]float64, t float64) string {
		return fmt.Sprintf("#%02x%02x%02x", int(a[0]+(b[0]-a[0])*t), int(a[1]+(b[1]-a[1])*t), int(a[2]+(b[2]-a[2])*t))
	}
	red, amber, green := [3]float64{0xd7, 0x30, 0x27}, [3]float64{0xfe, 0xe0, 0x8b}, [3]float64{0x1a, 0x98, 0x50}
	if s < 0.5 {
		return lerp(red, amber, s/0.5)
	}
	return lerp(amber, green, (s-0.5)/0.5)
}

// Heat map geometry, in SVG user units.
const (
	heatLabelW = 150
	heatCellW  = 62
	heatCellH  = 26
	heatStripW = 220
	heatHeadH  = 46
)

// heatMap draws one architecture's fault matrix: a row per process killed, a pair of cells
// per kind of request (during the outage, after the start), the time to recover, and the
// cycle's success over time as a strip.
func heatMap(a FaultArch) template.HTML {
	kinds := Kinds()
	recX := heatLabelW + 2*heatCellW*len(kinds) + 8
	stripX := recX + 90
	w := stripX + heatStripW + 10
	h := heatHeadH + heatCellH*len(a.Cycles) + 36
	var b svgBuf
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		w, h, w, h, esc("fault matrix of "+a.Arch))
	for i, k := range kinds {
		x := heatLabelW + 2*heatCellW*i
		b.f(`<text x="%d" y="14" text-anchor="middle" font-weight="600">%s</text>`, x+heatCellW, esc(kindTitle(k)))
		b.f(`<text x="%d" y="32" text-anchor="middle" fill="#555">outage</text><text x="%d" y="32" text-anchor="middle" fill="#555">after</text>`,
			x+heatCellW/2, x+heatCellW+heatCellW/2)
	}
	b.f(`<text x="%d" y="14" font-weight="600">recovered</text>`, recX)
	b.f(`<text x="%d" y="14" font-weight="600">success over time</text><text x="%d" y="32" fill="#555">│ kill   ┆ start</text>`, stripX, stripX)
	for ri, c := range a.Cycles {
		y := heatHeadH + heatCellH*ri
		b.f(`<text x="%d" y="%d" text-anchor="end" fill="#222">%s down</text>`, heatLabelW-8, y+17, esc(c.Process))
		for i, k := range kinds {
			for j, ph := range []string{phaseOutage, phaseAfter} {
				pc := c.phase(k, ph)
				x := heatLabelW + 2*heatCellW*i + heatCellW*j
				txt := fmtSuccess(pc)
				fill := "#222"
				if pc.Success != nil && *pc.Success < 0.35 {
					fill = "#fff"
				}
				b.f(`<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="#fff"><title>%s down, %s, %s: %d of %d succeeded</title></rect>`,
					x, y, heatCellW, heatCellH, heatColor(pc), esc(c.Process), esc(string(k)), ph, pc.OK, pc.Requests)
				b.f(`<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`, x+heatCellW/2, y+17, fill, txt)
			}
		}
		recFill := "#1a7f37"
		if c.RecoveryS == nil || c.Error != "" {
			recFill = "#b42318"
		}
		b.f(`<text x="%d" y="%d" fill="%s" font-weight="600">%s</text>`, recX, y+17, recFill, esc(fmtRecovery(c)))
		// The strip: one bar per bucket, its colour the bucket's success.
		tl := c.Timeline
		if n := len(tl.Requests); n > 0 {
			bw := float64(heatStripW) / float64(n)
			for i := range n {
				pc := PhaseCount{Requests: tl.Requests[i], OK: tl.OK[i]}
				pc.setSuccess()
				from := tl.FromS + float64(i)*tl.BucketS
				b.f(`<rect x="%.1f" y="%d" width="%.2f" height="%d" fill="%s"><title>%+.1f s from the kill: %d of %d succeeded</title></rect>`,
					float64(stripX)+bw*float64(i), y+3, bw+0.3, heatCellH-6, heatColor(pc), from, pc.OK, pc.Requests)
			}
			span := float64(n) * tl.BucketS
			if x := float64(stripX) + (0-tl.FromS)/span*heatStripW; x >= float64(stripX) {
				b.f(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#000" stroke-width="1.5"/>`, x, x, y+1, y+heatCellH-1)
			}
			if c.DownS > 0 {
				x := float64(stripX) + (c.DownS-tl.FromS)/span*heatStripW
				b.f(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#000" stroke-dasharray="2 2" stroke-width="1.5"/>`, x, x, y+1, y+heatCellH-1)
			}
		}
	}
	// The scale.
	ly := h - 20
	for i := 0; i <= 10; i++ {
		s := float64(i) / 10
		b.f(`<rect x="%d" y="%d" width="16" height="12" fill="%s"/>`, heatLabelW+16*i, ly, heatColor(PhaseCount{Requests: 1, Success: &s}))
	}
	b.f(`<text x="%d" y="%d" text-anchor="end" fill="#444">0%%</text><text x="%d" y="%d" fill="#444">100%% of requests succeeded; grey: none sent</text>`,
		heatLabelW-4, ly+10, heatLabelW+16*11+4, ly+10)
	b.f(`</svg>`)
	return template.HTML(b.String())
}

var faultsTemplate = template.Must(template.New("faults").Funcs(template.FuncMap{
	"verdict": checkVerdict, "f1": func(x float64) string { return fmt.Sprintf("%.1f", x) }, "none": orNone,
}).Parse(`<h2 id="faults">Fault isolation</h2>
{{with .F}}{{if .Interrupted}}<p class="missing"><b>Interrupted:</b> {{.Interrupted}}</p>
{{else if .Passed}}<p class="pass"><b>Every kill and start worked and every invariant held.</b></p>
{{else}}<p class="missing" id="faults-failed"><b>FAILED: an invariant broke or a kill or start failed.</b> The evidence is below.</p>{{end}}
{{with .Settings}}<p>Each process of each architecture killed in turn (SIGKILL) under a steady {{.Rate}} req/s ({{none .RateSource}}): {{.BaselineS}} s of traffic before the kill, {{.DownS}} s down, then started again and watched {{.AfterS}} s. A cell is the share of that kind of request that succeeded during the outage and after the start; <i>recovered</i> is the time from the start until a {{.WindowS}} s window has every kind succeeding. The strip shows the whole cycle ({{.BucketS}} s buckets; solid line: the kill, dashed: the start).</p>{{end}}
{{end}}
{{range .A}}<h3 id="faults-{{.Arch.Arch}}">{{.Arch.Arch}} <small>({{none .Arch.Runtime}})</small></h3>
<div class="charts">{{.Map}}</div>
{{range .Arch.Cycles}}{{if .Error}}<p class="missing"><b>{{.Process}}:</b> {{.Error}}</p>{{end}}{{end}}
{{with .Arch.Invariants}}<p>Checkouts: {{.Checkouts.Sent}} sent, {{.Checkouts.Created}} created, {{.Checkouts.Declined}} declined, {{.Checkouts.OutOfStock}} out of stock, {{.Checkouts.Unknown}} without a final answer (retried with their key: {{.Checkouts.RetryCreated}} created, {{.Checkouts.RetryExisting}} of them an order made before the retry, {{.Checkouts.RetryRefused}} refused; the longest took {{f1 .Checkouts.RetryLongestS}} s to get its answer{{with .Checkouts.RetryLongest}}: {{.}}{{end}}), {{.Checkouts.Unexpected}} unexpected; {{.Checkouts.Orders}} orders of {{.Checkouts.Users}} users; checked in {{f1 .SettleS}} s.</p>
<table class="invariants"><tr><th>invariant</th><th>result</th><th>checked</th><th>took</th><th style="text-align:left">how</th></tr>
{{range .Checks}}<tr><td>{{.Name}}</td><td class="{{if .Skipped}}{{else if .Passed}}pass{{else}}FAIL{{end}}">{{verdict .}}</td><td>{{.Checked}}</td><td>{{f1 .TookS}} s</td><td style="text-align:left">{{.How}}</td></tr>{{end}}</table>
{{range .Checks}}{{if .Evidence}}<div class="missing"><b>{{.Name}} broken:</b><ul>{{range .Evidence}}<li>{{.}}</li>{{end}}{{if .Omitted}}<li>and {{.Omitted}} more</li>{{end}}</ul></div>{{end}}{{end}}
{{end}}{{end}}`))

// faultsHTML is the faults section of report.html ("" when the run had none).
func (r *Report) faultsHTML() template.HTML {
	if r.Faults == nil {
		return ""
	}
	type archView struct {
		Arch FaultArch
		Map  template.HTML
	}
	var views []archView
	for _, a := range r.Faults.Archs {
		views = append(views, archView{a, heatMap(a)})
	}
	var b strings.Builder
	if err := faultsTemplate.Execute(&b, struct {
		F *FaultsReport
		A []archView
	}{r.Faults, views}); err != nil {
		return template.HTML(`<p class="missing">The fault section could not be drawn: ` + esc(err.Error()) + `</p>`)
	}
	return template.HTML(b.String())
}

// faultsOnlyMarkdown is report.md of a run that was the faults phase alone.
func (r *Report) faultsOnlyMarkdown(p func(string, ...any)) {
	p("# Fault isolation %s", r.ID)
	p("")
	var names []string
	for _, a := range r.Faults.Archs {
		names = append(names, a.Arch)
	}
	p("%s, %s to %s (%s).", strings.Join(names, ", "), r.Started.Format(time.RFC3339), r.Finished.Format("15:04:05Z"), r.Finished.Sub(r.Started).Round(time.Second))
	r.faultsMarkdown(p)
	p("")
	p("## Environment")
	p("")
	e := r.Environment
	p("- machine: %d CPUs (%s), %s RAM, %s/%s, kernel %s, load average %.2f at start", e.Machine.CPUs, e.Machine.CPUModel,
		fmtMem(e.Machine.MemBytes), e.Machine.OS, e.Machine.Arch, e.Machine.Kernel, e.Machine.LoadAvg)
	p("- load generator: %s, GOMAXPROCS %d; git revision %s", e.GoVersion, e.GOMAXPROCS, orNone(e.GitRevision))
	for _, a := range r.Faults.Archs {
		p("- %s at %s: %s; traffic sent %v; stock added %d units", a.Arch, a.BaseURL, orNone(a.Runtime), a.Sent, a.StockAdded)
	}
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}
