package manifests

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
)

// listFiles lists the files under dir, relative to it, with slashes.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestDeployAnyTopology renders topologies other than the shipped set into a folder, as
// `mitosis deploy render -t` or `--split` does, checks it as `deploy check` does, and runs on
// it every check the shipped files pass: the kustomize build (with kubectl), the kube invariants, compose-go's
// loader, the ECS definitions' shape and invariants.
func TestDeployAnyTopology(t *testing.T) {
	// A file of one's own, outside topologies/: the edge with the checkout's contexts, weights
	// of its own, a service name of its own.
	own := filepath.Join(t.TempDir(), "front-back.yaml")
	if err := os.WriteFile(own, []byte(`name: front-back
description: the edge with the checkout path, the rest behind it
edge: 127.0.0.1:18200
groups:
  - name: front
    contexts: [edge, cart, orders, payments]
    cpu: 40
  - contexts: [catalog, inventory, shipping, notify]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := shipped(t)
	cases := []struct {
		name string
		sel  Selection
	}{
		{"hybrid", Selection{Topologies: "hybrid"}},
		{"monolith", Selection{Topologies: "monolith"}},
		{"file", Selection{Topologies: own}},
		{"split", Selection{Split: "edge+catalog,cart+orders,inventory+payments+shipping+notify", Edge: "127.0.0.1:18100"}},
		{"replicas", Selection{Split: "edge,catalog*3,cart+orders*2,inventory+payments+shipping+notify"}},
		{"random", Selection{}},
		{"hybrid-and-split", Selection{Topologies: "hybrid", Split: "cart+orders,catalog+inventory+payments+shipping+notify"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "random" {
				c.sel.Split = stacktest.RandomSplit(t)
			}
			topo, err := Select(repoRoot(t), c.sel)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			files, err := Files(topo, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := Write(dir, files); err != nil {
				t.Fatalf("render: %v", err)
			}
			if drift, err := Check(dir, files); err != nil || len(drift) > 0 {
				t.Fatalf("check: %v %v", drift, err)
			}
			got := listFiles(t, dir)
			if want := slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
				t.Errorf("rendered %v, want %v", got, want)
			}
			for _, a := range topo.Archs {
				for _, want := range []string{"deploy/k8s/overlays/" + a.Name + "/kustomization.yaml", "deploy/ecs/" + a.Name + "/nats-task.json", ComposeFile(topo, a.Name)} {
					if !slices.Contains(got, want) {
						t.Errorf("%s: no %s", a.Name, want)
					}
				}
				if _, ok := arch(repo, a.Name); ok && ComposeFile(topo, a.Name) == ComposeFile(repo, a.Name) {
					// Shipped: the same files alone as among the others.
					for _, p := range got {
						if strings.Contains(p, "/"+a.Name+"/") {
							shippedB, err := os.ReadFile(filepath.Join(repoRoot(t), p))
							if err != nil || !bytes.Equal(shippedB, files[p]) {
								t.Errorf("%s rendered alone differs from the shipped one (%v)", p, err)
							}
						}
					}
				}
			}
			if c.name == "monolith" && !slices.Contains(got, "compose/monolith/compose.yaml") {
				t.Errorf("the monolith alone has no compose file of its own: %v", got)
			}
			checkKustomize(t, dir, topo)
			checkKube(t, topo)
			checkCompose(t, dir, topo)
			checkECS(t, dir, topo)

			// An edit is drift, as in the repository.
			edited := "deploy/k8s/overlays/" + topo.Archs[0].Name + "/kustomization.yaml"
			b, _ := os.ReadFile(filepath.Join(dir, edited))
			if err := os.WriteFile(filepath.Join(dir, edited), append(b, "# edited\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
			if drift, err := Check(dir, files); err != nil || !slices.ContainsFunc(drift, func(d Drift) bool { return d.Path == edited && strings.HasPrefix(d.Reason, "differs") }) {
				t.Errorf("check after an edit: %v %v", drift, err)
			}
		})
	}
}

// TestSelectRefuses: what cannot be rendered is refused with the reason, before anything is
// written.
func TestSelectRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	production := write("production.yaml", "name: production\ngroups:\n  - contexts: [edge, catalog, cart, inventory, payments, orders, shipping, notify]\n")
	badName := write("Big_One.yaml", "name: Big_One\ngroups:\n  - contexts: [edge, catalog, cart, inventory, payments, orders, shipping, notify]\n")
	badGroup := write("grouped.yaml", "name: grouped\ngroups:\n  - name: Front_End\n    contexts: [edge, catalog, cart, inventory, payments, orders, shipping, notify]\n")
	twice := write("twice.yaml", "name: twice\ngroups:\n  - contexts: [edge, catalog]\n  - contexts: [catalog, cart, inventory, payments, orders, shipping, notify]\n")
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte("name: other\ngroups:\n  - contexts: [edge, catalog, cart, inventory, payments, orders, shipping, notify]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sel  Selection
		want string
	}{
		{Selection{Topologies: "nonsense"}, `unknown topology "nonsense"`},
		{Selection{Split: "catalog,catalog+cart"}, "catalog"},
		{Selection{Split: "catalog+cart+inventory+payments+orders+shipping+notify+tax"}, `unknown context "tax"`},
		{Selection{Topologies: filepath.Join(dir, "absent.yaml")}, "no such file"},
		{Selection{Topologies: filepath.Join(dir, "notes.txt")}, "ends in .yaml"},
		{Selection{Topologies: twice}, "catalog"},
		{Selection{Topologies: production}, "EKS overlay"},
		{Selection{Topologies: badName}, "namespace"},
		{Selection{Topologies: badGroup}, "Front_End"},
		{Selection{Topologies: badGroup + "," + other}, "folders"},
		{Selection{Topologies: "hybrid," + other}, "folders"},
		{Selection{Topologies: " , "}, "no topology selected"},
	} {
		topo, err := Select(repoRoot(t), c.sel)
		if err == nil {
			_, err = Files(topo, Options{})
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.sel, err, c.want)
		}
	}
}
