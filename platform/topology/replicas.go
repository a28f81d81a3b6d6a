package topology

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// Replicas. A group may run as several processes, its replicas: `replicas: N` in a topology
// file's group, or `*N` after a group of --split ("edge,catalog*2,cart+orders,..."). The
// runtimes run each as a process (a pod in Podman) of its own, named <service>-1 ...
// <service>-N (Service.Processes), with its own ports and, in Podman, its own fixed address
// and DNS name. Callers reach all of them: {{addr:SVC:PORT}} expands to every replica's
// address, comma-separated (Arch.Addr), which a host dials as one peer whose calls gRPC
// balances round robin over the replicas it is connected to (services/host.Dial): a replica
// that is down is not connected, so not picked.
//
// The group's share of the budget is what it would be with one process, split evenly among
// its replicas (see share): replicas spread a group's work, they do not add to the
// architecture's budget.
//
// The group that holds the edge runs alone: its replicas would each need the edge's host
// port, and nothing on one machine stands in front of them to share it out (a cluster's
// Service or load balancer does that; see platform/manifests).

// MaxReplicas bounds a group's replicas: on one machine more would only share out the same
// budget ever thinner.
const MaxReplicas = 16

// Replica is one process of a service.
type Replica struct {
	Name string // the service's name when it runs alone, else <service>-<N>
	N    int    // 1 to Service.Replicas among several; 0 when the service runs alone
}

// Count is how many processes run the service.
func (s Service) Count() int { return max(s.Replicas, 1) }

// Processes lists the service's processes: one named after it, or Replicas of them named
// <name>-1 and up.
func (s Service) Processes() []Replica {
	if s.Count() == 1 {
		return []Replica{{Name: s.Name}}
	}
	out := make([]Replica, s.Count())
	for i := range out {
		out[i] = Replica{Name: ReplicaName(s.Name, i+1), N: i + 1}
	}
	return out
}

// ReplicaName is the name of replica n (from 1) of the service svc.
func ReplicaName(svc string, n int) string { return svc + "-" + strconv.Itoa(n) }

// Addr resolves {{addr:svc:port}} for a runtime: at(process, port) for each process of svc,
// joined by commas. port 0 means svc's first port.
func (a Arch) Addr(svc string, port int, at func(process string, port int) string) (string, error) {
	s, ok := a.Service(svc)
	if !ok {
		return "", fmt.Errorf("unknown service %s", svc)
	}
	if port == 0 {
		port = s.Ports[0]
	}
	var addrs []string
	for _, p := range s.Processes() {
		addrs = append(addrs, at(p.Name, port))
	}
	return strings.Join(addrs, ","), nil
}

// ScaledSplit is the placement of a with the service svc run by n replicas, as --split
// writes it: the variant of an architecture that the load test's scaling gain compares with
// it, at the same budget. A topology file's own names and weights are not kept (a split has
// none): the variant of a file that sets them is a file of its own.
func (a Arch) ScaledSplit(svc string, n int) (string, error) {
	s, ok := a.Service(svc)
	if !ok || s.Group == "" {
		return "", fmt.Errorf("%s has no group named %s", a.Name, svc)
	}
	parts := strings.Split(a.Split, ",")
	found := false
	for i, part := range parts {
		g, _, _ := strings.Cut(part, "*")
		if g != s.Group {
			continue
		}
		found = true
		parts[i] = g
		if n > 1 {
			parts[i] += "*" + strconv.Itoa(n)
		}
	}
	if !found {
		return "", fmt.Errorf("%s: no group %s in its placement %q", a.Name, s.Group, a.Split)
	}
	split := strings.Join(parts, ",")
	if _, err := FromSplit(a.Name, a.Edge, split); err != nil {
		return "", err
	}
	return split, nil
}

// checkReplicas refuses replicas for the group holding the edge (see the doc above) and
// counts outside 1..MaxReplicas.
func checkReplicas(arch string, g group) error {
	switch {
	case g.replicas < 1 || g.replicas > MaxReplicas:
		return fmt.Errorf("%s/%s: %d replicas, want 1 to %d", arch, g.serviceName(), g.replicas, MaxReplicas)
	case g.replicas > 1 && g.Edge:
		return fmt.Errorf("%s/%s: %d replicas of the group that holds the edge: each would need the edge's host port, and nothing here stands in front of them to share it out; give the edge a group of its own (it needs little) and the replicas to the contexts' groups",
			arch, g.serviceName(), g.replicas)
	}
	return nil
}

