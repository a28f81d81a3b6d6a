package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Every binary the project ships (each image's, this CLI, the load generator) prints the
// version its build stamped (-X main.version, which the Makefile and the image build set from
// git), and the Makefile stamps it from git.
func TestEveryBinaryPrintsItsStampedVersion(t *testing.T) {
	root := repoRoot(t)
	top, err := topology.Get(topology.Both, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []string{"./platform/cmd/mitosis", "./loadtest/cmd/loadtest"}
	for _, im := range top.Images() {
		pkgs = append(pkgs, im.Package)
	}
	// Every context's image is services/shop built with other tags, which leave out code but
	// not the version: one build of each package says it all.
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	const stamp = "v0.0.0-test-4f2a"
	dir := t.TempDir()
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, filepath.Base(pkg))
		build := exec.Command("go", "build", "-ldflags", "-X main.version="+stamp, "-o", bin, pkg)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), stamp) {
			t.Errorf("%s --version: %v, %q, want %s", pkg, err, out, stamp)
		}
	}
	if code, out, _ := runCLI(t, "--version"); code != exitOK || !strings.Contains(out, version) {
		t.Errorf("mitosis --version: exit %d, %q", code, out)
	}

	want, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	got, err := exec.Command("make", "-s", "-C", root, "--eval", "print-version: ; @echo $(VERSION)", "print-version").Output()
	if err != nil || strings.TrimSpace(string(got)) != strings.TrimSpace(string(want)) {
		t.Errorf("the Makefile's VERSION: %q, %v; git describe says %q", got, err, want)
	}
}

// make help lists every target the Makefile documents with a "## target: what" comment,
// with its description, and documents the ones a newcomer needs.
func TestMakeHelpListsTheDocumentedTargets(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command("make", "-s", "-C", root, "help").Output()
	if err != nil {
		t.Fatalf("make help: %v", err)
	}
	mk, err := exec.Command("cat", filepath.Join(root, "Makefile")).Output()
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile(`(?m)^## ([a-z-]+): (.*)$`).FindAllStringSubmatch(string(mk), -1)
	listed := map[string]bool{}
	for _, d := range documented {
		listed[d[1]] = true
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(d[1]) + ` +` + regexp.QuoteMeta(d[2]) + `$`).MatchString(string(out)) {
			t.Errorf("make help lacks %s (%q):\n%s", d[1], d[2], out)
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(d[1]) + `:`).Match(mk) {
			t.Errorf("## %s documents no target", d[1])
		}
	}
	for _, target := range []string{"help", "up", "down", "status", "logs", "test", "load", "compare", "setup"} {
		if !listed[target] {
			t.Errorf("target %s has no ## comment", target)
		}
	}
}
