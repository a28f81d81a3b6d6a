package advise

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// The fixture is a real run of the project's own stack (Podman, per-service budgets): the
// monolith and the services side by side at 25 and 50 req/s, 30 s steps, 20% of requests
// traced, the traces kept at 25 req/s (testdata/run); and a run of product lists alone, one
// call per request, for the model's own check (testdata/hop). Made with:
//
//	mitosis up --stack ha-adv -t monolith,services --monolith-edge 127.0.0.1:18080 \
//	    --services-edge 127.0.0.1:18081 --collector-edge 127.0.0.1:0
//	loadtest -preset load -stack ha-adv -edges monolith,services -collector http://127.0.0.1:<port> \
//	    -rates 25,50 -step 30s -repeats 1 -search 0 -trace-share 0.2 [-rates 25 -mix 100,0,0,0,0]
const (
	fixtureRun = "testdata/run"
	fixtureHop = "testdata/hop"
)

// loadFixture reads the fixture once for every test: nothing here changes a run or a graph.
var loadFixture = sync.OnceValues(func() (*fixtureData, error) {
	run, err := ReadRun(fixtureRun, 0, true)
	if err != nil {
		return nil, err
	}
	gm, err := BuildGraph(Monolith, run.Traces[Monolith])
	if err != nil {
		return nil, err
	}
	gs, err := BuildGraph(Services, run.Traces[Services])
	if err != nil {
		return nil, err
	}
	return &fixtureData{run, gm, gs}, nil
})

type fixtureData struct {
	run    *Run
	gm, gs *Graph
}

func fixture(t *testing.T) (*Run, *Graph, *Graph) {
	t.Helper()
	f, err := loadFixture()
	if err != nil {
		t.Fatal(err)
	}
	return f.run, f.gm, f.gs
}

