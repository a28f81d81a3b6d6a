package manifests

import (
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// NetworkPolicy is networking.k8s.io/v1 NetworkPolicy.
type NetworkPolicy struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Spec     NetworkPolicySpec `json:"spec"`
}

// NetworkPolicySpec is a policy's spec: the pods it isolates, and what it lets in and out.
type NetworkPolicySpec struct {
	PodSelector PolicySelector `json:"podSelector"`
	PolicyTypes []string       `json:"policyTypes"`
	Ingress     []PolicyRule   `json:"ingress,omitempty"`
	Egress      []PolicyRule   `json:"egress,omitempty"`
}

// PolicySelector is a label selector that may be empty (every pod, every namespace).
type PolicySelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// PolicyRule is an ingress rule (From) or an egress rule (To): no peers is every peer, no
// ports every port.
type PolicyRule struct {
	Ports []PolicyPort `json:"ports,omitempty"`
	From  []PolicyPeer `json:"from,omitempty"`
	To    []PolicyPeer `json:"to,omitempty"`
}

// PolicyPeer is pods of the policy's namespace (PodSelector alone), every pod of some
// namespaces (NamespaceSelector alone), or some pods of some namespaces (both).
type PolicyPeer struct {
	PodSelector       *PolicySelector `json:"podSelector,omitempty"`
	NamespaceSelector *PolicySelector `json:"namespaceSelector,omitempty"`
}

// PolicyPort is a port and its protocol.
type PolicyPort struct {
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
}

// Meta implements Object.
func (o *NetworkPolicy) Meta() (*TypeMeta, *ObjectMeta) { return &o.TypeMeta, &o.Metadata }

// Policy types.
const (
	PolicyIngress = "Ingress"
	PolicyEgress  = "Egress"
)

// Who may reach what, besides the calls of the table.
const (
	// DefaultDenyPolicy isolates every pod of the namespace both ways: what the other
	// policies do not allow is refused.
	DefaultDenyPolicy = "default-deny"
	// DNSPolicy lets every pod ask the cluster's DNS (in kube-system) for its peers.
	DNSPolicy = "dns"
	// PrometheusName is the app.kubernetes.io/name of the pods, in any namespace, that may
	// scrape the metrics port (the Prometheus operator and kube-prometheus-stack label
	// theirs so); the collector of the production overlay may too.
	PrometheusName = "prometheus"
	// NetworkPolicyFile is the file of an overlay's policies.
	NetworkPolicyFile = "network-policy.yaml"
)

// namespaceLabel is the label Kubernetes gives every namespace with its own name.
const namespaceLabel = "kubernetes.io/metadata.name"

func tcp(port int) PolicyPort { return PolicyPort{Protocol: "TCP", Port: int32(port)} }

// pods is a peer of the policy's namespace: the pods of the named workload.
func pods(name string) PolicyPeer {
	return PolicyPeer{PodSelector: &PolicySelector{MatchLabels: map[string]string{LabelName: name}}}
}

func policy(name string, selector PolicySelector, types ...string) *NetworkPolicy {
	return &NetworkPolicy{
		TypeMeta: TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		Metadata: ObjectMeta{Name: name, Labels: map[string]string{LabelPartOf: PartOf}},
		Spec:     NetworkPolicySpec{PodSelector: selector, PolicyTypes: types},
	}
}

// scrapers are the peers allowed to the metrics port.
func scrapers() []PolicyPeer {
	return []PolicyPeer{
		{NamespaceSelector: &PolicySelector{}, PodSelector: &PolicySelector{MatchLabels: map[string]string{LabelName: PrometheusName}}},
		pods(CollectorName),
	}
}

