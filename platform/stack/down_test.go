package stack_test

import (
	"slices"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestStackArchsGoWithTheLastArchitecture: a down of some architectures takes the stack's
// own (the collector, the renewer) in the same pass only when they are all that run besides
// them.
func TestStackArchsGoWithTheLastArchitecture(t *testing.T) {
	both := []string{topology.Monolith, topology.Services}
	own := []string{topology.Telemetry, topology.Renewer}
	for _, c := range []struct {
		present, archs []string
		want           []string // of own, what goes too
	}{
		{[]string{topology.Monolith, topology.Services, topology.Telemetry, topology.Renewer}, both, own},
		{[]string{topology.Monolith, topology.Telemetry, topology.Renewer}, both, own},    // services not up: nothing else stays
		{[]string{topology.Monolith, topology.Renewer}, both, []string{topology.Renewer}}, // no collector to take
		{[]string{topology.Monolith, topology.Services, topology.Telemetry, topology.Renewer}, []string{topology.Monolith}, nil},
		{[]string{topology.Monolith, "services-shared", topology.Telemetry, topology.Renewer}, both, nil},
		{[]string{topology.Monolith, topology.Services}, both, nil}, // nothing of the stack's own to take
		{nil, both, nil},
	} {
		got := stack.DownArchs(c.present, c.archs)
		if !slices.Equal(got[:len(c.archs)], c.archs) || !slices.Equal(got[len(c.archs):], c.want) {
			t.Errorf("present %v, down -t %v: %v, want what was asked and %v", c.present, c.archs, got, c.want)
		}
	}
	// No architectures named: everything goes, the stack's own with it, as asked.
	if got := stack.DownArchs([]string{topology.Monolith, topology.Telemetry, topology.Renewer}, nil); got != nil {
		t.Errorf("down of everything: %v, want nil (everything)", got)
	}
}
