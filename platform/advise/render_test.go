package advise

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// The call graph's drawing says what its legend says: every call and event edge once, a
// width of 1 + 9 × its calls per second over the busiest edge's, red on the critical path,
// grey off it, events dashed purple.
func TestGraphSVGDrawsRatesAndTheCriticalPath(t *testing.T) {
	run, _, _ := fixture(t)
	rep, err := Advise(run, Options{Constraints: Constraints{MaxGroups: 3}, Objective: ObjectiveBalanced})
	if err != nil {
		t.Fatal(err)
	}
	svg := string(rep.graphSVG())
	path := regexp.MustCompile(`<path d="[^"]*" fill="none" stroke="(#[0-9a-f]{6})" stroke-width="([0-9.]+)" stroke-opacity="0.8"( stroke-dasharray="6 4")? marker-end="url\(#arrow\)"><title>([^:<]+): ([0-9.]+) per request, ([0-9.]+)/s`)
	type drawn struct {
		color  string
		width  float64
		dashed bool
	}
	got := map[string]drawn{}
	for _, m := range path.FindAllStringSubmatch(svg, -1) {
		w, _ := strconv.ParseFloat(m[2], 64)
		key := m[4]
		if m[3] != "" {
			key += " (event)"
		}
		if _, dup := got[key]; dup {
			t.Errorf("%s drawn twice", key)
		}
		got[key] = drawn{color: m[1], width: w, dashed: m[3] != ""}
	}
	edges := slices.Concat(rep.Graph.Calls, rep.Graph.Events)
	busiest := 0.0
	for _, e := range edges {
		busiest = max(busiest, e.PerSecond)
	}
	if len(rep.Graph.Calls) == 0 || len(rep.Graph.Events) == 0 || busiest == 0 {
		t.Fatalf("the fixture's graph: %d calls, %d events, busiest %.1f/s", len(rep.Graph.Calls), len(rep.Graph.Events), busiest)
	}
	critical, off := 0, 0
	check := func(e EdgeView, key, color string, dashed bool) {
		t.Helper()
		d, ok := got[key]
		if !ok {
			t.Errorf("%s (%.1f/s) is not drawn", key, e.PerSecond)
			return
		}
		if want := 1 + 9*e.PerSecond/busiest; math.Abs(d.width-want) > 0.051 {
			t.Errorf("%s at %.2f/s of the busiest %.2f/s: width %.1f, want %.1f", key, e.PerSecond, busiest, d.width, want)
		}
		if d.color != color || d.dashed != dashed {
			t.Errorf("%s: stroke %s dashed %v, want %s dashed %v", key, d.color, d.dashed, color, dashed)
		}
	}
	for _, e := range rep.Graph.Calls {
		color := "#8c8c8c"
		if e.OnCriticalPath {
			color = "#cb181d"
			critical++
		} else {
			off++
		}
		check(e, e.Key(), color, false)
	}
	for _, e := range rep.Graph.Events {
		check(e, e.Key()+" (event)", "#6a51a3", true)
	}
	if len(got) != len(edges) {
		t.Errorf("%d edges drawn, the graph has %d", len(got), len(edges))
	}
	if critical == 0 {
		t.Error("no call of the fixture is on the critical path: the red is not tried")
	}
	t.Logf("%d calls (%d on the critical path, %d off), %d events, busiest %.1f/s", len(rep.Graph.Calls), critical, off, len(rep.Graph.Events), busiest)
}

// A group's interface is the distinct methods and event subjects that other groups use of
// it: none in the monolith; in the services, what each context's callers and publishers
// from elsewhere name of it, counted here from the graph's edges.
func TestInterfacesCountWhatOtherGroupsUse(t *testing.T) {
	m := fixtureModel(t)
	if got := m.interfaces(m.MonolithPlacement(), m.mixed()); !slices.Equal(got, []int{0}) {
		t.Errorf("the monolith's interfaces: %v, want [0]", got)
	}
	want := make([]int, len(m.Contexts))
	for i, c := range m.Contexts {
		names := map[string]bool{}
		for _, e := range slices.Concat(m.Calls.Mix(), m.Calls.MixEvents()) {
			if e.To == c && e.From != c {
				for _, name := range e.Methods {
					names[name] = true
				}
			}
		}
		want[i] = len(names)
	}
	if got := m.interfaces(m.ServicesPlacement(), m.mixed()); !slices.Equal(got, want) {
		t.Errorf("the services' interfaces, by context %v: %v, want %v", m.Contexts, got, want)
	}
	if slices.Max(want) == 0 {
		t.Fatal("the fixture names no method: nothing is tried")
	}
	// Two groups: the edge with every context it calls, and shipping+notify, which only take
	// events. The second's interface is what the first uses of it; shipping→notify is inside.
	p, err := m.Parse("edge+catalog+cart+inventory+payments+orders,shipping+notify")
	if err != nil {
		t.Fatal(err)
	}
	got := m.interfaces(p, m.mixed())
	if len(got) != 2 {
		t.Fatalf("two groups, %d interfaces: %v", len(got), got)
	}
	ship := map[string]bool{}
	for _, e := range slices.Concat(m.Calls.Mix(), m.Calls.MixEvents()) {
		if (e.To == "shipping" || e.To == "notify") && e.From != "shipping" && e.From != "notify" {
			for _, name := range e.Methods {
				ship[name] = true
			}
		}
	}
	if got[1] != len(ship) {
		t.Errorf("shipping+notify's interface: %d, want the %d names the other group uses of it (%v)", got[1], len(ship), ship)
	}
}
