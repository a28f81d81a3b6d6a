package advise

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// KindRoutes maps the load test's request kinds (loadtest.Kinds) to the endpoint classes
// their traces have (the root span's name): the load test reports latency by kind, the
// traces group by route. List and search are one route with different queries.
var KindRoutes = map[string]string{
	"list":     "GET /v1/products",
	"search":   "GET /v1/products",
	"product":  "GET /v1/products/{id}",
	"cart-add": "POST /v1/carts/{user_id}/items",
	"checkout": "POST /v1/checkout",
}

// Checkout is the kind whose p99 the search trades against CPU.
const Checkout = "checkout"

// Grouping is a partition of the contexts: Grouping[i] is the group of the model's
// Contexts[i], numbered from 0 in order of first appearance (a restricted growth string).
type Grouping []int

// Groups is the number of groups.
func (g Grouping) Groups() int {
	n := 0
	for _, x := range g {
		n = max(n, x+1)
	}
	return n
}

// EdgeAlone is Placement.Edge for the edge in a process of its own (the gateway).
const EdgeAlone = -1

// Placement is a grouping of the contexts and where the edge runs: in group Edge, or alone
// (EdgeAlone). The monolith is one group with the edge in it; the services, one group per
// context and the edge alone.
type Placement struct {
	Groups Grouping `json:"groups"`
	Edge   int      `json:"edge"`
}

// Processes is the placement's processes: its groups, and the edge when alone.
func (p Placement) Processes() int {
	if p.Edge == EdgeAlone {
		return p.Groups.Groups() + 1
	}
	return p.Groups.Groups()
}

// Model predicts what a grouping costs. Build it with Calibrate.
type Model struct {
	Contexts []string `json:"contexts"` // in table order: what Grouping indexes
	Rate     float64  `json:"rate_rps"`
	// Calls is the merged graph: the monolith's calls per request (its traces are whole:
	// nothing of a split adds or removes a call), with the hop costs and message sizes the
	// services' spans measured on each edge.
	Calls *Graph `json:"-"`
	// HopCPUMS is the CPU of one cut call (h in the package doc), milliseconds.
	HopCPUMS float64 `json:"hop_cpu_ms"`
	// ProcessCPUMS is the CPU per request of one more process at Rate (i / R), milliseconds.
	ProcessCPUMS float64 `json:"process_cpu_ms"`
	// HopSource says where HopCPUMS comes from.
	HopSource string    `json:"hop_source"`
	Mono      *Measured `json:"monolith"`
	Services  *Measured `json:"services"`
	// busy is the monolith's CPU split per class: ms per request of the class.
	busy map[string]float64
	// mix is each kind's share of the requests.
	mix map[string]float64
	// index of each context in Contexts.
	index map[string]int
}

// mixed is what every prediction reads of the model's graph: its classes merged
// (Graph.Mix, MixEvents) and each endpoint kind's calls, every edge's ends resolved to
// context indices. A search makes it once for its millions of placements, whose scoring
// is then a walk over slices.
type mixed struct {
	calls, events []mixedEdge
	kinds         []mixedKind // by kind
}

// mixedEdge is an edge with its ends as indices of Model.Contexts (edgeIndex: the edge).
type mixedEdge struct {
	*Edge
	from, to int
}

// mixedKind is an endpoint kind with its class's calls; none when the graph has no class
// for its route.
type mixedKind struct {
	kind, route string
	calls       []mixedEdge
}

// edgeIndex stands for the edge among context indices.
const edgeIndex = -1

func (m *Model) mixed() mixed {
	resolve := func(edges []*Edge) []mixedEdge {
		out := make([]mixedEdge, len(edges))
		for i, e := range edges {
			out[i] = mixedEdge{Edge: e, from: m.nodeIndex(e.From), to: m.nodeIndex(e.To)}
		}
		return out
	}
	mx := mixed{calls: resolve(m.Calls.Mix()), events: resolve(m.Calls.MixEvents())}
	for _, kind := range slices.Sorted(maps.Keys(KindRoutes)) {
		route := KindRoutes[kind]
		if c := m.Calls.Class(route); c != nil {
			mx.kinds = append(mx.kinds, mixedKind{kind: kind, route: route, calls: resolve(c.Calls)})
		}
	}
	return mx
}

func (m *Model) nodeIndex(node string) int {
	if node == EdgeNode {
		return edgeIndex
	}
	return m.index[node]
}

// cut reports whether e crosses a group boundary of p.
func (e mixedEdge) cut(p Placement) bool { return p.groupAt(e.from) != p.groupAt(e.to) }

// groupAt is the group of the context of index i, or the edge's for edgeIndex.
func (p Placement) groupAt(i int) int {
	if i == edgeIndex {
		return p.Edge
	}
	return p.Groups[i]
}

