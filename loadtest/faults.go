package loadtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mitosis-dev/mitosis/platform/stack"
)

// The faults phase: for each architecture and each of its processes in turn, with traffic
// running at a steady rate, a baseline, a kill, an outage, a start and the time after; then
// the invariants of the shop, checked through the API (invariants.go); the report's fault
// matrix (faults_report.go).

// Faulter kills and starts one process of a running architecture: the runtime that made it
// (platform/stack.Runtime, Podman's or the process runtime).
type Faulter interface {
	Kill(ctx context.Context, arch, service string) error
	Start(ctx context.Context, arch, service string) error
}

var _ Faulter = stack.Runtime(nil)

// FaultPlan is what the faults phase does to each process.
type FaultPlan struct {
	Rate     float64       // requests per second, steady, through every cycle
	Warmup   time.Duration // traffic before the first cycle of each architecture, not counted (default 3 s)
	Baseline time.Duration // traffic before the kill (default 3 s)
	Down     time.Duration // from the process gone (the kill returned) to the start (default 10 s)
	After    time.Duration // traffic observed from the start (default 10 s)
	// Window is the run of successes that counts as recovered (RecoveryTime); 0: the longer
	// of 1 s and the time the rarest request kind takes to be sent 3 times on average.
	Window  time.Duration
	Bucket  time.Duration // the timeline's resolution (default 500 ms)
	Mix     Mix
	Users   int           // virtual users per architecture (default 200)
	Timeout time.Duration // per request (default 5 s)
	Seed    uint64
	// Settle bounds the wait of the invariant checks for the stack to settle: retried
	// checkouts, reservations released, orders shipped and notified, abandoned charges
	// refunded (default 6 minutes: the inventory's reservations expire after 5).
	Settle time.Duration
}

// Fault plan defaults.
const (
	DefaultFaultBaseline = 3 * time.Second
	DefaultFaultDown     = 10 * time.Second
	DefaultFaultAfter    = 10 * time.Second
	DefaultFaultSettle   = 6 * time.Minute
)

func (p FaultPlan) withDefaults() FaultPlan {
	p.Warmup = cmp.Or(p.Warmup, DefaultFaultBaseline)
	p.Baseline = cmp.Or(p.Baseline, DefaultFaultBaseline)
	p.Down = cmp.Or(p.Down, DefaultFaultDown)
	p.After = cmp.Or(p.After, DefaultFaultAfter)
	p.Bucket = cmp.Or(p.Bucket, 500*time.Millisecond)
	p.Users = cmp.Or(p.Users, 200)
	p.Timeout = cmp.Or(p.Timeout, 5*time.Second)
	p.Settle = cmp.Or(p.Settle, DefaultFaultSettle)
	if p.Window <= 0 {
		p.Window = p.autoWindow()
	}
	return p
}

// autoWindow is the longer of 1 s and the time in which the rarest kind of the mix is sent
// 3 times on average at the plan's rate: a window that may well hold none of a kind proves
// nothing about it.
func (p FaultPlan) autoWindow() time.Duration {
	w := p.Mix.weights()
	sum, rarest := 0.0, math.Inf(1)
	for _, x := range w {
		sum += x
		if x > 0 {
			rarest = min(rarest, x)
		}
	}
	if p.Rate <= 0 || sum == 0 {
		return time.Second
	}
	need := time.Duration(3 / (p.Rate * rarest / sum) * float64(time.Second))
	return max(time.Second, need.Round(100*time.Millisecond))
}

