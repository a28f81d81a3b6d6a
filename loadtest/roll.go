package loadtest

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mitosis-dev/mitosis/platform/pagestyle"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Roll is the deploy blast radius of a run (report.json's "roll"): for each architecture in
// turn, one context rolled to a new version under a steady load, and what the load saw
// before, during and after. The new version is a harmless change that remakes what runs the
// context, and nothing else (an environment value, given with `mitosis up --env`): in the
// monolith that is everything, in the microservices the context's own service, one replica at
// a time when it has several.
type Roll struct {
	Context string     `json:"context"`  // the context rolled
	Change  string     `json:"change"`   // what changed, e.g. "MITOSIS_ROLL=<run>-<arch> through mitosis up --env"
	RateRPS float64    `json:"rate_rps"` // the steady offered rate, the same mix as the ladder's
	BeforeS float64    `json:"before_s"` // steady load before each roll starts
	AfterS  float64    `json:"after_s"`  // steady load after each roll ended
	Prepare *RollUp    `json:"prepare,omitempty"`
	Archs   []RollArch `json:"archs"`
}

// RollUp is one `mitosis up` of the phase.
type RollUp struct {
	Command string   `json:"command"`
	Remade  []string `json:"remade"`           // the processes it made or remade, as arch/process
	Output  string   `json:"output,omitempty"` // its output's tail, when it failed
}

// RollArch is one architecture's roll.
type RollArch struct {
	Arch     string    `json:"arch"`
	Services []string  `json:"services"` // the services (groups) it remade: the context's, if the command matched the stack
	Replicas int       `json:"replicas"` // processes it remade
	Up       RollUp    `json:"up"`
	Error    string    `json:"error,omitempty"` // why the roll failed; the windows still hold what the load saw
	Started  time.Time `json:"started"`
	RollS    float64   `json:"roll_s"` // how long the roll took: from up's start to its end, every process ready
	// Failed is the requests that failed from the roll's start to the end of the after
	// window: the roll's blast radius. During.ByKind and During.Errors say where and how.
	Failed int64   `json:"failed"`
	Before Traffic `json:"before"` // requests scheduled before the roll started: the baseline
	During Traffic `json:"during"` // scheduled while it ran
	After  Traffic `json:"after"`  // scheduled in the window after it
}

// RollPhase runs the roll of one context in each architecture under a steady load, with the
// load test's generator (Attack, Scenario) and recorders.
type RollPhase struct {
	Context  string
	Change   string
	Rate     float64
	Before   time.Duration // steady load before each roll
	After    time.Duration // and after
	Max      time.Duration // the longest a roll may take; up is stopped then
	Pause    time.Duration // between architectures
	Timeout  time.Duration // per request
	Progress io.Writer
	// Prepare, if set, runs once before any roll and is not measured: an up without this
	// run's changes, so that each roll remakes its own architecture's context only.
	Prepare func(ctx context.Context) (RollUp, error)
	// Up rolls the context of arch (the n-th rolled, from 0): a `mitosis up` with the change.
	Up func(ctx context.Context, arch string, n int) (RollUp, error)
}

func (p RollPhase) say(format string, args ...any) {
	if p.Progress != nil {
		fmt.Fprintf(p.Progress, format+"\n", args...)
	}
}

// Validate rejects a phase that cannot run.
func (p RollPhase) Validate() error {
	switch {
	case p.Context == "":
		return errors.New("roll: which context?")
	case p.Rate <= 0:
		return fmt.Errorf("roll: rate %g is not positive", p.Rate)
	case p.Before <= 0 || p.After <= 0 || p.Max <= 0:
		return errors.New("roll: the before and after windows and the longest roll must be positive")
	case p.Timeout <= 0:
		return errors.New("roll: the request timeout must be positive")
	case p.Up == nil:
		return errors.New("roll: no way to roll (Up)")
	}
	return nil
}

