package advise

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// MaxExact is the most contexts whose every placement is scored: Bell(13) = 27644437
// placements of twelve, 26 s here (BenchmarkSearchExact: ten take 0.5 s, eleven 3.5 s).
// Above it the search is a greedy merge.
const MaxExact = 12

// Objective ranks the candidates.
type Objective string

// Objectives.
const (
	ObjectiveCPU      Objective = "cpu"      // the least CPU per request
	ObjectiveLatency  Objective = "latency"  // the lowest checkout p99 and p50 of the whole mix
	ObjectiveBalanced Objective = "balanced" // both, each relative to the monolith-to-services spread
)

// ParseObjective reads an objective's name.
func ParseObjective(s string) (Objective, error) {
	switch o := Objective(s); o {
	case ObjectiveCPU, ObjectiveLatency, ObjectiveBalanced:
		return o, nil
	}
	return "", fmt.Errorf("objective %q: want cpu, latency or balanced", s)
}

// Constraints restrict the groupings considered.
type Constraints struct {
	Isolate   []string   // each alone in its group (e.g. payments, for PCI scope)
	Together  [][]string // each list in one group
	MaxGroups int        // at most this many groups; 0 for no limit
}

// Check says whether the constraints name the model's contexts, and can hold together.
func (m *Model) Check(c Constraints) error { return c.Validate(m.Contexts) }

// Validate says whether the constraints name only contexts of contexts, and can hold
// together.
func (c Constraints) Validate(contexts []string) error {
	known := func(name string) error {
		if !slices.Contains(contexts, name) {
			return fmt.Errorf("unknown context %q (want one of %s)", name, strings.Join(contexts, ", "))
		}
		return nil
	}
	for _, name := range c.Isolate {
		if err := known(name); err != nil {
			return fmt.Errorf("--isolate: %w", err)
		}
	}
	for _, set := range c.Together {
		if len(set) < 2 {
			return fmt.Errorf("--together %s: name at least two contexts", strings.Join(set, ","))
		}
		for _, name := range set {
			if err := known(name); err != nil {
				return fmt.Errorf("--together: %w", err)
			}
			if slices.Contains(c.Isolate, name) {
				return fmt.Errorf("--together %s: %s is also isolated", strings.Join(set, ","), name)
			}
		}
	}
	if c.MaxGroups < 0 {
		return fmt.Errorf("--max-groups %d: want 1 or more (0: no limit)", c.MaxGroups)
	}
	return nil
}

// Allows reports whether g meets the constraints.
func (m *Model) Allows(c Constraints, g Grouping) bool {
	// The edge's place is no constraint's: only the contexts' groups are.
	if c.MaxGroups > 0 && g.Groups() > c.MaxGroups {
		return false
	}
	for _, name := range c.Isolate {
		gi := g[m.index[name]]
		for j, x := range g {
			if x == gi && j != m.index[name] {
				return false
			}
		}
	}
	for _, set := range c.Together {
		first := g[m.index[set[0]]]
		for _, name := range set[1:] {
			if g[m.index[name]] != first {
				return false
			}
		}
	}
	return true
}

// Partitions calls yield with every partition of n items, as restricted growth strings (the
// first item in group 0, each next one in a group already used or the next new one): Bell(n)
// of them. The slice is reused between calls. It stops when yield returns false.
func Partitions(n int, yield func(Grouping) bool) {
	if n == 0 {
		yield(Grouping{})
		return
	}
	g := make(Grouping, n)
	var rec func(i, groups int) bool
	rec = func(i, groups int) bool {
		if i == n {
			return yield(g)
		}
		for x := 0; x <= groups; x++ {
			g[i] = x
			if !rec(i+1, max(groups, x+1)) {
				return false
			}
		}
		return true
	}
	rec(1, 1)
}

// Bell is the number of partitions of n items.
func Bell(n int) int {
	// The Bell triangle.
	row := []int{1}
	for i := 0; i < n; i++ {
		next := []int{row[len(row)-1]}
		for _, x := range row {
			next = append(next, next[len(next)-1]+x)
		}
		row = next
	}
	return row[0]
}