// splitReplicas reads the "*N" after each group of a --split, and returns the split without
// them, as bounded.ParseSplit reads it, and each group's replicas (1 where none is given).
func splitReplicas(split string) (string, []int, error) {
	parts := strings.Split(split, ",")
	replicas := make([]int, len(parts))
	for i, part := range parts {
		replicas[i] = 1
		g, n, ok := strings.Cut(part, "*")
		if !ok {
			continue
		}
		r, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || r < 1 || r > MaxReplicas {
			return "", nil, fmt.Errorf("group %q: replicas %q, want a number from 1 to %d after the '*'", part, n, MaxReplicas)
		}
		parts[i], replicas[i] = g, r
	}
	return strings.Join(parts, ","), replicas, nil
}

// EnvSetting is one variable given to the services that run a target, as `mitosis up --env
// TARGET:KEY=VALUE` writes it. TARGET is a service's name (gateway, catalog-inventory,
// monolith) or a context's (or "edge"), meaning the service that runs it, optionally after
// "ARCH/" to mean that architecture's only: "orders:FLAG=on" is the orders service of the
// microservices and the monolith itself. A changed variable remakes those services, and only
// them: the harmless change a rolling re-up is tried with.
type EnvSetting struct {
	Arch   string // "" for every architecture
	Target string
	Key    string
	Value  string
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseEnv reads [ARCH/]TARGET:KEY=VALUE.
func ParseEnv(s string) (EnvSetting, error) {
	target, kv, ok := strings.Cut(s, ":")
	key, value, ok2 := strings.Cut(kv, "=")
	if !ok || !ok2 || target == "" {
		return EnvSetting{}, fmt.Errorf("--env %q: want [ARCH/]TARGET:KEY=VALUE, TARGET a service or a context", s)
	}
	e := EnvSetting{Target: target, Key: key, Value: value}
	if arch, t, ok := strings.Cut(target, "/"); ok {
		e.Arch, e.Target = arch, t
	}
	if !envKey.MatchString(key) {
		return EnvSetting{}, fmt.Errorf("--env %q: %q is not a variable name (letters, digits and '_', not first a digit)", s, key)
	}
	if strings.ContainsRune(value, 0) {
		return EnvSetting{}, fmt.Errorf("--env %q: a value cannot hold a NUL", s)
	}
	return e, nil
}

func (e EnvSetting) String() string {
	t := e.Target
	if e.Arch != "" {
		t = e.Arch + "/" + t
	}
	return t + ":" + e.Key + "=" + e.Value
}

// runs tells whether s is the target's service: named so, or running the context named so.
func (e EnvSetting) runs(s Service) bool {
	if s.Name == e.Target {
		return true
	}
	g, err := bounded.ParseGroup(s.Group)
	if err != nil || s.Group == "" {
		return false
	}
	return slices.Contains(g.Contexts, e.Target) || (e.Target == bounded.EdgeName && g.Edge)
}

// applyEnv adds each setting to the services it targets. A variable the topology sets is
// the service's wiring, not a setting: it is refused, as is a target no service runs.
func applyEnv(archs []Arch, settings []EnvSetting) error {
	for _, e := range settings {
		found := false
		for ai := range archs {
			a := &archs[ai]
			if e.Arch != "" && e.Arch != a.Name {
				continue
			}
			for si := range a.Services {
				s := &a.Services[si]
				if !e.runs(*s) {
					continue
				}
				found = true
				if _, wired := s.Env[e.Key]; wired {
					return fmt.Errorf("--env %s: %s/%s's %s is set by the topology (its wiring), not a setting", e, a.Name, s.Name, e.Key)
				}
			}
		}
		if !found {
			return fmt.Errorf("--env %s: no service of %s runs %s", e, archList(archs, e.Arch), e.Target)
		}
	}
	for _, e := range settings {
		for ai := range archs {
			a := &archs[ai]
			for si := range a.Services {
				if (e.Arch == "" || e.Arch == a.Name) && e.runs(a.Services[si]) {
					a.Services[si].Env[e.Key] = e.Value
				}
			}
		}
	}
	return nil
}

func archList(archs []Arch, only string) string {
	if only != "" {
		return only
	}
	var names []string
	for _, a := range archs {
		names = append(names, a.Name)
	}
	return strings.Join(names, ", ")
}
