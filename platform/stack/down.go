package stack

import (
	"slices"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// DownArchs are the architectures a down of archs removes from a stack that holds something
// of present (the architectures its runtime finds, the collector's included): archs, and the
// collector (topology.Telemetry) with the last of the others, since it serves every
// architecture and none would be left to serve. No archs means everything, the collector
// included. Each runtime's Down reads this one rule from what it lists anyway, so that the
// collector goes in the same pass as the others, and nothing asks twice.
func DownArchs(present, archs []string) []string {
	if len(archs) == 0 || slices.Contains(archs, topology.Telemetry) || !slices.Contains(present, topology.Telemetry) {
		return archs
	}
	if slices.ContainsFunc(present, func(a string) bool { return a != topology.Telemetry && !slices.Contains(archs, a) }) {
		return archs // another architecture stays: the collector serves it
	}
	return append(slices.Clone(archs), topology.Telemetry)
}