// Result is a search's outcome.
type Result struct {
	Method      string        `json:"method"`     // exact or greedy
	Considered  int           `json:"considered"` // groupings scored
	Allowed     int           `json:"allowed"`    // of them, those the constraints allow
	Objective   Objective     `json:"objective"`
	Constraints Constraints   `json:"constraints"`
	Front       []*Prediction `json:"pareto_front"` // by groups, then CPU
	// Best is the recommendation: of the front's best per number of groups (by the
	// objective), the one that gains most independence for its cost (see Recommend).
	Best *Prediction `json:"recommended"`
	// Monolith and Services are the two extremes, as the model predicts them (it reproduces
	// their measurements: the check that the calibration is whole).
	Monolith *Prediction `json:"monolith"`
	Services *Prediction `json:"services"`
}

// Search scores every grouping the constraints allow (exactly up to MaxExact contexts,
// greedily above), keeps the Pareto front of (more groups, less CPU per request, lower
// checkout p99) and recommends one by the objective.
func (m *Model) Search(c Constraints, obj Objective) (*Result, error) {
	if err := m.Check(c); err != nil {
		return nil, err
	}
	r := &Result{Objective: obj, Constraints: c}
	r.Monolith, r.Services = m.Predict(m.MonolithPlacement()), m.Predict(m.ServicesPlacement())
	var front front
	mx := m.mixed()
	// Each grouping with the edge in each of its groups, and alone.
	score := func(g Grouping) {
		for edge := EdgeAlone; edge < g.Groups(); edge++ {
			r.Considered++
			if m.Allows(c, g) {
				r.Allowed++
				pl := Placement{Groups: g, Edge: edge}
				p := m.costs(pl, mx)
				if s := scoreOf(p); !front.beaten(s) {
					m.describe(p, pl, mx)
					front.add(scored{s, p})
				}
			}
		}
	}
	if n := len(m.Contexts); n <= MaxExact {
		r.Method = fmt.Sprintf("exact: every partition of the %d contexts (Bell(%d) = %d), each with the edge in any of its groups or alone (Bell(%d) = %d placements)", n, n, Bell(n), n+1, Bell(n+1))
		Partitions(n, func(g Grouping) bool { score(g); return true })
	} else {
		r.Method = fmt.Sprintf("greedy: %d contexts are over %d, whose Bell number (%d partitions) is the most scored exactly; merges from one group per context", n, MaxExact, Bell(MaxExact))
		for _, g := range m.greedy(c) {
			score(g)
		}
	}
	if r.Allowed == 0 {
		return nil, fmt.Errorf("no grouping meets the constraints")
	}
	r.Front = nil
	for _, q := range front {
		r.Front = append(r.Front, q.p)
	}
	slices.SortFunc(r.Front, func(a, b *Prediction) int {
		return cmp.Or(cmp.Compare(a.Groups, b.Groups), cmp.Compare(a.CPUPerReqMS, b.CPUPerReqMS), strings.Compare(a.Split, b.Split))
	})
	r.Best = m.Recommend(r.Front, obj)
	return r, nil
}

// front is the Pareto front of the predictions added so far: those no other one beats on
// every count (at least as many groups, no more CPU per request and no higher checkout p99,
// better on one). Kept as they come, it holds a few hundred of the millions of placements
// of twelve contexts; keeping them all and comparing each pair took 6.4 s for nine
// contexts, and grew with the square of the placements: 34 times that for ten.
type front []scored

// scored is a prediction with the counts the front compares.
type scored struct {
	score
	p *Prediction
}

// score is what the front compares of a prediction.
type score struct {
	groups   int
	cpu, p99 float64 // CPU per request, checkout p99
}

func scoreOf(p *Prediction) score { return score{p.Groups, p.CPUPerReqMS, p.checkoutP99()} }

// dominates reports whether q beats p: at least as many groups, no more CPU per request
// and no higher checkout p99, better on one.
func (q score) dominates(p score) bool {
	if q.groups < p.groups || q.cpu > p.cpu || q.p99 > p.p99 {
		return false
	}
	return q.groups > p.groups || q.cpu < p.cpu || q.p99 < p.p99
}