// Validate rejects a plan that cannot run.
func (p FaultPlan) Validate() error {
	switch {
	case p.Rate <= 0 || math.IsInf(p.Rate, 0) || math.IsNaN(p.Rate):
		return fmt.Errorf("faults: rate %v is not positive", p.Rate)
	case p.Warmup < 0 || p.Baseline < 0 || p.Down < 0 || p.After < 0 || p.Window < 0 || p.Bucket < 0 || p.Settle < 0:
		return errors.New("faults: durations must not be negative")
	case p.After < 2*p.Window:
		// The recovery is a window that fits in the time after the start: one as long as that
		// time could only start with the start itself.
		return fmt.Errorf("faults: %s after the start leaves no room to find a %s recovery window (at %g req/s the rarest kind of request is seen 3 times in that): give an -after of twice the window at least, a shorter -recovery-window or a higher -rate",
			p.After, p.Window, p.Rate)
	}
	return p.Mix.Validate()
}

// FaultTarget is one architecture of the phase.
type FaultTarget struct {
	Arch       string
	BaseURL    string
	AdminToken string
	Processes  []string // the services to kill, in turn: every process of the architecture
	Runtime    Faulter  // the runtime that runs it
	// NATSURL reaches the architecture's NATS (nats://127.0.0.1:port), from which the
	// charges are read, read only; "" leaves the charges unchecked (the report says so).
	NATSURL string
	NATSTLS nats.Option // a secure stack's TLS for NATSURL (natsauth.AdminTLS); nil: none
	Note    string      // how the runtime was found, for the report
}

// FaultRunner runs the faults phase.
type FaultRunner struct {
	Plan     FaultPlan
	Targets  []FaultTarget
	Progress io.Writer // nil: silent
	// RunID makes the virtual users' IDs unique to this run (default: the start time).
	RunID string
}

func (r *FaultRunner) say(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, format+"\n", args...)
	}
}

// Run runs every cycle of every architecture, then its invariant checks. An error is a
// failure to run at all (bad plan, an edge that never answers); a kill or start that fails,
// or an invariant that breaks, is in the result (FaultsReport.Passed false). When ctx ends it
// returns what it has, Interrupted set.
func (r *FaultRunner) Run(ctx context.Context) (*FaultsReport, error) {
	p := r.Plan.withDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(r.Targets) == 0 {
		return nil, errors.New("faults: no architecture")
	}
	runID := cmp.Or(r.RunID, strconv.FormatInt(time.Now().Unix()%1_000_000, 36))
	rep := &FaultsReport{Settings: p.settings(), Started: time.Now().UTC()}
	for i, t := range r.Targets {
		ar, err := r.runArch(ctx, p, t, fmt.Sprintf("lf%s-%d", runID, i))
		if ar != nil {
			rep.Archs = append(rep.Archs, *ar)
		}
		if err != nil {
			if ctx.Err() != nil {
				rep.Interrupted = ctx.Err().Error()
				break
			}
			return rep, err
		}
	}
	rep.Finished = time.Now().UTC()
	rep.Passed = rep.Interrupted == "" && !slices.ContainsFunc(rep.Archs, func(a FaultArch) bool { return !a.passed() })
	return rep, nil
}

