package manifests

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
)

// pod is a pod as NetworkPolicies see it: its namespace and labels.
type pod struct {
	ns     string
	labels map[string]string
}

func (p pod) String() string { return p.ns + "/" + p.labels[LabelName] }

// netModel evaluates NetworkPolicies as Kubernetes defines them: a pod selected by a policy
// of a direction is isolated that way, and then reachable only as a rule of one of those
// policies allows; a connection needs the source's egress and the destination's ingress.
type netModel struct{ policies []NetworkPolicy }

func selectorMatches(s *PolicySelector, labels map[string]string) bool {
	if s == nil {
		return true
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// peerMatches reports whether peer, in a policy of namespace ns, is the pod p.
func peerMatches(peer PolicyPeer, ns string, p pod) bool {
	if peer.NamespaceSelector == nil {
		return p.ns == ns && selectorMatches(peer.PodSelector, p.labels)
	}
	return selectorMatches(peer.NamespaceSelector, map[string]string{namespaceLabel: p.ns}) &&
		selectorMatches(peer.PodSelector, p.labels)
}

// allows reports whether the policies of subject's namespace let it talk to other (ingress:
// other calls subject; egress: subject calls other) on port.
func (m netModel) allows(dir string, subject, other pod, port PolicyPort) bool {
	isolated := false
	for _, np := range m.policies {
		if np.Metadata.Namespace != subject.ns || !slices.Contains(np.Spec.PolicyTypes, dir) ||
			!selectorMatches(&np.Spec.PodSelector, subject.labels) {
			continue
		}
		isolated = true
		rules, peers := np.Spec.Ingress, func(r PolicyRule) []PolicyPeer { return r.From }
		if dir == PolicyEgress {
			rules, peers = np.Spec.Egress, func(r PolicyRule) []PolicyPeer { return r.To }
		}
		for _, r := range rules {
			peerOK := len(peers(r)) == 0 || slices.ContainsFunc(peers(r), func(pe PolicyPeer) bool { return peerMatches(pe, np.Metadata.Namespace, other) })
			portOK := len(r.Ports) == 0 || slices.Contains(r.Ports, port)
			if peerOK && portOK {
				return true
			}
		}
	}
	return !isolated
}

// connects reports whether from may open a connection to to's port.
func (m netModel) connects(from, to pod, port PolicyPort) bool {
	return m.allows(PolicyEgress, from, to, port) && m.allows(PolicyIngress, to, from, port)
}

// decodePolicies reads the NetworkPolicies of a rendered overlay back, strictly: a field
// networking.k8s.io/v1 does not have, or that the renderer's types lack, fails.
func decodePolicies(t *testing.T, objs []Object) []NetworkPolicy {
	t.Helper()
	b, err := MarshalObjects(objs)
	if err != nil {
		t.Fatal(err)
	}
	var out []NetworkPolicy
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if !strings.Contains(doc, "kind: NetworkPolicy") {
			continue
		}
		var np NetworkPolicy
		if err := yaml.UnmarshalStrict([]byte(doc), &np); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		if np.APIVersion != "networking.k8s.io/v1" || np.Metadata.Name == "" || len(np.Spec.PolicyTypes) == 0 {
			t.Errorf("NetworkPolicy %+v: apiVersion, name and policyTypes are required", np)
		}
		for _, pt := range np.Spec.PolicyTypes {
			if pt != PolicyIngress && pt != PolicyEgress {
				t.Errorf("NetworkPolicy %s: policy type %q", np.Metadata.Name, pt)
			}
		}
		for _, r := range append(slices.Clone(np.Spec.Ingress), np.Spec.Egress...) {
			for _, p := range r.Ports {
				if (p.Protocol != "TCP" && p.Protocol != "UDP") || p.Port < 1 || p.Port > 65535 {
					t.Errorf("NetworkPolicy %s: port %+v", np.Metadata.Name, p)
				}
			}
			for _, pe := range append(slices.Clone(r.From), r.To...) {
				if pe.PodSelector == nil && pe.NamespaceSelector == nil {
					t.Errorf("NetworkPolicy %s: a peer selecting nothing", np.Metadata.Name)
				}
			}
		}
		out = append(out, np)
	}
	return out
}

// containerPort is the port of the workload's container named name, 0 if none.
func containerPort(tmpl *PodTemplate, name string) int32 {
	for _, p := range tmpl.Spec.Containers[0].Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkPolicies checks an overlay's NetworkPolicies against the table: every call of
// bounded.Access between two services is let through, to the callee's gRPC port; no other
// service reaches a gRPC port; NATS only from the services that use it; the edge from
// anywhere; metrics from Prometheus; DNS from everyone; nothing else from outside.
func checkPolicies(t *testing.T, a topology.Arch, overlay string, objs []Object) {
	t.Helper()
	m := netModel{policies: decodePolicies(t, objs)}
	if len(m.policies) == 0 {
		t.Fatal("no NetworkPolicy")
	}
	ns := Namespace(overlay)
	pods := map[string]pod{}
	tmpls := map[string]*PodTemplate{}
	for _, o := range objs {
		if tmpl := Workload(o); tmpl != nil {
			_, md := o.Meta()
			pods[md.Name] = pod{ns: ns, labels: tmpl.Metadata.Labels}
			tmpls[md.Name] = tmpl
		}
	}
	// Who runs what, from the rendered workloads' SHOP_GROUP.
	runs := map[string]bounded.Group{}
	for name, tmpl := range tmpls {
		for _, e := range tmpl.Spec.Containers[0].Env {
			if e.Name == "SHOP_GROUP" {
				g, err := bounded.ParseGroup(e.Value)
				if err != nil {
					t.Fatal(err)
				}
				runs[name] = g
			}
		}
	}
	runsCtx := func(svc, ctx string) bool {
		g := runs[svc]
		return (ctx == bounded.EdgeName && g.Edge) || slices.Contains(g.Contexts, ctx)
	}
	access := bounded.Access()
	names := slices.Sorted(maps.Keys(runs))
	for _, from := range names {
		for _, to := range names {
			port := containerPort(tmpls[to], "grpc")
			if from == to || port == 0 {
				continue
			}
			var calls []string
			for pair := range access {
				if runsCtx(from, pair[0]) && runsCtx(to, pair[1]) && !runsCtx(from, pair[1]) {
					calls = append(calls, pair[0]+"→"+pair[1])
				}
			}
			slices.Sort(calls)
			got := m.connects(pods[from], pods[to], PolicyPort{Protocol: "TCP", Port: port})
			if want := len(calls) > 0; got != want {
				t.Errorf("%s → %s:%d allowed %v; the table's calls between them: %v", from, to, port, got, calls)
			}
		}
	}
	// Every call of the table that crosses services, found from the other end.
	for pair := range access {
		var from, to []string
		for _, n := range names {
			if runsCtx(n, pair[0]) {
				from = append(from, n)
			}
			if runsCtx(n, pair[1]) {
				to = append(to, n)
			}
		}
		if len(from) != 1 || len(to) != 1 {
			t.Fatalf("%v runs in %v and %v: want one service each", pair, from, to)
		}
		if from[0] == to[0] {
			continue
		}
		if p := (PolicyPort{Protocol: "TCP", Port: containerPort(tmpls[to[0]], "grpc")}); !m.connects(pods[from[0]], pods[to[0]], p) {
			t.Errorf("the table's call %s → %s (%s → %s:%d) is not allowed", pair[0], pair[1], from[0], to[0], p.Port)
		}
	}

	outside := pod{ns: "elsewhere", labels: map[string]string{LabelName: "intruder"}}
	prometheus := pod{ns: "monitoring", labels: map[string]string{LabelName: PrometheusName}}
	dns := pod{ns: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
	nats := PolicyPort{Protocol: "TCP", Port: topology.NATSPort}
	metrics := PolicyPort{Protocol: "TCP", Port: topology.MetricsPort}
	for _, name := range slices.Sorted(maps.Keys(pods)) {
		p := pods[name]
		s, ok := a.Service(name)
		if !ok {
			continue // the production overlay's collector
		}
		if !m.connects(p, dns, PolicyPort{Protocol: "UDP", Port: 53}) {
			t.Errorf("%s cannot ask DNS", name)
		}
		if got := m.connects(p, pods[topology.NATSService], nats); got != s.UsesNATS() {
			t.Errorf("%s → nats:%d allowed %v, it uses NATS %v", name, nats.Port, got, s.UsesNATS())
		}
		if !m.connects(prometheus, p, metrics) {
			t.Errorf("Prometheus cannot scrape %s", name)
		}
		for _, cp := range tmpls[name].Spec.Containers[0].Ports {
			port := PolicyPort{Protocol: "TCP", Port: cp.ContainerPort}
			public := s.Edge != "" && cp.ContainerPort == int32(s.Ports[0])
			if got := m.connects(outside, p, port); got != public {
				t.Errorf("a pod of another namespace → %s:%d (%s) allowed %v, want %v", name, cp.ContainerPort, cp.Name, got, public)
			}
			if other := names[0]; other != name && cp.Name == "metrics" && m.connects(pods[other], p, port) {
				t.Errorf("%s may scrape %s", other, name)
			}
		}
	}
	if overlay != OverlayProduction {
		return
	}
	if !m.connects(pods[topology.NATSService], pods[topology.NATSService], PolicyPort{Protocol: "TCP", Port: NATSClusterPort}) {
		t.Error("the NATS cluster's routes are refused")
	}
	collector := pods[CollectorName]
	for _, name := range names {
		if !m.connects(pods[name], collector, PolicyPort{Protocol: "TCP", Port: OTLPHTTPPort}) {
			t.Errorf("%s cannot export OTLP to the collector", name)
		}
	}
	if m.connects(outside, collector, PolicyPort{Protocol: "TCP", Port: OTLPHTTPPort}) {
		t.Error("anyone may send spans to the collector")
	}
}

// checkKube runs checkPolicies on every overlay of every topology the tests render (the
// shipped ones, a file's, --split's, a random split). This names the example of a call the
// table does not hold: the cart charging a card.
func TestCartCannotReachPayments(t *testing.T) {
	topo := shipped(t)
	for _, overlay := range []string{OverlayServices, OverlayProduction} {
		t.Run(overlay, func(t *testing.T) {
			name := OverlayServices
			a, _ := arch(topo, name)
			objs, err := KubeOf(topo, overlay, Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := netModel{policies: decodePolicies(t, objs)}
			ns := Namespace(overlay)
			cart := pod{ns: ns, labels: map[string]string{LabelName: "cart", stack.LabelArch: name}}
			payments := pod{ns: ns, labels: map[string]string{LabelName: "payments", stack.LabelArch: name}}
			orders := pod{ns: ns, labels: map[string]string{LabelName: "orders", stack.LabelArch: name}}
			port := PolicyPort{Protocol: "TCP", Port: int32(a.Services[slices.IndexFunc(a.Services, func(s topology.Service) bool { return s.Name == "payments" })].GRPCPort())}
			if m.connects(cart, payments, port) {
				t.Errorf("cart → payments:%d is allowed", port.Port)
			}
			if !m.connects(orders, payments, port) {
				t.Errorf("orders → payments:%d is refused", port.Port)
			}
		})
	}
}

// The listen addresses are the pod's IP, from the downward API, defined before the
// variables that name it; only the edge's HTTP port listens on every interface.
func TestListenOnPodIP(t *testing.T) {
	topo := shipped(t)
	for _, a := range topo.Archs {
		objs, err := KubeOf(topo, a.Name, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			tmpl := Workload(o)
			if tmpl == nil {
				continue
			}
			_, md := o.Meta()
			c := tmpl.Spec.Containers[0]
			if e := c.Env[0]; e.Name != PodIPEnv || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
				t.Errorf("%s/%s: first variable %+v, want %s from status.podIP", a.Name, md.Name, e, PodIPEnv)
			}
			values := slices.Clone(c.Args)
			for _, e := range c.Env {
				values = append(values, e.Value)
			}
			s, _ := a.Service(md.Name)
			for _, v := range values {
				if port, ok := strings.CutPrefix(v, "0.0.0.0:"); ok && (s.Edge == "" || port != fmt.Sprint(s.Ports[0])) {
					t.Errorf("%s/%s listens on every interface: %s", a.Name, md.Name, v)
				}
			}
		}
	}
}