// Calibrate builds the model from the monolith's and the services' graphs and measurements of
// the same run (see the package doc). svcGraph gives the hop costs and sizes of each edge.
func Calibrate(mono, svc *Graph, mMono, mSvc *Measured) (*Model, error) {
	if mMono == nil || mSvc == nil {
		return nil, fmt.Errorf("the model needs the monolith and the services measured in the same run")
	}
	if mMono.Rate != mSvc.Rate {
		return nil, fmt.Errorf("the monolith was measured at %g req/s, the services at %g", mMono.Rate, mSvc.Rate)
	}
	if mMono.CPUPerReqMS <= 0 || mSvc.CPUPerReqMS <= 0 {
		return nil, fmt.Errorf("the run has no CPU per request of both (monolith %g ms, services %g ms): it must measure CPU (-resources)", mMono.CPUPerReqMS, mSvc.CPUPerReqMS)
	}
	m := &Model{Contexts: bounded.Names(), Rate: mMono.Rate, Mono: mMono, Services: mSvc, mix: mMono.Mix, index: map[string]int{}}
	for i, c := range m.Contexts {
		m.index[c] = i
	}
	m.Calls = merge(mono, svc)
	// The extra processes of the services: each context alone, and the gateway.
	extra := float64(len(m.Contexts))
	m.ProcessCPUMS = max(0, mSvc.IdleCores-mMono.IdleCores) / extra / m.Rate * 1000
	cut := 0.0
	for _, e := range m.Calls.Mix() {
		cut += e.Calls
	}
	if cut == 0 {
		return nil, fmt.Errorf("the monolith's traces hold no call between contexts")
	}
	m.HopCPUMS = (mSvc.CPUPerReqMS - mMono.CPUPerReqMS - extra*m.ProcessCPUMS) / cut
	if m.HopCPUMS <= 0 {
		return nil, fmt.Errorf("the services used no more CPU per request than the monolith and their processes' idle cost (%.3f against %.3f ms): a run this noisy cannot price a hop; run longer steps or more repeats",
			mSvc.CPUPerReqMS, mMono.CPUPerReqMS)
	}
	m.HopSource = fmt.Sprintf("the services' CPU per request minus the monolith's (%.3f − %.3f ms), less %g more processes' idle cost (%.3f ms each), over %.2f cut calls per request",
		mSvc.CPUPerReqMS, mMono.CPUPerReqMS, extra, m.ProcessCPUMS, cut)
	m.busy = map[string]float64{}
	mean := 0.0
	for _, c := range m.Calls.Classes {
		mean += c.Share * c.BusyMS
	}
	for _, c := range m.Calls.Classes {
		if mean > 0 {
			m.busy[c.Name] = mMono.CPUPerReqMS * c.BusyMS / mean
		}
	}
	return m, nil
}

// HopFromOneHop sets the model's hop CPU cost from a run of one endpoint class that makes
// one call (a load of product lists: the edge calls catalog once): its services' CPU per
// request minus its monolith's, less the extra processes' idle cost, over its calls per
// request. The model's own check: predict the services from the monolith with it.
func (m *Model) HopFromOneHop(hop *Run, kind string) error {
	mono, svc := hop.Measured[Monolith], hop.Measured[Services]
	if mono == nil || svc == nil {
		return fmt.Errorf("the hop run has not both the monolith and the services at %g req/s", hop.Rate)
	}
	class := m.Calls.Class(KindRoutes[kind])
	if class == nil {
		return fmt.Errorf("the traces have no request of kind %q (%s)", kind, KindRoutes[kind])
	}
	calls := 0.0
	for _, e := range class.Calls {
		calls += e.Calls
	}
	if calls == 0 {
		return fmt.Errorf("a %s request makes no call between contexts", kind)
	}
	extra := float64(len(m.Contexts))
	m.ProcessCPUMS = max(0, svc.IdleCores-mono.IdleCores) / extra / m.Rate * 1000
	perProc := max(0, svc.IdleCores-mono.IdleCores) / extra / hop.Rate * 1000
	m.HopCPUMS = (svc.CPUPerReqMS - mono.CPUPerReqMS - extra*perProc) / calls
	if m.HopCPUMS <= 0 {
		return fmt.Errorf("the hop run's services used no more CPU per request than its monolith (%.3f against %.3f ms): too noisy to price a hop", svc.CPUPerReqMS, mono.CPUPerReqMS)
	}
	m.HopSource = fmt.Sprintf("one hop: a load of %s requests alone (run %s, %g req/s), the services' CPU per request minus the monolith's (%.3f − %.3f ms), less %g more processes' idle cost (%.3f ms each), over %.2f calls per request",
		kind, hop.ID, hop.Rate, svc.CPUPerReqMS, mono.CPUPerReqMS, extra, perProc, calls)
	return nil
}

