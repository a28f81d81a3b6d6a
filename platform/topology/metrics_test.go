package topology

import (
	"slices"
	"strconv"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Every host service of every architecture, replicated or not, has the metrics port among
// its ports and is told to listen there, where the runtime resolves that port for each of its
// processes; NATS and the collector, which run no host, are not.
func TestEveryHostProcessHasAMetricsPort(t *testing.T) {
	top, err := Get("monolith,services,hybrid", Options{Split: "edge,catalog*2,cart+inventory+payments+orders,shipping+notify", Edges: map[string]string{"hybrid": "127.0.0.1:8082", SplitName: "127.0.0.1:8083"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range top.AllArchs() {
		for _, s := range a.Services {
			if s.Group == "" {
				if slices.Contains(s.Ports, MetricsPort) || s.Env[bounded.MetricsAddrEnv] != "" {
					t.Errorf("%s/%s runs no host, yet has the metrics port", a.Name, s.Name)
				}
				continue
			}
			if !slices.Contains(s.Ports, MetricsPort) || s.Ports[0] == MetricsPort {
				t.Errorf("%s/%s: ports %v, want %d among them, not first (the probe's and the edge's)", a.Name, s.Name, s.Ports, MetricsPort)
			}
			_, env, err := Expand(s, Resolver{
				Addr:   func(string, int) (string, error) { return "peer", nil },
				Listen: func(port int) string { return "127.0.0.1:" + strconv.Itoa(40000+port) },
			})
			if err != nil {
				t.Fatalf("%s/%s: %v", a.Name, s.Name, err)
			}
			if got, want := env[bounded.MetricsAddrEnv], "127.0.0.1:"+strconv.Itoa(40000+MetricsPort); got != want {
				t.Errorf("%s/%s: %s=%q, want %q", a.Name, s.Name, bounded.MetricsAddrEnv, got, want)
			}
		}
	}
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
}
