package topology

import "slices"

// Partitions returns every partition of names into non-empty groups: Bell(len(names)) of
// them, 877 for the shop's seven contexts. Each group keeps the order of names, and the
// partitions come in the same order on every call, so that an index names one: a test
// places every one (the topology's), or one drawn uniformly by index (stacktest.RandomSplit).
func Partitions(names []string) [][][]string {
	if len(names) == 0 {
		return [][][]string{{}}
	}
	first, rest := names[0], names[1:]
	var out [][][]string
	for _, p := range Partitions(rest) {
		for i := range p { // first joins an existing group
			q := make([][]string, len(p))
			for j := range p {
				q[j] = slices.Clone(p[j])
			}
			q[i] = append([]string{first}, q[i]...)
			out = append(out, q)
		}
		out = append(out, append([][]string{{first}}, p...)) // or makes a group of its own
	}
	return out
}
