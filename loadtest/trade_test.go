package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/topology"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// tradeReport is a run of the monolith and the services under the three budget modes and a
// scaling variant, with the faults phase, a roll and the scaling gain: what make compare
// produces.
func tradeReport(t *testing.T) *Report { return tradeReportOf(t, func(*Result) {}) }

// tradeReportOf is tradeReport with its steps changed by change before the report is built.
func tradeReportOf(t *testing.T, change func(*Result)) *Report {
	t.Helper()
	res := sampleResult()
	// Rename the sample's hybrid the services' shared budget, and add the measured one and
	// the variant by copying the services' steps at other costs.
	var extra []Step
	idx := len(res.Steps)
	for i := range res.Steps {
		s := &res.Steps[i]
		if s.Arch == "hybrid" {
			s.Arch = "services-shared"
		}
		if s.Arch == "services" && s.Phase == "ladder" {
			for _, arch := range []string{"services-measured", "services-x2"} {
				c := *s
				idx++
				c.Index, c.Arch = idx, arch
				extra = append(extra, c)
			}
		}
	}
	res.Steps = append(res.Steps, extra...)
	res.Archs = []string{"monolith", "services", "services-shared", "services-measured", "services-x2"}
	change(res)
	res.Points = points(res.Steps, res.Plan.SLO)
	archs := []ArchInfo{
		{Name: "monolith", Limits: Limits{CPUs: 1.5, MemoryMB: 640, Enforced: true, Mode: topology.PerService}},
		{Name: "services", Limits: Limits{CPUs: 1.5, MemoryMB: 640, Enforced: true, Mode: topology.PerService}},
		{Name: "services-shared", Limits: Limits{CPUs: 1.5, MemoryMB: 640, Enforced: true, Mode: topology.Shared}},
		{Name: "services-measured", Limits: Limits{CPUs: 1.5, MemoryMB: 640, Enforced: true, Mode: topology.Measured}},
		{Name: "services-x2", Limits: Limits{CPUs: 1.5, MemoryMB: 640, Enforced: true, Mode: topology.PerService}},
	}
	r := BuildReport("20301201-000000", res, Environment{}, archs, Traces{})
	r.Faults = sampleFaults(false)
	r.Roll = &Roll{Context: "catalog", RateRPS: 50, Archs: []RollArch{
		{Arch: "monolith", RollS: 5.9, Failed: 83, During: Traffic{Requests: 293}, After: Traffic{Requests: 250}},
		{Arch: "services", RollS: 5.7, Failed: 71, During: Traffic{Requests: 283}, After: Traffic{Requests: 250}},
		{Arch: "services-x2", RollS: 12.8, Failed: 0, During: Traffic{Requests: 638}, After: Traffic{Requests: 250}},
	}}
	if err := r.AddScaling("services", "services-x2", "gateway", "edge,catalog*2"); err != nil {
		t.Fatal(err)
	}
	return r
}

