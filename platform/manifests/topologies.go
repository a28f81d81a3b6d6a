package manifests

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Shipped is the topology of the checked-in files: every topology file of dir (topologies/
// of the repository; "" finds it, topology.FindDir), monolith and services first, the others
// by name, without the local trace collector (the deploy targets bring their own: ADOT, see
// adot.go). A new file in topologies/ is shipped by the next `mitosis deploy render`, and
// held by `deploy check` from then on.
func Shipped(dir string) (topology.Topology, error) {
	files, err := topology.Available(dir)
	if err != nil {
		return topology.Topology{}, err
	}
	names := []string{topology.Monolith, topology.Services}
	for _, f := range files {
		if !slices.Contains(names, f.Name) {
			names = append(names, f.Name)
		}
	}
	return topology.Get(strings.Join(names, ","), topology.Options{Dir: dir, Collector: topology.NoCollector})
}

// dnsLabel is a name Kubernetes takes for a Service (RFC 1035 label), and compose and ECS for
// anything.
var dnsLabel = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// checkNames refuses architectures and services whose names the platforms would not take, or
// that would land on another's files: each architecture names a namespace (mitosis-<arch>,
// at most 63 characters), an overlay, an ECS folder and a compose profile; each service a
// Deployment, a Service and a DNS name.
func checkNames(t topology.Topology) error {
	for _, a := range t.Archs {
		if a.Name == OverlayProduction {
			return fmt.Errorf("topology %q: the name of the EKS overlay deploy/k8s/overlays/%s: rename it", a.Name, OverlayProduction)
		}
		if !dnsLabel.MatchString(a.Name) || len(Namespace(a.Name)) > 63 {
			return fmt.Errorf("topology %q: its namespace %s must be lower-case letters, digits and '-', starting with a letter, at most 63 characters", a.Name, Namespace(a.Name))
		}
		for _, s := range a.Services {
			if !dnsLabel.MatchString(s.Name) || len(s.Name) > 63 {
				return fmt.Errorf("%s/%s: a service's name must be lower-case letters, digits and '-', starting with a letter, at most 63 characters", a.Name, s.Name)
			}
		}
	}
	return nil
}

// arch returns t's architecture named name.
func arch(t topology.Topology, name string) (topology.Arch, bool) {
	i := slices.IndexFunc(t.Archs, func(a topology.Arch) bool { return a.Name == name })
	if i < 0 {
		return topology.Arch{}, false
	}
	return t.Archs[i], true
}
