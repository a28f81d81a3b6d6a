package loadtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/pagestyle"
)

// archRamps are the architectures' colours, one hue each, four shades from light to dark
// (ColorBrewer's sequential Blues, Reds, Greens, Purples, Oranges and RdPu): an
// architecture's lines and bars take the third shade, its percentile bars all four, so the
// percentiles of one architecture differ by lightness and architectures by hue. The first
// two keep the monolith's blue and the services' red of earlier reports; a seventh
// architecture reuses the first hue.
var archRamps = [][4]string{
	{"#9ecae1", "#6baed6", "#2171b5", "#08306b"},
	{"#fcbba1", "#fb6a4a", "#cb181d", "#67000d"},
	{"#a1d99b", "#74c476", "#238b45", "#00441b"},
	{"#bcbddc", "#9e9ac8", "#6a51a3", "#3f007d"},
	{"#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"},
	{"#fcc5c0", "#f768a1", "#ae017e", "#49006a"},
}

// archColor gives the i-th architecture the same colour in every chart.
func archColor(i int) string { return archRamps[i%len(archRamps)][2] }

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 640, 300
	padL, padR     = 64, 16
	padT, padB     = 44, 48
)

type xy struct{ x, y float64 }

type series struct {
	name   string // in the points' tooltips
	legend string // its entry in the legend; "" for none
	color  string
	dash   bool
	points []xy
}

// scale maps data to pixels, linearly or logarithmically.
type scale struct {
	lo, hi   float64
	log      bool
	from, to float64 // pixels
}

func (s scale) at(v float64) float64 {
	lo, hi := s.lo, s.hi
	if s.log {
		v, lo, hi = math.Log10(math.Max(v, s.lo)), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return s.from
	}
	return s.from + (v-lo)/(hi-lo)*(s.to-s.from)
}

// ticks returns tick values: 1-2-5 steps for a log scale, about five round steps for a linear.
func (s scale) ticks() []float64 {
	var out []float64
	if s.log {
		for e := math.Floor(math.Log10(s.lo)); e <= math.Ceil(math.Log10(s.hi)); e++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, e)
				if v >= s.lo*0.999 && v <= s.hi*1.001 {
					out = append(out, v)
				}
			}
		}
		return out
	}
	span := s.hi - s.lo
	if span <= 0 {
		return []float64{s.lo}
	}
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 6 {
			step *= m
			break
		}
	}
	for v := math.Ceil(s.lo/step) * step; v <= s.hi*1.0001; v += step {
		out = append(out, v)
	}
	return out
}

// logRange widens [lo, hi] to the 1-2-5 values around them.
func logRange(lo, hi float64) (float64, float64) {
	if lo <= 0 {
		lo = hi / 100
	}
	if hi <= 0 {
		return 0.1, 1
	}
	floor := func(v float64) float64 {
		e := math.Pow(10, math.Floor(math.Log10(v)))
		for _, m := range []float64{5, 2, 1} {
			if m*e <= v {
				return m * e
			}
		}
		return e
	}
	ceil := func(v float64) float64 {
		e := math.Pow(10, math.Floor(math.Log10(v)))
		for _, m := range []float64{1, 2, 5, 10} {
			if m*e >= v {
				return m * e
			}
		}
		return 10 * e
	}
	lo, hi = floor(lo), ceil(hi)
	if lo == hi {
		hi = lo * 2
	}
	return lo, hi
}

func fmtTick(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%gk", v/1000)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%g", math.Round(v*100)/100)
	}
	return fmt.Sprintf("%g", v)
}

type svgBuf struct{ strings.Builder }

func (b *svgBuf) f(format string, args ...any) { fmt.Fprintf(&b.Builder, format, args...) }

func esc(s string) string { return template.HTMLEscapeString(s) }

