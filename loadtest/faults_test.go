package loadtest

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// every returns samples of the five kinds in turn, one every step from from until to,
// succeeding or not.
func every(from, to time.Time, step time.Duration, ok bool) []sample {
	var out []sample
	for i, at := 0, from; at.Before(to); i, at = i+1, at.Add(step) {
		smp := sample{at: at, end: at.Add(time.Millisecond), kind: Kinds()[i%len(Kinds())], ok: ok}
		if !ok {
			smp.err = "http 503"
		}
		out = append(out, smp)
	}
	return out
}

func TestRecoveryTime(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(10 * time.Second)
	mix := DefaultMix()
	step := 50 * time.Millisecond
	failing := every(start, start.Add(1200*time.Millisecond), step, false)
	good := every(start.Add(1200*time.Millisecond), end, step, true)
	samples := append(failing, good...)
	if d, ok := RecoveryTime(samples, start, end, time.Second, mix); !ok || d != 1200*time.Millisecond {
		t.Errorf("recovered after %s (%v), want 1.2s", d, ok)
	}
	// One failure at 3 s: the first window of successes starts after it.
	samples[60].ok = false // 60 × 50 ms = 3 s
	if d, ok := RecoveryTime(samples, start, end, time.Second, mix); !ok || d != 1200*time.Millisecond {
		t.Errorf("a failure after a whole window of successes moved the recovery: %s (%v)", d, ok)
	}
	samples[30].ok = false // at 1.5 s, inside the first window
	if d, ok := RecoveryTime(samples, start, end, time.Second, mix); !ok || d != 1550*time.Millisecond {
		t.Errorf("recovered after %s (%v), want 1.55s (the request after the failure at 1.5 s)", d, ok)
	}
	// A window without a kind the mix sends proves nothing about it: only list requests
	// until 5 s.
	var sparse []sample
	for at := start; at.Before(end); at = at.Add(step) {
		k := KindList
		if !at.Before(start.Add(5 * time.Second)) {
			k = Kinds()[int(at.Sub(start)/step)%len(Kinds())]
		}
		sparse = append(sparse, sample{at: at, kind: k, ok: true})
	}
	if d, ok := RecoveryTime(sparse, start, end, time.Second, mix); !ok || d < 4*time.Second || d > 5*time.Second {
		t.Errorf("recovered after %s (%v), want within the second before 5 s, when every kind shows", d, ok)
	}
	// ...unless the mix sends only lists.
	if d, ok := RecoveryTime(sparse, start, end, time.Second, Mix{List: 1}); !ok || d != 0 {
		t.Errorf("a list-only mix recovered after %s (%v), want 0", d, ok)
	}
	// Never recovered within the time observed.
	if _, ok := RecoveryTime(every(start, end, step, false), start, end, time.Second, mix); ok {
		t.Error("all failures: recovered")
	}
	// A window must fit before the end.
	late := append(every(start, end.Add(-500*time.Millisecond), step, false), every(end.Add(-500*time.Millisecond), end, step, true)...)
	if _, ok := RecoveryTime(late, start, end, time.Second, mix); ok {
		t.Error("recovered on half a window")
	}
}

func TestAutoWindow(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want time.Duration
	}{
		{100, time.Second},            // checkouts (10%) at 10/s: 3 in 0.3 s
		{10, 3 * time.Second},         // 1 checkout/s: 3 s
		{20, 1500 * time.Millisecond}, // 2/s: 1.5 s
		{7, 4300 * time.Millisecond},  // 0.7/s: 4.29 s, rounded
	} {
		if got := (FaultPlan{Rate: tc.rate, Mix: DefaultMix()}).autoWindow(); got != tc.want {
			t.Errorf("window at %g req/s: %s, want %s", tc.rate, got, tc.want)
		}
	}
}

func TestFaultPlanValidate(t *testing.T) {
	if err := (FaultPlan{Rate: 20, Mix: DefaultMix()}).withDefaults().Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
	for _, p := range []FaultPlan{
		{Rate: 0, Mix: DefaultMix()},
		{Rate: 10, After: 3 * time.Second, Mix: DefaultMix()}, // a 3 s window in 3 s
		{Rate: 20, Down: -time.Second, Mix: DefaultMix()},
		{Rate: 20},
	} {
		if err := p.withDefaults().Validate(); err == nil {
			t.Errorf("%+v: valid", p)
		}
	}
}

