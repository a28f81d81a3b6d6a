package loadtest

import "github.com/mitosis-dev/mitosis/platform/stack"

// LimitsOf is what the report says of an architecture's limits, from its budget as its
// runtime reports it (stack.Budget: the mode, the limits, whether they are enforced).
func LimitsOf(b stack.Budget, source string) Limits {
	l := Limits{CPUs: b.CPUs, MemoryMB: b.MemoryMB, Enforced: b.Enforced, Mode: b.Mode, Calibration: b.Calibration, Source: source}
	for _, s := range b.PerService {
		l.PerService = append(l.PerService, ServiceLimit{Name: s.Name, CPUs: s.CPUs, MemoryMB: s.MemoryMB})
	}
	return l
}