// runArch runs the cycles of one architecture and checks its invariants.
func (r *FaultRunner) runArch(ctx context.Context, p FaultPlan, t FaultTarget, prefix string) (*FaultArch, error) {
	shop := Shop{BaseURL: t.BaseURL, AdminToken: t.AdminToken}
	if err := shop.WaitReady(ctx, 30*time.Second); err != nil {
		return nil, fmt.Errorf("%s: %w", t.Arch, err)
	}
	products, err := shop.Catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Arch, err)
	}
	ids := make([]string, len(products))
	for i, pr := range products {
		ids[i] = pr.ID
	}
	ar := &FaultArch{Arch: t.Arch, BaseURL: t.BaseURL, Runtime: t.Note, Processes: slices.Clone(t.Processes)}
	// Stock: what there was, what the run adds (both exact, per product), so that the
	// invariants can say what there must be at the end.
	before, err := shop.Stocks(ctx, ids)
	if err != nil {
		return ar, fmt.Errorf("%s: %w", t.Arch, err)
	}
	level := p.stockLevel(len(t.Processes), len(ids))
	added, err := shop.TopUp(ctx, ids, level)
	for _, n := range added {
		ar.StockAdded += n
	}
	if err != nil {
		return ar, fmt.Errorf("%s: %w", t.Arch, err)
	}
	since := time.Now()
	r.say("%s: %d products, stock topped up to %d each (%d units added); %d processes to kill in turn at %g req/s",
		t.Arch, len(ids), level, ar.StockAdded, len(t.Processes), p.Rate)

	sc, err := NewScenario(ScenarioConfig{BaseURL: t.BaseURL, Mix: p.Mix, Users: p.Users, Products: ids,
		Terms: SearchTerms(products), Prefix: prefix, Seed: p.Seed, TraceShare: 0})
	if err != nil {
		return ar, err
	}
	led := &ledger{}
	client := &http.Client{Timeout: p.Timeout, Transport: sc.Transport(led.transport(newTransport(p.Timeout)))}
	defer client.CloseIdleConnections()

	// A warm-up, as the ladder has: the first requests of a process meet cold caches and
	// connections, which the first baseline must not count.
	Attack(ctx, client, sc.Targeter(), p.Rate, p.Warmup, func(*vegeta.Result, time.Time) {})
	for _, proc := range t.Processes {
		if err := shop.WaitReady(ctx, time.Minute); err != nil {
			if ctx.Err() != nil {
				return ar, ctx.Err()
			}
			ar.Cycles = append(ar.Cycles, FaultCycle{Process: proc, Error: "the edge was not ready before the kill: " + err.Error()})
			continue
		}
		c := r.cycle(ctx, p, t, proc, client, sc)
		ar.Cycles = append(ar.Cycles, c)
		if ctx.Err() != nil {
			return ar, ctx.Err()
		}
	}
	ar.Sent = sc.Sent()
	r.say("%s: checking the invariants (waiting for the stack to settle, at most %s)", t.Arch, p.Settle)
	ar.Invariants = checkInvariants(ctx, invariantInput{
		shop: shop, attempts: led.snapshot(), products: ids, before: before, added: added,
		since: since, natsURL: t.NATSURL, natsTLS: t.NATSTLS, settle: p.Settle, progress: r.Progress,
	})
	for _, c := range ar.Invariants.Checks {
		switch {
		case c.Skipped != "":
			r.say("  %-14s skipped: %s", c.Name, c.Skipped)
		case c.Passed:
			r.say("  %-14s held (%d checked, %.1f s)", c.Name, c.Checked, c.TookS)
		default:
			r.say("  %-14s BROKEN: %s", c.Name, firstOr(c.Evidence, "see the report"))
		}
	}
	return ar, nil
}

func firstOr(l []string, def string) string {
	if len(l) == 0 {
		return def
	}
	return l[0]
}

// stockLevel tops every product up to what the phase could buy three times over, as
// StockLevel does for a ladder, and at least 1000.
func (p FaultPlan) stockLevel(cycles, products int) int64 {
	reqs := p.Rate * ((p.Baseline+p.Down+p.After+5*time.Second).Seconds()*float64(cycles) + p.Warmup.Seconds())
	return stockFor(reqs, p.Mix, products)
}

// sample is one request of a cycle: when it was scheduled, what kind, whether it succeeded.
type sample struct {
	at   time.Time // when the pacer scheduled it
	end  time.Time // when its answer (or error) came
	kind Kind
	ok   bool
	err  string // the kind of error ("http 503", "connection refused"...), "" when ok
}