// TestCycleFill puts each request in its phase by when it was scheduled, counts each kind's
// successes, and draws the timeline relative to the kill.
func TestCycleFill(t *testing.T) {
	p := FaultPlan{Rate: 100, Baseline: time.Second, Down: 2 * time.Second, After: 2 * time.Second, Mix: DefaultMix()}.withDefaults()
	begin := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	killed := begin.Add(time.Second)
	started := killed.Add(2 * time.Second)
	var samples []sample
	samples = append(samples, every(begin, killed, 10*time.Millisecond, true)...)                                                     // 100, all ok
	samples = append(samples, every(killed, started, 10*time.Millisecond, false)...)                                                  // 200, all failing
	samples = append(samples, every(started, started.Add(2*time.Second), 10*time.Millisecond, true)...)                               // 200 ok
	samples = append(samples, sample{at: started.Add(3 * time.Second), end: started.Add(3 * time.Second), kind: KindList, ok: false}) // after the end: dropped
	// Scheduled before the kill, answered after it: the outage's.
	samples = append(samples, sample{at: killed.Add(-time.Millisecond), end: killed.Add(time.Millisecond), kind: KindCheckout, err: "connection reset"})
	// Scheduled while the runtime was killing (it took 5 ms): the kill's own, as the list
	// request scheduled at the kill itself.
	samples = append(samples, sample{at: killed.Add(2 * time.Millisecond), end: killed.Add(3 * time.Millisecond), kind: KindList, ok: true})
	m := moments{begin: begin, kill: killed, down: killed.Add(5 * time.Millisecond), start: started}
	c := FaultCycle{Process: "payments"}.fill(p, samples, m)
	if c.DownS != 1.995 || c.RecoveryS == nil || *c.RecoveryS != 0 || c.KillRequests != 3 {
		t.Errorf("down %g s, recovered %v, %d requests of the kill's own", c.DownS, c.RecoveryS, c.KillRequests)
	}
	if len(c.Classes) != 5 {
		t.Fatalf("classes %+v", c.Classes)
	}
	if c.Errors[phaseKill]["connection reset"] != 1 || c.Errors[phaseKill]["http 503"] != 1 || c.Errors[phaseBaseline] != nil || c.Errors[phaseOutage]["http 503"] != 199 {
		t.Errorf("errors %v: want the request in flight at the kill in the kill's own", c.Errors)
	}
	for _, cell := range c.Classes {
		// The outage's first list request was scheduled while the runtime was killing.
		outage := 40
		if cell.Kind == KindList {
			outage = 39
		}
		if cell.Baseline.Requests != 20 || cell.Outage.Requests != outage || cell.After.Requests != 40 ||
			*cell.Baseline.Success != 1 || *cell.Outage.Success != 0 || *cell.After.Success != 1 {
			t.Errorf("%s: %+v", cell.Kind, cell)
		}
	}
	tl := c.Timeline
	if tl.FromS != -1 || tl.BucketS != 0.5 || len(tl.Requests) != 10 || tl.Requests[0] != 50 || tl.OK[0] != 50 || tl.OK[3] != 0 || tl.OK[9] != 50 {
		t.Errorf("timeline %+v", tl)
	}
	// A kind with no requests in a phase has no success share, not 0%.
	none := FaultCycle{}.fill(p, nil, m)
	if none.Classes[0].Outage.Success != nil || none.RecoveryS != nil {
		t.Errorf("no requests: %+v", none.Classes[0])
	}
}

func sampleFaults(broken bool) *FaultsReport {
	one := 1.0
	half := 0.5
	rec := 0.8
	cells := func(outage *float64) []FaultCell {
		var out []FaultCell
		for _, k := range Kinds() {
			out = append(out, FaultCell{Kind: k, Baseline: PhaseCount{10, 10, &one}, Outage: PhaseCount{20, int(20 * *outage), outage}, After: PhaseCount{20, 20, &one}})
		}
		return out
	}
	zero := 0.0
	inv := InvariantReport{Passed: !broken, Checkouts: CheckoutCounts{Sent: 30, Created: 20, Unknown: 4, RetryCreated: 3, RetryExisting: 1, Orders: 23, Users: 30}}
	for _, name := range []string{InvFinal, InvOrders, InvReservations, InvStock, InvNotifications, InvCharges} {
		c := InvariantCheck{Name: name, How: "how " + name, Checked: 23, Passed: true}
		if broken && name == InvOrders {
			c.Passed = false
			c.Evidence = []string{"order ord-lost (key k1, user u1) was answered 201 but GET /v1/orders/ord-lost is 404: the order is lost"}
		}
		inv.Checks = append(inv.Checks, c)
	}
	return &FaultsReport{
		Settings: FaultSettings{Rate: 20, RateSource: "half the monolith's max within the SLO", BaselineS: 3, DownS: 10, AfterS: 10, WindowS: 1.5, BucketS: 0.5, Users: 200, Mix: DefaultMix()},
		Started:  time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Finished: time.Date(2030, 1, 1, 0, 2, 0, 0, time.UTC),
		Passed: !broken,
		Archs: []FaultArch{{
			Arch: "services", BaseURL: "http://127.0.0.1:8081", Runtime: "process", Processes: []string{"payments", "gateway"},
			Cycles: []FaultCycle{
				{Process: "payments", KillMS: 12, DownS: 10, KillRequests: 1, StartS: 0.04, RecoveryS: &rec, Classes: cells(&half),
					Timeline: FaultTimeline{BucketS: 0.5, FromS: -3, Requests: []int{10, 10, 10}, OK: []int{10, 5, 10}}},
				{Process: "gateway", KillMS: 9, DownS: 10, StartS: 0.03, Classes: cells(&zero)},
			},
			Sent: map[Kind]int64{KindList: 100}, StockAdded: 1000, Invariants: inv,
		}},
	}
}