// frame draws the axes, grid and labels, the plot's top at top.
func frame(b *svgBuf, title, xLabel, yLabel string, xs, ys scale, xTicks []float64, top int) {
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		chartW, chartH, chartW, chartH, esc(title))
	b.f(`<text x="%d" y="16" font-size="13" font-weight="600">%s</text>`, padL, esc(title))
	for _, t := range ys.ticks() {
		y := ys.at(t)
		b.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e3e3e3"/>`, padL, chartW-padR, y, y)
		b.f(`<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`, padL-6, y+4, fmtTick(t))
	}
	for _, t := range xTicks {
		x := xs.at(t)
		b.f(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#f0f0f0"/>`, x, x, top, chartH-padB)
		b.f(`<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%s</text>`, x, chartH-padB+16, fmtTick(t))
	}
	b.f(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#666"/>`, padL, chartW-padR, chartH-padB, chartH-padB)
	b.f(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#666"/>`, padL, padL, top, chartH-padB)
	b.f(`<text x="%d" y="%d" text-anchor="middle" fill="#222">%s</text>`, (padL+chartW-padR)/2, chartH-10, esc(xLabel))
	b.f(`<text transform="translate(14 %d) rotate(-90)" text-anchor="middle" fill="#222">%s</text>`, (top+chartH-padB)/2, esc(yLabel))
}

// legendRow is the height of a line of the legend.
const legendRow = 15

// legendLayout places the legend's entries left to right under the title, wrapping at the
// chart's right edge, and returns each entry's position and where the plot may begin.
func legendLayout(items []series) (pos []xy, top int) {
	x, y := float64(padL), 30.0
	for _, it := range items {
		if it.legend == "" {
			pos = append(pos, xy{})
			continue
		}
		w := float64(7*len([]rune(it.legend)) + 34)
		if x+w > chartW-padR && x > padL {
			x, y = padL, y+legendRow
		}
		pos = append(pos, xy{x, y})
		x += w
	}
	return pos, padT + int(y) - 30
}

func legend(b *svgBuf, items []series) {
	pos, _ := legendLayout(items)
	for i, it := range items {
		if it.legend == "" {
			continue
		}
		dash := ""
		if it.dash {
			dash = ` stroke-dasharray="5 3"`
		}
		x, y := pos[i].x, pos[i].y
		b.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s/>`, x, x+18, y, y, it.color, dash)
		b.f(`<text x="%.1f" y="%.1f" fill="#222">%s</text>`, x+22, y+4, esc(it.legend))
	}
}

// lineChart draws series over a linear x axis; hline (if > 0) is a dashed threshold.
func lineChart(title, xLabel, yLabel string, ss []series, logY bool, hline float64, hlineLabel string, diagonal bool) template.HTML {
	var xmin, xmax, ymin, ymax = math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	var xTicks []float64
	for _, s := range ss {
		for _, p := range s.points {
			xmin, xmax = math.Min(xmin, p.x), math.Max(xmax, p.x)
			if !logY || p.y > 0 {
				ymin, ymax = math.Min(ymin, p.y), math.Max(ymax, p.y)
			}
			if !slices.Contains(xTicks, p.x) {
				xTicks = append(xTicks, p.x)
			}
		}
	}
	if math.IsInf(xmin, 0) {
		return template.HTML(`<p class="empty">No data for "` + esc(title) + `".</p>`)
	}
	if hline > 0 {
		ymin, ymax = math.Min(ymin, hline), math.Max(ymax, hline)
	}
	if diagonal {
		ymin, ymax = math.Min(ymin, xmin), math.Max(ymax, xmax)
	}
	slices.Sort(xTicks)
	if len(xTicks) > 12 {
		xTicks = nil
	}
	if xmin == xmax {
		xmin, xmax = xmin*0.5, xmax*1.5+1
	}
	xs := scale{lo: 0, hi: xmax * 1.05, from: padL, to: chartW - padR}
	if xmin > 0 && xmax/xmin >= 8 {
		// A ladder of rates is geometric: on a log axis its steps are evenly spaced.
		xs = scale{lo: xmin / 1.25, hi: xmax * 1.25, log: true, from: padL, to: chartW - padR}
		if diagonal && !logY {
			// Achieved against offered on log-log: the diagonal stays straight.
			logY = true
			ymin = math.Min(ymin, xmin)
		}
	}
	_, top := legendLayout(ss)
	var ys scale
	if logY {
		lo, hi := logRange(ymin, ymax)
		ys = scale{lo: lo, hi: hi, log: true, from: chartH - padB, to: float64(top)}
	} else {
		ys = scale{lo: 0, hi: ymax * 1.1, from: chartH - padB, to: float64(top)}
		if ys.hi == 0 {
			ys.hi = 1
		}
	}
	if xTicks == nil {
		xTicks = xs.ticks()
	}
	var b svgBuf
	frame(&b, title, xLabel, yLabel, xs, ys, xTicks, top)
	if diagonal {
		// offered = achieved: the line a system that keeps up follows.
		var pts []string
		for i := 0; i <= 40; i++ {
			x := xs.lo + (xs.hi-xs.lo)*float64(i)/40
			if xs.log {
				x = xs.lo * math.Pow(xs.hi/xs.lo, float64(i)/40)
			}
			if x > ys.hi {
				break
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs.at(x), ys.at(x)))
		}
		b.f(`<polyline fill="none" stroke="#999" stroke-dasharray="2 4" points="%s"/>`, strings.Join(pts, " "))
	}
	if hline > 0 {
		y := ys.at(hline)
		b.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#b00" stroke-dasharray="6 4"/>`, padL, chartW-padR, y, y)
		b.f(`<text x="%d" y="%.1f" text-anchor="end" fill="#b00">%s</text>`, chartW-padR-4, y-4, esc(hlineLabel))
	}
	for _, s := range ss {
		if len(s.points) == 0 {
			continue
		}
		pts := slices.Clone(s.points)
		slices.SortFunc(pts, func(a, b xy) int { return cmpFloat(a.x, b.x) })
		var path []string
		for _, p := range pts {
			if logY && p.y <= 0 {
				continue
			}
			path = append(path, fmt.Sprintf("%.1f,%.1f", xs.at(p.x), ys.at(p.y)))
		}
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="5 3"`
		}
		b.f(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`, s.color, dash, strings.Join(path, " "))
		for _, p := range pts {
			if logY && p.y <= 0 {
				continue
			}
			b.f(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s → %s</title></circle>`, xs.at(p.x), ys.at(p.y), s.color, esc(s.name), fmtTick(p.x), fmtTick(p.y))
		}
	}
	legend(&b, ss)
	b.f(`</svg>`)
	return template.HTML(b.String())
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type barSeries struct {
	name   string
	color  string
	values []float64 // one per group; NaN for none
}

// barChart draws grouped bars: one group per label, one bar per series.
func barChart(title, yLabel string, groups []string, ss []barSeries, logY bool, hline float64, hlineLabel string) template.HTML {
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, v := range s.values {
			if math.IsNaN(v) || (logY && v <= 0) {
				continue
			}
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
	}
	if len(groups) == 0 || math.IsInf(ymax, 0) {
		return template.HTML(`<p class="empty">No data for "` + esc(title) + `".</p>`)
	}
	if hline > 0 {
		ymin, ymax = math.Min(ymin, hline), math.Max(ymax, hline)
	}
	var items []series
	for _, s := range ss {
		items = append(items, series{name: s.name, legend: s.name, color: s.color})
	}
	_, top := legendLayout(items)
	var ys scale
	if logY {
		lo, hi := logRange(ymin, ymax)
		ys = scale{lo: lo, hi: hi, log: true, from: chartH - padB, to: float64(top)}
	} else {
		ys = scale{lo: 0, hi: ymax * 1.1, from: chartH - padB, to: float64(top)}
	}
	var b svgBuf
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		chartW, chartH, chartW, chartH, esc(title))
	b.f(`<text x="%d" y="16" font-size="13" font-weight="600">%s</text>`, padL, esc(title))
	for _, t := range ys.ticks() {
		y := ys.at(t)
		b.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e3e3e3"/>`, padL, chartW-padR, y, y)
		b.f(`<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`, padL-6, y+4, fmtTick(t))
	}
	b.f(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#666"/>`, padL, chartW-padR, chartH-padB, chartH-padB)
	b.f(`<text transform="translate(14 %d) rotate(-90)" text-anchor="middle" fill="#222">%s</text>`, (top+chartH-padB)/2, esc(yLabel))
	gw := float64(chartW-padL-padR) / float64(len(groups))
	bw := gw * 0.8 / float64(len(ss))
	base := ys.from
	for gi, g := range groups {
		x0 := float64(padL) + gw*float64(gi) + gw*0.1
		b.f(`<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%s</text>`, x0+gw*0.4, chartH-padB+16, esc(g))
		for si, s := range ss {
			v := s.values[gi]
			if math.IsNaN(v) || (logY && v <= 0) {
				continue
			}
			y := ys.at(v)
			b.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %s: %s</title></rect>`,
				x0+bw*float64(si), y, math.Max(bw-1, 1), math.Max(base-y, 0.5), s.color, esc(s.name), esc(g), fmtTick(v))
		}
	}
	if hline > 0 {
		y := ys.at(hline)
		b.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#b00" stroke-dasharray="6 4"/>`, padL, chartW-padR, y, y)
		b.f(`<text x="%d" y="%.1f" text-anchor="end" fill="#b00">%s</text>`, chartW-padR-4, y-4, esc(hlineLabel))
	}
	legend(&b, items)
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// stackedBars draws one horizontal bar per row, split into parts (the trace breakdown).
func stackedBars(title string, rows []string, parts []string, colors []string, values [][]float64) template.HTML {
	total := 0.0
	for _, r := range values {
		s := 0.0
		for _, v := range r {
			s += v
		}
		total = math.Max(total, s)
	}
	if total == 0 || len(rows) == 0 {
		return template.HTML(`<p class="empty">No data for "` + esc(title) + `".</p>`)
	}
	h := padT + 40*len(rows) + 44
	var b svgBuf
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" font-family="system-ui, sans-serif" font-size="11">`,
		chartW, h, chartW, h, esc(title))
	b.f(`<text x="8" y="16" font-size="13" font-weight="600">%s</text>`, esc(title))
	left, right := 110.0, float64(chartW-padR)
	xs := scale{lo: 0, hi: total * 1.05, from: left, to: right}
	for _, t := range xs.ticks() {
		x := xs.at(t)
		b.f(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#eee"/>`, x, x, padT, padT+40*len(rows))
		b.f(`<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%s ms</text>`, x, padT+40*len(rows)+14, fmtTick(t))
	}
	for ri, r := range rows {
		y := float64(padT + 40*ri + 8)
		b.f(`<text x="%.1f" y="%.1f" text-anchor="end" fill="#222">%s</text>`, left-8, y+17, esc(r))
		x := left
		for pi, v := range values[ri] {
			if v <= 0 {
				continue
			}
			w := xs.at(v) - xs.at(0)
			b.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="26" fill="%s"><title>%s, %s: %.2f ms</title></rect>`, x, y, w, colors[pi], esc(r), esc(parts[pi]), v)
			if w > 34 {
				b.f(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#fff">%.1f</text>`, x+w/2, y+17, v)
			}
			x += w
		}
	}
	lx := left
	for pi, p := range parts {
		b.f(`<rect x="%.1f" y="%d" width="12" height="12" fill="%s"/><text x="%.1f" y="%d" fill="#222">%s</text>`, lx, h-18, colors[pi], lx+16, h-8, esc(p))
		lx += float64(24 + 7*len(p))
	}
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// charts builds the report's charts from its points.
type htmlCharts struct {
	Latency, Throughput, CPU, Memory template.HTML
	Percentiles                      []template.HTML
	Traces                           template.HTML
}

func (r *Report) charts() htmlCharts {
	var c htmlCharts
	names := archNames(r)
	var lat, thr []series
	for i, a := range names {
		var p50, p99, ach []xy
		for _, pt := range r.Points {
			// Ladder points only: the search's steps zigzag around the limit and are in the
			// tables below.
			if pt.Arch != a || pt.Phase != "ladder" || pt.Traffic.Requests == 0 {
				continue
			}
			p50 = append(p50, xy{pt.Offered, pt.Traffic.Latency.P50})
			p99 = append(p99, xy{pt.Offered, pt.Traffic.Latency.P99})
			ach = append(ach, xy{pt.Offered, pt.Traffic.Achieved})
		}
		lat = append(lat, series{name: a + " p99", legend: a, color: archColor(i), points: p99}, series{name: a + " p50", color: archColor(i), dash: true, points: p50})
		thr = append(thr, series{name: a, legend: a, color: archColor(i), points: ach})
	}
	// One entry per architecture, and one per line style.
	lat = append(lat, series{legend: "p99", color: "#555"}, series{legend: "p50", color: "#555", dash: true})
	c.Latency = lineChart("Latency vs offered load", "offered load (requests/s, ladder steps)", "latency (ms, log scale)", lat, true, r.Settings.SLOP99MS, fmt.Sprintf("SLO p99 %g ms", r.Settings.SLOP99MS), false)
	c.Throughput = lineChart("Achieved vs offered load", "offered load (requests/s, ladder steps)", "successful responses/s", thr, false, 0, "", true)

	// One percentile chart per architecture, a group of bars per rate, ladder points only.
	rates := ladderRates(r)
	groups := make([]string, len(rates))
	for i, rt := range rates {
		groups[i] = fmtTick(rt) + "/s"
	}
	pctNames := []string{"p50", "p90", "p99", "p99.9"}
	for i, a := range names {
		var ss []barSeries
		for pi, pn := range pctNames {
			vals := make([]float64, len(rates))
			for ri, rt := range rates {
				vals[ri] = math.NaN()
				if pt, ok := findPoint(r.Points, a, rt); ok && pt.Phase == "ladder" && pt.Traffic.Requests > 0 {
					l := pt.Traffic.Latency
					vals[ri] = []float64{l.P50, l.P90, l.P99, l.P999}[pi]
				}
			}
			ss = append(ss, barSeries{name: pn, color: archRamps[i%len(archRamps)][pi], values: vals})
		}
		c.Percentiles = append(c.Percentiles, barChart("Percentiles per step: "+a, "latency (ms, log scale)", groups, ss, true, r.Settings.SLOP99MS, "SLO"))
	}
	var cpu, mem []barSeries
	for i, a := range names {
		cv, mv := make([]float64, len(rates)), make([]float64, len(rates))
		for ri, rt := range rates {
			cv[ri], mv[ri] = math.NaN(), math.NaN()
			if pt, ok := findPoint(r.Points, a, rt); ok && pt.Phase == "ladder" {
				if pt.CPUPerReqMS > 0 {
					cv[ri] = pt.CPUPerReqMS
				}
				if pt.PeakMemBytes > 0 {
					mv[ri] = float64(pt.PeakMemBytes) / (1 << 20)
				}
			}
		}
		cpu = append(cpu, barSeries{name: a, color: archColor(i), values: cv})
		mem = append(mem, barSeries{name: a, color: archColor(i), values: mv})
	}
	c.CPU = barChart("CPU per request (all processes of the architecture)", "CPU ms per request", groups, cpu, false, 0, "")
	c.Memory = barChart("Peak memory (sum over the architecture's processes)", "MiB", groups, mem, false, 0, "")
	if r.Traces.Collected && len(r.Traces.Sides) > 0 {
		parts := []string{"domain", "store", "transport", "queueing"}
		var rows []string
		var vals [][]float64
		for _, s := range r.Traces.Sides {
			if s.Missing != "" {
				continue
			}
			rows = append(rows, s.Label)
			v := make([]float64, len(parts))
			for i, p := range parts {
				v[i] = s.CriticalPath[p]
			}
			vals = append(vals, v)
		}
		c.Traces = stackedBars("Critical path of "+r.Traces.Operation+" (medians)", rows, parts, []string{"#4c78a8", "#f58518", "#e45756", "#72b7b2"}, vals)
	}
	return c
}

func ladderRates(r *Report) []float64 {
	var out []float64
	for _, pt := range r.Points {
		if pt.Phase == "ladder" && !slices.Contains(out, pt.Offered) {
			out = append(out, pt.Offered)
		}
	}
	slices.Sort(out)
	return out
}

var pageTemplate = template.Must(template.New("report").Funcs(pagestyle.Funcs()).Funcs(template.FuncMap{
	"cpu": fmtCPU, "mem": fmtMem, "pass": passFail,
	"pct":        func(x float64) string { return fmt.Sprintf("%.2f%%", 100*x) },
	"traceShare": traceShare,
	"f2":         func(x float64) string { return fmt.Sprintf("%.2f", x) },
	"f1":         func(x float64) string { return fmt.Sprintf("%.1f", x) },
	"errs":       topErrors, "short": shortRev, "none": orNone,
	"cat": func(m map[string]float64, k string) string { return fmt.Sprintf("%.2f", m[k]) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Load test {{.R.ID}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
{{pagestyle}}.headline td{font-size:15px}.better{color:#1a7f37;font-weight:600}.worse{color:#b42318;font-weight:600}
</style></head><body><main>
<h1>Load test {{.R.ID}}: {{range $i, $s := .R.Summary}}{{if $i}} vs {{end}}{{$s.Arch}}{{else}}{{if .R.Faults}}fault isolation{{end}}{{end}}</h1>
<p class="sub">{{.R.Started.Format "2006-01-02 15:04:05Z07:00"}} – {{.R.Finished.Format "15:04:05Z07:00"}}.{{if .R.Steps}} SLO: p99 &lt; {{.R.Settings.SLOP99MS}} ms and errors &lt; {{pct .R.Settings.SLOErrorRate}}. {{.R.Settings.Model}}.{{end}}</p>
{{if .R.Interrupted}}<p class="missing"><b>Interrupted:</b> {{.R.Interrupted}}</p>{{end}}

{{.T}}
{{if .R.Steps}}<h2 id="result">Result</h2>{{end}}
{{with .H}}{{if .Archs}}<table class="headline"><tr><th></th>{{range .Archs}}<th>{{.}}</th>{{end}}{{range .RatioHeads}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Label}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}{{range .Ratios}}<td{{with .Class}} class="{{.}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{end}}</table>
{{if .RatioHeads}}<p class="note">{{.Note}}</p>{{end}}{{end}}{{end}}

{{if .R.Warnings}}<h2 id="warnings">Warnings</h2><ul class="warn">{{range .R.Warnings}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{.F}}{{.Roll}}{{.Scaling}}{{.RT}}
{{if .R.Steps}}
<h2 id="charts">Charts</h2>
<div class="charts">{{.C.Latency}}{{.C.Throughput}}{{range .C.Percentiles}}{{.}}{{end}}{{.C.CPU}}{{.C.Memory}}</div>

<h2 id="traces">Trace breakdown</h2>
{{if .R.Traces.Collected}}
<p>Operation <code>{{.R.Traces.Operation}}</code>, traces read from {{.R.Traces.Collector}}{{with .R.Traces.Window}} ({{.}}){{end}}; medians of the request's critical path in ms.</p>
<div class="charts">{{.C.Traces}}</div>
<table><tr><th>architecture</th><th>traces</th><th>root p50 ms</th><th>root p90 ms</th><th>domain</th><th>store</th><th>transport</th><th>queueing</th><th>spans</th><th>remote hops</th><th>services</th></tr>
{{range .R.Traces.Sides}}{{if .Missing}}<tr><td>{{.Label}}</td><td colspan="10" style="text-align:left" class="FAIL">no traces: {{.Missing}}</td></tr>{{else}}<tr><td>{{.Label}}</td><td>{{.Traces}}{{if .Incomplete}} ({{.Incomplete}} incomplete){{end}}</td><td>{{f2 .RootP50MS}}</td><td>{{f2 .RootP90MS}}</td><td>{{cat .CriticalPath "domain"}}</td><td>{{cat .CriticalPath "store"}}</td><td>{{cat .CriticalPath "transport"}}</td><td>{{cat .CriticalPath "queueing"}}</td><td>{{f1 .Spans}}</td><td>{{f1 .RemoteHops}}</td><td>{{len .Services}}</td></tr>{{end}}{{end}}</table>
{{range .R.Traces.Comparisons}}<h3>{{.Other}} against {{.Baseline}}{{with .File}} <small>(waterfalls: <a href="{{.}}">{{.}}</a>)</small>{{end}}</h3>
{{if .Differences}}<table><tr><th>where the time differs ({{.Other}} − {{.Baseline}})</th><th>{{.Baseline}} ms</th><th>{{.Other}} ms</th><th>Δ ms</th></tr>
{{range .Differences}}<tr><td>{{.Category}}: {{.Span}}</td><td>{{f2 .BaselineMS}}</td><td>{{f2 .OtherMS}}</td><td>{{f2 .DeltaMS}}</td></tr>{{end}}</table>{{end}}
{{end}}
{{else}}<p class="missing" id="traces-missing"><b>Traces were not collected.</b> {{.R.Traces.Reason}}</p>{{end}}

<h2 id="points">Latency and cost by offered rate <small>(repeats merged)</small></h2>
<table><tr><th>arch</th><th>phase</th><th>offered /s</th><th>achieved /s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>CPU cores</th><th>CPU/req</th><th>peak mem</th><th>generator cores</th><th>SLO</th></tr>
{{range .R.Points}}<tr><td>{{.Arch}}</td><td>{{.Phase}}</td><td>{{.Offered}}</td><td>{{f1 .Traffic.Achieved}}</td><td>{{f2 .Traffic.Latency.P50}}</td><td>{{f2 .Traffic.Latency.P90}}</td><td>{{f2 .Traffic.Latency.P99}}</td><td>{{f2 .Traffic.Latency.P999}}</td><td>{{f1 .Traffic.Latency.Max}}</td><td>{{pct .Traffic.ErrorRate}}</td><td>{{f2 .CPUCores}}</td><td>{{cpu .CPUPerReqMS}}</td><td>{{mem .PeakMemBytes}}</td><td>{{f2 .Generator.CPUCores}}</td><td class="{{pass .SLOPass}}">{{pass .SLOPass}}</td></tr>{{end}}
</table><p class="note">Latencies in ms, measured from each request's scheduled send time.</p>

<h2 id="steps">Steps in run order</h2>
<table><tr><th>#</th><th>arch</th><th>phase</th><th>rep</th><th>offered /s</th><th>requests</th><th>achieved /s</th><th>p50</th><th>p99</th><th>max</th><th>errors</th><th>CPU/req</th><th>machine busy</th><th>other</th><th>SLO</th></tr>
{{range .R.Steps}}<tr id="step-{{.Index}}"><td>{{.Index}}</td><td>{{.Arch}}</td><td>{{.Phase}}</td><td>{{.Repeat}}</td><td>{{.Offered}}</td><td>{{.Traffic.Requests}}</td><td>{{f1 .Traffic.Achieved}}</td><td>{{f2 .Traffic.Latency.P50}}</td><td>{{f2 .Traffic.Latency.P99}}</td><td>{{f1 .Traffic.Latency.Max}}</td><td>{{pct .Traffic.ErrorRate}}{{errs .Traffic.Errors}}</td><td>{{cpu .Resources.CPUPerReqMS}}</td><td>{{f2 .Generator.MachineBusy}}</td><td>{{f2 .Generator.OtherCores}}</td><td class="{{pass .SLOPass}}">{{pass .SLOPass}}</td></tr>{{end}}
</table>
{{if .R.Skipped}}<p class="note">Skipped: {{range $i, $s := .R.Skipped}}{{if $i}}; {{end}}{{$s}}{{end}}.</p>{{end}}
{{end}}

<h2 id="fairness">Fairness and environment</h2>
{{with .R.Environment}}<ul>
<li>Machine: {{.Machine.CPUs}} CPUs ({{.Machine.CPUModel}}), {{mem .Machine.MemBytes}} RAM, {{.Machine.OS}}/{{.Machine.Arch}}, kernel {{.Machine.Kernel}}, load average {{f2 .Machine.LoadAvg}} at start.</li>
<li>Load generator: {{.GoVersion}}, GOMAXPROCS {{.GOMAXPROCS}}; git revision <code>{{none .GitRevision}}</code>{{if .GitDirty}} with uncommitted changes{{end}}.</li>
</ul>{{end}}
<table><tr><th>architecture</th><th>edge</th><th>runtime</th><th>budget</th><th>CPU limit</th><th>memory limit</th><th>enforced</th><th>shares</th><th>resources measured by</th><th>processes</th></tr>
{{range .R.Architectures}}<tr><td>{{.Name}}</td><td>{{.BaseURL}}</td><td>{{.Runtime}}</td><td>{{.Limits.Mode}}</td><td>{{.Limits.CPUs}}</td><td>{{.Limits.MemoryMB}} MiB</td><td>{{.Limits.Enforced}}</td><td style="text-align:left">{{.Limits.Shares}}</td><td style="text-align:left">{{.Resources}}</td><td style="text-align:left">{{range $i, $p := .Processes}}{{if $i}}, {{end}}{{$p.Name}}{{if $p.GoVersion}} ({{$p.GoVersion}}{{if $p.Revision}} {{short $p.Revision}}{{end}}){{end}}{{end}}</td></tr>{{end}}
</table>
{{if .R.Steps}}{{with .R.Settings}}<p>Rates {{.Rates}} req/s; {{.StepS}} s steps; warm-up {{.WarmupS}} s at {{.WarmupRate}} req/s; {{.Repeats}} repeat(s); {{.Search}} search step(s) of {{.SearchStepS}} s; {{.PauseS}} s pauses; {{.Users}} virtual users per architecture; {{.TimeoutS}} s request timeout; seed {{.Seed}}; {{traceShare .TraceShare}}. Order: {{.Order}}.
Mix (weights): list {{.Mix.List}}, search {{.Mix.Search}}, product {{.Mix.Product}}, cart add {{.Mix.CartAdd}}, checkout {{.Mix.Checkout}}, of which {{pct .Mix.Declined}} with a declined card.</p>{{end}}{{end}}
<p class="note">Generated by loadtest, schema {{.R.Schema}}; the same figures are in report.json.</p>
</main></body></html>
`))

// WriteHTML writes report.html: one self-contained page, no script and no external
// resource, its charts inline SVG.
func (r *Report) WriteHTML(w io.Writer) error {
	if r.rollOnly() {
		return r.writeRollOnlyHTML(w)
	}
	roll, err := r.rollHTML()
	if err != nil {
		return err
	}
	scaling, err := r.scalingHTML()
	if err != nil {
		return err
	}
	roundTrips, err := r.roundTripsHTML()
	if err != nil {
		return err
	}
	return pageTemplate.Execute(w, struct {
		R             *Report
		H             headline
		C             htmlCharts
		T             template.HTML // the trade sheet (trade.go)
		F             template.HTML // the faults phase's section (faults_report.go)
		Roll, Scaling template.HTML
		RT            template.HTML // the store round trips (roundtrips.go)
	}{r, r.headline(), r.charts(), r.tradeHTML(), r.faultsHTML(), roll, scaling, roundTrips})
}
