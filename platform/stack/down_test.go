package stack_test

import (
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestCollectorGoesWithTheLastArchitecture: a down of some architectures takes the collector
// in the same pass only when they are all that run besides it.
func TestCollectorGoesWithTheLastArchitecture(t *testing.T) {
	both := []string{topology.Monolith, topology.Services}
	for _, c := range []struct {
		present, archs []string
		want           bool
	}{
		{[]string{topology.Monolith, topology.Services, topology.Telemetry}, both, true},
		{[]string{topology.Monolith, topology.Telemetry}, both, true}, // services not up: nothing else stays
		{[]string{topology.Monolith, topology.Services, topology.Telemetry}, []string{topology.Monolith}, false},
		{[]string{topology.Monolith, "services-shared", topology.Telemetry}, both, false},
		{[]string{topology.Monolith, topology.Services}, both, false}, // no collector to take
		{nil, both, false},
	} {
		got := stack.DownArchs(c.present, c.archs)
		if goes := slices.Contains(got, topology.Telemetry); goes != c.want {
			t.Errorf("present %v, down -t %v: collector goes %v, want %v", c.present, c.archs, goes, c.want)
		}
		if !slices.Equal(got[:len(c.archs)], c.archs) || len(got) > len(c.archs)+1 {
			t.Errorf("present %v, down -t %v: %v, want what was asked and at most the collector", c.present, c.archs, got)
		}
	}
	// No architectures named: everything goes, the collector with it, as asked.
	if got := stack.DownArchs([]string{topology.Monolith, topology.Telemetry}, nil); got != nil {
		t.Errorf("down of everything: %v, want nil (everything)", got)
	}
}
