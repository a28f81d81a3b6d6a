package tracecompare

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the comparison, in the table and the HTML page alike.
type row struct {
	Name   string
	A, B   string
	Delta  string
	Indent bool
}

func (c *Comparison) rows() []row {
	a, b := c.A.Summary, c.B.Summary
	dur := func(name string, sa, sb Stat, indent bool) row {
		r := row{Name: name, A: fmtMillis(sa, a.N), B: fmtMillis(sb, b.N), Indent: indent}
		r.Delta = signed(sb.Median-sa.Median, " ms")
		if sa.Median > 0 && !indent {
			r.Delta += fmt.Sprintf(" (×%.1f)", sb.Median/sa.Median)
		}
		return r
	}
	count := func(name string, sa, sb Stat) row {
		return row{Name: name, A: fmtCount(sa.Median), B: fmtCount(sb.Median), Delta: signed(sb.Median-sa.Median, "")}
	}
	traces := func(s Side) string {
		if len(s.TraceIDs) == 1 {
			return "1 (" + s.TraceIDs[0] + ")"
		}
		return fmt.Sprintf("%d (median)", len(s.TraceIDs))
	}
	rows := []row{{Name: "traces", A: traces(c.A), B: traces(c.B)}}
	rows = append(rows, dur("root latency", a.RootLatency, b.RootLatency, false))
	rows = append(rows, row{Name: "request critical path"})
	for _, cat := range Categories() {
		rows = append(rows, dur(string(cat), a.CriticalPath[cat], b.CriticalPath[cat], true))
	}
	rows = append(rows,
		dur("end to end", a.EndToEnd, b.EndToEnd, false),
		dur("event lag", a.EventLag, b.EventLag, false),
		count("spans", a.Spans, b.Spans),
		count("services touched", a.Services, b.Services),
		count("remote hops", a.RemoteHops, b.RemoteHops),
		count("context calls", a.ContextCalls, b.ContextCalls),
		count("depth", a.Depth, b.Depth),
		count("max fan-out", a.FanOut, b.FanOut),
	)
	if a.Errors.Max > 0 || b.Errors.Max > 0 {
		rows = append(rows, count("error spans", a.Errors, b.Errors))
	}
	if a.Incomplete > 0 || b.Incomplete > 0 {
		rows = append(rows, row{Name: "incomplete traces", A: strconv.Itoa(a.Incomplete), B: strconv.Itoa(b.Incomplete)})
	}
	return rows
}