func fixtureModel(t *testing.T) *Model {
	t.Helper()
	run, gm, gs := fixture(t)
	m, err := Calibrate(gm, gs, run.Measured[Monolith], run.Measured[Services])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func edge(c *Class, key string) *Edge {
	if c == nil {
		return nil
	}
	for _, e := range c.Calls {
		if e.Key() == key {
			return e
		}
	}
	for _, e := range c.Events {
		if e.Key() == key {
			return e
		}
	}
	return nil
}

// Both architectures' traces give the same graph, as the shop's code makes the same calls
// wherever its contexts run: a checkout is the edge's one call to orders, then orders' saga
// (the cart read and cleared, stock reserved and committed, one charge), then the events
// (order-paid to shipping and notify, order-shipped to orders and notify); a product page is
// one call to the catalog. Only the services' calls cross processes, with sizes and hop costs.
func TestGraphOfRecordedTraces(t *testing.T) {
	run, gm, gs := fixture(t)
	for _, g := range []*Graph{gm, gs} {
		if g.Traces != len(run.Traces[g.Arch]) || g.Incomplete != 0 || len(g.Classes) != 4 {
			t.Fatalf("%s: %d traces, %d incomplete, %d classes", g.Arch, g.Traces, g.Incomplete, len(g.Classes))
		}
		co := g.Class(KindRoutes[Checkout])
		for key, want := range map[string]float64{"edge→orders": 1, "orders→cart": 2, "orders→inventory": 2, "orders→payments": 1,
			"orders→shipping": 1, "orders→notify": 1, "shipping→orders": 1, "shipping→notify": 1} {
			if e := edge(co, key); e == nil || e.Calls != want {
				t.Errorf("%s checkout: %s = %+v, want %g per request", g.Arch, key, e, want)
			}
		}
		if e := edge(co, "orders→inventory"); e != nil && !slices.Equal(e.Methods, []string{"mitosis.inventory.v1.InventoryService/Commit", "mitosis.inventory.v1.InventoryService/Reserve"}) {
			t.Errorf("%s: orders→inventory methods %v", g.Arch, e.Methods)
		}
		if e := edge(co, "orders→catalog"); e == nil || e.Calls < 1 {
			t.Errorf("%s: a checkout prices its cart's lines, at least one: %+v", g.Arch, e)
		}
		if e := edge(g.Class(KindRoutes["product"]), "edge→catalog"); e == nil || e.Calls != 1 || len(g.Class(KindRoutes["product"]).Calls) != 1 {
			t.Errorf("%s: a product page is one call to the catalog: %+v", g.Arch, g.Class(KindRoutes["product"]).Calls)
		}
		for _, c := range g.Classes {
			// The saga's and the edge's calls are made one after the other: each is on the
			// critical path.
			for _, e := range c.Calls {
				if math.Abs(e.Critical-e.Calls) > 1e-9 {
					t.Errorf("%s %s %s: %g of %g calls on the critical path", g.Arch, c.Name, e.Key(), e.Critical, e.Calls)
				}
				remote := g.Arch == Services
				if (e.Remote > 0) != remote || (e.HopMS > 0) != remote || (e.RequestBytes > 0) != remote {
					t.Errorf("%s %s %s: remote %g, hop %g ms, %g B", g.Arch, c.Name, e.Key(), e.Remote, e.HopMS, e.RequestBytes)
				}
			}
			if len(c.Events) > 0 && c.Name != KindRoutes[Checkout] {
				t.Errorf("%s: %s publishes events", g.Arch, c.Name)
			}
		}
	}
	// The services' list response is the page of products: far larger than its request.
	if e := edge(gs.Class(KindRoutes["list"]), "edge→catalog"); e == nil || e.ResponseBytes < 10*e.RequestBytes {
		t.Errorf("services' list: %+v", e)
	}
}

// A crafted trace pins down the rules: a call's caller is the context of the call or
// consumer above it; a hop is the client span minus its server span; the size attributes
// are averaged; of two calls made in parallel only the one the request waited for is on its
// critical path; an event's edge runs from its publisher's context to the consumer's group.
func TestGraphRules(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	at := func(ms float64) uint64 {
		return uint64(start.Add(time.Duration(ms * float64(time.Millisecond))).UnixNano())
	}
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
	}
	tid := bytes.Repeat([]byte{7}, 16)
	id := func(n byte) []byte { return []byte{n, 0, 0, 0, 0, 0, 0, 1} }
	span := func(n, parent byte, name string, kind tracepb.Span_SpanKind, from, to float64, attrs ...*commonpb.KeyValue) *tracepb.Span {
		s := &tracepb.Span{TraceId: tid, SpanId: id(n), Name: name, Kind: kind, StartTimeUnixNano: at(from), EndTimeUnixNano: at(to), Attributes: attrs}
		if parent != 0 {
			s.ParentSpanId = id(parent)
		}
		return s
	}
	res := func(svc string, spans ...*tracepb.Span) *tracepb.ResourceSpans {
		return &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", svc), str("mitosis.architecture", "x")}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}
	}
	grpc := str(attrRPCSystem, rpcGRPC)
	const ordersCheckout, catalogGet, payCharge = "mitosis.orders.v1.OrdersService/Checkout", "mitosis.catalog.v1.CatalogService/Get", "mitosis.payments.v1.PaymentsService/Charge"
	client := tracepb.Span_SPAN_KIND_CLIENT
	server := tracepb.Span_SPAN_KIND_SERVER
	td := &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{
		res("gateway",
			span(1, 0, "POST /v1/checkout", server, 0, 20),
			span(2, 1, ordersCheckout, client, 1, 19, grpc, num(attrRequestBytes, 100), num(attrResponseBytes, 50))),
		res("orders",
			span(3, 2, ordersCheckout, server, 2, 18, grpc),
			// Two calls at once: the catalog's ends first, the request waits on the charge.
			span(4, 3, catalogGet, client, 3, 6, grpc, num(attrRequestBytes, 10), num(attrResponseBytes, 200)),
			span(5, 3, payCharge, client, 3, 16, grpc, num(attrRequestBytes, 70), num(attrResponseBytes, 90)),
			span(8, 3, "publish shop.events.order-paid", tracepb.Span_SPAN_KIND_PRODUCER, 16, 17)),
		res("catalog", span(6, 4, catalogGet, server, 3.5, 5.5, grpc)),
		res("payments", span(7, 5, payCharge, server, 4, 15, grpc)),
		res("shipping", span(9, 8, "process shop.events.order-paid", tracepb.Span_SPAN_KIND_CONSUMER, 25, 30, str(attrConsumerGroup, "shipping"))),
	}}
	ts, err := tracecompare.FromOTLP(td)
	if err != nil {
		t.Fatal(err)
	}
	g, err := BuildGraph("x", ts)
	if err != nil {
		t.Fatal(err)
	}
	c := g.Class("POST /v1/checkout")
	if c == nil || len(c.Calls) != 3 || len(c.Events) != 1 {
		t.Fatalf("class %+v", c)
	}
	for _, want := range []struct {
		key                      string
		critical, hop, req, resp float64
	}{
		{"edge→orders", 1, 2, 100, 50},
		{"orders→catalog", 0, 1, 10, 200},
		{"orders→payments", 1, 2, 70, 90},
	} {
		e := edge(c, want.key)
		if e == nil || e.Calls != 1 || e.Remote != 1 || e.Critical != want.critical || math.Abs(e.HopMS-want.hop) > 1e-6 ||
			e.RequestBytes != want.req || e.ResponseBytes != want.resp {
			t.Errorf("%s: %+v, want critical %g, hop %g ms, %g/%g B", want.key, e, want.critical, want.hop, want.req, want.resp)
		}
	}
	if e := edge(c, "orders→shipping"); e == nil || e.Calls != 1 || e.Methods[0] != "shop.events.order-paid" {
		t.Errorf("event edge %+v", e)
	}
	if hex.EncodeToString(id(1)) != ts[0].Root.ID {
		t.Errorf("root %s", ts[0].Root.ID)
	}
}

