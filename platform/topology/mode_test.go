package topology

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// One placement three times, under each budget mode, beside the monolith: each its own
// architecture (name, edge, SHOP_ARCH), its mode read from one place, the same total.
func TestBudgetModesSideBySide(t *testing.T) {
	dir := t.TempDir()
	writeCalibration(t, dir, Services, servicesCalibration())
	topo, err := Get("monolith,services,services@shared,services@measured", Options{CalibrationDir: dir, Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, placement, edge string
		mode                  Mode
	}{
		{"monolith", "monolith", "127.0.0.1:8080", PerService},
		{"services", "services", "127.0.0.1:8081", PerService},
		{"services-shared", "services", "127.0.0.1:8082", Shared},
		{"services-measured", "services", "127.0.0.1:8083", Measured},
	}
	if len(topo.Archs) != len(want) {
		t.Fatalf("%d architectures, want %d", len(topo.Archs), len(want))
	}
	perService := topo.Archs[1]
	for i, w := range want {
		a := topo.Archs[i]
		if a.Name != w.name || a.Placement != w.placement || a.Edge != w.edge || a.Mode != w.mode {
			t.Errorf("architecture %d: %s (placement %s) on %s, %s; want %+v", i, a.Name, a.Placement, a.Edge, a.Mode, w)
		}
		if a.Budget != (Budget{CPUs: DefaultCPUs, MemoryMB: DefaultMemoryMB}) {
			t.Errorf("%s: budget %+v", a.Name, a.Budget)
		}
		if (a.Calibration != nil) != (a.Mode == Measured) {
			t.Errorf("%s (%s): calibration %+v", a.Name, a.Mode, a.Calibration)
		}
		for _, s := range a.Services {
			if s.Env["SHOP_ARCH"] != "" && s.Env["SHOP_ARCH"] != a.Name {
				t.Errorf("%s/%s: SHOP_ARCH %q", a.Name, s.Name, s.Env["SHOP_ARCH"])
			}
		}
		if gw, ok := a.Service("gateway"); ok && gw.Edge != a.Edge {
			t.Errorf("%s: the gateway is published on %s, the architecture's edge is %s", a.Name, gw.Edge, a.Edge)
		}
	}
	// Shared: no service has a limit of its own; each keeps its per-service GOMEMLIMIT, and
	// the GOMAXPROCS its per-service quota would give it (a fraction of a core: one P).
	for _, s := range topo.Archs[2].Services {
		ps, _ := perService.Service(s.Name)
		if s.CPUs != 0 || s.MemoryMB != 0 || s.Env["GOMEMLIMIT"] != ps.Env["GOMEMLIMIT"] || ps.Env["GOMEMLIMIT"] == "" {
			t.Errorf("shared %s: %g CPUs, %d MiB, GOMEMLIMIT %q (per service %q)", s.Name, s.CPUs, s.MemoryMB, s.Env["GOMEMLIMIT"], ps.Env["GOMEMLIMIT"])
		}
		if want := strconv.Itoa(GoMaxProcs(ps.CPUs, runtime.NumCPU())); s.Env["GOMAXPROCS"] != want || ps.CPUs >= 1 || want != "1" {
			t.Errorf("shared %s: GOMAXPROCS %q, want %s (%g CPUs per service)", s.Name, s.Env["GOMAXPROCS"], want, ps.CPUs)
		}
		if _, set := ps.Env["GOMAXPROCS"]; set {
			t.Errorf("per-service %s: GOMAXPROCS %q set; its quota fits it", s.Name, ps.Env["GOMAXPROCS"])
		}
	}
	if topo.Archs[3].Calibration.File != filepath.Join(dir, "services.json") || topo.Archs[3].Calibration.Arch != "services" {
		t.Errorf("measured: calibration %+v", topo.Archs[3].Calibration)
	}

	// --budget sets the mode of the entries without @; a placement@mode beside its file's
	// edge takes the next free one, whichever comes first.
	topo, err = Get("hybrid@per-service,hybrid", Options{Mode: Shared, Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := topo.Archs[0], topo.Archs[1]; a.Name != "hybrid-per-service" || a.Mode != PerService || a.Edge != "127.0.0.1:8083" ||
		b.Name != "hybrid" || b.Mode != Shared || b.Edge != "127.0.0.1:8082" {
		t.Errorf("hybrid@per-service,hybrid with --budget shared: %s %s %s, %s %s %s", a.Name, a.Mode, a.Edge, b.Name, b.Mode, b.Edge)
	}
	// The split under a mode of its own, alone.
	topo, err = Get("split@shared", Options{Split: "catalog+inventory,cart+orders+payments,shipping+notify", Collector: NoCollector})
	if err != nil || len(topo.Archs) != 1 || topo.Archs[0].Name != "split-shared" || topo.Archs[0].Placement != SplitName {
		t.Errorf("split@shared: %+v, %v", topo.Archs, err)
	}
}

func TestParseArchsRefusesWhatItCannotRun(t *testing.T) {
	for list, want := range map[string]string{
		"services@bogus":                  `unknown budget mode "bogus": want per-service, shared, measured`,
		"services@":                       `unknown budget mode ""`,
		"services,services":               "services is asked for twice",
		"services@shared,services@shared": "services-shared is asked for twice",
		"both,monolith":                   "monolith is asked for twice",
		"@shared":                         "is no topology's name",
		"a@shared@measured":               "unknown budget mode",
	} {
		if _, err := ParseArchs(list, Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", list, err, want)
		}
	}
	if _, err := ParseArchs("services", Options{Mode: "elastic"}); err == nil || !strings.Contains(err.Error(), `unknown budget mode "elastic"`) {
		t.Errorf("--budget elastic: %v", err)
	}
	got, err := ParseArchs("both@measured,hybrid", Options{Mode: Shared, Split: "catalog,cart+inventory+payments+orders+shipping+notify"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, e.Name+"="+e.Placement+"@"+string(e.Mode))
	}
	if s := strings.Join(names, ","); s != "monolith-measured=monolith@measured,services-measured=services@measured,hybrid=hybrid@shared,split=split@shared" {
		t.Errorf("entries %s", s)
	}
}

func FuzzParseArchs(f *testing.F) {
	for _, s := range []string{"both", "monolith,services@shared", "services@measured,hybrid@per-service", "@", ",,@shared,"} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, list, mode string) {
		entries, err := ParseArchs(list, Options{Mode: Mode(mode)})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if seen[e.Name] || e.Name == "" || e.Placement == "" || !slices.Contains(Modes, e.Mode) || strings.ContainsAny(e.Name, ",@ ") {
				t.Fatalf("%q: entry %+v of %+v", list, e, entries)
			}
			seen[e.Name] = true
		}
	})
}