// TestFaultsReport writes the faults section into the three files: every documented field in
// report.json, the matrix and the invariants in report.md, the heat map in report.html, and a
// broken invariant loud in both.
func TestFaultsReport(t *testing.T) {
	for _, broken := range []bool{false, true} {
		r := &Report{Schema: Schema, ID: "faults-test", Faults: sampleFaults(broken)}
		var js, md, page bytes.Buffer
		if err := r.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteHTML(&page); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, path := range faultFields {
			if _, ok := lookup(doc, path); !ok {
				t.Errorf("report.json lacks %s", path)
			}
		}
		m := md.String()
		for _, want := range []string{"## Fault isolation", "| payments | 50% / 100% |", "| gateway | 0% / 100% |", "0.80 s", "not recovered", "| orders |"} {
			if !strings.Contains(m, want) {
				t.Errorf("report.md lacks %q:\n%s", want, m)
			}
		}
		h := page.String()
		if !strings.Contains(h, `aria-label="fault matrix of services"`) || !strings.Contains(h, "payments down") || strings.Contains(h, "src=") {
			t.Errorf("report.html: no self-contained heat map")
		}
		if got := strings.Contains(m, "INVARIANTS BROKEN") && strings.Contains(m, "ord-lost") && strings.Contains(h, `id="faults-failed"`) && strings.Contains(h, "ord-lost"); got != broken {
			t.Errorf("broken %v: the report says so %v\n%s", broken, got, m)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range faultFields {
		name := path[strings.LastIndex(path, ".")+1:]
		if name >= "0" && name <= "9" {
			continue
		}
		if !bytes.Contains(readme, []byte("`"+name+"`")) {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

// faultFields are the paths of report.json's faults section that README.md documents.
var faultFields = []string{
	"faults.passed", "faults.started", "faults.finished",
	"faults.settings.rate_rps", "faults.settings.rate_source", "faults.settings.baseline_s", "faults.settings.down_s",
	"faults.settings.after_s", "faults.settings.recovery_window_s", "faults.settings.timeline_bucket_s",
	"faults.settings.settle_deadline_s", "faults.settings.users_per_arch",
	"faults.archs.0.arch", "faults.archs.0.runtime", "faults.archs.0.processes", "faults.archs.0.stock_added", "faults.archs.0.sent",
	"faults.archs.0.cycles.0.process", "faults.archs.0.cycles.0.killed_at", "faults.archs.0.cycles.0.kill_ms",
	"faults.archs.0.cycles.0.down_s", "faults.archs.0.cycles.0.start_s", "faults.archs.0.cycles.0.recovery_s",
	"faults.archs.0.cycles.0.kill_requests",
	"faults.archs.0.cycles.0.classes.0.kind", "faults.archs.0.cycles.0.classes.0.outage.requests",
	"faults.archs.0.cycles.0.classes.0.outage.ok", "faults.archs.0.cycles.0.classes.0.outage.success",
	"faults.archs.0.cycles.0.classes.0.baseline.success", "faults.archs.0.cycles.0.classes.0.after.success",
	"faults.archs.0.cycles.0.timeline.bucket_s", "faults.archs.0.cycles.0.timeline.from_s",
	"faults.archs.0.cycles.0.timeline.requests", "faults.archs.0.cycles.0.timeline.ok",
	"faults.archs.0.invariants.passed", "faults.archs.0.invariants.settle_s",
	"faults.archs.0.invariants.checkouts.sent", "faults.archs.0.invariants.checkouts.created",
	"faults.archs.0.invariants.checkouts.declined", "faults.archs.0.invariants.checkouts.out_of_stock",
	"faults.archs.0.invariants.checkouts.unknown", "faults.archs.0.invariants.checkouts.unexpected",
	"faults.archs.0.invariants.checkouts.retry_created", "faults.archs.0.invariants.checkouts.retry_existing",
	"faults.archs.0.invariants.checkouts.retry_refused", "faults.archs.0.invariants.checkouts.retry_longest_s",
	"faults.archs.0.invariants.checkouts.orders",
	"faults.archs.0.invariants.checkouts.users",
	"faults.archs.0.invariants.checks.0.name", "faults.archs.0.invariants.checks.0.how",
	"faults.archs.0.invariants.checks.0.passed", "faults.archs.0.invariants.checks.0.checked",
	"faults.archs.0.invariants.checks.0.took_s",
}