// Calibrated on the two extremes, the model gives them back: the monolith's figures when
// nothing is cut, the services' when everything is. Between them, cutting more never costs
// less: merging two groups of any placement never raises its CPU per request.
func TestModelReproducesTheExtremesAndIsMonotonic(t *testing.T) {
	m := fixtureModel(t)
	mono, svc := m.Predict(m.MonolithPlacement()), m.Predict(m.ServicesPlacement())
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
	if !near(mono.CPUPerReqMS, m.Mono.CPUPerReqMS) || mono.CutCalls != 0 || mono.Latency != m.Mono.Latency || mono.Processes != 1 {
		t.Errorf("monolith predicted %+v, measured %+v", mono, m.Mono)
	}
	if !near(svc.CPUPerReqMS, m.Services.CPUPerReqMS) || !near(svc.Latency.P50, m.Services.Latency.P50) || !near(svc.Latency.P99, m.Services.Latency.P99) || svc.CutShare != 1 || svc.Processes != 8 {
		t.Errorf("services predicted %+v, measured %+v", svc, m.Services)
	}
	for kind, k := range svc.Kinds {
		if !near(k.Latency.P99, m.Services.Kinds[kind].P99) {
			t.Errorf("services %s p99 predicted %g, measured %g", kind, k.Latency.P99, m.Services.Kinds[kind].P99)
		}
	}
	if m.HopCPUMS <= 0 || m.ProcessCPUMS < 0 {
		t.Fatalf("hop %g ms, process %g ms", m.HopCPUMS, m.ProcessCPUMS)
	}
	checked := 0
	Partitions(len(m.Contexts), func(g Grouping) bool {
		if g.Groups() < 2 {
			return true
		}
		p := m.Predict(Placement{Groups: g, Edge: EdgeAlone})
		merged := slices.Clone(g)
		for i := range merged {
			if merged[i] == 1 {
				merged[i] = 0
			}
		}
		q := m.Predict(Placement{Groups: normalize(merged), Edge: EdgeAlone})
		if q.CPUPerReqMS > p.CPUPerReqMS+1e-9 || q.CutCalls > p.CutCalls+1e-9 {
			t.Errorf("%s (%.3f ms) merged into %s costs more (%.3f ms)", p.Split, p.CPUPerReqMS, q.Split, q.CPUPerReqMS)
		}
		checked++
		return true
	})
	if checked != Bell(7)-1 {
		t.Errorf("checked %d placements", checked)
	}
}