// cycle is one process's kill and start under traffic.
func (r *FaultRunner) cycle(ctx context.Context, p FaultPlan, t FaultTarget, proc string, client *http.Client, sc *Scenario) FaultCycle {
	c := FaultCycle{Process: proc}
	var mu sync.Mutex
	var samples []sample
	actx, stopTraffic := context.WithCancel(ctx)
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		// Duration 0: until stopTraffic, once the time after the start is over.
		Attack(actx, client, sc.Targeter(), p.Rate, 0, func(res *vegeta.Result, scheduled time.Time) {
			kind, errKind := Outcome(res)
			mu.Lock()
			samples = append(samples, sample{at: scheduled, end: res.Timestamp.Add(res.Latency), kind: kind, ok: errKind == "", err: errKind})
			mu.Unlock()
		})
	}()
	begin := time.Now()
	wait := func(until time.Time) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(until)):
			return true
		}
	}
	var m moments
	m.begin = begin
	finish := func() FaultCycle {
		stopTraffic()
		<-trafficDone
		return c.fill(p, samples, m)
	}
	if !wait(begin.Add(p.Baseline)) {
		return finish()
	}
	m.kill = time.Now()
	c.KilledAt = m.kill.UTC()
	err := t.Runtime.Kill(ctx, t.Arch, proc)
	m.down = time.Now()
	c.KillMS = float64(m.down.Sub(m.kill).Microseconds()) / 1000
	if err != nil {
		c.Error = "kill: " + err.Error()
		r.say("  %s/%s: kill failed: %v", t.Arch, proc, err)
		m.kill, m.down = time.Time{}, time.Time{}
		return finish()
	}
	if !wait(m.down.Add(p.Down)) {
		return finish()
	}
	m.start = time.Now()
	err = t.Runtime.Start(ctx, t.Arch, proc)
	c.StartS = time.Since(m.start).Seconds()
	if err != nil {
		c.Error = "start: " + err.Error()
		r.say("  %s/%s: start failed: %v", t.Arch, proc, err)
	}
	started := m.start
	wait(started.Add(p.After))
	c = finish()
	rec := "not within the time after the start"
	if c.RecoveryS != nil {
		rec = fmt.Sprintf("%.2f s", *c.RecoveryS)
	}
	r.say("  %s/%s: killed in %.0f ms, down %.1f s, ready %.2f s after the start, every kind answering again after %s; success during the outage %s, after %s",
		t.Arch, proc, c.KillMS, c.DownS, c.StartS, rec, c.successLine(phaseOutage), c.successLine(phaseAfter))
	return c
}

// newTransport is the HTTP transport of the phase's traffic: keep-alive connections without a
// cap, as the ladder's (newClient).
func newTransport(timeout time.Duration) *http.Transport {
	return newClient(nil, timeout).Transport.(*http.Transport)
}

// Phases of a cycle: baseline, the requests answered before the kill began; outage, those
// scheduled from when the process was gone (the runtime's kill returned) to the start;
// after, those scheduled from the start for FaultPlan.After. A request in flight when the kill
// began, or scheduled while the runtime was killing, is the kill's own (phaseKill): it met a
// process dying, neither up nor down, and counts in no cell of the matrix.
const (
	phaseBaseline = "baseline"
	phaseKill     = "kill"
	phaseOutage   = "outage"
	phaseAfter    = "after"
)

// moments are a cycle's times: the traffic's begin, the kill's call (kill) and return (down),
// the start's call. A zero kill: nothing was killed; a zero start: nothing was started.
type moments struct{ begin, kill, down, start time.Time }