// Run rolls the context in each architecture in turn. A failed roll is recorded and the next
// architecture rolled; only a failed Prepare, or ctx ending, stops the phase.
func (p RollPhase) Run(ctx context.Context, archs []*Arch) (*Roll, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	r := &Roll{Context: p.Context, Change: p.Change, RateRPS: p.Rate, BeforeS: p.Before.Seconds(), AfterS: p.After.Seconds(), Archs: []RollArch{}}
	if p.Prepare != nil {
		p.say("roll: bringing the stack to its state without this run's changes")
		up, err := p.Prepare(ctx)
		r.Prepare = &up
		if err != nil {
			return r, fmt.Errorf("roll: prepare: %w", err)
		}
		if len(up.Remade) > 0 {
			p.say("roll: prepare remade %s", strings.Join(up.Remade, ", "))
		}
	}
	for i, a := range archs {
		if i > 0 {
			if err := sleepCtx(ctx, p.Pause); err != nil {
				return r, err
			}
		}
		ra := p.one(ctx, a, i)
		r.Archs = append(r.Archs, ra)
		d := ra.During
		p.say("roll %-9s %s: %d remade (%s) in %.1f s; %d requests during, %d failed from its start, p99 during %.2f ms%s",
			a.Name, p.Context, ra.Replicas, strings.Join(ra.Services, ","), ra.RollS, d.Requests, ra.Failed, d.Latency.P99, topErrors(d.Errors))
		if ra.Error != "" {
			p.say("roll %-9s failed: %s", a.Name, ra.Error)
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// one rolls one architecture under the load.
func (p RollPhase) one(ctx context.Context, a *Arch, n int) RollArch {
	client := newClient(a.Scenario, p.Timeout)
	defer client.CloseIdleConnections()
	before, during, after := NewRecorder(), NewRecorder(), NewRecorder()
	var mu sync.Mutex
	var rollStart, rollEnd time.Time
	actx, stop := context.WithCancel(ctx)
	defer stop()
	attacked := make(chan struct{})
	go func() {
		defer close(attacked)
		Attack(actx, client, a.Scenario.Targeter(), p.Rate, p.Before+p.Max+p.After, func(res *vegeta.Result, scheduled time.Time) {
			mu.Lock()
			s, e := rollStart, rollEnd
			mu.Unlock()
			switch {
			case s.IsZero() || scheduled.Before(s):
				before.Add(res, scheduled)
			case e.IsZero() || !scheduled.After(e):
				during.Add(res, scheduled)
			default:
				after.Add(res, scheduled)
			}
		})
	}()
	ra := RollArch{Arch: a.Name}
	if err := sleepCtx(ctx, p.Before); err != nil {
		ra.Error = err.Error()
	}
	if ra.Error == "" {
		start := time.Now()
		mu.Lock()
		rollStart = start
		mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, p.Max)
		up, err := p.Up(rctx, a.Name, n)
		cancel()
		end := time.Now()
		mu.Lock()
		rollEnd = end
		mu.Unlock()
		ra.Up, ra.Started, ra.RollS = up, start.UTC(), end.Sub(start).Seconds()
		if err != nil {
			ra.Error = err.Error()
		}
		if err := sleepCtx(ctx, p.After); err != nil && ra.Error == "" {
			ra.Error = err.Error()
		}
	}
	stop()
	<-attacked
	ra.Before = before.Traffic(p.Before.Seconds())
	ra.During = during.Traffic(ra.RollS)
	ra.After = after.Traffic(p.After.Seconds())
	ra.Failed = (ra.During.Requests - ra.During.OK) + (ra.After.Requests - ra.After.OK)
	for _, proc := range ra.Up.Remade {
		arch, name, _ := strings.Cut(proc, "/")
		if arch != a.Name {
			continue
		}
		ra.Replicas++
		if svc := ServiceOf(name); !slices.Contains(ra.Services, svc) {
			ra.Services = append(ra.Services, svc)
		}
	}
	return ra
}

// ServiceOf is the service a process name belongs to: <service>-<n> for a replica
// (platform/topology.ReplicaName), else the name itself. A service whose own name ends in
// -<digits> reads as a replica here; the shop's do not.
func ServiceOf(process string) string {
	i := strings.LastIndexByte(process, '-')
	if i <= 0 || i == len(process)-1 || strings.Trim(process[i+1:], "0123456789") != "" {
		return process
	}
	return process[:i]
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// rollWarnings are the roll's fairness checks: an up that remade more than the context's
// service did not match how the stack was brought up, and measured that too.
func rollWarnings(r *Roll) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, a := range r.Archs {
		if len(a.Services) > 1 {
			out = append(out, fmt.Sprintf("roll of %s in %s remade %s, more than the service that runs it: does the up command (%s) match how the stack was brought up?",
				r.Context, a.Arch, strings.Join(a.Services, ", "), a.Up.Command))
		}
		if a.Error == "" && a.Replicas == 0 {
			out = append(out, fmt.Sprintf("roll of %s in %s remade nothing: was the change already there?", r.Context, a.Arch))
		}
	}
	return out
}

// RollReport is the report of a run that only rolled (loadtest roll): its environment, its
// architectures and the roll.
func RollReport(id string, started time.Time, env Environment, archs []ArchInfo, roll *Roll) *Report {
	r := &Report{Schema: Schema, ID: id, Started: started.UTC(), Finished: time.Now().UTC(), Environment: env,
		Architectures: archs, Summary: []ArchSummary{}, Points: []Point{}, Steps: []Step{}, Skipped: []string{},
		IdleCPU: []IdleCPU{}, Traces: Traces{Reason: "a roll only: no ladder"}, Roll: roll}
	r.Warnings = append([]string{}, rollWarnings(roll)...)
	return r
}

// AddRoll puts a roll phase's result into a run's report, with its warnings.
func (r *Report) AddRoll(roll *Roll) {
	r.Roll = roll
	r.Warnings = append(r.Warnings, rollWarnings(roll)...)
}

// rollOnly tells whether the report is a roll's alone: it is then written as such.
func (r *Report) rollOnly() bool { return r.Roll != nil && len(r.Steps) == 0 }

// rollMarkdown writes the roll's section.
func (r *Report) rollMarkdown(p func(string, ...any)) {
	ro := r.Roll
	if ro == nil {
		return
	}
	p("")
	p("## Deploy blast radius: rolling %s", ro.Context)
	p("")
	p("Each architecture in turn under %g req/s of the usual mix: %g s of steady load, then `mitosis up` with %s, then %g s more. Failed: requests that failed from the roll's start to the end of the window after it.",
		ro.RateRPS, ro.BeforeS, ro.Change, ro.AfterS)
	p("")
	p("| arch | remade | roll | requests during | failed | failed by endpoint | errors | p99 before | p99 during | p99 after |")
	p("|---|---|---|---|---|---|---|---|---|---|")
	for _, a := range ro.Archs {
		p("| %s | %s | %.1f s | %d | %d | %s | %s | %.2f | %.2f | %.2f |", a.Arch, rollRemade(a), a.RollS, a.During.Requests, a.Failed,
			rollByKind(a), rollErrors(a), a.Before.Latency.P99, a.During.Latency.P99, a.After.Latency.P99)
	}
	for _, a := range ro.Archs {
		if a.Error != "" {
			p("")
			p("**%s: the roll failed:** %s", a.Arch, a.Error)
		}
	}
	p("")
	p("Latencies in ms from each request's scheduled send time. Commands: %s.", rollCommands(ro))
}

func rollRemade(a RollArch) string {
	switch a.Replicas {
	case 0:
		return "nothing"
	case 1:
		return strings.Join(a.Services, ", ") + " (1 process)"
	}
	return fmt.Sprintf("%s (%d processes)", strings.Join(a.Services, ", "), a.Replicas)
}

// rollByKind lists the endpoint classes that failed, from the roll's start on.
func rollByKind(a RollArch) string {
	var parts []string
	for _, k := range Kinds() {
		n := a.During.ByKind[k].Errors + a.After.ByKind[k].Errors
		if total := a.During.ByKind[k].Requests + a.After.ByKind[k].Requests; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d/%d", k, n, total))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// rollErrors lists the errors from the roll's start on, by kind, the most frequent first.
func rollErrors(a RollArch) string {
	errs := mergeErrors(a.During.Errors, a.After.Errors)
	if len(errs) == 0 {
		return "none"
	}
	return strings.TrimSuffix(strings.TrimPrefix(topErrors(errs), " ("), ")")
}

func mergeErrors(a, b map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, m := range []map[string]int64{a, b} {
		for k, n := range m {
			out[k] += n
		}
	}
	return out
}

func rollCommands(ro *Roll) string {
	var cmds []string
	for _, a := range ro.Archs {
		cmds = append(cmds, "`"+a.Up.Command+"`")
	}
	return strings.Join(cmds, "; ")
}

// writeRollOnlyMarkdown writes the report of a roll alone.
func (r *Report) writeRollOnlyMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Roll %s", r.ID)
	p("")
	p("%s, %s to %s (%s).", strings.Join(rollArchs(r.Roll), ", "), r.Started.Format(time.RFC3339), r.Finished.Format("15:04:05Z"),
		r.Finished.Sub(r.Started).Round(time.Second))
	r.rollMarkdown(p)
	if len(r.Warnings) > 0 {
		p("")
		p("## Warnings")
		p("")
		for _, x := range r.Warnings {
			p("- %s", x)
		}
	}
	e := r.Environment
	p("")
	p("Machine: %d CPUs (%s), load average %.2f at start; git revision %s.", e.Machine.CPUs, e.Machine.CPUModel, e.Machine.LoadAvg, orNone(e.GitRevision))
	_, err := io.WriteString(w, b.String())
	return err
}

func rollArchs(ro *Roll) []string {
	var out []string
	for _, a := range ro.Archs {
		out = append(out, a.Arch)
	}
	return out
}

var rollFuncs = template.FuncMap{
	"f1":     func(x float64) string { return fmt.Sprintf("%.1f", x) },
	"f2":     func(x float64) string { return fmt.Sprintf("%.2f", x) },
	"remade": rollRemade, "byKind": rollByKind, "errs": rollErrors,
}

// rollSection is the roll's section of report.html.
var rollSection = template.Must(template.New("roll").Funcs(rollFuncs).Parse(`{{with .Roll}}
<h2 id="roll">Deploy blast radius: rolling {{.Context}}</h2>
<p>Each architecture in turn under {{.RateRPS}} req/s of the usual mix: {{.BeforeS}} s of steady load, then <code>mitosis up</code> with {{.Change}}, then {{.AfterS}} s more. <i>Failed</i>: requests that failed from the roll's start to the end of the window after it.</p>
<table><tr><th>architecture</th><th>remade</th><th>roll</th><th>requests during</th><th>failed</th><th>failed by endpoint</th><th>errors</th><th>p99 before</th><th>p99 during</th><th>p99 after</th></tr>
{{range .Archs}}<tr id="roll-{{.Arch}}"><td>{{.Arch}}</td><td>{{remade .}}</td><td>{{f1 .RollS}} s</td><td>{{.During.Requests}}</td><td class="{{if .Failed}}FAIL{{else}}pass{{end}}">{{.Failed}}</td><td>{{byKind .}}</td><td style="text-align:left">{{errs .}}</td><td>{{f2 .Before.Latency.P99}}</td><td>{{f2 .During.Latency.P99}}</td><td>{{f2 .After.Latency.P99}}</td></tr>
{{end}}</table>
{{range .Archs}}{{if .Error}}<p class="missing"><b>{{.Arch}}: the roll failed:</b> {{.Error}}</p>{{end}}{{end}}
<p class="note">Latencies in ms from each request's scheduled send time. Commands: {{range $i, $a := .Archs}}{{if $i}}; {{end}}<code>{{$a.Up.Command}}</code>{{end}}.</p>
{{end}}`))

// rollHTML is the roll's section of report.html ("" without a roll).
func (r *Report) rollHTML() (template.HTML, error) {
	if r.Roll == nil {
		return "", nil
	}
	var b strings.Builder
	if err := rollSection.Execute(&b, r); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil // the template escaped every value
}

// rollOnlyPage is report.html of a roll alone.
var rollOnlyPage = template.Must(template.New("rollpage").Funcs(pagestyle.Funcs()).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Roll {{.R.ID}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
{{pagestyle}}</style></head><body><main>
<h1>Roll {{.R.ID}}</h1>
<p>{{.R.Started.Format "2006-01-02 15:04:05Z07:00"}} – {{.R.Finished.Format "15:04:05Z07:00"}}. Machine: {{.R.Environment.Machine.CPUs}} CPUs, load average {{printf "%.2f" .R.Environment.Machine.LoadAvg}} at start; git revision <code>{{.R.Environment.GitRevision}}</code>.</p>
{{if .R.Warnings}}<ul class="warn">{{range .R.Warnings}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{.Section}}
<p class="note">Generated by loadtest roll, schema {{.R.Schema}}; the same figures are in report.json.</p>
</main></body></html>
`))

// writeRollOnlyHTML writes report.html of a roll alone: self-contained, no script.
func (r *Report) writeRollOnlyHTML(w io.Writer) error {
	section, err := r.rollHTML()
	if err != nil {
		return err
	}
	return rollOnlyPage.Execute(w, struct {
		R       *Report
		Section template.HTML
	}{r, section})
}
