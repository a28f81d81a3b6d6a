package topology

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// group is one group of a placement, with what a topology file may say of it.
type group struct {
	bounded.Group
	name     string         // its service's name; "" for the default
	replicas int            // 1 unless a file says more
	weight   bounded.Weight // zero for the default: its contexts'
}

func (g group) serviceName() string {
	if g.name != "" {
		return g.name
	}
	return g.Name()
}

// weightOf is the group's share of a budget: its file's, else what its contexts (and the
// edge) weigh together in the table.
func (g group) weightOf() bounded.Weight {
	if g.weight.CPU > 0 && g.weight.Memory > 0 {
		return g.weight
	}
	var w bounded.Weight
	for _, name := range g.Contexts {
		c, _ := bounded.Lookup(name)
		w = w.Add(c.Weight)
	}
	if g.Edge {
		w = w.Add(bounded.Edge{}.Weight())
	}
	if g.weight.CPU > 0 {
		w.CPU = g.weight.CPU
	}
	if g.weight.Memory > 0 {
		w.Memory = g.weight.Memory
	}
	return w
}

// FromSplit is the architecture name placed as split writes it (bounded.ParseSplit, each
// group maybe followed by "*N", its replicas), its edge at edge.
func FromSplit(name, edge, split string) (Arch, error) {
	groups, err := splitGroups(split)
	if err != nil {
		return Arch{}, err
	}
	return newArch(name, edge, groups)
}

// splitGroups are the groups of a split as --split writes it, each with its replicas.
func splitGroups(split string) ([]group, error) {
	plain, replicas, err := splitReplicas(split)
	if err != nil {
		return nil, fmt.Errorf("split %q: %w", split, err)
	}
	s, err := bounded.ParseSplit(plain)
	if err != nil {
		return nil, fmt.Errorf("split %q: %w", split, err)
	}
	groups := make([]group, len(s))
	for i, g := range s {
		groups[i] = group{Group: g, replicas: 1}
		if i < len(replicas) { // the edge alone, added last, runs alone
			groups[i].replicas = replicas[i]
		}
	}
	return groups, nil
}

// EdgePort is the container port of every edge; the host port is the architecture's Edge.
const EdgePort = 8080

// MetricsPort is the container port where every process of a stack (hosts, NATS, the
// collector) answers Prometheus's scrapes (/metrics): the port OpenTelemetry's Prometheus
// exporter is registered with. The process
// runtime gives a process this number when it is free and any other port when it is not;
// Podman publishes it on 127.0.0.1 at a port of its choosing.
const MetricsPort = 9464

// HealthPort is the container port where a process that serves gRPC only answers its
// orchestrator's probes over plain HTTP (/healthz, /readyz; services/host, SHOP_HEALTH_ADDR)
// in the Kubernetes overlays, whose probes present no certificate to a port that requires
// one. The runtimes here probe gRPC health with the stack's own certificate instead, and
// give no process this port.
const HealthPort = 9465

// ShopPackage is the main package of every group's image: the host, told its group by
// SHOP_GROUP, built with the group's tags (bounded.Group.BuildTags).
const ShopPackage = "./services/shop"

