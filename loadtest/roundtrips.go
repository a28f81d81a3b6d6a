package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// RoundTrips is the section of the report read from the collector's metrics
// (platform/tracecollect keeps the OTLP metrics of the last minutes): how many store round
// trips (JetStream key-value operations, db.client.operation.duration's count, and event
// publishes, messaging.client.operation.duration's, over every process of an architecture)
// each request its edge served (http.server.request.duration's count) took, over the steps
// at the common rate. Both architectures run the same domain
// code, so the figure should match; where it does not, the split changed what the store is
// asked, and since a round trip is most of a request's time, that is where to look first.
type RoundTrips struct {
	Window string          `json:"window,omitempty"`
	Caveat string          `json:"caveat,omitempty"` // when the windows' bounds take in other steps (RoundTripsCaveat)
	Reason string          `json:"reason,omitempty"` // why there are no figures
	Sides  []RoundTripSide `json:"sides,omitempty"`
	// Steps are every ladder step's figures, read as each ended (RoundTripKeeper).
	Steps []RoundTripStep `json:"steps,omitempty"`
}

// RoundTripSide is one architecture's figures.
type RoundTripSide struct {
	Arch       string        `json:"arch"`
	Requests   float64       `json:"requests"`    // served by its edge in the window
	RoundTrips float64       `json:"round_trips"` // made by all its processes in the window
	PerRequest float64       `json:"per_request"`
	Top        []RoundTripOp `json:"top,omitempty"` // the operations that make most of them
	Note       string        `json:"note,omitempty"`
}

// RoundTripOp is one store operation on one bucket, per request.
type RoundTripOp struct {
	Operation  string  `json:"operation"`
	Bucket     string  `json:"bucket"`
	PerRequest float64 `json:"per_request"`
}

// Metric names the section reads: OpenTelemetry's, as the shop records them (shop/traced,
// otelhttp).
const (
	storeMetric   = "db.client.operation.duration"
	publishMetric = "messaging.client.operation.duration" // an event's publish, until JetStream acknowledged it (shop/natsjs)
	httpMetric    = "http.server.request.duration"
)

// metricsSettle is how long the section waits for a point after a window's end: the local
// stacks push every tracecollect.MetricExportInterval.
const metricsSettle = tracecollect.MetricExportInterval + 2*time.Second

// pushMargin is how far before a window the points are read: far enough to hold every
// process's last push before the window begins, which its counts grow from.
const pushMargin = 2 * tracecollect.MetricExportInterval

// CollectRoundTrips reads the section for each side's window: as kept kept it when its step
// ended (see RoundTripKeeper), else from the collector's query API; with every ladder step's
// figures kept. It never fails: a missing collector or missing metrics are said in words.
func CollectRoundTrips(ctx context.Context, collector string, sides []TraceSideSource, kept *RoundTripKeeper) *RoundTrips {
	out := &RoundTrips{Steps: kept.Steps()}
	switch {
	case collector == "":
		out.Reason = "no collector was given"
		return out
	case len(sides) == 0 || sides[0].From.IsZero():
		out.Reason = "no step at the common rate to read"
		return out
	}
	out.Window = "the steps at the common rate, from each process's last metric push before them to its first after them"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl := tracecollect.Client{BaseURL: collector}
	for _, side := range sides {
		if s, ok := kept.side(side.Label, side.From); ok {
			out.Sides = append(out.Sides, s)
			continue
		}
		s, err := sideRoundTrips(ctx, cl, side.Label, side.From, side.To, metricsSettle)
		if err != nil {
			out.Reason = err.Error()
			return out
		}
		out.Sides = append(out.Sides, s)
	}
	return out
}

