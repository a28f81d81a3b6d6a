package loadtest

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/shop/logtest"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestOpenModelCountsTheStall proves the open model: the server stalls for one second once;
// requests keep being scheduled at the constant rate during the stall, and their latencies
// include the time they waited, so none is omitted and none looks fast.
func TestOpenModelCountsTheStall(t *testing.T) {
	const (
		rate     = 50.0
		duration = 3 * time.Second
		stall    = time.Second
	)
	var mu sync.Mutex
	var stallStart, stallEnd time.Time
	begin := time.Now()
	release := make(chan struct{})
	var once sync.Once
	shop, srv := newFakeShop(t)
	shop.before = func(w http.ResponseWriter, r *http.Request) bool {
		if time.Since(begin) < time.Second {
			return true
		}
		once.Do(func() {
			mu.Lock()
			stallStart = time.Now()
			stallEnd = stallStart.Add(stall)
			mu.Unlock()
			time.AfterFunc(stall, func() { close(release) })
		})
		<-release // every request that arrives during the stall waits for its end
		return true
	}
	s := newTestScenario(t, srv.URL, Mix{List: 1}, 10)
	client := newClient(s, 10*time.Second)
	type obs struct {
		scheduled time.Time
		latency   time.Duration
	}
	var got []obs
	rec := NewRecorder()
	Attack(context.Background(), client, s.Targeter(), rate, duration, func(res *vegeta.Result, at time.Time) {
		rec.Add(res, at)
		got = append(got, obs{at, res.Latency + max(res.Timestamp.Sub(at), 0)})
	})
	mu.Lock()
	start, end := stallStart, stallEnd
	mu.Unlock()
	if start.IsZero() {
		t.Fatal("the server never stalled")
	}
	// Every scheduled request was sent and answered: the stall did not stop arrivals.
	if want := int(rate * duration.Seconds()); len(got) < want-2 || len(got) > want+1 {
		t.Fatalf("%d results, want %d: arrivals must not wait for responses", len(got), want)
	}
	during := 0
	for _, o := range got {
		// Requests scheduled well inside the stall (a margin for the first one, which started it).
		if o.scheduled.After(start.Add(20*time.Millisecond)) && o.scheduled.Before(end.Add(-20*time.Millisecond)) {
			during++
			waited := end.Sub(o.scheduled)
			if o.latency < waited-5*time.Millisecond {
				t.Errorf("request scheduled %s before the stall ended took %s: its wait is missing", waited.Round(time.Millisecond), o.latency.Round(time.Millisecond))
			}
		}
	}
	if want := int(rate*stall.Seconds()) - 4; during < want {
		t.Errorf("%d requests scheduled during the stall, want at least %d", during, want)
	}
	// The distribution shows it: about a sixth of the requests waited, so p90 is hundreds of ms.
	tr := rec.Traffic(duration.Seconds())
	if tr.Latency.P90 < 200 || tr.Latency.Max < 900 {
		t.Errorf("p90 %.1f ms, max %.1f ms: the stall is hidden", tr.Latency.P90, tr.Latency.Max)
	}
	if tr.ErrorRate != 0 {
		t.Errorf("errors %v", tr.Errors)
	}
}

func traffic(requests, ok int64, p99 float64) Traffic {
	t := Traffic{Requests: requests, OK: ok, Latency: Latency{P99: p99}}
	if requests > 0 {
		t.ErrorRate = float64(requests-ok) / float64(requests)
	}
	return t
}