// servicesCalibration is a calibration of the services placement with every figure known.
func servicesCalibration() Calibration {
	return Calibration{
		Placement: Services, Arch: Services, Mode: PerService, Runtime: "process", RateRPS: 100, DurationS: 20,
		When: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), GitRevision: "abc",
		Services: []CalibratedService{
			{"nats", 0.30, 60 << 20}, {"gateway", 0.40, 30 << 20}, {"catalog", 0.20, 25 << 20},
			{"cart", 0.10, 20 << 20}, {"inventory", 0.10, 20 << 20}, {"orders", 0.15, 25 << 20},
			{"payments", 0.02, 15 << 20}, {"shipping", 0, 15 << 20}, {"notify", 0.01, 15 << 20},
		},
	}
}

func writeCalibration(t *testing.T, dir, placement string, c Calibration) {
	t.Helper()
	topo, err := Get(placement, Options{Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	c.Split = topo.Archs[0].Split
	if _, err := c.Write(dir); err != nil {
		t.Fatal(err)
	}
}

// A measured budget: every service (NATS too) its measured share of the same total CPU, every
// service but NATS its measured share of the memory NATS's fixed part leaves (its memory is
// its data, which a calibration cannot size), above the floors, adding up exactly.
func TestMeasuredBudgetSizing(t *testing.T) {
	dir := t.TempDir()
	cal := servicesCalibration()
	writeCalibration(t, dir, Services, cal)
	back, err := ReadCalibration(dir, Services)
	if err != nil || back.Schema != CalibrationSchema || len(back.Services) != 9 || !back.When.Equal(cal.When) {
		t.Fatalf("read back: %+v, %v", back, err)
	}
	for _, b := range []Budget{{CPUs: 1.5, MemoryMB: 640}, {CPUs: 3, MemoryMB: 1024}, {CPUs: 0.45, MemoryMB: 288}} {
		topo, err := Get("services@measured", Options{CalibrationDir: dir, Budget: b, Collector: NoCollector})
		if err != nil {
			t.Fatalf("%+v: %v", b, err)
		}
		a := topo.Archs[0]
		milli, mem := 0, 0
		var cores, peak float64
		for _, s := range cal.Services {
			cores += s.CPUCores
			if s.Name != "nats" {
				peak += float64(s.PeakMemBytes)
			}
		}
		natsMem := max(minMemoryMB, min(int(float64(b.MemoryMB)*natsMemoryPart), b.MemoryMB-minMemoryMB*8))
		totalMilli := int(math.Round(b.CPUs * 1000))
		for _, m := range cal.Services {
			s, ok := a.Service(m.Name)
			if !ok {
				t.Fatalf("no %s", m.Name)
			}
			gotMilli := int(math.Round(s.CPUs * 1000))
			milli += gotMilli
			mem += s.MemoryMB
			// The floor, and the rest by the measured share, rounded down; the units left over
			// go one each to the largest shares.
			wantMilli := float64(minMilliCPU) + float64(totalMilli-minMilliCPU*9)*m.CPUCores/cores
			wantMem := minMemoryMB + float64(b.MemoryMB-natsMem-minMemoryMB*8)*float64(m.PeakMemBytes)/peak
			if m.Name == "nats" {
				wantMem = float64(natsMem)
			}
			if float64(gotMilli) < math.Floor(wantMilli) || float64(gotMilli) > math.Floor(wantMilli)+1 ||
				float64(s.MemoryMB) < math.Floor(wantMem) || float64(s.MemoryMB) > math.Floor(wantMem)+1 {
				t.Errorf("%+v: %s gets %d millicores and %d MiB, want %.1f and %.1f", b, s.Name, gotMilli, s.MemoryMB, wantMilli, wantMem)
			}
			if s.Env["GOMEMLIMIT"] != GoMemLimit(s.MemoryMB) {
				t.Errorf("%s: GOMEMLIMIT %q with %d MiB", s.Name, s.Env["GOMEMLIMIT"], s.MemoryMB)
			}
		}
		if milli != totalMilli || mem != b.MemoryMB {
			t.Errorf("%+v: adds up to %d millicores and %d MiB", b, milli, mem)
		}
		if s, _ := a.Service("shipping"); s.CPUs != float64(minMilliCPU)/1000 {
			t.Errorf("shipping, measured idle, gets %g CPUs, want the floor", s.CPUs)
		}
		if gw, _ := a.Service("gateway"); b.CPUs >= 1.5 && gw.CPUs <= 0.3 {
			t.Errorf("the gateway, the busiest, gets %g CPUs", gw.CPUs)
		}
	}
}

func TestMeasuredBudgetRefusesAWrongCalibration(t *testing.T) {
	dir := t.TempDir()
	mustFail := func(what, names string, opts Options, want ...string) {
		t.Helper()
		opts.Collector = NoCollector
		_, err := Get(names, opts)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want an error saying %q", what, err, w)
			}
		}
	}
	mustFail("no calibration", "services@measured", Options{CalibrationDir: dir},
		"no calibration of services", "loadtest calibrate -edges services")
	mustFail("no folder", "services", Options{Mode: Measured}, "needs a calibration folder")

	// A calibration of the services' file, made while the file placed them otherwise.
	other := servicesCalibration()
	other.Split = "edge,catalog+inventory,cart,payments,orders,shipping,notify"
	if _, err := other.Write(dir); err != nil {
		t.Fatal(err)
	}
	mustFail("another placement", "services@measured", Options{CalibrationDir: dir},
		`was made for the placement "edge,catalog+inventory,cart,payments,orders,shipping,notify"`, "loadtest calibrate")

	// A split's calibration does not size another split.
	split := "catalog+inventory,cart+orders+payments,shipping+notify"
	topo, err := Get("", Options{Split: split, Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	c := Calibration{Placement: SplitName, Split: topo.Archs[0].Split, Services: []CalibratedService{{Name: "nats", CPUCores: 0.1}}}
	if _, err := c.Write(dir); err != nil {
		t.Fatal(err)
	}
	mustFail("another split", "", Options{Split: "catalog,cart,inventory,payments,orders,shipping,notify", Mode: Measured, CalibrationDir: dir},
		"was made for the placement")
	mustFail("a service missing", "", Options{Split: split, Mode: Measured, CalibrationDir: dir},
		"has no figure for catalog-inventory, cart-payments-orders, shipping-notify, gateway")

	// Nothing measured, or nonsense, is never written; a file of another schema never read.
	if _, err := (Calibration{Placement: Services, Services: []CalibratedService{{Name: "nats"}}}).Write(dir); err == nil {
		t.Error("a calibration without CPU was written")
	}
	if _, err := (Calibration{Placement: Services, Services: []CalibratedService{{Name: "nats", CPUCores: math.NaN()}}}).Write(dir); err == nil {
		t.Error("a calibration with NaN cores was written")
	}
	if err := os.WriteFile(CalibrationPath(dir, "hybrid"), []byte(`{"schema":"mitosis.calibration/v0","placement":"hybrid"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail("another schema", "hybrid@measured", Options{CalibrationDir: dir}, `schema "mitosis.calibration/v0"`)
}

// TestGoMaxProcs: the quota rounded up, at least one, at most the machine's CPUs.
func TestGoMaxProcs(t *testing.T) {
	for _, c := range []struct {
		quota float64
		cpus  int
		want  int
	}{{0.05, 2, 1}, {0.33, 2, 1}, {1, 2, 1}, {1.01, 2, 2}, {1.5, 2, 2}, {4, 2, 2}, {3.2, 8, 4}} {
		if got := GoMaxProcs(c.quota, c.cpus); got != c.want {
			t.Errorf("GoMaxProcs(%g, %d) = %d, want %d", c.quota, c.cpus, got, c.want)
		}
	}
}
