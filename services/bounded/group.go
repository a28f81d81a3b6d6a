package bounded

import (
	"fmt"
	"slices"
	"strings"
)

// Group is what one process runs: some contexts, and maybe the edge.
type Group struct {
	Contexts []string // in table order
	Edge     bool
}

// ParseGroup reads a group as topologies and --split write it: names joined by "+", the
// edge as "edge" (e.g. "edge+catalog+inventory").
func ParseGroup(s string) (Group, error) {
	var g Group
	if strings.TrimSpace(s) == "" {
		return g, fmt.Errorf("empty group: name contexts joined by '+' (%s) or %s", strings.Join(Names(), ", "), EdgeName)
	}
	for _, name := range strings.Split(s, "+") {
		name = strings.TrimSpace(name)
		switch {
		case name == EdgeName:
			if g.Edge {
				return g, fmt.Errorf("group %q: %s twice", s, name)
			}
			g.Edge = true
		case !slices.Contains(Names(), name):
			return g, fmt.Errorf("group %q: unknown context %q (want %s or %s)", s, name, strings.Join(Names(), ", "), EdgeName)
		case slices.Contains(g.Contexts, name):
			return g, fmt.Errorf("group %q: %s twice", s, name)
		default:
			g.Contexts = append(g.Contexts, name)
		}
	}
	g.Contexts = inTableOrder(g.Contexts)
	return g, nil
}

// Everything is the group of every context and the edge: the monolith.
func Everything() Group { return Group{Contexts: Names(), Edge: true} }

// Whole reports whether the group holds every context: it then needs no other process.
func (g Group) Whole() bool { return len(g.Contexts) == len(Names()) }

// Name is the group's process name: "monolith" for every context and the edge, "gateway"
// for the edge alone, else its contexts (and edge) joined by "-": "catalog-inventory".
func (g Group) Name() string {
	switch {
	case g.Whole() && g.Edge:
		return "monolith"
	case g.Edge && len(g.Contexts) == 0:
		return "gateway"
	}
	return strings.ReplaceAll(g.String(), "+", "-")
}

// InboxPrefix is the inbox prefix of the group's NATS connections: replies to its requests
// (the JetStream API's answers, key-value reads, watches) arrive under it, and its NATS user
// alone may subscribe there (platform/natsauth).
func (g Group) InboxPrefix() string { return "_INBOX_" + g.Name() }

// BuildTags are the build tags of a binary that runs the group and links no other context's
// implementation: neither the server part of its row (<context>.go, <context>_elsewhere.go)
// nor the implementation files of its package in shop/, whose constraint is
// "!mitosis_group || mitosis_<context>". A binary built without mitosis_group links all.
func (g Group) BuildTags() []string {
	tags := []string{"mitosis_group"}
	if g.Edge {
		tags = append(tags, "mitosis_"+EdgeName)
	}
	for _, c := range g.Contexts {
		tags = append(tags, "mitosis_"+c)
	}
	return tags
}

// String writes the group as ParseGroup reads it.
func (g Group) String() string {
	parts := slices.Clone(g.Contexts)
	if g.Edge {
		parts = append([]string{EdgeName}, parts...)
	}
	return strings.Join(parts, "+")
}

// Remote lists the contexts the group calls that run elsewhere, in table order.
func (g Group) Remote() []string {
	var out []string
	add := func(calls []string) {
		for _, c := range calls {
			if !slices.Contains(g.Contexts, c) && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	for _, name := range g.Contexts {
		c, _ := Lookup(name)
		add(c.Calls)
	}
	if g.Edge {
		add(Edge{}.Calls())
	}
	return inTableOrder(out)
}

func inTableOrder(names []string) []string {
	var out []string
	for _, n := range Names() {
		if slices.Contains(names, n) {
			out = append(out, n)
		}
	}
	return out
}

// Split is a placement of the shop: a partition of its contexts into groups, one process
// (or set of replicas) each. The edge is in one of them, or alone in a group of its own.
type Split []Group

// ParseSplit reads a split as --split writes it: groups separated by commas, contexts by
// "+" ("catalog+inventory,cart+orders+payments,shipping+notify"). Without a group that
// names the edge, the edge runs alone, last. Every context must be in exactly one group.
func ParseSplit(s string) (Split, error) {
	var groups []Group
	for _, part := range strings.Split(s, ",") {
		g, err := ParseGroup(part)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return NewSplit(groups)
}

// NewSplit checks that groups partition the contexts (each in exactly one group, no group
// empty, the edge in at most one) and returns them as a Split, with the edge alone last when
// no group holds it.
func NewSplit(groups []Group) (Split, error) {
	seen := map[string]int{}
	edge := -1
	for i, g := range groups {
		if len(g.Contexts) == 0 && !g.Edge {
			return nil, fmt.Errorf("group %d is empty", i+1)
		}
		for _, c := range g.Contexts {
			if !slices.Contains(Names(), c) {
				return nil, fmt.Errorf("group %d (%s): unknown context %q", i+1, g, c)
			}
			if j, dup := seen[c]; dup {
				return nil, fmt.Errorf("%s is in two groups: %s and %s", c, groups[j], g)
			}
			seen[c] = i
		}
		if g.Edge {
			if edge >= 0 {
				return nil, fmt.Errorf("%s is in two groups: %s and %s", EdgeName, groups[edge], g)
			}
			edge = i
		}
	}
	var missing []string
	for _, c := range Names() {
		if _, ok := seen[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no group holds %s: every context runs somewhere", strings.Join(missing, ", "))
	}
	out := Split(slices.Clone(groups))
	if edge < 0 {
		out = append(out, Group{Edge: true})
	}
	return out, nil
}

// String writes the split as ParseSplit reads it.
func (s Split) String() string {
	parts := make([]string, len(s))
	for i, g := range s {
		parts[i] = g.String()
	}
	return strings.Join(parts, ",")
}

// Holder returns the group that holds the context name (or the edge, for EdgeName).
func (s Split) Holder(name string) (Group, bool) {
	for _, g := range s {
		if (name == EdgeName && g.Edge) || slices.Contains(g.Contexts, name) {
			return g, true
		}
	}
	return Group{}, false
}