func TestSLOPass(t *testing.T) {
	slo := DefaultSLO()
	for _, tc := range []struct {
		name string
		t    Traffic
		want bool
	}{
		{"fast and clean", traffic(10000, 10000, 12), true},
		{"p99 at the bound", traffic(10000, 10000, 50), false},
		{"slow", traffic(10000, 10000, 80), false},
		{"errors at 0.1%", traffic(10000, 9990, 10), false},
		{"errors below 0.1%", traffic(10000, 9991, 10), true},
		{"nothing sent", traffic(0, 0, 0), false},
	} {
		if got := slo.Pass(tc.t); got != tc.want {
			t.Errorf("%s: Pass = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func pt(arch, phase string, rate float64, pass bool) Point {
	return Point{Arch: arch, Phase: phase, Offered: rate, SLOPass: pass, Traffic: traffic(100, 100, 1)}
}

func TestMaxWithinSLO(t *testing.T) {
	rates := []float64{25, 50, 100, 200}
	for _, tc := range []struct {
		name      string
		pts       []Point
		rate      float64
		bound     string
		firstFail float64
	}{
		{"all pass", []Point{pt("m", "ladder", 25, true), pt("m", "ladder", 50, true), pt("m", "ladder", 100, true), pt("m", "ladder", 200, true)}, 200, "at_least", 0},
		{"fails at 100", []Point{pt("m", "ladder", 25, true), pt("m", "ladder", 50, true), pt("m", "ladder", 100, false)}, 50, "found", 100},
		{"search narrows", []Point{pt("m", "ladder", 25, true), pt("m", "ladder", 50, true), pt("m", "ladder", 100, false),
			pt("m", "search", 75, true), pt("m", "search", 88, false), pt("m", "search", 81, true)}, 81, "found", 88},
		{"a pass above a failure does not count", []Point{pt("m", "ladder", 25, true), pt("m", "ladder", 50, false), pt("m", "ladder", 100, true)}, 25, "found", 50},
		{"lowest fails", []Point{pt("m", "ladder", 25, false)}, 0, "below_lowest", 25},
		{"skipped after overload counts as failed", []Point{pt("m", "ladder", 25, true)}, 25, "found", 50},
		{"other arch only", []Point{pt("s", "ladder", 25, true)}, 0, "not_run", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rate, bound, ff := MaxWithinSLO(tc.pts, "m", rates)
			if rate != tc.rate || bound != tc.bound || ff != tc.firstFail {
				t.Errorf("MaxWithinSLO = %g, %s, %g; want %g, %s, %g", rate, bound, ff, tc.rate, tc.bound, tc.firstFail)
			}
		})
	}
}

func TestPointsMergeRepeats(t *testing.T) {
	mk := func(arch string, rep int, lat time.Duration, n int, cpu float64) Step {
		rec := NewRecorder()
		base := time.Unix(1000, 0)
		for i := range n {
			at := base.Add(time.Duration(i) * 10 * time.Millisecond)
			rec.Add(&vegeta.Result{Code: 200, Method: "GET", URL: "http://x/v1/products", Timestamp: at, Latency: lat}, at)
		}
		return Step{Arch: arch, Phase: "ladder", Repeat: rep, Offered: 100, Seconds: 1, rec: rec,
			Resources: Resources{Measured: true, CPUSeconds: cpu, PeakMemBytes: uint64(rep) << 20}}
	}
	steps := []Step{mk("m", 1, 2*time.Millisecond, 100, 0.1), mk("s", 1, 9*time.Millisecond, 100, 0.3), mk("m", 2, 4*time.Millisecond, 100, 0.3)}
	pts := points(steps, DefaultSLO())
	if len(pts) != 2 {
		t.Fatalf("%d points, want 2 (one per arch)", len(pts))
	}
	m := pts[0]
	if m.Arch != "m" || m.Steps != 2 || m.Traffic.Requests != 200 {
		t.Fatalf("merged point %+v", m)
	}
	if m.Traffic.Latency.P50 < 1.99 || m.Traffic.Latency.P50 > 2.01 || m.Traffic.Latency.P99 < 3.99 || m.Traffic.Latency.P99 > 4.01 {
		t.Errorf("merged latency %+v: want half at 2 ms and half at 4 ms", m.Traffic.Latency)
	}
	if m.CPUPerReqMS < 1.99 || m.CPUPerReqMS > 2.01 { // 0.4 CPU seconds over 200 requests
		t.Errorf("CPU per request %.3f ms, want 2", m.CPUPerReqMS)
	}
	if m.PeakMemBytes != 2<<20 || m.Traffic.Achieved != 100 {
		t.Errorf("peak %d, achieved %g", m.PeakMemBytes, m.Traffic.Achieved)
	}
}

func TestPlanValidateAndEstimate(t *testing.T) {
	p := Plan{Rates: []float64{10, 20}, Duration: 10 * time.Second, Warmup: 5 * time.Second, WarmupRate: 10, Repeats: 2,
		Search: 2, SearchDuration: 5 * time.Second, Pause: time.Second, SLO: DefaultSLO(), Mix: DefaultMix(), Timeout: time.Second}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	// Per arch: 4 ladder steps of 11 s, 2 search steps of 6 s, warm-up 5 s + 1 s.
	if got, want := p.Estimate(2), 2*(44+12+6)*time.Second; got != want {
		t.Errorf("Estimate = %s, want %s", got, want)
	}
	bad := p
	bad.Rates = []float64{20, 10}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "ascend") {
		t.Errorf("descending rates: %v", err)
	}
	if lvl := StockLevel(p, 48); lvl != 1000 {
		t.Errorf("StockLevel small plan = %d, want the floor 1000", lvl)
	}
}

// TestRunnerInterleavesAndSearches runs a whole small plan against three fake shops, the
// second of which turns slow (1 s) above 30 requests/s: the runner interleaves them (A B C,
// then C B A in the second repeat), bisects, and finds the slow one's limit between the
// ladder's rates.
func TestRunnerInterleavesAndSearches(t *testing.T) {
	_, fast := newFakeShop(t)
	_, fast2 := newFakeShop(t)
	slowShop, slow := newFakeShop(t)
	var mu sync.Mutex
	var window []time.Time
	slowShop.before = func(w http.ResponseWriter, r *http.Request) bool {
		// Over 30 requests in the last second: answer late, past the SLO.
		mu.Lock()
		now := time.Now()
		window = append(window, now)
		for len(window) > 0 && now.Sub(window[0]) > time.Second {
			window = window[1:]
		}
		late := len(window) > 30
		mu.Unlock()
		if late {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
		}
		return true
	}
	archs := []*Arch{
		{Name: "a", BaseURL: fast.URL, Scenario: newTestScenario(t, fast.URL, DefaultMix(), 20), Note: "not measured (test)"},
		{Name: "b", BaseURL: slow.URL, Scenario: newTestScenario(t, slow.URL, DefaultMix(), 20), Note: "not measured (test)"},
		{Name: "c", BaseURL: fast2.URL, Scenario: newTestScenario(t, fast2.URL, DefaultMix(), 20), Note: "not measured (test)"},
	}
	var progress logtest.Buffer
	r := &Runner{Archs: archs, Progress: &progress, Plan: Plan{
		Rates: []float64{10, 40}, Duration: 1500 * time.Millisecond, Repeats: 2, Search: 2, SearchDuration: 1500 * time.Millisecond,
		// An SLO far from both the fast shop's latencies and the slow one's (1 s), so that a
		// busy machine does not decide the test.
		SLO: SLO{P99: 400 * time.Millisecond, ErrorRate: 0.001}, Mix: DefaultMix(), Timeout: 5 * time.Second,
	}}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range res.Steps {
		if s.Phase == "ladder" {
			order = append(order, s.Arch)
		}
	}
	// Repeat 1: a b c at each rate; repeat 2 reversed: c b a.
	if len(order) < 9 || strings.Join(order[:9], "") != "abcabccba" {
		t.Errorf("ladder order %v, want a b c a b c, then c b a", order)
	}
	rate, bound, _ := MaxWithinSLO(res.Points, "b", r.Plan.Rates)
	if bound != "found" || rate < 10 || rate >= 40 {
		t.Errorf("b: max within SLO %g (%s), want in [10, 40)", rate, bound)
	}
	for _, a := range []string{"a", "c"} {
		if rate, bound, _ := MaxWithinSLO(res.Points, a, r.Plan.Rates); rate != 40 || bound != "at_least" {
			t.Errorf("%s: max within SLO %g (%s), want at least 40", a, rate, bound)
		}
	}
	searched := 0
	for _, s := range res.Steps {
		if s.Phase == "search" {
			searched++
			if s.Arch != "b" {
				t.Errorf("search step of %s, which never failed", s.Arch)
			}
		}
	}
	if searched == 0 {
		t.Error("no search step")
	}
	if !strings.Contains(progress.String(), "[  1] a ") {
		t.Errorf("progress lacks the step lines:\n%s", progress.String())
	}
}

// busySampler is a process whose CPU counter grows by a fixed amount per sample while
// busy > 0 (one sample less each time), then stays.
type busySampler struct {
	mu   sync.Mutex
	cpu  float64
	busy int
	n    int
}

func (b *busySampler) Describe() string { return "test" }

func (b *busySampler) Sample(context.Context) (map[string]Usage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.busy != 0 {
		b.cpu += 0.5 // a full core over a 500 ms interval
		if b.busy > 0 {
			b.busy--
		}
	}
	return map[string]Usage{"p": {CPUSeconds: b.cpu, MemBytes: 1 << 20}}, nil
}

func TestSettleWaitsForQuiet(t *testing.T) {
	s := &busySampler{busy: 3}
	a := &Arch{Name: "a", Sampler: s}
	r := &Runner{Plan: Plan{Settle: 5 * time.Second}}
	start := time.Now()
	if err := r.settle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	// Busy for the first three samples: quiet from the fifth on.
	if s.n < 4 || time.Since(start) < 3*settleEvery-50*time.Millisecond {
		t.Errorf("settled after %d samples, %s: want it to wait out the busy ones", s.n, time.Since(start))
	}
	forever := &busySampler{busy: -1}
	var out logtest.Buffer
	r = &Runner{Plan: Plan{Settle: time.Second}, Progress: &out}
	start = time.Now()
	if err := r.settle(context.Background(), &Arch{Name: "b", Sampler: forever}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("settle took %s with a 1 s limit", d)
	}
	if !strings.Contains(out.String(), "still busy") {
		t.Errorf("no word about the busy architecture: %q", out.String())
	}
}
