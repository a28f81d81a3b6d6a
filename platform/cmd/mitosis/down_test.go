package main

import (
	"testing"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestCollectorGoesWithTheLastArchitecture: down -t takes the collector in the same pass only
// when the architectures it names are all that run besides it.
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
		if got := collectorGoesWith(c.present, c.archs); got != c.want {
			t.Errorf("present %v, down -t %v: collector goes %v, want %v", c.present, c.archs, got, c.want)
		}
	}
}