// newArch is the architecture of a placement: its NATS, and one service per group running
// the host with the group's contexts, reaching the others' at their services.
func newArch(name, edge string, groups []group) (Arch, error) {
	if strings.ContainsAny(name, " ,/+") || name == "" {
		return Arch{}, fmt.Errorf("architecture name %q: want letters, digits and '-'", name)
	}
	var split []string
	holder := map[string]group{} // context → the group that runs it
	for _, g := range groups {
		if err := checkReplicas(name, g); err != nil {
			return Arch{}, err
		}
		part := g.String()
		if g.replicas > 1 {
			part += "*" + strconv.Itoa(g.replicas)
		}
		split = append(split, part)
		for _, c := range g.Contexts {
			holder[c] = g
		}
	}
	a := Arch{Name: name, Edge: edge, Split: strings.Join(split, ","), Services: []Service{nats()}}
	names := map[string]bool{NATSService: true}
	called := map[string]bool{} // contexts another group calls
	for _, g := range groups {
		for _, c := range g.Remote() {
			called[c] = true
		}
	}
	for _, g := range groups {
		svc := g.serviceName()
		if names[svc] {
			return Arch{}, fmt.Errorf("%s: two services named %s", name, svc)
		}
		names[svc] = true
		env := map[string]string{
			"SHOP_GROUP":        g.String(),
			"SHOP_ARCH":         name,
			"OTEL_SERVICE_NAME": svc,
			"SHOP_SOLE_REPLICA": strconv.FormatBool(g.replicas == 1),
		}
		// One image per group, named after its contexts, linking only them: a change to one
		// context's implementation remakes only the images (and pods) of its group.
		s := Service{Name: svc, Image: g.Name(), Package: ShopPackage, Group: g.String(), Env: env, weight: g.weightOf(),
			Replicas: g.replicas}
		if g.Edge {
			s.Ports = append(s.Ports, EdgePort)
			s.Edge = edge
			env[bounded.AddrEnv] = "{{listen:" + strconv.Itoa(EdgePort) + "}}"
			env["SHOP_ADMIN_TOKEN"] = "{{admin_token}}"
			s.Probe = Probe{Kind: HTTP, Port: EdgePort, Path: "/readyz"}
		}
		if len(g.Contexts) > 0 {
			// With the process's NATS user, where the runtime gives one (platform/natsauth).
			env[NATSURLEnv] = "{{nats_url:" + NATSService + "}}"
			s.DependsOn = append(s.DependsOn, NATSService)
		}
		for _, name := range g.Contexts {
			c, _ := bounded.Lookup(name)
			for _, name := range c.Secrets {
				v, err := secret(name)
				if err != nil {
					return Arch{}, fmt.Errorf("%s/%s: %w", a.Name, svc, err)
				}
				env[name] = v
			}
		}
		// gRPC for the contexts others call, and for health where there is no edge: a
		// group of the edge and contexts nobody else calls (the monolith) serves none.
		if len(g.Contexts) > 0 && (!g.Edge || slices.ContainsFunc(g.Contexts, func(c string) bool { return called[c] })) {
			port := grpcPort(g.Group)
			s.Ports = append(s.Ports, port)
			env["SHOP_GRPC_ADDR"] = "{{listen:" + strconv.Itoa(port) + "}}"
			if !g.Edge {
				s.Probe = Probe{Kind: GRPC, Port: port}
			}
		}
		// Mutual TLS for whatever serves or calls gRPC, or talks to NATS (services/host): the
		// runtime hands the process its identity's folder.
		if _, grpc := env["SHOP_GRPC_ADDR"]; grpc || len(g.Remote()) > 0 || len(g.Contexts) > 0 {
			env[TLSDirEnv] = "{{tls}}"
		}
		// Every process answers Prometheus's scrapes on a port of its own (published on
		// 127.0.0.1 like every port; `mitosis status` says where).
		s.Ports = append(s.Ports, MetricsPort)
		env[bounded.MetricsAddrEnv] = "{{listen:" + strconv.Itoa(MetricsPort) + "}}"
		for _, c := range g.Remote() {
			h := holder[c]
			env[AddrEnv(c)] = "{{addr:" + h.serviceName() + ":" + strconv.Itoa(grpcPort(h.Group)) + "}}"
			if dep := h.serviceName(); !slices.Contains(s.DependsOn, dep) {
				s.DependsOn = append(s.DependsOn, dep)
			}
		}
		a.Services = append(a.Services, s)
	}
	breakCycles(&a)
	return a, nil
}

// TLSDirEnv is the variable of a process's identity folder (services/host.TLSDirEnv).
const TLSDirEnv = "SHOP_TLS_DIR"

// TLSMount is where a container finds its identity folder (SHOP_TLS_DIR), mounted read-only:
// from the stack's PKI in Podman, from a Secret in Kubernetes.
const TLSMount = "/etc/mitosis/tls"

// InsecureEnv turns mutual TLS and authorization off (services/host.InsecureEnv): only an
// up asked for it (stack.UpOptions.Insecure) sets it, to measure what security costs.
const InsecureEnv = "SHOP_INSECURE"

// secret is the placeholder of a secret a context reads (bounded.Context.Secrets).
func secret(env string) (string, error) {
	switch env {
	case bounded.RequestKeyEnv:
		return "{{request_key}}", nil
	}
	return "", fmt.Errorf("no runtime knows the secret %s", env)
}

// grpcPort is where a group's contexts answer: its first context's port (DESIGN.md: 9101
// and up, in table order).
func grpcPort(g bounded.Group) int {
	c, _ := bounded.Lookup(g.Contexts[0])
	return c.Port
}

// AddrEnv is the variable that tells a host where a context runs, e.g. SHOP_CATALOG_ADDR.
func AddrEnv(context string) string { return "SHOP_" + strings.ToUpper(context) + "_ADDR" }

// breakCycles drops the start-order dependencies between services that call each other:
// the edge's group holding orders' peers while orders runs apart, say. Their readiness
// follows the calls between contexts, which have no cycle (services/host), so such services
// start together and each becomes ready once what its own contexts call is. Together means
// at one level: each member of a cycle takes on the others' dependencies outside it, or one
// that depends on less would start, and wait to be ready, before the others start at all.
func breakCycles(a *Arch) {
	deps := map[string][]string{}
	for _, s := range a.Services {
		deps[s.Name] = s.DependsOn
	}
	reaches := func(from, to string) bool {
		seen := map[string]bool{}
		var walk func(string) bool
		walk = func(n string) bool {
			if n == to {
				return true
			}
			if seen[n] {
				return false
			}
			seen[n] = true
			return slices.ContainsFunc(deps[n], walk)
		}
		return slices.ContainsFunc(deps[from], walk)
	}
	for i := range a.Services {
		s := &a.Services[i]
		// Its cycle: itself and every service it reaches that reaches it back.
		cycle := []string{s.Name}
		for _, o := range a.Services {
			if o.Name != s.Name && reaches(s.Name, o.Name) && reaches(o.Name, s.Name) {
				cycle = append(cycle, o.Name)
			}
		}
		var out []string
		for _, member := range cycle {
			for _, d := range deps[member] {
				if !slices.Contains(cycle, d) && !slices.Contains(out, d) {
					out = append(out, d)
				}
			}
		}
		s.DependsOn = out
	}
}
