package topology

import (
	"strconv"
	"strings"
	"testing"
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
	if _, err := Get("microliths", Options{}); err == nil {
		t.Error("an unknown topology was accepted")
	}
}

func TestServicesArchListsEveryContextAndTheGateway(t *testing.T) {
	topo, err := Get(Services, Options{ServicesEdge: "127.0.0.1:18081"})
	if err != nil {
		t.Fatal(err)
	}
	a := topo.Archs[0]
	for _, c := range append(Contexts(), "gateway", "nats") {
		s, ok := a.Service(c)
		if !ok {
			t.Errorf("no %s service", c)
			continue
		}
		if s.CPUs <= 0 || s.MemoryMB <= 0 {
			t.Errorf("%s has no limits", c)
		}
	}
	if gw, _ := a.Service("gateway"); gw.Edge != "127.0.0.1:18081" {
		t.Errorf("gateway edge %q", gw.Edge)
	}
	if o, _ := a.Service("orders"); o.Ports[0] != 9105 || o.Probe.Kind != GRPC {
		t.Errorf("orders: ports %v probe %v", o.Ports, o.Probe)
	}
	if n := len(topo.Images()); n != 10 {
		t.Errorf("%d images, want 10 (nats-server, seven contexts, gateway, collector)", n)
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
		"SHOP_DATA_DIR":    "/data",
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
	if got := strings.Join(args, " "); got != "-addr 0.0.0.0:4222 -http 0.0.0.0:8222 -store /data" {
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
	if all := topo.AllArchs(); len(all) != 2 || all[0].Name != Telemetry {
		t.Errorf("AllArchs starts with %s of %d", all[0].Name, len(all))
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
	if _, ok := none.CollectorArch(); ok || len(none.AllArchs()) != 2 {
		t.Error("NoCollector still has a collector")
	}
	if _, err := Get(Both, Options{Collector: "no-port"}); err == nil {
		t.Error("a collector edge without a port was accepted")
	}
}