// beaten reports whether a prediction of the front beats one of score s.
func (f front) beaten(s score) bool {
	return slices.ContainsFunc(f, func(q scored) bool { return q.dominates(s) })
}

// add puts p, which nothing on the front beats (beaten), on it, and takes off what p beats.
// Dominance is transitive: what p beats can beat nothing p does not.
func (f *front) add(p scored) {
	*f = append(slices.DeleteFunc(*f, func(q scored) bool { return p.dominates(q.score) }), p)
}

func (p *Prediction) checkoutP99() float64 { return p.Kinds[Checkout].Latency.P99 }

// Cost is a prediction's cost by the objective, relative to the two extremes: 0 is the
// monolith's, 1 the services'.
func (m *Model) Cost(p *Prediction, obj Objective) float64 {
	mono, svc := m.Predict(m.MonolithPlacement()), m.Predict(m.ServicesPlacement())
	rel := func(x, a, b float64) float64 {
		if b == a {
			return 0
		}
		return (x - a) / (b - a)
	}
	cpu := rel(p.CPUPerReqMS, mono.CPUPerReqMS, svc.CPUPerReqMS)
	// The checkout's tail, and what every request of the mix waits typically: the tail
	// alone would cut the catalog off every page view where its hop is cheap for checkouts.
	lat := (rel(p.checkoutP99(), mono.checkoutP99(), svc.checkoutP99()) + rel(p.Latency.P50, mono.Latency.P50, svc.Latency.P50)) / 2
	switch obj {
	case ObjectiveCPU:
		return cpu
	case ObjectiveLatency:
		return lat
	}
	return (cpu + lat) / 2
}

// Recommend picks from candidates, for each number of groups, the one of least cost by the
// objective, and of those the one whose independence gained, (groups − 1) / (contexts − 1),
// most exceeds its cost: the monolith and the services both score 0, a split scores more the
// more groups it buys for less. Ties go to fewer groups.
func (m *Model) Recommend(candidates []*Prediction, obj Objective) *Prediction {
	var best *Prediction
	bestScore := math.Inf(-1)
	n := float64(max(len(m.Contexts)-1, 1))
	for _, p := range candidates {
		s := float64(p.Groups-1)/n - m.Cost(p, obj)
		if s > bestScore+1e-12 || (math.Abs(s-bestScore) <= 1e-12 && (p.Groups < best.Groups || (p.Groups == best.Groups && m.Cost(p, obj) < m.Cost(best, obj)))) {
			best, bestScore = p, s
		}
	}
	return best
}

// greedy returns the groupings a greedy merge passes through: from one group per context
// (each constraint's together-set already merged), at each step the merge of two groups that
// saves the most CPU per request, down to one group.
func (m *Model) greedy(c Constraints) []Grouping {
	n := len(m.Contexts)
	raw := make([]int, n)
	for i := range raw {
		raw[i] = i
	}
	for _, set := range c.Together {
		first := raw[m.index[set[0]]]
		for _, name := range set[1:] {
			old := raw[m.index[name]]
			for j := range raw {
				if raw[j] == old {
					raw[j] = first
				}
			}
		}
	}
	g := normalize(raw)
	out := []Grouping{slices.Clone(g)}
	for g.Groups() > 1 {
		var next Grouping
		bestCPU := math.Inf(1)
		for a := 0; a < g.Groups(); a++ {
			for b := a + 1; b < g.Groups(); b++ {
				merged := make([]int, n)
				for i, x := range g {
					merged[i] = x
					if x == b {
						merged[i] = a
					}
				}
				cand := normalize(merged)
				if !m.Allows(Constraints{Isolate: c.Isolate}, cand) {
					continue
				}
				if cpu := m.Predict(Placement{Groups: cand, Edge: EdgeAlone}).CPUPerReqMS; cpu < bestCPU {
					next, bestCPU = cand, cpu
				}
			}
		}
		if next == nil {
			break
		}
		g = next
		out = append(out, slices.Clone(g))
	}
	return out
}
