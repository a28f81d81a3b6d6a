package topology

import (
	"os"
	"path/filepath"
	"slices"

	"strconv"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

func TestGetKnowsEachTopology(t *testing.T) {
	for _, tc := range []struct {
		name  string
		archs string
		edges string
	}{
		{Both, "monolith,services", "127.0.0.1:8080,127.0.0.1:8081"},
		{"", "monolith,services", "127.0.0.1:8080,127.0.0.1:8081"},
		{Monolith, "monolith", "127.0.0.1:8080"},
		{Services, "services", "127.0.0.1:8081"},
		{"monolith,services,hybrid", "monolith,services,hybrid", "127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082"},
		{"hybrid,both", "hybrid,monolith,services", "127.0.0.1:8082,127.0.0.1:8080,127.0.0.1:8081"},
	} {
		topo, err := Get(tc.name, Options{})
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		var archs, edges []string
		for _, a := range topo.Archs {
			archs = append(archs, a.Name)
			edges = append(edges, a.Edge)
			if _, ok := a.Service("nats"); !ok {
				t.Errorf("%s has no NATS of its own", a.Name)
			}
		}
		if strings.Join(archs, ",") != tc.archs || strings.Join(edges, ",") != tc.edges {
			t.Errorf("%q: archs %v edges %v", tc.name, archs, edges)
		}
	}
	beside, err := Get("hybrid", Options{Split: "catalog+inventory,cart+orders+payments,shipping+notify"})
	if err != nil || beside.Archs[0].Edge != "127.0.0.1:8082" || beside.Archs[1].Edge != "127.0.0.1:8083" {
		t.Errorf("a split beside the hybrid: %+v, %v; want the hybrid on 8082, the split on 8083", beside.Archs, err)
	}
	if _, err := Get("hybrid", Options{Split: "catalog+inventory,cart+orders+payments,shipping+notify",
		Edges: map[string]string{SplitName: "127.0.0.1:8082"}}); err == nil || !strings.Contains(err.Error(), "both want the edge") {
		t.Errorf("two architectures on one edge: %v", err)
	}
	_, err = Get("microliths", Options{})
	if err == nil || !strings.Contains(err.Error(), "hybrid, monolith, services") {
		t.Errorf("an unknown topology: %v, want an error listing the files", err)
	}
}

// The split of --split: a topology of its own, on its own edge, beside the named ones; and
// every mistake in it is named.
func TestSplit(t *testing.T) {
	topo, err := Get(Monolith, Options{Split: "catalog+inventory,cart+orders+payments,shipping+notify", Edges: map[string]string{SplitName: "127.0.0.1:18082"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Archs) != 2 || topo.Archs[1].Name != SplitName || topo.Archs[1].Edge != "127.0.0.1:18082" {
		t.Fatalf("archs %+v", topo.Archs)
	}
	a := topo.Archs[1]
	var names []string
	for _, s := range a.Services {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "nats,catalog-inventory,cart-payments-orders,shipping-notify,gateway" {
		t.Errorf("services %s", got)
	}
	o, _ := a.Service("cart-payments-orders")
	if o.Env["SHOP_GROUP"] != "cart+payments+orders" || o.Env[AddrEnv("catalog")] != "{{addr:catalog-inventory:9101}}" ||
		o.Env[AddrEnv("inventory")] != "{{addr:catalog-inventory:9101}}" || o.Env[AddrEnv("payments")] != "" || o.Ports[0] != 9102 {
		t.Errorf("cart+payments+orders: %+v", o)
	}
	for split, want := range map[string]string{
		"catalog+inventory,cart":                  "no group holds payments, orders, shipping, notify",
		"catalog,catalog+cart":                    "catalog is in two groups",
		"catalog,,cart":                           "empty group",
		"catalog+basket":                          `unknown context "basket"`,
		"edge,catalog+cart+inventory+orders,edge": "edge is in two groups",
	} {
		if _, err := Get("", Options{Split: split}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("split %q: %v, want an error saying %q", split, err, want)
		}
	}
}

func TestServicesArchListsEveryContextAndTheGateway(t *testing.T) {
	topo, err := Get(Services, Options{ServicesEdge: "127.0.0.1:18081"})
	if err != nil {
		t.Fatal(err)
	}
	a := topo.Archs[0]
	for _, c := range append(bounded.Names(), "gateway", "nats") {
		s, ok := a.Service(c)
		if !ok {
			t.Errorf("no %s service", c)
			continue
		}
		if s.CPUs <= 0 || s.MemoryMB <= 0 {
			t.Errorf("%s has no limits", c)
		}
	}
	if gw, _ := a.Service("gateway"); gw.Edge != "127.0.0.1:18081" || gw.Env["SHOP_GROUP"] != "edge" {
		t.Errorf("gateway %+v", gw)
	}
	if o, _ := a.Service("orders"); o.Ports[0] != 9105 || o.Probe.Kind != GRPC {
		t.Errorf("orders: ports %v probe %v", o.Ports, o.Probe)
	}
	// One image per group, linking only its contexts, and NATS's, the collector's and the
	// renewer's.
	if n := len(topo.Images()); n != 11 {
		t.Errorf("%d images, want 11 (nats-server, the gateway's, seven contexts', the collector, the renewer)", n)
	}
	for _, im := range topo.Images() {
		if im.Name == "orders" && strings.Join(im.Tags, ",") != "mitosis_group,mitosis_orders" {
			t.Errorf("orders' image is built with tags %v", im.Tags)
		}
	}
}

func TestLevelsStartDependenciesFirst(t *testing.T) {
	topo, err := Get(Services, Options{})
	if err != nil {
		t.Fatal(err)
	}
	levels, err := topo.Archs[0].Levels()
	if err != nil {
		t.Fatal(err)
	}
	at := map[string]int{}
	for i, l := range levels {
		for _, s := range l {
			at[s.Name] = i
		}
	}
	for _, s := range topo.Archs[0].Services {
		for _, d := range s.DependsOn {
			if at[d] >= at[s.Name] {
				t.Errorf("%s (level %d) starts no later than its dependency %s (level %d)", s.Name, at[s.Name], d, at[d])
			}
		}
	}
	if at["nats"] != 0 || at["gateway"] != len(levels)-1 {
		t.Errorf("levels: %v", at)
	}
	cyclic := Arch{Name: "x", Services: []Service{
		{Name: "a", DependsOn: []string{"b"}}, {Name: "b", DependsOn: []string{"a"}},
	}}
	if _, err := cyclic.Levels(); err == nil {
		t.Error("a dependency cycle was accepted")
	}
}

// Every way of placing the seven contexts, with the edge alone or in any of the groups, is
// a valid topology: each address a host is given is its peer's, each host is given the
// address of exactly the contexts it calls and does not hold, the start order has no cycle
// and starts each service after what it depends on, and the budget's parts add up. None is
// run here: the behaviour suite runs a random one in every `make test` (services/e2e).
func TestEveryPlacementIsAValidTopology(t *testing.T) {
	parts := Partitions(bounded.Names())
	if len(parts) != 877 {
		t.Fatalf("%d partitions of the seven contexts, want 877", len(parts))
	}
	placements := 0
	for _, p := range parts {
		var groups []string
		for _, g := range p {
			groups = append(groups, strings.Join(g, "+"))
		}
		for edge := -1; edge < len(groups); edge++ { // -1: the edge alone
			split := slices.Clone(groups)
			if edge >= 0 {
				split[edge] = "edge+" + split[edge]
			}
			placements++
			checkPlacement(t, strings.Join(split, ","))
		}
	}
	t.Logf("%d partitions, %d placements with the edge", len(parts), placements)
}

func checkPlacement(t *testing.T, split string) {
	t.Helper()
	b := Budget{CPUs: DefaultCPUs, MemoryMB: DefaultMemoryMB}
	topo, err := Get("", Options{Split: split, Collector: NoCollector, Budget: b})
	if err != nil {
		t.Fatalf("%s: %v", split, err)
	}
	a := topo.Archs[0]
	holder := map[string]Service{}
	for _, s := range a.Services {
		g, _ := bounded.ParseGroup(s.Group)
		for _, c := range g.Contexts {
			holder[c] = s
		}
		if g.Edge && s.Edge != a.Edge {
			t.Errorf("%s: the edge's service %s is published at %q, want %q", split, s.Name, s.Edge, a.Edge)
		}
	}
	milli, mem := 0, 0
	for _, s := range a.Services {
		milli += int(s.CPUs*1000 + 0.5)
		mem += s.MemoryMB
		if s.Name == "nats" {
			continue
		}
		g, _ := bounded.ParseGroup(s.Group)
		for _, c := range bounded.Names() {
			addr := s.Env[AddrEnv(c)]
			if !slices.Contains(g.Remote(), c) {
				if addr != "" {
					t.Errorf("%s: %s is told where %s is, which it does not call or holds", split, s.Name, c)
				}
				continue
			}
			h := holder[c]
			hg, _ := bounded.ParseGroup(h.Group)
			if want := "{{addr:" + h.Name + ":" + strconv.Itoa(grpcPort(hg)) + "}}"; addr != want || !slices.Contains(h.Ports, grpcPort(hg)) {
				t.Errorf("%s: %s reaches %s at %q, want %q", split, s.Name, c, addr, want)
			}
		}
	}
	if milli != int(b.CPUs*1000+0.5) || mem != b.MemoryMB {
		t.Errorf("%s: the budget adds up to %d millicores and %d MiB", split, milli, mem)
	}
	levels, err := a.Levels()
	if err != nil {
		t.Fatalf("%s: %v", split, err)
	}
	at := map[string]int{}
	for i, l := range levels {
		for _, s := range l {
			at[s.Name] = i
		}
	}
	for _, s := range a.Services {
		for _, d := range s.DependsOn {
			if at[d] >= at[s.Name] {
				t.Errorf("%s: %s starts no later than %s, which it depends on", split, s.Name, d)
			}
		}
		// A runtime waits for a level to be ready before it starts the next, and a host is
		// ready only once what it calls answers: what it calls must not start after it.
		if s.Name == "nats" {
			continue
		}
		g, _ := bounded.ParseGroup(s.Group)
		for _, c := range g.Remote() {
			if h := holder[c]; at[h.Name] > at[s.Name] {
				t.Errorf("%s: %s calls %s, which starts a level after it: up would wait for it forever", split, s.Name, h.Name)
			}
		}
	}
}

// Every topology file reads, names itself after its file, and places every context.
func TestTopologyFiles(t *testing.T) {
	files, err := Available("")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]File{}
	for _, f := range files {
		byName[f.Name] = f
	}
	for _, name := range []string{Monolith, Services, "hybrid"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("no topologies/%s.yaml", name)
		}
	}
	if h := byName["hybrid"]; len(h.Groups) < 3 {
		t.Errorf("the hybrid has %d groups, want at least 3", len(h.Groups))
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"named-wrong": "name: other\ngroups: [{contexts: [edge, catalog, cart, inventory, payments, orders, shipping, notify]}]\n",
		"unknown":     "name: unknown\ngroups: [{contexts: [catalog, basket]}]\n",
		"extra":       "name: extra\nshards: 3\ngroups: [{contexts: [edge, catalog, cart, inventory, payments, orders, shipping, notify]}]\n",
	} {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(path); err == nil {
			t.Errorf("%s was read", name)
		}
	}
}

func TestExpandResolvesPlaceholders(t *testing.T) {
	topo, err := Get(Monolith, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := topo.Archs[0]
	r := Resolver{
		Addr: func(svc string, port int) (string, error) {
			if port == 0 {
				s, _ := a.Service(svc)
				port = s.Ports[0]
			}
			return svc + ":" + strconv.Itoa(port), nil
		},
		Listen:     func(port int) string { return "0.0.0.0:" + strconv.Itoa(port) },
		Data:       "/data",
		AdminToken: "secret",
	}
	mono, _ := a.Service("monolith")
	_, env, err := Expand(mono, r)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"SHOP_ADDR":        "0.0.0.0:8080",
		"SHOP_NATS_URL":    "nats://nats:4222",
		"SHOP_ADMIN_TOKEN": "secret",
		"SHOP_GROUP":       "edge+catalog+cart+inventory+payments+orders+shipping+notify",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	nats, _ := a.Service("nats")
	args, _, err := Expand(nats, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args, " "); got != "-addr 0.0.0.0:4222 -http 0.0.0.0:8222 -store /data -metrics 0.0.0.0:9464" {
		t.Errorf("nats args %q", got)
	}
	bad := Service{Name: "x", Ports: []int{1}, Args: []string{"{{listen:2}}"}}
	if _, _, err := Expand(bad, r); err == nil {
		t.Error("a port the service does not have was expanded")
	}
	bad.Args = []string{"{{nonsense}}"}
	if _, _, err := Expand(bad, r); err == nil {
		t.Error("an unknown placeholder was expanded")
	}
}

func TestEveryArchitectureGetsTheSameBudget(t *testing.T) {
	for _, b := range []Budget{{}, {CPUs: 2, MemoryMB: 1024}, {CPUs: 0.75, MemoryMB: 400}} {
		topo, err := Get(Both, Options{Budget: b})
		if err != nil {
			t.Fatalf("%+v: %v", b, err)
		}
		want := b
		if want.CPUs == 0 {
			want = Budget{CPUs: DefaultCPUs, MemoryMB: DefaultMemoryMB}
		}
		if topo.Budget != want {
			t.Errorf("%+v: topology says its budget is %+v", b, topo.Budget)
		}
		for _, a := range topo.Archs {
			milli, mem := 0, 0
			for _, s := range a.Services {
				if s.CPUs*1000 < minMilliCPU || s.MemoryMB < minMemoryMB {
					t.Errorf("%+v: %s/%s gets %g CPUs and %d MiB, under the floor", b, a.Name, s.Name, s.CPUs, s.MemoryMB)
				}
				if s.Env["GOMEMLIMIT"] != strconv.Itoa(s.MemoryMB*3/4)+"MiB" {
					t.Errorf("%s/%s: GOMEMLIMIT %q with %d MiB", a.Name, s.Name, s.Env["GOMEMLIMIT"], s.MemoryMB)
				}
				milli += int(s.CPUs*1000 + 0.5)
				mem += s.MemoryMB
			}
			if milli != int(want.CPUs*1000+0.5) || mem != want.MemoryMB {
				t.Errorf("%+v: %s adds up to %d millicores and %d MiB, want %g CPUs and %d MiB", b, a.Name, milli, mem, want.CPUs, want.MemoryMB)
			}
		}
	}
	mono, _ := Get(Monolith, Options{})
	m, _ := mono.Archs[0].Service("monolith")
	n, _ := mono.Archs[0].Service("nats")
	if m.CPUs <= n.CPUs {
		t.Errorf("the monolith gets %g CPUs, no more than its NATS (%g)", m.CPUs, n.CPUs)
	}
	if _, err := Get(Services, Options{Budget: Budget{CPUs: 0.2, MemoryMB: 640}}); err == nil {
		t.Error("a budget below the floors of nine services was accepted")
	}
}

func TestCollectorServesEveryArchitecture(t *testing.T) {
	topo, err := Get(Monolith, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, ok := topo.CollectorArch()
	if !ok || len(c.Services) != 1 || c.Name != Telemetry {
		t.Fatalf("collector arch %+v, %v", c, ok)
	}
	svc := c.Services[0]
	if svc.Edge != DefaultCollectorEdge || svc.Publish[CollectorHTTPPort] != "127.0.0.1:4318" || svc.Publish[CollectorGRPCPort] != "127.0.0.1:4317" {
		t.Errorf("collector edge %q, publish %v", svc.Edge, svc.Publish)
	}
	if all := topo.AllArchs(); len(all) != 3 || all[0].Name != Telemetry || all[2].Name != Renewer {
		t.Errorf("AllArchs: %s first, %s last of %d", all[0].Name, all[len(all)-1].Name, len(all))
	}
	free, err := Get(Monolith, Options{Collector: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if free.Collector.Edge != "" || free.Collector.Publish[CollectorHTTPPort] != "" {
		t.Errorf("port 0: edge %q publish %v, want any ports", free.Collector.Edge, free.Collector.Publish)
	}
	none, err := Get(Both, Options{Collector: NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := none.CollectorArch(); ok || len(none.AllArchs()) != 3 || none.AllArchs()[2].Name != Renewer {
		t.Error("NoCollector still has a collector")
	}
	if _, err := Get(Both, Options{Collector: "no-port"}); err == nil {
		t.Error("a collector edge without a port was accepted")
	}
}

// A service exports to the stack's collector; without one, nowhere, unless the caller named
// an endpoint of its own (the specification's default would reach whatever listens on
// localhost:4318).
func TestExportEnv(t *testing.T) {
	if got := ExportEnv("127.0.0.1:4318", nil); got["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://127.0.0.1:4318" || got["OTEL_TRACES_EXPORTER"] != "" ||
		got["OTEL_METRIC_EXPORT_INTERVAL"] != "10000" {
		t.Errorf("with a collector: %v", got)
	}
	if got := ExportEnv("", map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}); got["OTEL_TRACES_EXPORTER"] != "none" || got["OTEL_METRICS_EXPORTER"] != "none" {
		t.Errorf("without one: %v", got)
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if got := ExportEnv("", map[string]string{k: "http://127.0.0.1:9"}); len(got) != 0 {
			t.Errorf("the caller's %s: %v, want nothing added", k, got)
		}
	}
}
