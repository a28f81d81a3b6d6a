package bounded_test

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/services/bounded"
)

// A context's implementation (the file of shop/<context> that declares its New) is compiled
// only into the binaries of the groups that hold the context (Group.BuildTags): a change to
// it rebuilds those images alone, and every other group's inputs stay the same, as
// imagebuild hashes them from the files go list reports under the group's tags.
func TestAContextsImplementationIsLinkedOnlyWhereItRuns(t *testing.T) {
	for _, name := range bounded.Names() {
		dir := filepath.Join("..", "..", "shop", name)
		impl := constructorFile(t, dir)
		for _, g := range someGroups() {
			linked := slices.Contains(goFiles(t, dir, g), impl)
			want := slices.Contains(g.Contexts, name)
			if linked != want {
				t.Errorf("shop/%s/%s in the binary of group %q: %v, want %v (its build constraint: !mitosis_group || mitosis_%s)",
					name, impl, g, linked, want, name)
			}
		}
	}
}

// The checkout's step functions run orders' own step code (orders.RunCall): what serves
// them is linked only into the binaries of the groups that hold orders, as orders' own
// implementation is, so that a change to the saga rebuilds no other group's image.
func TestCheckoutStepsAreLinkedOnlyWithOrders(t *testing.T) {
	files := map[string]string{ // package folder -> the file that runs the saga's steps
		filepath.Join("..", "checkoutstep"): "checkoutstep.go",
		filepath.Join("..", "host"):         "checkoutsteps.go",
	}
	for dir, file := range files {
		for _, g := range someGroups() {
			if linked, want := slices.Contains(goFiles(t, dir, g), file), slices.Contains(g.Contexts, "orders"); linked != want {
				t.Errorf("%s in the binary of group %q: %v, want %v", filepath.Join(dir, file), g, linked, want)
			}
		}
	}
}

// An image's binary talks to a NATS server and links none: the embedded store of `go run
// ./monolith` (services/host/embedded.go) is left out under the groups' build tags, and with
// it nats-server's code, a third of each image. The binary built without them, which
// embeds it, is the check's control.
func TestImagesLinkNoNATSServer(t *testing.T) {
	const server = "github.com/nats-io/nats-server/"
	if !slices.ContainsFunc(deps(t, nil), func(p string) bool { return strings.HasPrefix(p, server) }) {
		t.Fatalf("the binary built without a group's tags links no %s: the check below finds nothing", server)
	}
	for _, g := range someGroups() {
		for _, p := range deps(t, g.BuildTags()) {
			if strings.HasPrefix(p, server) {
				t.Errorf("the image of group %q links %s", g, p)
				break
			}
		}
	}
}

// deps are the packages services/shop, the images' command, links under tags.
func deps(t *testing.T, tags []string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-tags="+strings.Join(tags, ","), "-f", "{{.ImportPath}}", "../shop")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return strings.Fields(string(out))
}

// someGroups are the edge alone, each context alone, and the monolith's group.
func someGroups() []bounded.Group {
	groups := []bounded.Group{{Edge: true}, bounded.Everything()}
	for _, name := range bounded.Names() {
		groups = append(groups, bounded.Group{Contexts: []string{name}})
	}
	return groups
}

// goFiles are the Go files of the package in dir that g's binary compiles (its build tags).
func goFiles(t *testing.T, dir string, g bounded.Group) []string {
	t.Helper()
	ctx := build.Default
	ctx.BuildTags = g.BuildTags()
	pkg, err := ctx.ImportDir(dir, 0)
	if err != nil {
		t.Fatalf("%s under -tags %v: %v", dir, ctx.BuildTags, err)
	}
	return pkg.GoFiles
}

// constructorFile is the file of the package in dir that declares the function New.
func constructorFile(t *testing.T, dir string) string {
	t.Helper()
	pkg, err := build.Default.ImportDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "New" {
				return name
			}
		}
	}
	t.Fatalf("%s: no func New", dir)
	return ""
}