// The model's own check (issue 16): the services predicted from the monolith's traces alone
// plus the hop cost measured on one hop (a run of product lists alone: one call each) land
// within 20% of the services' CPU per request measured in the same run.
func TestModelPredictsTheServicesFromOneHop(t *testing.T) {
	m := fixtureModel(t)
	hop, err := ReadRun(fixtureHop, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.HopFromOneHop(hop, "list"); err != nil {
		t.Fatal(err)
	}
	p := m.Predict(m.ServicesPlacement())
	e := ErrorPct(p.CPUPerReqMS, m.Services.CPUPerReqMS)
	t.Logf("one hop: h = %.3f ms (%s); services predicted %.3f ms CPU/req, measured %.3f: %+.1f%%", m.HopCPUMS, m.HopSource, p.CPUPerReqMS, m.Services.CPUPerReqMS, e)
	if math.Abs(e) > 20 {
		t.Errorf("predicted %.3f ms, measured %.3f: %+.1f%%, want within 20%%", p.CPUPerReqMS, m.Services.CPUPerReqMS, e)
	}
	if err := m.HopFromOneHop(hop, "nope"); err == nil {
		t.Error("a kind the traces lack: no error")
	}
}

// stirling2 is the number of partitions of n items into k groups.
func stirling2(n, k int) int {
	switch {
	case n == 0 && k == 0:
		return 1
	case n == 0 || k == 0:
		return 0
	}
	return k*stirling2(n-1, k) + stirling2(n-1, k-1)
}

// The enumeration is every partition once: Bell(n) of them (877 for the seven contexts),
// each a restricted growth string, no two alike.
func TestPartitionsAreAllOnce(t *testing.T) {
	want := []int{1, 1, 2, 5, 15, 52, 203, 877, 4140, 21147}
	for n, w := range want {
		if Bell(n) != w {
			t.Errorf("Bell(%d) = %d, want %d", n, Bell(n), w)
		}
		seen := map[string]bool{}
		byGroups := map[int]int{}
		Partitions(n, func(g Grouping) bool {
			key := fmt.Sprint(g)
			if seen[key] {
				t.Errorf("n=%d: %v twice", n, g)
			}
			seen[key] = true
			hi := -1
			for _, x := range g {
				if x > hi+1 {
					t.Errorf("n=%d: %v is not a restricted growth string", n, g)
				}
				hi = max(hi, x)
			}
			byGroups[g.Groups()]++
			return true
		})
		if len(seen) != w {
			t.Errorf("n=%d: %d partitions, want %d", n, len(seen), w)
		}
		for k, c := range byGroups {
			if c != stirling2(n, k) {
				t.Errorf("n=%d: %d partitions into %d groups, want S(%d,%d) = %d", n, c, k, n, k, stirling2(n, k))
			}
		}
	}
}

// Every placement is scored once; the constraints keep exactly the placements that meet
// them, and the front and the recommendation respect them.
func TestSearchConstraints(t *testing.T) {
	m := fixtureModel(t)
	n := len(m.Contexts)
	r, err := m.Search(Constraints{}, ObjectiveBalanced)
	if err != nil {
		t.Fatal(err)
	}
	if r.Considered != Bell(n+1) || r.Allowed != r.Considered || !strings.HasPrefix(r.Method, "exact") {
		t.Errorf("unconstrained: %d considered, %d allowed (%s); want Bell(%d) = %d", r.Considered, r.Allowed, r.Method, n+1, Bell(n+1))
	}
	// With at most k groups: Σ_{j ≤ k} S(n, j) partitions, each with the edge in one of its
	// j groups or alone.
	for k := 1; k <= 3; k++ {
		want := 0
		for j := 1; j <= k; j++ {
			want += stirling2(n, j) * (j + 1)
		}
		r, err := m.Search(Constraints{MaxGroups: k}, ObjectiveCPU)
		if err != nil {
			t.Fatal(err)
		}
		if r.Allowed != want {
			t.Errorf("--max-groups %d: %d allowed, want %d", k, r.Allowed, want)
		}
		for _, p := range append(r.Front, r.Best) {
			if p.Groups > k {
				t.Errorf("--max-groups %d: %s has %d groups", k, p.Split, p.Groups)
			}
		}
	}
	c := Constraints{Isolate: []string{"payments"}, Together: [][]string{{"cart", "orders"}}, MaxGroups: 3}
	r, err = m.Search(c, ObjectiveLatency)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(r.Front, r.Best) {
		g := p.Placement().Groups
		pay, cart, orders := g[slices.Index(m.Contexts, "payments")], g[slices.Index(m.Contexts, "cart")], g[slices.Index(m.Contexts, "orders")]
		alone := 0
		for _, x := range g {
			if x == pay {
				alone++
			}
		}
		if alone != 1 || cart != orders || p.Groups > 3 {
			t.Errorf("%s breaks %+v", p.Split, c)
		}
	}
	for _, bad := range []Constraints{
		{Isolate: []string{"billing"}},
		{Together: [][]string{{"cart"}}},
		{Together: [][]string{{"cart", "payments"}}, Isolate: []string{"payments"}},
		{MaxGroups: -1},
	} {
		if _, err := m.Search(bad, ObjectiveCPU); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	// Every context alone, in at most two groups: nothing meets it.
	if _, err := m.Search(Constraints{Isolate: m.Contexts, MaxGroups: 2}, ObjectiveCPU); err == nil || !strings.Contains(err.Error(), "no grouping") {
		t.Errorf("impossible constraints: %v", err)
	}
}

// The front holds no placement another beats on groups, CPU and checkout p99 at once, and
// every placement left out is beaten by one on it. The recommendation buys groups: with a
// choice of up to three, the balanced objective takes a split, never the monolith or the
// services.
func TestParetoFrontAndRecommendation(t *testing.T) {
	m := fixtureModel(t)
	r, err := m.Search(Constraints{MaxGroups: 3}, ObjectiveBalanced)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Front {
		for _, q := range r.Front {
			if p != q && dominates(q, p) {
				t.Errorf("%s on the front, beaten by %s", p.Split, q.Split)
			}
		}
	}
	Partitions(len(m.Contexts), func(g Grouping) bool {
		if g.Groups() > 3 {
			return true
		}
		for e := EdgeAlone; e < g.Groups(); e++ {
			p := m.Predict(Placement{Groups: g, Edge: e})
			on := slices.ContainsFunc(r.Front, func(q *Prediction) bool { return q.Split == p.Split })
			beaten := slices.ContainsFunc(r.Front, func(q *Prediction) bool { return dominates(q, p) })
			if on == beaten {
				t.Errorf("%s: on the front %v, beaten by it %v", p.Split, on, beaten)
			}
		}
		return true
	})
	b := r.Best
	if b.Groups < 2 || b.Groups > 3 || !slices.ContainsFunc(r.Front, func(q *Prediction) bool { return q.Split == b.Split }) {
		t.Errorf("recommended %s (%d groups)", b.Split, b.Groups)
	}
	if m.Cost(b, ObjectiveBalanced) >= 0.5 {
		t.Errorf("recommended %s at %.2f of the services' cost", b.Split, m.Cost(b, ObjectiveBalanced))
	}
}

// dominates reports whether q beats p as the search's front compares them.
func dominates(q, p *Prediction) bool { return scoreOf(q).dominates(scoreOf(p)) }

// Above MaxExact contexts the search merges greedily: a synthetic shop of 13 contexts in a
// chain, one pair of which talks far more than any other, is merged pair by pair, that pair
// first, down to one group, and scored in polynomially many placements.
func TestGreedyAboveMaxExact(t *testing.T) {
	const n = MaxExact + 1
	m := chainModel(n)
	r, err := m.Search(Constraints{}, ObjectiveCPU)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Method, "greedy") || r.Considered >= Bell(n) || r.Considered > n*(n+1) {
		t.Fatalf("%s, %d considered", r.Method, r.Considered)
	}
	// The first merge joins c04 and c05: the 12-group placements have them together.
	found := false
	for _, p := range r.Front {
		if p.Groups == n-1 {
			g := p.Placement().Groups
			found = found || g[4] == g[5]
			if g[4] != g[5] {
				t.Errorf("the first merge left c04 and c05 apart: %s", p.Split)
			}
		}
	}
	if !found {
		t.Errorf("no placement of %d groups on the front: %d", n-1, len(r.Front))
	}
}

// chainModel is a synthetic shop of n contexts in a chain, the edge calling c00, each next
// one called by the one before, c04 → c05 nine times a checkout, every other pair once.
func chainModel(n int) *Model {
	m := &Model{Rate: 10, index: map[string]int{}, busy: map[string]float64{}, HopCPUMS: 1, ProcessCPUMS: 0.1,
		Mono:     &Measured{CPUPerReqMS: 1, Kinds: map[string]Latency{Checkout: {P50: 1, P99: 2}}},
		Services: &Measured{CPUPerReqMS: 30, Kinds: map[string]Latency{Checkout: {P50: 5, P99: 20}}}}
	class := &Class{Name: KindRoutes[Checkout], Traces: 1, Share: 1}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("c%02d", i)
		m.Contexts = append(m.Contexts, name)
		m.index[name] = i
		from := EdgeNode
		calls := 1.0
		if i > 0 {
			from = m.Contexts[i-1]
		}
		if i == 5 {
			calls = 9 // c04 → c05
		}
		class.Calls = append(class.Calls, &Edge{From: from, To: name, Methods: []string{name + "/Do"}, Calls: calls, Critical: calls, HopMS: 1})
	}
	m.Calls = &Graph{Classes: []*Class{class}}
	return m
}

