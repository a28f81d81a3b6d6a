package manifests

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
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
	return topology.Get(strings.Join(names, ","), topology.Options{Dir: dir, Collector: topology.NoCollector, NoRenewer: true})
}

// Selection is a topology other than the shipped one, as `mitosis deploy render` takes it
// from the CLI's -t and --split.
type Selection struct {
	// Topologies are comma-separated: names of topology files in the repository's
	// topologies/, paths to topology files (*.yaml, in one folder), or both.
	Topologies string
	Split      string // a placement of its own, as --split writes it; its architecture is named split
	Edge       string // the split's edge; default the first free from 127.0.0.1:8082
}

// Empty reports whether the selection names nothing: the shipped topology then.
func (s Selection) Empty() bool { return strings.TrimSpace(s.Topologies) == "" && s.Split == "" }

// Select returns the topology s names, root being the repository whose topologies/ holds the
// named files. Paths are read relative to the current folder.
func Select(root string, s Selection) (topology.Topology, error) {
	var names []string
	dirs := map[string]bool{} // where the named files are: one folder, as topology.Get reads them
	for _, item := range strings.Split(s.Topologies, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.HasSuffix(item, ".yaml") && !strings.ContainsAny(item, `/\`) {
			names = append(names, item) // a name of topologies/, or both
			dirs[filepath.Join(root, "topologies")] = true
			continue
		}
		path, err := filepath.Abs(item)
		if err != nil {
			return topology.Topology{}, err
		}
		if filepath.Ext(path) != ".yaml" {
			return topology.Topology{}, fmt.Errorf("-t %s: a topology file's name ends in .yaml", item)
		}
		if _, err := topology.ReadFile(path); err != nil {
			return topology.Topology{}, fmt.Errorf("-t %s: %w", item, err)
		}
		names = append(names, strings.TrimSuffix(filepath.Base(path), ".yaml"))
		dirs[filepath.Dir(path)] = true
	}
	if len(dirs) > 1 {
		return topology.Topology{}, fmt.Errorf("-t %s: topology files from %d folders (%s): render them apart",
			s.Topologies, len(dirs), strings.Join(slices.Sorted(maps.Keys(dirs)), ", "))
	}
	if len(names) == 0 && s.Split == "" {
		return topology.Topology{}, errors.New("no topology selected: name one with -t, or place the contexts with --split")
	}
	opts := topology.Options{Dir: filepath.Join(root, "topologies"), Split: s.Split, Collector: topology.NoCollector, NoRenewer: true}
	for d := range dirs {
		opts.Dir = d
	}
	if s.Edge != "" {
		opts.Edges = map[string]string{topology.SplitName: s.Edge}
	}
	return topology.Get(strings.Join(names, ","), opts)
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