// gapNote explains incomplete traces, "" when there are none.
func (c *Comparison) gapNote() string {
	var b strings.Builder
	for _, s := range c.Sides {
		for _, a := range s.Traces {
			if len(a.Gaps) > 0 {
				fmt.Fprintf(&b, "  %s %s: %s\n", s.Label, a.Trace.ID, strings.Join(a.Gaps, "; "))
			}
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "incomplete traces: their figures are wrong where spans are missing (a call's missing server time counts as transport).\n" +
		"Spans still in an exporter's batch arrive within seconds (OTEL_BSP_SCHEDULE_DELAY, 5 s by default); run again then.\n" + b.String()
}

func fmtMillis(s Stat, n int) string {
	if n > 1 {
		return fmt.Sprintf("%.2f ms (p90 %.2f)", s.Median, s.P90)
	}
	return fmt.Sprintf("%.2f ms", s.Median)
}

func fmtCount(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func signed(v float64, unit string) string {
	if unit == "" {
		if v == math.Trunc(v) {
			return fmt.Sprintf("%+.0f", v)
		}
		return fmt.Sprintf("%+.1f", v)
	}
	return fmt.Sprintf("%+.2f%s", v, unit)
}

// Table writes the comparison as a terminal table.
func (c *Comparison) Table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "\t%s\t%s\t%s − %s\n", c.A.Label, c.B.Label, c.B.Label, c.A.Label)
	for _, r := range c.rows() {
		name := r.Name
		if r.Indent {
			name = "  " + name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, r.A, r.B, r.Delta)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if note := c.gapNote(); note != "" {
		fmt.Fprintf(w, "\n%s", note)
	}
	if len(c.Differences) > 0 {
		fmt.Fprintf(w, "\nwhere the request's critical path differs most (%s − %s, mean per trace):\n", c.B.Label, c.A.Label)
		for _, d := range c.Differences {
			fmt.Fprintf(w, "  %12s  %-9s  %s\n", signed(d.DeltaMillis, " ms"), d.Category, d.Span)
		}
	}
	return nil
}

// jsonStep is a segment of the example trace's critical path.
type jsonStep struct {
	Span       string   `json:"span"`
	Service    string   `json:"service"`
	Category   Category `json:"category"`
	StartMilli float64  `json:"start_ms"` // from the root's start
	Millis     float64  `json:"duration_ms"`
}

// JSON writes the comparison as JSON: each side's summary, the critical path of its example
// trace, and the differences.
func (c *Comparison) JSON(w io.Writer) error {
	type sideJSON struct {
		*Side
		ExampleTrace string              `json:"example_trace_id"`
		CriticalPath []jsonStep          `json:"example_critical_path"`
		Gaps         map[string][]string `json:"gaps,omitempty"` // by trace ID: why it looks incomplete
	}
	out := struct {
		Sides       [2]sideJSON  `json:"sides"`
		Differences []Difference `json:"differences"`
	}{Differences: c.Differences}
	for i, s := range []*Side{&c.A, &c.B} {
		sj := sideJSON{Side: s, ExampleTrace: s.Example.Trace.ID}
		for _, a := range s.Traces {
			if len(a.Gaps) > 0 {
				if sj.Gaps == nil {
					sj.Gaps = map[string][]string{}
				}
				sj.Gaps[a.Trace.ID] = a.Gaps
			}
		}
		t0 := s.Example.Trace.Root.Start
		for _, sg := range s.Example.Request.Segments {
			sj.CriticalPath = append(sj.CriticalPath, jsonStep{Span: sg.Span.Label(), Service: sg.Span.Service, Category: sg.Category,
				StartMilli: ms(sg.Start.Sub(t0)), Millis: ms(sg.End.Sub(sg.Start))})
		}
		out.Sides[i] = sj
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// waterfallRow is one span drawn in the HTML page.
type waterfallRow struct {
	Label, Service, Kind, Category, Title string
	Indent                                int // pixels
	Left, Width                           float64
	Critical, Error                       bool
}

type waterfall struct {
	Label, TraceID string
	Rows           []waterfallRow
	ResponseAt     float64 // percent of the scale where the root ended
}

// HTML writes a self-contained page (no script, no external resource): the comparison
// table, the differences, and the two example traces as waterfalls on one time scale.
func (c *Comparison) HTML(w io.Writer) error {
	scale := max(c.A.Example.EndToEnd, c.B.Example.EndToEnd, time.Microsecond)
	pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(scale) }
	draw := func(s Side) waterfall {
		ex := s.Example
		t0 := ex.Trace.Root.Start
		wf := waterfall{Label: s.Label, TraceID: ex.Trace.ID, ResponseAt: pct(ex.RootLatency)}
		for _, sp := range ex.Trace.Spans {
			wf.Rows = append(wf.Rows, waterfallRow{
				Label: sp.Label(), Service: sp.Service, Kind: sp.Kind, Category: string(sp.category()),
				Title: fmt.Sprintf("%s\n%s · %s\nstart +%.3f ms, %.3f ms", sp.Label(), sp.Service, sp.Kind,
					ms(sp.Start.Sub(t0)), ms(sp.Duration())),
				Indent: 12 * (sp.Depth - 1), Left: pct(sp.Start.Sub(t0)), Width: max(pct(sp.Duration()), 0.15),
				Critical: ex.Request.OnPath(sp), Error: sp.Error,
			})
		}
		return wf
	}
	var ticks []string
	for i := range 5 {
		ticks = append(ticks, fmt.Sprintf("%.2f ms", ms(scale)*float64(i)/4))
	}
	data := struct {
		A, B        string
		Rows        []row
		Differences []Difference
		Waterfalls  [2]waterfall
		Ticks       []string
		GapNote     string
	}{A: c.A.Label, B: c.B.Label, Rows: c.rows(), Differences: c.Differences, Waterfalls: [2]waterfall{draw(c.A), draw(c.B)}, Ticks: ticks,
		GapNote: c.gapNote()}
	return pageTemplate.Execute(w, data)
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"pct":    func(v float64) string { return fmt.Sprintf("%.3f%%", v) },
	"signed": func(v float64) string { return signed(v, " ms") },
	"initial": func(kind string) string {
		if kind == "" {
			return "?"
		}
		return strings.ToUpper(kind[:1])
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mitosis · {{.A}} vs {{.B}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 16px} h2{font-size:16px;margin:24px 0 8px}
table.cmp{border-collapse:collapse} table.cmp td,table.cmp th{padding:3px 14px 3px 0;text-align:left;white-space:nowrap}
table.cmp th{border-bottom:1px solid #ccd} td.num{font-variant-numeric:tabular-nums} td.ind{padding-left:18px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:24px}
.wf{border:1px solid #dde;border-radius:6px;padding:8px;overflow:hidden}
.wf h3{margin:0 0 6px;font-size:15px} .wf .tid{font:12px monospace;color:#667}
.axis{display:flex;justify-content:space-between;font-size:11px;color:#667;margin-left:40%;border-bottom:1px solid #ccd}
.row{display:flex;align-items:center;height:18px;font-size:12px}
.row .lbl{width:40%;box-sizing:border-box;flex:none;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.row .trk{position:relative;flex:1;height:12px;background:#f5f6fa}
.bar{position:absolute;top:1px;height:10px;border-radius:2px;opacity:.55}
.bar.crit{opacity:1;outline:1px solid #1d2330}
.bar.err{background-image:repeating-linear-gradient(45deg,transparent 0 3px,#c00 3px 4px)}
.domain{background:#4c78a8} .store{background:#f58518} .transport{background:#e45756} .queueing{background:#72b7b2}
.resp{position:absolute;top:-2px;bottom:-2px;border-left:2px dashed #1d2330}
.gaps{background:#fff4e5;border-left:3px solid #f58518;padding:8px;white-space:pre-wrap}
.svc{color:#667} .legend span{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px;border-radius:2px}
</style></head><body>
<h1>{{.A}} vs {{.B}}: where the time goes</h1>
<table class="cmp"><tr><th></th><th>{{.A}}</th><th>{{.B}}</th><th>{{.B}} − {{.A}}</th></tr>
{{range .Rows}}<tr><td{{if .Indent}} class="ind"{{end}}>{{.Name}}</td><td class="num">{{.A}}</td><td class="num">{{.B}}</td><td class="num">{{.Delta}}</td></tr>
{{end}}</table>
{{if .GapNote}}<pre class="gaps">{{.GapNote}}</pre>{{end}}
{{if .Differences}}<h2>Where the request's critical path differs most ({{.B}} − {{.A}}, mean per trace)</h2>
<table class="cmp">{{range .Differences}}<tr><td class="num">{{signed .DeltaMillis}}</td><td>{{.Category}}</td><td>{{.Span}}</td></tr>
{{end}}</table>{{end}}
<h2>Waterfalls (one time scale; outlined: the request's critical path; dashed line: the response)</h2>
<div class="legend">time category:<span class="domain"></span>domain<span class="store"></span>store<span class="transport"></span>transport<span class="queueing"></span>queueing</div>
<div class="sides">{{range .Waterfalls}}{{$resp := .ResponseAt}}
<div class="wf"><h3>{{.Label}}</h3><div class="tid">trace {{.TraceID}}</div>
<div class="axis">{{range $.Ticks}}<span>{{.}}</span>{{end}}</div>
{{range .Rows}}<div class="row" title="{{.Title}}"><div class="lbl" style="padding-left:{{.Indent}}px">{{initial .Kind}} {{.Label}} <span class="svc">{{.Service}}</span></div>
<div class="trk"><div class="resp" style="left:{{pct $resp}}"></div><div class="bar {{.Category}}{{if .Critical}} crit{{end}}{{if .Error}} err{{end}}" style="left:{{pct .Left}};width:{{pct .Width}}"></div></div></div>
{{end}}</div>{{end}}
</div>
</body></html>
`))