// merge takes the monolith's calls and the services' hop costs and sizes, edge by edge.
func merge(mono, svc *Graph) *Graph {
	out := &Graph{Arch: mono.Arch, Traces: mono.Traces, Incomplete: mono.Incomplete}
	var all []*Edge // the services' edges of every class, for the mean of an edge missing in one
	if svc != nil {
		for _, c := range svc.Classes {
			all = append(all, c.Calls...)
		}
	}
	for _, c := range mono.Classes {
		nc := *c
		nc.Calls = nil
		var sc *Class
		if svc != nil {
			sc = svc.Class(c.Name)
		}
		for _, e := range c.Calls {
			ne := *e
			if s := findEdge(sc, e.Key()); s != nil && s.Remote > 0 {
				ne.HopMS, ne.RequestBytes, ne.ResponseBytes = s.HopMS, s.RequestBytes, s.ResponseBytes
			} else if s := meanEdge(all, e.Key()); s != nil {
				ne.HopMS, ne.RequestBytes, ne.ResponseBytes = s.HopMS, s.RequestBytes, s.ResponseBytes
			}
			nc.Calls = append(nc.Calls, &ne)
		}
		out.Classes = append(out.Classes, &nc)
	}
	return out
}

func findEdge(c *Class, key string) *Edge {
	if c == nil {
		return nil
	}
	for _, e := range c.Calls {
		if e.Key() == key {
			return e
		}
	}
	return nil
}

// meanEdge is the call-weighted mean of the edges named key over every class.
func meanEdge(edges []*Edge, key string) *Edge {
	var out Edge
	w := 0.0
	for _, e := range edges {
		if e.Key() == key && e.Remote > 0 {
			out.HopMS += e.Calls * e.HopMS
			out.RequestBytes += e.Calls * e.RequestBytes
			out.ResponseBytes += e.Calls * e.ResponseBytes
			w += e.Calls
		}
	}
	if w == 0 {
		return nil
	}
	out.HopMS /= w
	out.RequestBytes /= w
	out.ResponseBytes /= w
	return &out
}

// Prediction is what the model says of one grouping.
type Prediction struct {
	Split       string                `json:"split"` // as --split takes it; "monolith" for one group
	Groups      int                   `json:"groups"`
	Processes   int                   `json:"processes"` // the groups, and the edge alone
	CPUPerReqMS float64               `json:"cpu_per_request_ms"`
	Latency     Latency               `json:"latency_ms"` // of the whole mix
	Kinds       map[string]KindResult `json:"kinds"`
	CutCalls    float64               `json:"cut_calls_per_request"`
	// CutShare is the share of the synchronous calls (the edge's included) that cross a
	// group boundary; Interfaces, per group in Split's order, the distinct methods other
	// groups call on it and event subjects it takes from them.
	CutShare   float64 `json:"cut_share"`
	Interfaces []int   `json:"interfaces"`

	placement Placement
}

// KindResult is one endpoint class's prediction.
type KindResult struct {
	Route       string  `json:"route"`
	CPUPerReqMS float64 `json:"cpu_per_request_ms"`
	Latency     Latency `json:"latency_ms"`
}

// Placement returns the placement predicted.
func (p *Prediction) Placement() Placement { return p.placement }

// Predict predicts pl's costs.
func (m *Model) Predict(pl Placement) *Prediction {
	mx := m.mixed()
	p := m.costs(pl, mx)
	m.describe(p, pl, mx)
	return p
}

// describe fills in what p's costs do not need: its --split string, its interfaces and its
// placement, kept (pl's groups may be reused by its caller). A search does it only for the
// predictions that make its front.
func (m *Model) describe(p *Prediction, pl Placement, mx mixed) {
	p.Split = m.SplitString(pl)
	p.Interfaces = m.interfaces(pl, mx)
	p.placement = Placement{Groups: slices.Clone(pl.Groups), Edge: pl.Edge}
}

