package stack

import (
	"slices"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// DownArchs are the architectures a down of archs removes from a stack that holds something
// of present (the architectures its runtime finds, the stack's own included): archs, and the
// stack's own (topology.StackArch: the collector, the renewer) with the last of the others,
// since they serve every architecture and none would be left to serve. No archs means
// everything, the stack's own included. Each runtime's Down reads this one rule from what it
// lists anyway, so that they go in the same pass as the others, and nothing asks twice.
func DownArchs(present, archs []string) []string {
	if len(archs) == 0 {
		return archs
	}
	if slices.ContainsFunc(present, func(a string) bool { return !topology.StackArch(a) && !slices.Contains(archs, a) }) {
		return archs // another architecture stays: the stack's own serve it
	}
	out := slices.Clone(archs)
	for _, a := range present {
		if topology.StackArch(a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