// networkPolicies are an architecture's NetworkPolicies: deny everything in the namespace,
// then allow DNS, the edge's HTTP port from anywhere, each gRPC port from the services that
// call its contexts (Arch.Calls, from the table), NATS from the services that use it, and
// the metrics port from the scrapers; egress likewise to the calls and NATS. A policy per
// workload, named after it, holds both directions. The kubelet's probes need no rule:
// traffic from a pod's node is always allowed.
func networkPolicies(a topology.Arch) []Object {
	deny := policy(DefaultDenyPolicy, PolicySelector{}, PolicyIngress, PolicyEgress)
	dns := policy(DNSPolicy, PolicySelector{}, PolicyEgress)
	dns.Spec.Egress = []PolicyRule{{
		To:    []PolicyPeer{{NamespaceSelector: &PolicySelector{MatchLabels: map[string]string{namespaceLabel: "kube-system"}}}},
		Ports: []PolicyPort{{Protocol: "UDP", Port: 53}, tcp(53)},
	}}
	out := []Object{deny, dns}
	calls := a.Calls()
	var natsUsers []PolicyPeer
	for _, s := range a.Services {
		if s.UsesNATS() {
			natsUsers = append(natsUsers, pods(s.Name))
		}
	}
	for _, s := range a.Services {
		p := policy(s.Name, PolicySelector{MatchLabels: map[string]string{LabelName: s.Name}}, PolicyIngress, PolicyEgress)
		if s.Edge != "" {
			p.Spec.Ingress = append(p.Spec.Ingress, PolicyRule{Ports: []PolicyPort{tcp(s.Ports[0])}})
		}
		var callers []PolicyPeer
		for _, c := range calls {
			switch s.Name {
			case c.To:
				callers = append(callers, pods(c.From))
			case c.From:
				p.Spec.Egress = append(p.Spec.Egress, PolicyRule{To: []PolicyPeer{pods(c.To)}, Ports: []PolicyPort{tcp(c.Port)}})
			}
		}
		if len(callers) > 0 {
			p.Spec.Ingress = append(p.Spec.Ingress, PolicyRule{From: callers, Ports: []PolicyPort{tcp(s.GRPCPort())}})
		}
		if s.DataDir != "" && len(natsUsers) > 0 {
			p.Spec.Ingress = append(p.Spec.Ingress, PolicyRule{From: natsUsers, Ports: []PolicyPort{tcp(topology.NATSPort)}})
		}
		if s.UsesNATS() {
			p.Spec.Egress = append(p.Spec.Egress, PolicyRule{To: []PolicyPeer{pods(topology.NATSService)}, Ports: []PolicyPort{tcp(topology.NATSPort)}})
		}
		p.Spec.Ingress = append(p.Spec.Ingress, PolicyRule{From: scrapers(), Ports: []PolicyPort{tcp(topology.MetricsPort)}})
		out = append(out, p)
	}
	return out
}

// productionPolicies are what the production overlay adds to the services' policies: the
// NATS cluster's routes between its pods, OTLP from every shop process to the collector,
// and the collector's way out to AWS (X-Ray, CloudWatch, STS: public endpoints, so any
// address).
func productionPolicies() []Object {
	routes := policy("nats-routes", PolicySelector{MatchLabels: map[string]string{LabelName: topology.NATSService}}, PolicyIngress, PolicyEgress)
	routes.Spec.Ingress = []PolicyRule{{From: []PolicyPeer{pods(topology.NATSService)}, Ports: []PolicyPort{tcp(NATSClusterPort)}}}
	routes.Spec.Egress = []PolicyRule{{To: []PolicyPeer{pods(topology.NATSService)}, Ports: []PolicyPort{tcp(NATSClusterPort)}}}
	shop := PolicySelector{MatchLabels: map[string]string{stack.LabelArch: OverlayServices}}
	otlp := []PolicyPort{tcp(OTLPGRPCPort), tcp(OTLPHTTPPort)}
	export := policy("otlp-export", shop, PolicyEgress)
	export.Spec.Egress = []PolicyRule{{To: []PolicyPeer{pods(CollectorName)}, Ports: otlp}}
	collector := policy(CollectorName, PolicySelector{MatchLabels: map[string]string{LabelName: CollectorName}}, PolicyIngress, PolicyEgress)
	collector.Spec.Ingress = []PolicyRule{{From: []PolicyPeer{{PodSelector: &shop}}, Ports: otlp}}
	collector.Spec.Egress = []PolicyRule{{}}
	return []Object{routes, export, collector}
}
