package topology

import (
	"slices"
	"strconv"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Every service of every architecture, replicated or not, NATS and the collector included,
// has the metrics port among its ports and is told to listen there, where the runtime
// resolves that port for each of its processes.
func TestEveryHostProcessHasAMetricsPort(t *testing.T) {
	top, err := Get("monolith,services,hybrid", Options{Split: "edge,catalog*2,cart+inventory+payments+orders,shipping+notify", Edges: map[string]string{"hybrid": "127.0.0.1:8082", SplitName: "127.0.0.1:8083"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range top.AllArchs() {
		for _, s := range a.Services {
			if !slices.Contains(s.Ports, MetricsPort) || s.Ports[0] == MetricsPort {
				t.Errorf("%s/%s: ports %v, want %d among them, not first (the probe's and the edge's)", a.Name, s.Name, s.Ports, MetricsPort)
			}
			args, env, err := Expand(s, Resolver{
				Addr:   func(string, int) (string, error) { return "peer", nil },
				Listen: func(port int) string { return "127.0.0.1:" + strconv.Itoa(40000+port) },
			})
			if err != nil {
				t.Fatalf("%s/%s: %v", a.Name, s.Name, err)
			}
			want := "127.0.0.1:" + strconv.Itoa(40000+MetricsPort)
			if s.Group == "" { // NATS and the collector: a flag
				if i := slices.Index(args, "-metrics"); i < 0 || i+1 == len(args) || args[i+1] != want {
					t.Errorf("%s/%s: arguments %v, want -metrics %s", a.Name, s.Name, args, want)
				}
				continue
			}
			if got := env[bounded.MetricsAddrEnv]; got != want {
				t.Errorf("%s/%s: %s=%q, want %q", a.Name, s.Name, bounded.MetricsAddrEnv, got, want)
			}
		}
	}
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
}
