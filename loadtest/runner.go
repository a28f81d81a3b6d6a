package loadtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// SLO is the service level objective a step must meet to count as sustained.
type SLO struct {
	P99       time.Duration `json:"-"`
	ErrorRate float64       `json:"max_error_rate"` // errors / requests, below which a step passes
}

// DefaultSLO is p99 < 50 ms and errors < 0.1%.
func DefaultSLO() SLO { return SLO{P99: 50 * time.Millisecond, ErrorRate: 0.001} }

// Pass tells whether a step's traffic meets the SLO (both bounds are strict).
func (s SLO) Pass(t Traffic) bool {
	if t.Requests == 0 {
		return false
	}
	return t.Latency.P99 < float64(s.P99.Microseconds())/1000 && t.ErrorRate < s.ErrorRate
}

// Plan is what a run does: a warm-up, the ladder of rates (each step of each architecture,
// interleaved, repeated), then a bisection of the highest rate within the SLO.
type Plan struct {
	Rates          []float64     // offered rates of the ladder, requests per second, ascending
	Duration       time.Duration // of each ladder step
	Warmup         time.Duration // per architecture, before the ladder; results discarded
	WarmupRate     float64
	Repeats        int           // of the whole ladder; repeat 2 runs the architectures in reverse order
	Search         int           // bisection steps per architecture after the ladder
	SearchDuration time.Duration // of each bisection step (0: Duration)
	Pause          time.Duration // between steps, so that one step's backlog does not spill into the next
	SLO            SLO
	Mix            Mix
	Users          int           // virtual users per architecture
	Timeout        time.Duration // per request
	SampleEvery    time.Duration // resource sampling interval during a step
	Settle         time.Duration // the longest wait for quiet after a step (0: 10 s; negative: none)
	Seed           uint64
	TraceShare     float64 // share of requests asked to be traced (ScenarioConfig.TraceShare)
}

// StepSpec is one planned step.
type StepSpec struct {
	Rate     float64
	Duration time.Duration
}

// Steps lists the ladder's steps of one architecture, and the bisection's at the ladder's top
// rate (for sizing stock: an upper bound).
func (p Plan) Steps() []StepSpec {
	var out []StepSpec
	for range max(p.Repeats, 1) {
		for _, r := range p.Rates {
			out = append(out, StepSpec{r, p.Duration})
		}
	}
	if len(p.Rates) > 0 {
		for range p.Search {
			out = append(out, StepSpec{p.Rates[len(p.Rates)-1], p.searchDuration()})
		}
	}
	return out
}

func (p Plan) searchDuration() time.Duration {
	if p.SearchDuration > 0 {
		return p.SearchDuration
	}
	return p.Duration
}

// Estimate is how long the plan takes for n architectures, pauses included, not counting
// set-up and requests still in flight at the end of a step.
func (p Plan) Estimate(n int) time.Duration {
	var d time.Duration
	for _, s := range p.Steps() {
		d += s.Duration + p.Pause
	}
	return time.Duration(n) * (d + p.Warmup + p.Pause)
}

// Validate rejects a plan that cannot run.
func (p Plan) Validate() error {
	if len(p.Rates) == 0 {
		return errors.New("plan: no rates")
	}
	if !slices.IsSorted(p.Rates) {
		return errors.New("plan: rates must ascend")
	}
	for _, r := range p.Rates {
		if r <= 0 || math.IsInf(r, 0) || math.IsNaN(r) {
			return fmt.Errorf("plan: rate %v is not positive", r)
		}
	}
	if p.Duration <= 0 {
		return errors.New("plan: step duration must be positive")
	}
	if p.Warmup > 0 && p.WarmupRate <= 0 {
		return errors.New("plan: warm-up needs a positive rate")
	}
	if p.Timeout <= 0 {
		return errors.New("plan: request timeout must be positive")
	}
	if p.SLO.P99 <= 0 || p.SLO.ErrorRate <= 0 {
		return errors.New("plan: SLO bounds must be positive")
	}
	if p.TraceShare > 1 {
		return fmt.Errorf("plan: trace share %g is above 1", p.TraceShare)
	}
	return p.Mix.Validate()
}

// Arch is one architecture under test.
type Arch struct {
	Name     string // the architecture's name: monolith, services, hybrid, split...
	BaseURL  string
	Scenario *Scenario
	Sampler  ResourceSampler // nil: resources not measured (Note says why)
	Note     string

	client    *http.Client
	idleCores float64 // CPU it uses with no traffic, measured before the warm-up
}