// sideRoundTrips reads arch's figures over [from, to] from the collector, waiting at most
// settle for every process's first push after to. Only the series and points the figures
// need are asked for.
func sideRoundTrips(ctx context.Context, cl tracecollect.Client, arch string, from, to time.Time, settle time.Duration) (RoundTripSide, error) {
	s := RoundTripSide{Arch: arch}
	q := tracecollect.MetricQuery{Names: []string{storeMetric, publishMetric, httpMetric}, Arch: arch,
		Start: from.Add(-pushMargin), End: to.Add(settle + pushMargin)}
	var res tracecollect.MetricsResponse
	var err error
	for deadline := time.Now().Add(settle); ; {
		res, err = cl.Metrics(ctx, q)
		if err != nil || pushedAfter(res.Series, to) || time.Now().After(deadline) {
			break
		}
		select { // the next push is seconds away: poll until it comes, or the deadline
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return s, err
	}
	ops := map[[2]string]float64{}
	bounds := pushBounds(res.Series, from, to, settle)
	for _, ser := range res.Series {
		b, ok := bounds[processID(ser)]
		if !ok {
			continue
		}
		d := delta(ser.Points, b)
		switch ser.Name {
		case httpMetric:
			s.Requests += d
		case storeMetric:
			s.RoundTrips += d
			ops[[2]string{ser.Attributes["db.operation.name"], ser.Attributes["db.collection.name"]}] += d
		case publishMetric:
			s.RoundTrips += d
			ops[[2]string{"Publish", ser.Attributes["messaging.destination.name"]}] += d
		}
	}
	if s.Requests == 0 {
		s.Note = "no HTTP request in its metrics for the window (are its processes exporting to this collector?)"
		return s, nil
	}
	s.PerRequest = s.RoundTrips / s.Requests
	for k, n := range ops {
		if n > 0 {
			s.Top = append(s.Top, RoundTripOp{Operation: k[0], Bucket: k[1], PerRequest: n / s.Requests})
		}
	}
	slices.SortFunc(s.Top, func(a, b RoundTripOp) int {
		return cmp.Or(cmp.Compare(b.PerRequest, a.PerRequest), strings.Compare(a.Bucket+a.Operation, b.Bucket+b.Operation))
	})
	s.Top = s.Top[:min(len(s.Top), 5)]
	return s, nil
}

// processID names the process a series came from.
func processID(s tracecollect.MetricSeries) string {
	return s.Resource["service.name"] + "/" + s.Resource["service.instance.id"] + "/" + s.Resource["process.pid"]
}

// pushedAfter reports whether every process's latest push came after t.
func pushedAfter(series []tracecollect.MetricSeries, t time.Time) bool {
	latest := map[string]time.Time{}
	for _, s := range series {
		id := processID(s)
		if n := len(s.Points); n > 0 && s.Points[n-1].Received.After(latest[id]) {
			latest[id] = s.Points[n-1].Received
		}
	}
	for _, l := range latest {
		if !l.After(t) {
			return false
		}
	}
	return len(latest) > 0
}

// window is the pushes of one process that bound a window, by when the collector received
// them (MetricPoint.Received, one time for all the points of a push): its last at or before
// the window's start, and its first at or after the window's end.
type window struct{ base, end time.Time }

// pushBounds returns, by process (processID), the pushes that bound [from, to]: the last at
// or before from, and the first at or after to if it came within settle (a later one is no
// bound of this window: then the last at or before to). Each process pushes on its own clock
// (every tracecollect.MetricExportInterval), so the counts of all of them must be read
// between their own pushes around the window: reading each up to its last push inside the
// window instead counted a different part of it for each process, and the services' round
// trips per request came out as one process's slice over another's (a 100 req/s step of
// make load read 20 requests and 1,439 round trips). Around its window an architecture is
// idle while the load test drives the others (interleaved steps), so what the bounds take in
// beyond it is the architecture's own work for the window's requests (events handled after
// them); where the idle time is shorter than a push interval, the section says so
// (RoundTripsCaveat). A process with no push at or before from is left out: what it
// counted before the window is unknown (gone from the collector's window, say).
func pushBounds(series []tracecollect.MetricSeries, from, to time.Time, settle time.Duration) map[string]window {
	pushes := map[string][]time.Time{} // every series of a process has a point of each push
	for _, s := range series {
		id := processID(s)
		for _, p := range s.Points {
			pushes[id] = append(pushes[id], p.Received)
		}
	}
	out := map[string]window{}
	for id, ts := range pushes {
		slices.SortFunc(ts, time.Time.Compare)
		ts = slices.CompactFunc(ts, time.Time.Equal)
		var w window
		for _, t := range ts {
			if !t.After(from) {
				w.base = t
			}
			if !t.After(to) {
				w.end = t
			}
		}
		if i := slices.IndexFunc(ts, func(t time.Time) bool { return !t.Before(to) }); i >= 0 && !ts[i].After(to.Add(settle)) {
			w.end = ts[i]
		}
		if !w.base.IsZero() && w.end.After(w.base) {
			out[id] = w
		}
	}
	return out
}

// delta is what a cumulative count (a sum's value, a histogram's count) grew by between its
// process's pushes w: from its point at w.base (0 for a series that began after it) to its
// point at w.end. A count that went down was reset (its process restarted): it then grew by
// its latest value.
func delta(points []tracecollect.MetricPoint, w window) float64 {
	count := func(p tracecollect.MetricPoint) float64 {
		if p.Count > 0 {
			return float64(p.Count)
		}
		return p.Value
	}
	base, end := -1, -1
	for i, p := range points {
		if !p.Received.After(w.base) {
			base = i
		}
		if !p.Received.After(w.end) {
			end = i
		}
	}
	if end <= base {
		return 0 // the series began after the window, or did not move
	}
	b := 0.0
	if base >= 0 {
		b = count(points[base])
	}
	e := count(points[end])
	if e < b {
		return e
	}
	return e - b
}

// RoundTripsCaveat says which architectures were idle between their steps for less than a
// metric push interval, "" when none was: a step's figures are counted between the pushes
// around it (delta), which then may fall inside the architecture's step before or after.
// make load's 8 s steps, two architectures interleaved with a pause of a second and the
// settling after each, leave each 10 s or more; make compare's five leave over a minute.
func RoundTripsCaveat(steps []Step) string {
	byArch := map[string][]Step{}
	for _, st := range steps {
		byArch[st.Arch] = append(byArch[st.Arch], st)
	}
	var short []string
	for _, arch := range slices.Sorted(maps.Keys(byArch)) {
		sts := byArch[arch]
		slices.SortFunc(sts, func(a, b Step) int { return a.Started.Compare(b.Started) })
		least := time.Duration(-1)
		for i := 1; i < len(sts); i++ {
			prev, st := sts[i-1], sts[i]
			if prev.Phase != "ladder" && st.Phase != "ladder" {
				continue // the section reads ladder steps only
			}
			gap := st.Started.Sub(prev.Started.Add(time.Duration(prev.Seconds * float64(time.Second))))
			if least < 0 || gap < least {
				least = gap
			}
		}
		if least >= 0 && least < tracecollect.MetricExportInterval {
			short = append(short, fmt.Sprintf("%s %.1f s", arch, least.Seconds()))
		}
	}
	if len(short) == 0 {
		return ""
	}
	return fmt.Sprintf("the processes push their metrics every %s, and some architectures were idle between their steps for less (%s): a step's figures may take in part of the step before or after it; longer steps, or more architectures interleaved, make them exact",
		tracecollect.MetricExportInterval, strings.Join(short, ", "))
}

// roundTripsMarkdown writes the section.
func (r *Report) roundTripsMarkdown(p func(string, ...any)) {
	rt := r.RoundTrips
	if rt == nil {
		return
	}
	p("")
	p("## Store round trips per request (from the collector's metrics)")
	p("")
	if len(rt.Sides) == 0 {
		p("Not read: %s.", rt.Reason)
	} else {
		p("Over %s: JetStream operations of every process of the architecture, per request its edge served.", rt.Window)
		p("")
		if rt.Caveat != "" {
			p("Caveat: %s.", rt.Caveat)
			p("")
		}
		p("| arch | requests | round trips | per request | most per request |")
		p("|---|---|---|---|---|")
		for _, s := range rt.Sides {
			p("| %s | %.0f | %.0f | %s | %s |", s.Arch, s.Requests, s.RoundTrips, perRequest(s), topOps(s.Top))
		}
	}
	if len(rt.Steps) == 0 {
		return
	}
	p("")
	p("%s", stepsIntro)
	p("")
	p("| step | arch | offered req/s | requests | round trips | per request | most per request |")
	p("|---|---|---|---|---|---|---|")
	for _, s := range rt.Steps {
		p("| %d | %s | %g | %.0f | %.0f | %s | %s |", s.Step, s.Arch, s.Offered, s.Requests, s.RoundTrips, perRequest(s.RoundTripSide), topOps(s.Top))
	}
}

// stepsIntro introduces the table of every ladder step.
const stepsIntro = "Every ladder step, read as it ended (the collector keeps the last minutes only):"

func perRequest(s RoundTripSide) string {
	if s.Note != "" {
		return s.Note
	}
	return fmt.Sprintf("%.2f", s.PerRequest)
}

func topOps(ops []RoundTripOp) string {
	parts := make([]string, len(ops))
	for i, o := range ops {
		parts[i] = fmt.Sprintf("%s %s %.2f", o.Operation, o.Bucket, o.PerRequest)
	}
	return strings.Join(parts, ", ")
}

var roundTripsSection = template.Must(template.New("roundtrips").Funcs(template.FuncMap{"per": perRequest, "top": topOps}).Parse(`{{with .RoundTrips}}
<h2 id="round-trips">Store round trips per request (from the collector's metrics)</h2>
{{if .Sides}}<p>Over {{.Window}}: JetStream operations of every process of the architecture, per request its edge served.</p>
{{with .Caveat}}<p class="missing">Caveat: {{.}}.</p>{{end}}
<table><tr><th>arch</th><th>requests</th><th>round trips</th><th>per request</th><th>most per request</th></tr>
{{range .Sides}}<tr><td>{{.Arch}}</td><td>{{printf "%.0f" .Requests}}</td><td>{{printf "%.0f" .RoundTrips}}</td><td>{{per .}}</td><td>{{top .Top}}</td></tr>
{{end}}</table>{{else}}<p class="missing">Not read: {{.Reason}}.</p>{{end}}
{{if .Steps}}<p>` + stepsIntro + `</p>
<table><tr><th>step</th><th>arch</th><th>offered req/s</th><th>requests</th><th>round trips</th><th>per request</th><th>most per request</th></tr>
{{range .Steps}}<tr><td>{{.Step}}</td><td>{{.Arch}}</td><td>{{.Offered}}</td><td>{{printf "%.0f" .Requests}}</td><td>{{printf "%.0f" .RoundTrips}}</td><td>{{per .RoundTripSide}}</td><td>{{top .Top}}</td></tr>
{{end}}</table>{{end}}
{{end}}`))

// roundTripsHTML is the section of report.html ("" without one).
func (r *Report) roundTripsHTML() (template.HTML, error) {
	if r.RoundTrips == nil {
		return "", nil
	}
	var b strings.Builder
	if err := roundTripsSection.Execute(&b, r); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil // the template escaped every value
}