// costs predicts pl's CPU and latencies.
func (m *Model) costs(pl Placement, mx mixed) *Prediction {
	g := pl
	p := &Prediction{Groups: pl.Groups.Groups(), Processes: pl.Processes(), Kinds: map[string]KindResult{}}
	extra := float64(p.Processes - 1)
	// CPU: the monolith's, plus each cut call, plus the idle cost of each extra process.
	total := 0.0
	for _, e := range mx.calls {
		total += e.Calls
		if e.cut(g) {
			p.CutCalls += e.Calls
		}
	}
	if total > 0 {
		p.CutShare = p.CutCalls / total
	}
	p.CPUPerReqMS = m.Mono.CPUPerReqMS + p.CutCalls*m.HopCPUMS + extra*m.ProcessCPUMS
	// Latency: the share of the critical path's hop time that g cuts, of the services' extra.
	mixShare := 0.0
	for _, mk := range mx.kinds {
		kind, route := mk.kind, mk.route
		cut, all, cpu := 0.0, 0.0, 0.0
		for _, e := range mk.calls {
			hop := e.Critical * e.HopMS
			all += hop
			if e.cut(g) {
				cut += hop
				cpu += e.Calls
			}
		}
		f := 0.0
		if all > 0 {
			f = cut / all
		}
		k := KindResult{Route: route, CPUPerReqMS: m.busy[route] + cpu*m.HopCPUMS + extra*m.ProcessCPUMS,
			Latency: interpolate(m.Mono.Kinds[kind], m.Services.Kinds[kind], f)}
		p.Kinds[kind] = k
		mixShare += m.mix[kind] * f
	}
	p.Latency = interpolate(m.Mono.Latency, m.Services.Latency, mixShare)
	return p
}

func interpolate(a, b Latency, f float64) Latency {
	return Latency{P50: a.P50 + f*(b.P50-a.P50), P99: a.P99 + f*(b.P99-a.P99)}
}

// interfaces counts, per group, its interface: the distinct methods that other groups (and
// the edge alone) call on it, and the event subjects it takes from other groups.
func (m *Model) interfaces(g Placement, mx mixed) []int {
	methods := make([]map[string]bool, g.Groups.Groups())
	for i := range methods {
		methods[i] = map[string]bool{}
	}
	for _, e := range slices.Concat(mx.calls, mx.events) {
		if !e.cut(g) {
			continue
		}
		to := g.groupAt(e.to)
		for _, name := range e.Methods {
			methods[to][name] = true
		}
	}
	out := make([]int, len(methods))
	for i, set := range methods {
		out[i] = len(set)
	}
	return out
}

// SplitString writes p as --split takes it ("edge+catalog+inventory,cart+orders,..."),
// groups in order of their first context, the edge's group naming it; "monolith" for every
// context with the edge in one group.
func (m *Model) SplitString(p Placement) string {
	if p.Groups.Groups() == 1 && p.Edge == 0 {
		return Monolith
	}
	parts := make([][]string, p.Groups.Groups())
	if p.Edge != EdgeAlone {
		parts[p.Edge] = []string{EdgeNode}
	}
	for i, x := range p.Groups {
		parts[x] = append(parts[x], m.Contexts[i])
	}
	s := make([]string, len(parts))
	for i, part := range parts {
		s[i] = strings.Join(part, "+")
	}
	return strings.Join(s, ",")
}

// MonolithPlacement is every context and the edge in one group.
func (m *Model) MonolithPlacement() Placement {
	return Placement{Groups: make(Grouping, len(m.Contexts))}
}

// ServicesPlacement is one group per context and the edge alone.
func (m *Model) ServicesPlacement() Placement {
	g := make(Grouping, len(m.Contexts))
	for i := range g {
		g[i] = i
	}
	return Placement{Groups: g, Edge: EdgeAlone}
}

// Parse reads a --split string (or "monolith", or "services") as a placement of the model's
// contexts.
func (m *Model) Parse(split string) (Placement, error) {
	switch split {
	case Monolith:
		return m.MonolithPlacement(), nil
	case Services:
		return m.ServicesPlacement(), nil
	}
	s, err := bounded.ParseSplit(split)
	if err != nil {
		return Placement{}, err
	}
	raw := make([]int, len(m.Contexts))
	edge, n := EdgeAlone, 0
	for _, grp := range s {
		if len(grp.Contexts) == 0 {
			continue // the edge alone
		}
		if grp.Edge {
			edge = n
		}
		for _, c := range grp.Contexts {
			raw[m.index[c]] = n
		}
		n++
	}
	p := Placement{Groups: normalize(raw), Edge: edge}
	if edge != EdgeAlone {
		p.Edge = p.Groups[m.index[s[edgeGroup(s)].Contexts[0]]]
	}
	return p, nil
}

func edgeGroup(s bounded.Split) int {
	for i, g := range s {
		if g.Edge {
			return i
		}
	}
	return -1
}

// normalize renumbers groups in order of first appearance.
func normalize(raw []int) Grouping {
	seen := map[int]int{}
	g := make(Grouping, len(raw))
	for i, x := range raw {
		if _, ok := seen[x]; !ok {
			seen[x] = len(seen)
		}
		g[i] = seen[x]
	}
	return g
}