// Step is one step of one architecture: the traffic it saw and what it cost.
type Step struct {
	Index     int       `json:"index"` // in run order, from 1
	Arch      string    `json:"arch"`
	Phase     string    `json:"phase"` // "ladder" or "search"
	Repeat    int       `json:"repeat"`
	Offered   float64   `json:"offered_rps"`
	Seconds   float64   `json:"duration_s"` // the pacer's duration
	Started   time.Time `json:"started"`
	Traffic   Traffic   `json:"traffic"`
	Resources Resources `json:"resources"`
	Generator Generator `json:"generator"`
	SLOPass   bool      `json:"slo_pass"`
	Overload  bool      `json:"overloaded"` // so far past the SLO that higher rates were skipped

	rec *Recorder
}

// Generator is the load generator's share of the machine during a step, and the rest.
type Generator struct {
	CPUCores     float64 `json:"cpu_cores"`          // the generator's own CPU seconds per second
	MachineBusy  float64 `json:"machine_busy_cores"` // everything that ran on the machine
	OtherCores   float64 `json:"other_cores"`        // busy minus generator minus the architecture measured
	MachineCores int     `json:"machine_cores"`
}

// Point is one architecture at one offered rate of the ladder, its repeats merged.
type Point struct {
	Arch         string    `json:"arch"`
	Offered      float64   `json:"offered_rps"`
	Phase        string    `json:"phase"`
	Steps        int       `json:"steps"`
	Traffic      Traffic   `json:"traffic"`
	CPUPerReqMS  float64   `json:"cpu_per_request_ms"` // 0 when not measured
	CPUCores     float64   `json:"cpu_cores"`
	PeakMemBytes uint64    `json:"peak_mem_bytes"`
	SLOPass      bool      `json:"slo_pass"`
	Generator    Generator `json:"generator"` // the mean over the steps
}