// fill computes the cycle's figures from its samples.
func (c FaultCycle) fill(p FaultPlan, samples []sample, m moments) FaultCycle {
	slices.SortFunc(samples, func(a, b sample) int { return a.at.Compare(b.at) })
	end := time.Now()
	if !m.start.IsZero() {
		end = m.start.Add(p.After)
		c.DownS = m.start.Sub(m.down).Seconds()
	} else if !m.kill.IsZero() {
		c.DownS = time.Since(m.down).Seconds()
	}
	phase := func(s sample) string {
		switch {
		case m.kill.IsZero() || s.end.Before(m.kill):
			return phaseBaseline
		case s.at.Before(m.down):
			return phaseKill
		case m.start.IsZero() || s.at.Before(m.start):
			return phaseOutage
		case s.at.Before(end):
			return phaseAfter
		}
		return ""
	}
	cells := map[Kind]*FaultCell{}
	for _, k := range Kinds() {
		cells[k] = &FaultCell{Kind: k}
	}
	for _, s := range samples {
		cell := cells[s.kind]
		if cell == nil {
			continue
		}
		ph := phase(s)
		var pc *PhaseCount
		switch ph {
		case phaseBaseline:
			pc = &cell.Baseline
		case phaseKill:
			pc = &PhaseCount{}
			c.KillRequests++
		case phaseOutage:
			pc = &cell.Outage
		case phaseAfter:
			pc = &cell.After
		default:
			continue
		}
		pc.Requests++
		if s.ok {
			pc.OK++
			continue
		}
		if c.Errors == nil {
			c.Errors = map[string]map[string]int{}
		}
		if c.Errors[ph] == nil {
			c.Errors[ph] = map[string]int{}
		}
		c.Errors[ph][s.err]++
	}
	for _, k := range Kinds() {
		cell := cells[k]
		for _, pc := range []*PhaseCount{&cell.Baseline, &cell.Outage, &cell.After} {
			pc.setSuccess()
		}
		c.Classes = append(c.Classes, *cell)
	}
	if !m.start.IsZero() {
		if d, ok := RecoveryTime(samples, m.start, end, p.Window, p.Mix); ok {
			s := d.Seconds()
			c.RecoveryS = &s
		}
	}
	// The timeline: success per bucket, from the first request to the end, relative to the
	// kill (to the start of traffic when nothing was killed).
	origin := m.kill
	if origin.IsZero() {
		origin = m.begin
	}
	c.Timeline = timeline(samples, origin, m.begin, end, p.Bucket)
	return c
}

// RecoveryTime is how long after start every kind of request answered again: the smallest
// d ≥ 0 such that the requests scheduled in [start+d, start+d+window) all succeeded and
// include at least one of every kind the mix sends, where start+d is the scheduled time of
// a request (the first of that window). The window must end by end (the end of the time
// observed); ok is false when no such window exists before then. samples must be sorted by
// their scheduled time.
func RecoveryTime(samples []sample, start, end time.Time, window time.Duration, mix Mix) (time.Duration, bool) {
	want := 0
	for _, w := range mix.weights() {
		if w > 0 {
			want++
		}
	}
	i0, _ := slices.BinarySearchFunc(samples, start, func(s sample, t time.Time) int { return s.at.Compare(t) })
	for i := i0; i < len(samples); i++ {
		from := samples[i].at
		if from.Add(window).After(end) {
			break
		}
		seen := map[Kind]bool{}
		ok := true
		for j := i; j < len(samples) && samples[j].at.Before(from.Add(window)); j++ {
			if !samples[j].ok {
				ok = false
				break
			}
			seen[samples[j].kind] = true
		}
		if ok && len(seen) >= want {
			return from.Sub(start), true
		}
	}
	return 0, false
}

// timeline counts requests and successes per bucket of width, scheduled from begin to end,
// with times relative to origin.
func timeline(samples []sample, origin, begin, end time.Time, width time.Duration) FaultTimeline {
	tl := FaultTimeline{BucketS: width.Seconds(), FromS: begin.Sub(origin).Seconds()}
	n := int(math.Ceil(float64(end.Sub(begin)) / float64(width)))
	if n <= 0 || n > 10_000 {
		return tl
	}
	tl.Requests, tl.OK = make([]int, n), make([]int, n)
	for _, s := range samples {
		i := int(s.at.Sub(begin) / width)
		if i < 0 || i >= n {
			continue
		}
		tl.Requests[i]++
		if s.ok {
			tl.OK[i]++
		}
	}
	return tl
}
