package topology

import "strconv"

// Renewer is the architecture name runtimes give the renewer (RenewerArch), and
// RenewerService the renewer's service, its image's name too.
const (
	Renewer        = "pki"
	RenewerService = "renewer"
)

// RenewerPort is where the renewer's /healthz answers.
const RenewerPort = 9470

// PKIMount is where a container of a service with PKI set finds the stack's PKI folder.
const PKIMount = "/pki"

// NewRenewer is the stack's certificate renewer (platform/cmd/renewer): it holds the CA and
// renews, every identity.RenewEvery, each certificate past half its week, so that a stack
// left running does not see them expire. It stands outside every budget, like the
// collector, and needs no network but its probe's: it reads and writes files. Local stacks
// run it (Topology.Renewer), and so do the compose files and `mitosis kube play`
// (manifests.Renewer), whose identities are files too; the other deploy targets leave it to
// their platform (Options.NoRenewer).
func NewRenewer() Service {
	return Service{
		Name:    RenewerService,
		Image:   RenewerService,
		Package: "./platform/cmd/renewer",
		Ports:   []int{RenewerPort, MetricsPort},
		Args: []string{"-pki", "{{pki}}", "-stack", "{{stack}}", "-addr", "{{listen}}",
			"-metrics", "{{listen:" + strconv.Itoa(MetricsPort) + "}}"},
		Env:      map[string]string{"GOMEMLIMIT": "32MiB"},
		Probe:    Probe{Kind: HTTP, Port: RenewerPort, Path: "/healthz"},
		PKI:      true,
		CPUs:     0.05,
		MemoryMB: 48,
	}
}

// RenewerArch is the renewer as an architecture of its own, which local runtimes start after
// the others when the stack runs secure (AllArchs); false when the topology has no renewer.
func (t Topology) RenewerArch() (Arch, bool) {
	if t.Renewer == nil {
		return Arch{}, false
	}
	return Arch{Name: Renewer, Services: []Service{*t.Renewer}}, true
}

// StackArch tells whether the architecture name is one a stack runs for itself, beside the
// shop's: the collector's (Telemetry) and the renewer's. They serve every architecture, are
// left out of budgets and comparisons, and go with the last of the others.
func StackArch(name string) bool { return name == Telemetry || name == Renewer }