// BenchmarkSearchExact scores every placement of a chain of n contexts (Bell(n+1) of them)
// and keeps the Pareto front: what `mitosis advise` takes for a shop of n contexts, up to
// MaxExact (twelve: half a minute).
func BenchmarkSearchExact(b *testing.B) {
	for _, n := range []int{7, 8, 9, 10, 11, 12} {
		b.Run(fmt.Sprintf("contexts=%d", n), func(b *testing.B) {
			m := chainModel(n)
			for b.Loop() {
				r, err := m.Search(Constraints{}, ObjectiveBalanced)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(r.Front)), "front")
			}
			b.ReportMetric(float64(Bell(n+1)), "placements")
		})
	}
}

// A placement survives its --split string, and its topology file reads back as the same
// placement through the topology package, as mitosis up -t reads it.
func TestSplitStringAndTopologyFile(t *testing.T) {
	m := fixtureModel(t)
	Partitions(len(m.Contexts), func(g Grouping) bool {
		for e := EdgeAlone; e < g.Groups(); e++ {
			p := Placement{Groups: slices.Clone(g), Edge: e}
			back, err := m.Parse(m.SplitString(p))
			if err != nil || !slices.Equal(back.Groups, p.Groups) || back.Edge != p.Edge {
				t.Fatalf("%v → %q → %v, %v", p, m.SplitString(p), back, err)
			}
		}
		return true
	})
	r, err := m.Search(Constraints{MaxGroups: 3}, ObjectiveBalanced)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := m.Topology("advised", r.Best)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "advised.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := topology.ReadFile(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var parts []string
	for _, g := range f.Groups {
		grp, err := bounded.ParseGroup(strings.Join(g.Contexts, "+"))
		if err != nil {
			t.Fatal(err)
		}
		if len(grp.Contexts) > 0 {
			parts = append(parts, grp.String())
		}
	}
	if got := strings.Join(parts, ","); got != r.Best.Split {
		t.Errorf("topology file says %s, want %s", got, r.Best.Split)
	}
	if _, err := m.Parse("catalog+nosuch"); err == nil {
		t.Error("an unknown context parsed")
	}
}

