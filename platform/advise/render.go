package advise

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/mitosis-dev/mitosis/platform/pagestyle"
)

// JSON writes the report as JSON.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Table writes the report for a terminal.
func (r *Report) Table(w io.Writer) error {
	m := r.Model
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "run %s at %g req/s (%d monolith and %d services traces)\n", r.Run.ID, r.Run.Rate, r.Run.Traces[Monolith], r.Run.Traces[Services])
	for _, x := range []*Measured{m.Mono, m.Services} {
		fmt.Fprintf(w, "  %-9s CPU %.3f ms/req, p50 %.2f ms, p99 %.2f ms, checkout p99 %.2f ms, idle %.3f cores\n",
			x.Arch, x.CPUPerReqMS, x.Latency.P50, x.Latency.P99, x.Kinds[Checkout].P99, x.IdleCores)
	}
	fmt.Fprintf(w, "\nmodel: %s\n", r.Formula)
	if c := r.Check; c != nil {
		fmt.Fprintf(w, "\nthe model's check: the services predicted from the monolith and one hop (h = %.3f ms: %s): %.3f ms CPU/req, measured %.3f: %+.1f%%\n",
			c.HopCPUMS, c.HopSource, c.PredictedMS, c.MeasuredMS, c.ErrorPct)
	}
	fmt.Fprintf(w, "\ncall graph, per request of the mix (critical: on the request's critical path; hop: client − server span):\n")
	fmt.Fprintln(tw, "  from → to\tcalls/req\tcalls/s\tcritical\treq B\tresp B\thop ms\tmethods\t")
	for _, e := range r.Graph.Calls {
		fmt.Fprintf(tw, "  %s\t%.2f\t%.1f\t%.2f\t%.0f\t%.0f\t%.2f\t%s\t\n", e.Key(), e.Calls, e.PerSecond, e.Critical, e.RequestBytes, e.ResponseBytes, e.HopMS, shortMethods(e.Methods))
	}
	tw.Flush()
	fmt.Fprintf(w, "events (through the broker in every placement: CPU, not request latency):\n")
	for _, e := range r.Graph.Events {
		fmt.Fprintf(tw, "  %s\t%.2f\t%.1f\t%s\t\n", e.Key(), e.Calls, e.PerSecond, strings.Join(e.Methods, " "))
	}
	tw.Flush()
	s := r.Search
	fmt.Fprintf(w, "\nsearch: %s; %d placements scored, %d allowed%s; Pareto front of (groups, CPU/req, checkout p99):\n",
		s.Method, s.Considered, s.Allowed, constraintsText(s.Constraints))
	fmt.Fprintln(tw, "  groups\tprocs\tCPU ms/req\tp50 ms\tp99 ms\tcheckout p99\tcut calls\tinterfaces\tcost\tsplit\t")
	rows := append([]*Prediction{s.Monolith}, s.Front...)
	rows = append(rows, s.Services)
	for i, p := range rows {
		if i > 0 && p.Split == s.Monolith.Split || i > 0 && i < len(rows)-1 && p.Split == s.Services.Split {
			continue
		}
		mark := ""
		if p == s.Best || p.Split == s.Best.Split {
			mark = " ← recommended"
		}
		label := p.Split
		if i == len(rows)-1 {
			label = "services (all cut)"
		}
		fmt.Fprintf(tw, "  %d\t%d\t%.2f\t%.2f\t%.1f\t%.1f\t%.0f%%\t%s\t%.2f\t%s%s\t\n", p.Groups, p.Processes, p.CPUPerReqMS, p.Latency.P50, p.Latency.P99,
			p.checkoutP99(), 100*p.CutShare, ints(p.Interfaces), m.Cost(p, s.Objective), label, mark)
	}
	tw.Flush()
	b := s.Best
	fmt.Fprintf(w, "\nrecommended (objective %s): %s\n  %s\n", s.Objective, b.Split, b.Describe())
	if arg := b.SplitArg(); arg != "" {
		fmt.Fprintf(w, "  mitosis up -t monolith --split '%s'\n", arg)
	}
	fmt.Fprintln(tw, "  kind\troute\tCPU ms/req\tp50 ms\tp99 ms\t")
	for _, k := range slices.Sorted(maps.Keys(b.Kinds)) {
		x := b.Kinds[k]
		fmt.Fprintf(tw, "  %s\t%s\t%.2f\t%.2f\t%.1f\t\n", k, x.Route, x.CPUPerReqMS, x.Latency.P50, x.Latency.P99)
	}
	tw.Flush()
	if v := r.Verify; v != nil {
		fmt.Fprintf(w, "\nverified: %s as %s, run %s at %g req/s (anchored: the cut costs predicted on this run's monolith)\n", v.Split, v.Arch, v.Run, v.Rate)
		fmt.Fprintln(tw, "  figure\tpredicted\tanchored\tmeasured\terror\traw error\tmonolith now\t")
		for _, row := range v.Rows {
			fmt.Fprintf(tw, "  %s\t%.2f\t%.2f\t%.2f\t%+.1f%%\t%+.1f%%\t%.2f\t\n", row.Metric, row.Predicted, row.Anchored, row.Measured, row.ErrorPct, row.RawErrorPct, row.Monolith)
		}
		tw.Flush()
		fmt.Fprintf(w, "  the rest of the machine used %.2f cores during the %s's steps and %.2f during the monolith's (%.2f and %.2f in the advised run's services and monolith)\n",
			v.OtherCores[0], v.Arch, v.OtherCores[1], v.AdvisedOthers[0], v.AdvisedOthers[1])
	}
	return nil
}

