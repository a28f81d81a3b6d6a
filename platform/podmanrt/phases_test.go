package podmanrt

import (
	"slices"
	"testing"

	"github.com/containers/podman/v4/pkg/domain/entities"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestRemovalPhasesReverseTheStartOrder: Down removes an architecture's pods from its last
// start level to its first, side by side within a level, and the collector after every
// architecture; a pod without a level goes with level 0, another architecture's is left out.
func TestRemovalPhasesReverseTheStartOrder(t *testing.T) {
	pod := func(name, arch, level string) *entities.ListPodsReport {
		l := map[string]string{stack.LabelArch: arch}
		if level != "" {
			l[labelLevel] = level
		}
		return &entities.ListPodsReport{Name: name, Labels: l}
	}
	list := []*entities.ListPodsReport{
		pod("collector", topology.Telemetry, "0"),
		pod("s-nats", "services", "0"),
		pod("s-catalog", "services", "1"),
		pod("s-gateway", "services", "3"),
		pod("m-nats", "monolith", "0"),
		pod("s-orders", "services", "2"),
		pod("s-cart", "services", "1"),
		pod("m-monolith", "monolith", "1"),
		pod("old", "monolith", ""),
	}
	names := func(phases [][]*entities.ListPodsReport) [][]string {
		var out [][]string
		for _, ph := range phases {
			var n []string
			for _, p := range ph {
				n = append(n, p.Name)
			}
			slices.Sort(n)
			out = append(out, n)
		}
		return out
	}
	want := [][]string{{"s-gateway"}, {"s-orders"}, {"m-monolith", "s-cart", "s-catalog"}, {"m-nats", "old", "s-nats"}, {"collector"}}
	if got := names(removalPhases(list, nil)); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("every architecture: %v, want %v", got, want)
	}
	want = [][]string{{"m-monolith"}, {"m-nats", "old"}}
	if got := names(removalPhases(list, []string{"monolith"})); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("the monolith alone: %v, want %v", got, want)
	}
}