// ReadRun refuses what it cannot use, saying what is missing.
func TestReadRunErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadRun(dir, 0, true); err == nil || !strings.Contains(err.Error(), ReportFile) {
		t.Errorf("no report: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(fixtureRun, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ReportFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRun(dir, 0, true); err == nil || !strings.Contains(err.Error(), "keeps no traces") {
		t.Errorf("no traces: %v", err)
	}
	if _, err := ReadRun(dir, 33, false); err == nil || !strings.Contains(err.Error(), "no ladder point at 33") {
		t.Errorf("a rate the run has not: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"rate_rps":25,"sides":[{"arch":"monolith","file":"../x.json.gz"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRun(dir, 0, true); err == nil || !strings.Contains(err.Error(), "not a file of the run's folder") {
		t.Errorf("a file outside the run: %v", err)
	}
	r, err := ReadRun(dir, 0, false)
	if err != nil || r.Measured[Monolith].CPUPerReqMS <= 0 || len(r.Measured[Services].Processes) != 9 {
		t.Errorf("report alone: %+v, %v", r, err)
	}
}

// --verify repeats the run's steps: its rate alone, its step, warm-up, users, seed, trace
// share and mix, as the load test's flags.
func TestLoadtestArgsRepeatTheRun(t *testing.T) {
	run, err := ReadRun(fixtureRun, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(run.Settings.LoadtestArgs(run.Rate), " ")
	want := "-rates 25 -search 0 -repeats 1 -step 30s -warmup 5s -warmup-rate 20 -users 200 -seed 1 -trace-share 0.2 -mix 25,15,35,15,10 -declined 0.05"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// A verification compares each figure with the run of the advice beside the monolith (the
// project's own: testdata/verify, the balanced advice of at most three groups), raw and
// anchored on that run's monolith, and the outputs say so with the machine's noise.
func TestVerifyAgainstARunOfTheAdvice(t *testing.T) {
	run, _, _ := fixture(t)
	rep, err := Advise(run, Options{Constraints: Constraints{MaxGroups: 3}, Objective: ObjectiveBalanced})
	if err != nil {
		t.Fatal(err)
	}
	vr, err := ReadRun("testdata/verify", run.Rate, false)
	if err != nil {
		t.Fatal(err)
	}
	m, best := rep.Model, rep.Search.Best
	if _, err := m.Verify(best, vr, "nosuch"); err == nil {
		t.Error("an architecture the run has not: no error")
	}
	v, err := m.Verify(best, vr, "advised")
	if err != nil {
		t.Fatal(err)
	}
	got, mono := vr.Measured["advised"], vr.Measured[Monolith]
	cpu := v.Rows[0]
	if cpu.Measured != got.CPUPerReqMS || cpu.Monolith != mono.CPUPerReqMS || cpu.Predicted != best.CPUPerReqMS ||
		math.Abs(cpu.Anchored-(mono.CPUPerReqMS+best.CPUPerReqMS-m.Mono.CPUPerReqMS)) > 1e-9 ||
		math.Abs(cpu.ErrorPct-ErrorPct(cpu.Anchored, cpu.Measured)) > 1e-9 || len(v.Rows) != 5 {
		t.Errorf("CPU row %+v against run %+v", cpu, got)
	}
	if v.OtherCores[0] <= 0 || v.OtherCores[1] <= 0 {
		t.Errorf("the run's noise figures: %v", v.OtherCores)
	}
	t.Logf("verification (run %s): CPU/req predicted %.2f, anchored %.2f, measured %.2f (%+.1f%%); p50 predicted %.2f, anchored %.2f, measured %.2f (%+.1f%%); others used %.2f/%.2f cores",
		vr.ID, cpu.Predicted, cpu.Anchored, cpu.Measured, cpu.ErrorPct, v.Rows[1].Predicted, v.Rows[1].Anchored, v.Rows[1].Measured, v.Rows[1].ErrorPct, v.OtherCores[0], v.OtherCores[1])
	rep.Verify = v
	var table, page bytes.Buffer
	if err := rep.Table(&table); err != nil {
		t.Fatal(err)
	}
	if err := rep.HTML(&page, "advised"); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{table.String(), page.String()} {
		if !strings.Contains(out, "CPU per request, ms") || !strings.Contains(out, "rest of the machine used") {
			t.Errorf("the verification is missing from:\n%s", out)
		}
	}
}

// A call is on the critical path when the path passes through it or anything under it: a
// call whose own time is all its children's is still waited for.
func TestOnPathTakesAncestors(t *testing.T) {
	root := &tracecompare.Span{Name: "root"}
	call := &tracecompare.Span{Name: "call", Parent: root}
	store := &tracecompare.Span{Name: "store", Parent: call}
	aside := &tracecompare.Span{Name: "aside", Parent: root}
	on := onPath(tracecompare.Path{Segments: []tracecompare.Segment{{Span: store}, {Span: root}}})
	if !on[root] || !on[call] || !on[store] || on[aside] {
		t.Errorf("on the path: %v", on)
	}
}

// A run whose services cost no more than its monolith cannot price a hop: said, not
// modelled with a free or negative hop.
func TestCalibrateRefusesAFreeHop(t *testing.T) {
	run, gm, gs := fixture(t)
	svc := *run.Measured[Services]
	svc.CPUPerReqMS = run.Measured[Monolith].CPUPerReqMS
	if _, err := Calibrate(gm, gs, run.Measured[Monolith], &svc); err == nil || !strings.Contains(err.Error(), "cannot price a hop") {
		t.Errorf("services as cheap as the monolith: %v", err)
	}
	other := *run.Measured[Monolith]
	other.Rate = 50
	if _, err := Calibrate(gm, gs, &other, run.Measured[Services]); err == nil {
		t.Error("two rates: no error")
	}
}