func shortMethods(ms []string) string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m[strings.LastIndex(m, "/")+1:]
	}
	return strings.Join(out, " ")
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, "/")
}

func constraintsText(c Constraints) string {
	var parts []string
	for _, i := range c.Isolate {
		parts = append(parts, "--isolate "+i)
	}
	for _, t := range c.Together {
		parts = append(parts, "--together "+strings.Join(t, ","))
	}
	if c.MaxGroups > 0 {
		parts = append(parts, fmt.Sprintf("--max-groups %d", c.MaxGroups))
	}
	if len(parts) == 0 {
		return ""
	}
	return " by " + strings.Join(parts, " ")
}

// groupColors are the groups' colours in the graph (ColorBrewer's Set2, as the load
// report's palettes come from ColorBrewer).
var groupColors = []string{"#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"}

// graphSVG draws the call graph: the edge and the contexts on a circle, filled by the
// recommended placement's groups; a synchronous edge's width is its calls per second, red
// when on the critical path; events dashed.
func (r *Report) graphSVG() template.HTML {
	const w, h, cx, cy, rad = 720.0, 520.0, 360.0, 260.0, 200.0
	nodes := append([]string{EdgeNode}, r.Model.Contexts...)
	pos := map[string][2]float64{}
	for i, n := range nodes {
		a := -math.Pi/2 + 2*math.Pi*float64(i)/float64(len(nodes))
		pos[n] = [2]float64{cx + rad*math.Cos(a), cy + rad*math.Sin(a)}
	}
	maxRate := 0.0
	for _, e := range append(slices.Clone(r.Graph.Calls), r.Graph.Events...) {
		maxRate = max(maxRate, e.PerSecond)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="call graph">`, w, h, w, h)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>`)
	line := func(e EdgeView, color string, dash bool) {
		p, q := pos[e.From], pos[e.To]
		// Shorten to the nodes' rims, and bend a little so that a→b and b→a do not overlap.
		dx, dy := q[0]-p[0], q[1]-p[1]
		l := math.Hypot(dx, dy)
		if l == 0 {
			return
		}
		ux, uy := dx/l, dy/l
		x1, y1, x2, y2 := p[0]+ux*34, p[1]+uy*34, q[0]-ux*34, q[1]-uy*34
		mx, my := (x1+x2)/2-uy*24, (y1+y2)/2+ux*24
		width := 1 + 9*e.PerSecond/math.Max(maxRate, 1e-9)
		style := ""
		if dash {
			style = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<path d="M%.1f,%.1f Q%.1f,%.1f %.1f,%.1f" fill="none" stroke="%s" stroke-width="%.1f" stroke-opacity="0.8"%s marker-end="url(#arrow)"><title>%s: %.2f per request, %.1f/s%s</title></path>`,
			x1, y1, mx, my, x2, y2, color, width, style, template.HTMLEscapeString(e.Key()), e.Calls, e.PerSecond, template.HTMLEscapeString(edgeNote(e)))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle" fill="#333">%.1f/s</text>`, mx, my, e.PerSecond)
	}
	for _, e := range r.Graph.Calls {
		color := "#8c8c8c"
		if e.OnCriticalPath {
			color = "#cb181d"
		}
		line(e, color, false)
	}
	for _, e := range r.Graph.Events {
		line(e, "#6a51a3", true)
	}
	best := r.Search.Best.Placement()
	for i, n := range nodes {
		fill := "#ffffff"
		if n == EdgeNode {
			if best.Edge != EdgeAlone {
				fill = groupColors[best.Edge%len(groupColors)]
			}
		} else {
			fill = groupColors[best.Groups[i-1]%len(groupColors)]
		}
		p := pos[n]
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="32" fill="%s" stroke="#333"/><text x="%.1f" y="%.1f" font-size="12" text-anchor="middle">%s</text>`,
			p[0], p[1], fill, p[0], p[1]+4, n)
	}
	b.WriteString(`<text x="8" y="16" font-size="12" fill="#333">width: calls/s · red: on the critical path · grey: off it · dashed purple: events · fill: the recommended groups</text>`)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func edgeNote(e EdgeView) string {
	if e.RequestBytes == 0 && e.ResponseBytes == 0 && e.HopMS == 0 {
		return ""
	}
	return fmt.Sprintf(", %.0f B → %.0f B ←, hop %.2f ms", e.RequestBytes, e.ResponseBytes, e.HopMS)
}

var page = template.Must(template.New("advise").Funcs(pagestyle.Funcs()).Funcs(template.FuncMap{
	"f2":    func(x float64) string { return fmt.Sprintf("%.2f", x) },
	"f1":    func(x float64) string { return fmt.Sprintf("%.1f", x) },
	"pct":   func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) },
	"epct":  func(x float64) string { return fmt.Sprintf("%+.1f%%", x) },
	"ints":  ints,
	"short": shortMethods,
	"join":  strings.Join,
}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mitosis advise {{.R.Run.ID}}</title>
<style>
{{pagestyle}}.best{background:#eef7ee;font-weight:600}
</style></head><body><main>
<h1>Where to split: run {{.R.Run.ID}}</h1>
<p class="sub">Calibrated on the monolith and the microservices measured in the same run at {{.R.Run.Rate}} req/s ({{index .R.Run.Traces "monolith"}} and {{index .R.Run.Traces "services"}} traces).</p>
<h2 id="recommendation">Recommendation</h2>
<p>Objective <b>{{.R.Search.Objective}}</b>: <b>{{.R.Search.Best.Split}}</b>. {{.R.Search.Best.Describe}}.</p>
{{with .R.Search.Best.SplitArg}}<pre>mitosis up -t monolith --split '{{.}}'</pre>{{end}}
<p>As a topology file (<code>topologies/{{.TopologyName}}.yaml</code>):</p><pre>{{.Topology}}</pre>
<table><tr><th>kind</th><th>route</th><th>CPU ms/req</th><th>p50 ms</th><th>p99 ms</th></tr>
{{range $k, $x := .R.Search.Best.Kinds}}<tr><td>{{$k}}</td><td>{{$x.Route}}</td><td>{{f2 $x.CPUPerReqMS}}</td><td>{{f2 $x.Latency.P50}}</td><td>{{f1 $x.Latency.P99}}</td></tr>{{end}}</table>
{{with .R.Verify}}<h2 id="verify">Verified</h2>
<p>{{.Split}} run as <code>{{.Arch}}</code> beside the monolith ({{.Run}}, {{.Rate}} req/s). Anchored: the predicted cut costs on this run's own monolith.</p>
<table><tr><th>figure</th><th>predicted</th><th>anchored</th><th>measured</th><th>error</th><th>raw error</th><th>monolith now</th></tr>
{{range .Rows}}<tr><td>{{.Metric}}</td><td>{{f2 .Predicted}}</td><td>{{f2 .Anchored}}</td><td>{{f2 .Measured}}</td><td>{{epct .ErrorPct}}</td><td>{{epct .RawErrorPct}}</td><td>{{f2 .Monolith}}</td></tr>{{end}}</table>
<p class="note">The rest of the machine used {{f2 (index .OtherCores 0)}} cores during the {{.Arch}}'s steps and {{f2 (index .OtherCores 1)}} during the monolith's ({{f2 (index .AdvisedOthers 0)}} and {{f2 (index .AdvisedOthers 1)}} in the advised run's services and monolith).</p>{{end}}
<h2 id="graph">Call graph</h2>
<div class="charts">{{.SVG}}</div>
<table><tr><th>from → to</th><th>calls/req</th><th>calls/s</th><th>critical</th><th>request B</th><th>response B</th><th>hop ms</th><th>methods</th></tr>
{{range .R.Graph.Calls}}<tr><td>{{.Key}}</td><td>{{f2 .Calls}}</td><td>{{f1 .PerSecond}}</td><td>{{f2 .Critical}}</td><td>{{printf "%.0f" .RequestBytes}}</td><td>{{printf "%.0f" .ResponseBytes}}</td><td>{{f2 .HopMS}}</td><td>{{short .Methods}}</td></tr>{{end}}
{{range .R.Graph.Events}}<tr><td>{{.Key}} (event)</td><td>{{f2 .Calls}}</td><td>{{f1 .PerSecond}}</td><td>–</td><td></td><td></td><td></td><td>{{join .Methods " "}}</td></tr>{{end}}</table>
<h3>By endpoint class</h3>
<table><tr><th>class</th><th>traces</th><th>share</th><th>busy ms</th><th>calls</th></tr>
{{range .R.Graph.Classes}}<tr><td>{{.Name}}</td><td>{{.Traces}}</td><td>{{pct .Share}}</td><td>{{f2 .BusyMS}}</td><td style="text-align:left">{{range .Calls}}{{.Key}} ×{{f2 .Calls}} (hop {{f2 .HopMS}} ms) {{end}}{{range .Events}}{{.Key}} event ×{{f2 .Calls}} {{end}}</td></tr>{{end}}</table>
<h2 id="model">Model</h2>
<p>{{.R.Formula}}</p>
{{with .R.Check}}<p><b>The model's check</b>: the services predicted from the monolith's traces and one measured hop ({{.HopSource}}; h = {{f2 .HopCPUMS}} ms): {{f2 .PredictedMS}} ms CPU per request against {{f2 .MeasuredMS}} measured, {{epct .ErrorPct}}.</p>{{end}}
<table><tr><th>architecture</th><th>CPU ms/req</th><th>p50 ms</th><th>p99 ms</th><th>checkout p99 ms</th><th>idle cores</th><th>processes (CPU ms/req)</th></tr>
{{range .Measured}}<tr><td>{{.Arch}}</td><td>{{f2 .CPUPerReqMS}}</td><td>{{f2 .Latency.P50}}</td><td>{{f2 .Latency.P99}}</td><td>{{f2 (index .Kinds "checkout").P99}}</td><td>{{printf "%.3f" .IdleCores}}</td><td style="text-align:left">{{range .Processes}}{{.Name}} {{f2 .CPUPerReqMS}} {{end}}</td></tr>{{end}}</table>
<h2 id="front">Pareto front</h2>
<p>{{.R.Search.Method}}; {{.R.Search.Considered}} placements scored, {{.R.Search.Allowed}} allowed. Cost: by the objective, 0 at the monolith and 1 at the services. Cut calls: the share of calls crossing a group boundary; interfaces: per group, the methods other groups call on it.</p>
<table><tr><th>groups</th><th>processes</th><th>CPU ms/req</th><th>p50 ms</th><th>p99 ms</th><th>checkout p99 ms</th><th>cut calls</th><th>interfaces</th><th>cost</th><th>split</th></tr>
{{range .Rows}}<tr{{if .Best}} class="best"{{end}}><td>{{.P.Groups}}</td><td>{{.P.Processes}}</td><td>{{f2 .P.CPUPerReqMS}}</td><td>{{f2 .P.Latency.P50}}</td><td>{{f1 .P.Latency.P99}}</td><td>{{f1 .CheckoutP99}}</td><td>{{pct .P.CutShare}}</td><td>{{ints .P.Interfaces}}</td><td>{{f2 .Cost}}</td><td style="text-align:left">{{.Label}}</td></tr>{{end}}</table>
</main></body></html>
`))

type frontRow struct {
	P           *Prediction
	Label       string
	CheckoutP99 float64
	Cost        float64
	Best        bool
}

// HTML writes the report as a self-contained page, its topology file under the name
// topologyName.
func (r *Report) HTML(w io.Writer, topologyName string) error {
	topo, err := r.Model.Topology(topologyName, r.Search.Best)
	if err != nil {
		return err
	}
	s := r.Search
	var rows []frontRow
	add := func(p *Prediction, label string) {
		rows = append(rows, frontRow{P: p, Label: label, CheckoutP99: p.checkoutP99(), Cost: r.Model.Cost(p, s.Objective), Best: p.Split == s.Best.Split})
	}
	add(s.Monolith, "monolith")
	for _, p := range s.Front {
		if p.Split != s.Monolith.Split && p.Split != s.Services.Split {
			add(p, p.Split)
		}
	}
	add(s.Services, "services (every call cut)")
	return page.Execute(w, map[string]any{
		"R": r, "SVG": r.graphSVG(), "Topology": string(topo), "TopologyName": topologyName,
		"Measured": []*Measured{r.Model.Mono, r.Model.Services}, "Rows": rows,
	})
}
