package topology

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// File is a topology file, topologies/<name>.yaml: a placement of the shop's contexts.
type File struct {
	Name        string      `json:"name"`                  // the file's name without .yaml
	Description string      `json:"description,omitempty"` // one line, for listings
	Edge        string      `json:"edge,omitempty"`        // where its API answers; default by order (Options)
	Groups      []FileGroup `json:"groups"`                // every context in exactly one; the edge alone unless in one
}

// FileGroup is one group of a topology file: the contexts (and maybe "edge") of one process.
type FileGroup struct {
	Name     string   `json:"name,omitempty"`     // its service's name; default from its contexts (bounded.Group.Name)
	Contexts []string `json:"contexts"`           // context names, and "edge" for the HTTP API
	Replicas int      `json:"replicas,omitempty"` // its processes, 1 to MaxReplicas (default 1); not for the edge's group (replicas.go)
	CPU      float64  `json:"cpu,omitempty"`      // its weight in the CPU budget; default its contexts' (services/bounded)
	Memory   float64  `json:"memory,omitempty"`   // its weight in the memory budget; likewise
}

// FindDir returns topologies/ of the repository: the folder holding go.work, from the
// current one up.
func FindDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "topologies"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work here or above: say where the topologies are (--root)")
		}
		dir = parent
	}
}

// ReadFile reads and checks a topology file.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	want := strings.TrimSuffix(filepath.Base(path), ".yaml")
	if f.Name != want {
		return File{}, fmt.Errorf("%s: name %q, want the file's name %q", path, f.Name, want)
	}
	if _, err := f.groups(); err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Available lists the topology files in dir ("" for FindDir), by name.
func Available(dir string) ([]File, error) {
	dir, err := orFindDir(dir)
	if err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []File
	for _, p := range paths {
		f, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func orFindDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return FindDir()
}

// groups returns the file's groups, checked to be a split of the contexts.
func (f File) groups() ([]group, error) {
	var gs []bounded.Group
	for i, fg := range f.Groups {
		if len(fg.Contexts) == 0 {
			return nil, fmt.Errorf("group %d is empty", i+1)
		}
		g, err := bounded.ParseGroup(strings.Join(fg.Contexts, "+"))
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", i+1, err)
		}
		if fg.Replicas < 0 || fg.CPU < 0 || fg.Memory < 0 {
			return nil, fmt.Errorf("group %d (%s): replicas and weights cannot be negative", i+1, g)
		}
		gs = append(gs, g)
	}
	split, err := bounded.NewSplit(gs)
	if err != nil {
		return nil, err
	}
	out := make([]group, len(split))
	for i, g := range split {
		out[i] = group{Group: g, replicas: 1}
		if i < len(f.Groups) {
			fg := f.Groups[i]
			out[i].name = fg.Name
			out[i].replicas = max(fg.Replicas, 1)
			out[i].weight = bounded.Weight{CPU: fg.CPU, Memory: fg.Memory}
		}
		if err := checkReplicas(f.Name, out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fromFile reads the placement of the topology file dir/name.yaml: its groups, and the
// edge it asks for.
func fromFile(dir, name string) ([]group, string, error) {
	dir, err := orFindDir(dir)
	if err != nil {
		return nil, "", err
	}
	f, err := ReadFile(filepath.Join(dir, name+".yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		var known []string
		if all, err := Available(dir); err == nil {
			for _, a := range all {
				known = append(known, a.Name)
			}
		}
		slices.Sort(known)
		return nil, "", fmt.Errorf("unknown topology %q: no %s.yaml in %s (there are: %s, and %s for monolith,services)",
			name, name, dir, strings.Join(known, ", "), Both)
	}
	if err != nil {
		return nil, "", err
	}
	groups, _ := f.groups() // ReadFile checked them
	return groups, f.Edge, nil
}
