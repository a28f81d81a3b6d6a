package processrt

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestABuildIsLinkedOnceForEveryStateFolder builds one package for two state folders: both
// get their content-addressed copy, and the second build leaves the build folder's binary
// as the first wrote it (go build found it up to date, and linked nothing).
func TestABuildIsLinkedOnceForEveryStateFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs go build")
	}
	// The build folder goes under a cache folder of the test's, not the user's; Go's build
	// cache, found under the same folder by default, stays where it is.
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	const pkg = "./platform/cmd/collector"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	first := &Runtime{opts: Options{Root: root, State: t.TempDir()}}
	copies, err := first.goBuild(ctx, []string{pkg})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^collector-[0-9a-f]{16}$`).MatchString(filepath.Base(copies[0])) || filepath.Dir(copies[0]) != first.binDir() {
		t.Fatalf("the copy is %s, want %s/collector-<16 hex digits>", copies[0], first.binDir())
	}
	built := filepath.Join(first.buildDir(), "collector")
	before, err := os.Stat(built)
	if err != nil {
		t.Fatalf("the build folder keeps no binary: %v", err)
	}

	second := &Runtime{opts: Options{Root: root, State: t.TempDir()}}
	if second.buildDir() != first.buildDir() {
		t.Fatalf("two state folders of one repository build in %s and %s", first.buildDir(), second.buildDir())
	}
	again, err := second.goBuild(ctx, []string{pkg})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(again[0]) != filepath.Base(copies[0]) || filepath.Dir(again[0]) != second.binDir() {
		t.Errorf("the second state folder runs %s, want %s in %s", again[0], filepath.Base(copies[0]), second.binDir())
	}
	after, err := os.Stat(built)
	if err != nil {
		t.Fatal(err)
	}
	// go build touches a target it finds up to date; one it links again is a new file
	// (linked in its work folder, then moved over the old one).
	if !os.SameFile(before, after) {
		t.Errorf("the second build replaced %s: it was linked again", built)
	}
	for _, c := range append(copies, again...) {
		fi, err := os.Stat(c)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != after.Size() || fi.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s: %d bytes, mode %s; want the build's %d bytes, executable", c, fi.Size(), fi.Mode(), after.Size())
		}
	}
}