// The trade sheet has a row per topology, its costs from the per-service architecture at the
// common rate, its max rate under each budget mode, and its benefits from the faults phase,
// the roll and the scaling gain; the scaling variant has no row of its own. Every figure
// names an anchor that report.html has, and the split's two costs are the ratios of the
// rates they come from.
func TestTradeSheet(t *testing.T) {
	r := tradeReport(t)
	ts := r.trade()
	if ts == nil || len(ts.Rows) != 2 || ts.Rows[0].Placement != "monolith" || ts.Rows[1].Placement != "services" {
		t.Fatalf("rows %+v, want monolith and services", ts)
	}
	svc := ts.Rows[1]
	if strings.Join(svc.Archs, ",") != "services,services-shared,services-measured" {
		t.Errorf("services row of %v", svc.Archs)
	}
	sum, _ := r.summaryOf("services")
	if svc.CPUPerReqMS == nil || svc.CPUPerReqMS.Value != sum.AtCommon.CPUPerReqMS || svc.CPUPerReqMS.Arch != "services" ||
		svc.P99MS.Value != sum.AtCommon.P99MS {
		t.Errorf("services' costs %+v, want the per-service architecture's at the common rate %+v", svc.CPUPerReqMS, sum.AtCommon)
	}
	for _, m := range tradeModes {
		f := svc.MaxRate[m]
		want, _ := r.summaryOf(topology.ModeName("services", m))
		if m == topology.PerService {
			want, _ = r.summaryOf("services")
		}
		if f == nil || f.Value != want.MaxRate || f.Arch != want.Arch {
			t.Errorf("max rate %s: %+v, want %s's %g", m, f, want.Arch, want.MaxRate)
		}
	}
	if svc.Faults == nil || svc.Faults.Arch != "services" || !svc.Faults.Invariants || svc.Faults.Cells != 10 || svc.Faults.Unhurt != 0 ||
		math.Abs(svc.Faults.Answered-0.25) > 1e-9 || svc.Faults.WorstProcess != "gateway" || svc.Faults.WorstRecoveryS != nil {
		t.Errorf("faults %+v: half answered with payments down, none with the gateway (never recovered)", svc.Faults)
	}
	if ts.Rows[0].Faults != nil {
		t.Errorf("the monolith had no faults phase here: %+v", ts.Rows[0].Faults)
	}
	if svc.Roll == nil || svc.Roll.Failed != 71 || svc.Roll.Requests != 533 || ts.Rows[0].Roll.Failed != 83 {
		t.Errorf("rolls %+v %+v", svc.Roll, ts.Rows[0].Roll)
	}
	if svc.Scaling == nil || svc.Scaling.Value != r.Scaling.Gain || ts.Rows[0].Scaling != nil {
		t.Errorf("scaling %+v, want the services' gain %g", svc.Scaling, r.Scaling.Gain)
	}
	if len(ts.Split) != 1 {
		t.Fatalf("split costs %+v", ts.Split)
	}
	sc := ts.Split[0]
	mono := ts.Rows[0].MaxRate[topology.PerService].Value
	if sc.Split != svc.MaxRate[topology.Shared].Value/mono || sc.Fragmentation != svc.MaxRate[topology.PerService].Value/svc.MaxRate[topology.Shared].Value {
		t.Errorf("split %+v from rates mono %g, shared %g, per-service %g", sc, mono, svc.MaxRate[topology.Shared].Value, svc.MaxRate[topology.PerService].Value)
	}

	var md, page, js bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "## Trade sheet") || strings.Index(md.String(), "## Trade sheet") > strings.Index(md.String(), "## Result") {
		t.Errorf("report.md does not open with the trade sheet:\n%s", md.String())
	}
	html := page.String()
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`id="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		ids[m[1]] = true
	}
	links := regexp.MustCompile(`<table class="trade">(?s:.*?)</table>`).FindString(html)
	hrefs := regexp.MustCompile(`href="#([^"]+)"`).FindAllStringSubmatch(links, -1)
	if len(hrefs) < 15 {
		t.Errorf("%d links in the trade sheet, want one per figure:\n%s", len(hrefs), links)
	}
	for _, h := range hrefs {
		if !ids[h[1]] {
			t.Errorf("the trade sheet links to #%s, which report.html does not have", h[1])
		}
	}
	// The JSON carries it, once WriteFiles has put it in.
	r.Trade = r.trade()
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Trade == nil || len(back.Trade.Rows) != 2 ||
		back.Trade.Rows[1].MaxRate[topology.Shared] == nil {
		t.Errorf("report.json's trade: %+v, %v", back.Trade, err)
	}
}

// A budget mode whose lowest rate already failed shows "< lowest", not a max rate of 0.
func TestTradeSheetSaysBelowTheLowestRate(t *testing.T) {
	r := tradeReportOf(t, func(res *Result) {
		for i := range res.Steps {
			if s := &res.Steps[i]; s.Arch == "services-measured" {
				rec := NewRecorder() // its own: the copied steps share the services' one
				rec.Merge(s.rec)
				for range 10 {
					rec.Add(&vegeta.Result{Code: 503, Error: "503 Service Unavailable", Timestamp: s.Started, Latency: time.Millisecond}, s.Started)
				}
				s.rec, s.Traffic, s.SLOPass = rec, rec.Traffic(s.Seconds), false
			}
		}
	})
	row := r.trade().Rows[1]
	f := row.MaxRate[topology.Measured]
	lowest := r.Settings.Rates[0]
	if f == nil || f.Below != lowest || f.Value != 0 {
		t.Fatalf("measured max rate %+v, want below %g", f, lowest)
	}
	if got := modeRates(row)[2]; got != fmt.Sprintf("< %g", lowest) {
		t.Errorf("cell %q, want \"< %g\"", got, lowest)
	}
}