// Result is what a run measured, before it is dressed as a report.
type Result struct {
	Plan        Plan      `json:"-"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Interrupted string    `json:"interrupted,omitempty"`
	Steps       []Step    `json:"steps"`
	Points      []Point   `json:"points"`
	Skipped     []string  `json:"skipped,omitempty"`
	Warnings    []string  `json:"warnings,omitempty"`
	IdleCores   []IdleCPU `json:"idle_cpu"`
	Archs       []string  `json:"-"`
}

// Runner runs a plan against architectures.
type Runner struct {
	Plan     Plan
	Archs    []*Arch
	Progress io.Writer // nil: silent
	// StepDone, when set, is called with every step as it ends (TraceKeeper.StepDone).
	StepDone func(Step)
}

func (r *Runner) stepDone(st Step) {
	if r.StepDone != nil {
		r.StepDone(st)
	}
}

func (r *Runner) say(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, format+"\n", args...)
	}
}

// Run runs the plan. When ctx ends it stops the step under way and returns what it has,
// with Interrupted set.
func (r *Runner) Run(ctx context.Context) (*Result, error) {
	p := r.Plan
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(r.Archs) == 0 {
		return nil, errors.New("run: no architecture")
	}
	if p.SampleEvery <= 0 {
		p.SampleEvery = 250 * time.Millisecond
		r.Plan.SampleEvery = p.SampleEvery
	}
	res := &Result{Plan: p, Started: time.Now().UTC()}
	for _, a := range r.Archs {
		res.Archs = append(res.Archs, a.Name)
		a.client = newClient(a.Scenario, p.Timeout)
		defer a.client.CloseIdleConnections()
	}
	r.say("plan: %d architecture(s), rates %v/s, %s per step, %d repeat(s), %d bisection step(s): about %s",
		len(r.Archs), p.Rates, p.Duration, max(p.Repeats, 1), p.Search, p.Estimate(len(r.Archs)).Round(time.Second))
	finish := func(err error) (*Result, error) {
		res.Finished = time.Now().UTC()
		if err != nil && ctx.Err() != nil {
			res.Interrupted = ctx.Err().Error()
			err = nil
		}
		res.Points = points(res.Steps, p.SLO)
		return res, err
	}

	// Idle CPU, before any traffic: what "quiet" means for settle.
	for _, a := range r.Archs {
		if a.Sampler != nil {
			a.idleCores = idleCPU(ctx, a.Sampler, time.Second)
			res.IdleCores = append(res.IdleCores, IdleCPU{Arch: a.Name, Cores: a.idleCores})
		}
	}

	// Warm-up: connections, caches, JIT-free Go still has lazy paths (the JetStream watchers,
	// the gRPC connections' first streams); the results are discarded.
	if p.Warmup > 0 {
		for _, a := range r.Archs {
			st, err := r.step(ctx, a, p.WarmupRate, p.Warmup, "warmup", 0, 0)
			if err != nil {
				return finish(err)
			}
			r.say("  warm-up %s: %d requests, %.2f%% errors%s", a.Name, st.Traffic.Requests, 100*st.Traffic.ErrorRate, topErrors(st.Traffic.Errors))
			if st.Traffic.Requests > 0 && st.Traffic.ErrorRate > 0.5 {
				return finish(fmt.Errorf("warm-up of %s at %g/s: %.0f%% of requests failed%s; is it up?", a.Name, p.WarmupRate, 100*st.Traffic.ErrorRate, topErrors(st.Traffic.Errors)))
			}
			if err := r.settle(ctx, a); err != nil {
				return finish(err)
			}
		}
	}

	index := 0
	for rep := 1; rep <= max(p.Repeats, 1); rep++ {
		order := slices.Clone(r.Archs)
		if rep%2 == 0 {
			slices.Reverse(order) // A B C, A B C ... then C B A, C B A: drift hits all alike
		}
		overloaded := map[string]float64{}
		for _, rate := range p.Rates {
			for _, a := range order {
				if at, ok := overloaded[a.Name]; ok {
					res.Skipped = append(res.Skipped, fmt.Sprintf("%s at %g/s in repeat %d (overloaded at %g/s)", a.Name, rate, rep, at))
					continue
				}
				index++
				st, err := r.step(ctx, a, rate, p.Duration, "ladder", rep, index)
				if err != nil {
					return finish(err)
				}
				res.Steps = append(res.Steps, st)
				r.stepDone(st)
				if st.Overload {
					overloaded[a.Name] = rate
				}
				if err := r.settle(ctx, a); err != nil {
					return finish(err)
				}
			}
		}
	}

	// Bisection between the highest ladder rate that passed (and every one below it) and the
	// first that failed, the architectures still interleaved.
	pts := points(res.Steps, p.SLO)
	type bracket struct{ lo, hi float64 }
	br := map[string]*bracket{}
	for _, a := range r.Archs {
		lo, hi, _ := ladderBracket(pts, a.Name, p.Rates)
		// No search below the lowest rate: there the SLO's p99 rests on a few hundred
		// requests, and "below the lowest rate tried" is the honest answer.
		if hi > 0 && lo > 0 {
			br[a.Name] = &bracket{lo, hi}
		}
	}
	for i := 0; i < p.Search; i++ {
		ran := false
		for _, a := range r.Archs {
			b := br[a.Name]
			if b == nil || b.hi-b.lo <= max(1, 0.05*b.lo) {
				continue
			}
			mid := math.Round((b.lo + b.hi) / 2)
			if mid <= b.lo || mid >= b.hi {
				continue
			}
			index++
			ran = true
			st, err := r.step(ctx, a, mid, p.searchDuration(), "search", i+1, index)
			if err != nil {
				return finish(err)
			}
			res.Steps = append(res.Steps, st)
			r.stepDone(st)
			if st.SLOPass {
				b.lo = mid
			} else {
				b.hi = mid
			}
			if err := r.settle(ctx, a); err != nil {
				return finish(err)
			}
		}
		if !ran {
			break
		}
	}
	return finish(nil)
}

// overloadFactor: a ladder step whose p99 is this many times the SLO's (or that achieved
// under 80% of its rate, or had over 5% errors) is far past the limit, and the higher rates
// of that repeat are skipped for that architecture: they would only pile up a backlog (and
// records in the stores) that the following steps pay for.
const overloadFactor = 5

// settleQuiet is the CPU below which an architecture counts as quiet after a step, and
// settleMax how long the runner waits for it.
const (
	settleQuiet = 0.05 // cores above the architecture's idle CPU
	settleMax   = 10 * time.Second
	settleEvery = 500 * time.Millisecond
)

// settle waits the plan's pause, then until the architecture just measured is quiet: a step
// leaves work behind (events still flowing to shipping and notify, a backlog after an
// overload, a garbage collection), and its CPU must not be billed to the next step, which
// may be another architecture's. It gives up after settleMax and says so.
func (r *Runner) settle(ctx context.Context, a *Arch) error {
	if err := r.pause(ctx); err != nil {
		return err
	}
	limit := cmp.Or(r.Plan.Settle, settleMax)
	if a.Sampler == nil || limit < 0 {
		return nil
	}
	const every = settleEvery
	deadline := time.Now().Add(limit)
	prev, err := a.Sampler.Sample(ctx)
	if err != nil {
		return nil // the next step reports the sampler's failure
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
		cur, err := a.Sampler.Sample(ctx)
		if err != nil {
			return nil
		}
		var cpu float64
		for name, u := range cur {
			cpu += u.CPUSeconds - prev[name].CPUSeconds
		}
		if cores := cpu / every.Seconds(); cores < a.idleCores+settleQuiet {
			return nil
		} else if time.Now().After(deadline) {
			r.say("      %s still busy after the step (%.2f cores after %s): the next step starts anyway", a.Name, cores, limit)
			return nil
		}
		prev = cur
	}
}

// idleCPU measures the cores an architecture uses over d (0 when sampling fails).
func idleCPU(ctx context.Context, s ResourceSampler, d time.Duration) float64 {
	before, err := s.Sample(ctx)
	if err != nil {
		return 0
	}
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(d):
	}
	after, err := s.Sample(ctx)
	if err != nil {
		return 0
	}
	var cpu float64
	for name, u := range after {
		cpu += u.CPUSeconds - before[name].CPUSeconds
	}
	return max(cpu/d.Seconds(), 0)
}

// IdleCPU is the CPU an architecture used with no traffic.
type IdleCPU struct {
	Arch  string  `json:"arch"`
	Cores float64 `json:"cores"`
}

func (r *Runner) pause(ctx context.Context) error {
	if r.Plan.Pause <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.Plan.Pause):
		return nil
	}
}

// newClient is the HTTP client of one architecture for the whole run: keep-alive
// connections without a cap (an open model needs as many as requests in flight), through the
// scenario's transport.
func newClient(s *Scenario, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 10000,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	var rt http.RoundTripper = tr
	if s != nil {
		rt = s.Transport(tr)
	}
	return &http.Client{Timeout: timeout, Transport: rt}
}

// pacer returns a constant pacer of rate per second (fractional rates included) and its
// interval.
func pacer(rate float64) (vegeta.ConstantPacer, time.Duration) {
	p := vegeta.ConstantPacer{Freq: int(rate), Per: time.Second}
	if float64(p.Freq) != rate {
		p = vegeta.ConstantPacer{Freq: int(math.Round(rate * 1000)), Per: 1000 * time.Second}
	}
	return p, time.Duration(p.Per.Nanoseconds() / int64(p.Freq))
}

// Attack sends the targeter's requests at a constant rate (an open model: vegeta starts a
// new worker whenever every worker is busy, so arrivals never wait for responses) for d,
// and calls onResult, from one goroutine, for every result with the time the pacer
// scheduled it. It returns once every request has answered or timed out, and how long that
// took. Ending ctx stops the attack early.
func Attack(ctx context.Context, client *http.Client, tr vegeta.Targeter, rate float64, d time.Duration, onResult func(res *vegeta.Result, scheduled time.Time)) time.Duration {
	pc, interval := pacer(rate)
	atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.MaxBody(0)) // keep-alive is the client's default
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	start := time.Now()
	for res := range atk.Attack(tr, pc, d, "") {
		// The pacer sends hit n at (n+1) intervals after the start.
		onResult(res, start.Add(time.Duration(res.Seq+1)*interval))
	}
	return time.Since(start)
}

// isTerminal tells whether w is a character device (live progress) or a file or pipe
// (a line every few seconds).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// step runs one step of one architecture.
func (r *Runner) step(ctx context.Context, a *Arch, rate float64, d time.Duration, phase string, rep, index int) (Step, error) {
	p := r.Plan
	st := Step{Index: index, Arch: a.Name, Phase: phase, Repeat: rep, Offered: rate, Seconds: d.Seconds(), Started: time.Now().UTC()}
	var tracker *PeakTracker
	if a.Sampler != nil {
		var err error
		if tracker, err = NewPeakTracker(ctx, a.Sampler); err != nil {
			st.Resources.Note = "sampling failed: " + err.Error()
		}
	} else {
		st.Resources.Note = a.Note
	}
	tctx, stopTracker := context.WithCancel(ctx)
	trackerDone := make(chan struct{})
	go func() {
		defer close(trackerDone)
		if tracker != nil {
			tracker.Run(tctx, cmp.Or(p.SampleEvery, 250*time.Millisecond))
		}
	}()
	// The generator's and the machine's CPU over the attack itself (the tracker's samples,
	// which may take a while through Podman, bracket it with their own timestamps).
	t0 := time.Now()
	genBefore := SelfCPU()
	busyBefore, _, _ := MachineCPU()

	rec := NewRecorder()
	var done, failed atomic.Int64
	progressDone := make(chan struct{})
	go r.progress(a.Name, phase, rate, d, time.Now(), &done, &failed, progressDone)
	Attack(ctx, a.client, a.Scenario.Targeter(), rate, d, func(res *vegeta.Result, scheduled time.Time) {
		rec.Add(res, scheduled)
		done.Add(1)
		if _, e := Outcome(res); e != "" {
			failed.Add(1)
		}
	})
	gen := SelfCPU() - genBefore
	busyAfter, _, _ := MachineCPU()
	secs := time.Since(t0).Seconds()
	close(progressDone)
	stopTracker()
	<-trackerDone

	st.rec = rec
	st.Traffic = rec.Traffic(d.Seconds())
	st.Generator = Generator{CPUCores: gen / secs, MachineBusy: (busyAfter - busyBefore) / secs, MachineCores: numCPU()}
	if tracker != nil {
		st.Resources = tracker.Result(ctx)
		if span := tracker.Span().Seconds(); span > 0 {
			st.Resources.CPUCores = st.Resources.CPUSeconds / span
		}
		if st.Traffic.Requests > 0 {
			st.Resources.CPUPerReqMS = 1000 * st.Resources.CPUSeconds / float64(st.Traffic.Requests)
		}
	}
	st.Generator.OtherCores = max(0, st.Generator.MachineBusy-st.Generator.CPUCores-st.Resources.CPUCores)
	st.SLOPass = p.SLO.Pass(st.Traffic)
	t := st.Traffic
	st.Overload = phase == "ladder" && (t.Requests == 0 || t.Achieved < 0.8*rate || t.ErrorRate > 0.05 ||
		t.Latency.P99 > overloadFactor*float64(p.SLO.P99.Microseconds())/1000)
	if phase != "warmup" {
		verdict := "pass"
		if !st.SLOPass {
			verdict = "FAIL"
		}
		cpu := ""
		if st.Resources.Measured {
			cpu = fmt.Sprintf(" cpu %.2f cores %.2f ms/req mem %s", st.Resources.CPUCores, st.Resources.CPUPerReqMS, mib(st.Resources.PeakMemBytes))
		}
		r.say("[%3d] %-8s %-6s %6g/s: got %7.1f/s p50 %6.2fms p99 %7.2fms p99.9 %7.2fms max %7.1fms err %.2f%%%s  gen %.2f cores  %s%s",
			index, a.Name, phase, rate, t.Achieved, t.Latency.P50, t.Latency.P99, t.Latency.P999, t.Latency.Max,
			100*t.ErrorRate, cpu, st.Generator.CPUCores, verdict, topErrors(t.Errors))
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	return st, nil
}

// progress prints the step's progress until done is closed: a live line on a terminal, a
// line every 5 seconds elsewhere.
func (r *Runner) progress(arch, phase string, rate float64, d time.Duration, start time.Time, done, failed *atomic.Int64, stop <-chan struct{}) {
	if r.Progress == nil {
		return
	}
	live := isTerminal(r.Progress)
	every := 5 * time.Second
	if live {
		every = 500 * time.Millisecond
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			if live {
				fmt.Fprint(r.Progress, "\r\033[K")
			}
			return
		case <-tick.C:
			line := fmt.Sprintf("      %s %s %g/s: %4.0fs of %s, %d done, %d failed", arch, phase, rate,
				time.Since(start).Seconds(), d, done.Load(), failed.Load())
			if live {
				fmt.Fprint(r.Progress, "\r\033[K"+line)
			} else {
				fmt.Fprintln(r.Progress, line)
			}
		}
	}
}

func topErrors(errs map[string]int64) string {
	if len(errs) == 0 {
		return ""
	}
	type kv struct {
		k string
		n int64
	}
	var l []kv
	for k, n := range errs {
		l = append(l, kv{k, n})
	}
	slices.SortFunc(l, func(a, b kv) int {
		if a.n != b.n {
			return int(b.n - a.n)
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for i, x := range l {
		if i == 3 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s ×%d", x.k, x.n))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// points merges the steps of each architecture and rate, per phase: the ladder's points
// first, then the search's, each by architecture (in the order the steps first ran them)
// and rate.
func points(steps []Step, slo SLO) []Point {
	type key struct {
		arch, phase string
		rate        float64
	}
	var order []key
	groups := map[key][]Step{}
	for _, s := range steps {
		k := key{s.Arch, s.Phase, s.Offered}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], s)
	}
	var out []Point
	for _, k := range order {
		g := groups[k]
		rec := NewRecorder()
		var secs, cpu float64
		var mem uint64
		measured := true
		var gen Generator
		for _, s := range g {
			if s.rec != nil {
				rec.Merge(s.rec)
			}
			secs += s.Seconds
			cpu += s.Resources.CPUSeconds
			mem = max(mem, s.Resources.PeakMemBytes)
			measured = measured && s.Resources.Measured
			gen.CPUCores += s.Generator.CPUCores / float64(len(g))
			gen.MachineBusy += s.Generator.MachineBusy / float64(len(g))
			gen.OtherCores += s.Generator.OtherCores / float64(len(g))
			gen.MachineCores = s.Generator.MachineCores
		}
		pt := Point{Arch: k.arch, Offered: k.rate, Phase: k.phase, Steps: len(g), Traffic: rec.Traffic(secs), Generator: gen}
		pt.SLOPass = slo.Pass(pt.Traffic)
		if measured {
			pt.CPUCores = cpu / secs
			pt.PeakMemBytes = mem
			if pt.Traffic.Requests > 0 {
				pt.CPUPerReqMS = 1000 * cpu / float64(pt.Traffic.Requests)
			}
		}
		out = append(out, pt)
	}
	// Architectures in run order (of their first step), as the report's columns.
	rank := map[string]int{}
	for _, s := range steps {
		if _, ok := rank[s.Arch]; !ok {
			rank[s.Arch] = len(rank)
		}
	}
	slices.SortStableFunc(out, func(a, b Point) int {
		if c := strings.Compare(a.Phase, b.Phase); c != 0 {
			return c
		}
		if c := cmp.Compare(rank[a.Arch], rank[b.Arch]); c != 0 {
			return c
		}
		switch {
		case a.Offered < b.Offered:
			return -1
		case a.Offered > b.Offered:
			return 1
		}
		return 0
	})
	return out
}

// ladderBracket finds, for one architecture, the highest ladder rate that passed with every
// lower rate passing (lo, 0 if the lowest failed) and the first rate that failed (hi, 0 if
// none did). ok is false when the architecture has no ladder point.
func ladderBracket(pts []Point, arch string, rates []float64) (lo, hi float64, ok bool) {
	byRate := map[float64]Point{}
	for _, p := range pts {
		if p.Arch == arch && p.Phase == "ladder" {
			byRate[p.Offered] = p
		}
	}
	if len(byRate) == 0 {
		return 0, 0, false
	}
	for _, r := range rates {
		p, ran := byRate[r]
		if !ran || !p.SLOPass {
			// A rate skipped after an overload counts as failed.
			return lo, r, true
		}
		lo = r
	}
	return lo, 0, true
}

// MaxWithinSLO is the highest rate an architecture sustained within the SLO: the ladder's
// bracket narrowed by the search steps. bound says how to read it: "found" (a higher rate
// failed), "at_least" (no rate tried failed) or "below_lowest" (the lowest rate failed and
// no search step passed).
func MaxWithinSLO(pts []Point, arch string, rates []float64) (rate float64, bound string, firstFail float64) {
	lo, hi, ok := ladderBracket(pts, arch, rates)
	if !ok {
		return 0, "not_run", 0
	}
	if hi == 0 {
		return lo, "at_least", 0
	}
	for _, p := range pts {
		if p.Arch != arch || p.Phase != "search" || p.Offered <= lo || p.Offered >= hi {
			continue
		}
		if p.SLOPass {
			lo = p.Offered
		}
	}
	for _, p := range pts {
		if p.Arch == arch && p.Phase == "search" && !p.SLOPass && p.Offered > lo && p.Offered < hi {
			hi = p.Offered
		}
	}
	if lo == 0 {
		return 0, "below_lowest", hi
	}
	return lo, "found", hi
}
