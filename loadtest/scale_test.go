package loadtest

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestServiceOf(t *testing.T) {
	for in, want := range map[string]string{
		"catalog-1": "catalog", "catalog-inventory-12": "catalog-inventory", "catalog": "catalog",
		"catalog-inventory": "catalog-inventory", "x-": "x-", "-1": "-1", "nats": "nats",
	} {
		if got := ServiceOf(in); got != want {
			t.Errorf("ServiceOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// steps of one architecture whose processes used the CPU seconds given, over two steps.
func stepsOf(arch string, cpu map[string]float64) []Step {
	var out []Step
	for range 2 {
		s := Step{Arch: arch, Phase: "ladder", Resources: Resources{Measured: true}}
		for name, c := range cpu {
			s.Resources.Processes = append(s.Resources.Processes, ProcUsage{Name: name, CPUSeconds: c / 2})
		}
		out = append(out, s)
	}
	return out
}

func TestHottestLeavesOutNATSAndTheEdge(t *testing.T) {
	steps := append(stepsOf("services", map[string]float64{"gateway": 30, "nats": 25, "catalog": 18, "orders": 17, "cart": 10}),
		stepsOf("monolith", map[string]float64{"monolith": 99})...)
	name, share, ok := Hottest(steps, "services", Replicable("gateway"))
	if !ok || name != "catalog" || share < 0.179 || share > 0.181 {
		t.Errorf("Hottest: %s %.3f %v, want catalog at 18%%", name, share, ok)
	}
	if _, _, ok := Hottest(steps, "hybrid", Replicable("gateway")); ok {
		t.Error("a hottest process of an architecture not measured")
	}
}

// AddScaling reads the two architectures' rates, the base's hottest process and the
// variant's replicas into the section, and says when they do not line up.
func TestAddScaling(t *testing.T) {
	r := &Report{
		Summary: []ArchSummary{{Arch: "services", MaxRate: 200, MaxRateBound: "found"}, {Arch: "services-x2", MaxRate: 260, MaxRateBound: "found"}},
		Steps:   stepsOf("services", map[string]float64{"gateway": 30, "nats": 25, "catalog": 18, "orders": 17}),
		Architectures: []ArchInfo{
			{Name: "services", Limits: Limits{CPUs: 1.5}},
			{Name: "services-x2", Limits: Limits{CPUs: 1.5}, Processes: []ProcInfo{{Name: "gateway"}, {Name: "catalog-1"}, {Name: "catalog-2"}, {Name: "orders"}}},
		},
	}
	if err := r.AddScaling("services", "services-x2", "gateway", "edge,catalog*2,cart,inventory,payments,orders,shipping,notify"); err != nil {
		t.Fatal(err)
	}
	sc := r.Scaling
	if sc.Hottest != "catalog" || sc.Scaled != "catalog" || sc.Replicas != 2 || sc.Gain != 1.3 || sc.Note != "" || len(r.Warnings) != 0 {
		t.Errorf("scaling %+v, warnings %v", sc, r.Warnings)
	}
	for what, b := range rendered(t, r) {
		if !strings.Contains(b, "Scaling gain: services with catalog ×2") || !strings.Contains(b, "1.30×") {
			t.Errorf("%s has no scaling gain section:\n%s", what, b)
		}
	}

	// The variant scaled another group than the hottest, under another budget.
	r.Architectures[1].Limits.CPUs = 2
	r.Architectures[1].Processes = []ProcInfo{{Name: "orders-1"}, {Name: "orders-2"}}
	r.Warnings = nil
	if err := r.AddScaling("services", "services-x2", "gateway", ""); err != nil {
		t.Fatal(err)
	}
	if n := r.Scaling.Note; !strings.Contains(n, "gives replicas to orders") || !strings.Contains(n, "different CPU limits") || len(r.Warnings) != 1 {
		t.Errorf("note %q, warnings %v", n, r.Warnings)
	}
	if err := r.AddScaling("services", "hybrid", "gateway", ""); err == nil {
		t.Error("a scaling gain of an architecture the run did not measure")
	}
}

// The roll's and the scaling gain's fields are in report.json under the names README.md
// documents.
func TestRollAndScalingFieldsDocumented(t *testing.T) {
	r := RollReport("id", time.Now(), Environment{}, []ArchInfo{{Name: "services"}}, &Roll{Context: "catalog", Change: "X=1", RateRPS: 50,
		BeforeS: 5, AfterS: 5, Prepare: &RollUp{Command: "mitosis up"},
		Archs: []RollArch{{Arch: "services", Services: []string{"catalog"}, Replicas: 2, Up: RollUp{Command: "mitosis up", Remade: []string{"services/catalog-1"}},
			Failed: 1, During: Traffic{Requests: 10, ByKind: map[Kind]KindStats{KindProduct: {Requests: 10, Errors: 1}}, Errors: map[string]int64{"http 503": 1}}}}})
	r.Scaling = &Scaling{Base: "services", Variant: "services-x2"}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"roll.context", "roll.change", "roll.rate_rps", "roll.before_s", "roll.after_s", "roll.prepare.command", "roll.prepare.remade",
		"roll.archs.0.arch", "roll.archs.0.services", "roll.archs.0.replicas", "roll.archs.0.up.command", "roll.archs.0.up.remade",
		"roll.archs.0.started", "roll.archs.0.roll_s", "roll.archs.0.failed", "roll.archs.0.before", "roll.archs.0.during.by_kind.product.errors",
		"roll.archs.0.during.errors", "roll.archs.0.after",
		"scaling.base", "scaling.variant", "scaling.hottest", "scaling.hottest_cpu_share", "scaling.scaled", "scaling.replicas",
		"scaling.max_rate_one", "scaling.max_rate_one_bound", "scaling.max_rate_replicas", "scaling.max_rate_replicas_bound",
		"scaling.gain", "scaling.cpu_limit_one", "scaling.cpu_limit_replicas",
	} {
		if _, ok := lookup(doc, path); !ok {
			t.Errorf("report.json lacks %s", path)
		}
		name := path[strings.LastIndexByte(path, '.')+1:]
		if !bytes.Contains(readme, []byte("`"+name+"`")) {
			t.Errorf("README.md does not document %s", path)
		}
	}
	for what, b := range rendered(t, r) {
		if !strings.Contains(b, "Deploy blast radius: rolling catalog") || !strings.Contains(b, "product 1/10") || strings.Contains(b, "<script") {
			t.Errorf("%s of a roll:\n%s", what, b)
		}
	}
}
