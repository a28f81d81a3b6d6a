package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var hello = Spec{Name: "hello", Package: "./imagebuild/testdata/hello"}

// platformRoot is the platform module's folder: the Root the test specs are relative to.
func platformRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

func testOptions(t *testing.T, dir string) Options {
	t.Helper()
	return Options{
		Root:     platformRoot(t),
		Dir:      dir,
		Version:  "v1.2.3-test",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Source:   "https://example.com/mitosis",
		Created:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func buildOne(t *testing.T, opts Options, s Spec) Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	imgs, err := Build(ctx, opts, s)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if len(imgs) != 1 {
		t.Fatalf("Build returned %d images, want 1", len(imgs))
	}
	return imgs[0]
}

func TestBuildIsReproducible(t *testing.T) {
	a := buildOne(t, testOptions(t, t.TempDir()), hello)
	b := buildOne(t, testOptions(t, t.TempDir()), hello)
	if a.Index != b.Index {
		t.Errorf("two builds of the same inputs: index %s and %s", a.Index, b.Index)
	}
	if len(a.Platforms) != 2 || len(b.Platforms) != 2 {
		t.Fatalf("platforms: %v and %v, want linux/amd64 and linux/arm64", a.Platforms, b.Platforms)
	}
	for i := range a.Platforms {
		if a.Platforms[i].Digest != b.Platforms[i].Digest {
			t.Errorf("%s: digests %s and %s", a.Platforms[i].Platform, a.Platforms[i].Digest, b.Platforms[i].Digest)
		}
	}
	if a.Ref != b.Ref || !strings.HasPrefix(a.Ref, "localhost/mitosis/hello:") {
		t.Errorf("refs %q and %q", a.Ref, b.Ref)
	}

	// A different creation time is a different image: the timestamps really are Created.
	opts := testOptions(t, t.TempDir())
	opts.Created = opts.Created.Add(time.Hour)
	c := buildOne(t, opts, hello)
	if c.Index == a.Index {
		t.Errorf("a different Created gave the same index %s", c.Index)
	}
}

func TestImageContents(t *testing.T) {
	opts := testOptions(t, t.TempDir())
	built := buildOne(t, opts, hello)

	idx, err := built.OCIIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.String())
	}
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("index platforms %v, want linux/amd64,linux/arm64", platforms)
	}
	if im.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index media type %s", im.MediaType)
	}

	for _, p := range DefaultPlatforms() {
		t.Run(p.Architecture, func(t *testing.T) {
			img, err := built.OCIImage(p)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != p.Architecture {
				t.Errorf("config platform %s/%s", cf.OS, cf.Architecture)
			}
			if cf.Config.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532", cf.Config.User)
			}
			if got := strings.Join(cf.Config.Entrypoint, " "); got != "/usr/local/bin/hello" {
				t.Errorf("entrypoint %q", got)
			}
			if !cf.Created.Time.Equal(opts.Created) {
				t.Errorf("created %s, want %s", cf.Created.Time, opts.Created)
			}
			want := map[string]string{
				LabelSource:   opts.Source,
				LabelRevision: opts.Revision,
				LabelVersion:  opts.Version,
				LabelCreated:  "2026-01-02T03:04:05Z",
				LabelTitle:    "hello",
			}
			for k, v := range want {
				if cf.Config.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
				}
			}
			files := extract(t, img, opts.Created)
			if !strings.Contains(string(files["etc/passwd"].body), "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no nonroot 65532:\n%s", files["etc/passwd"].body)
			}
			if !strings.Contains(string(files["etc/group"].body), "nonroot:x:65532:") {
				t.Errorf("/etc/group has no nonroot 65532:\n%s", files["etc/group"].body)
			}
			hostCA, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
			if err != nil {
				t.Fatal(err)
			}
			if string(files["etc/ssl/certs/ca-certificates.crt"].body) != string(hostCA) {
				t.Error("CA bundle differs from the host's")
			}
			bin, ok := files["usr/local/bin/hello"]
			if !ok || bin.mode&0o111 == 0 {
				t.Fatalf("binary missing or not executable: %+v", bin.mode)
			}
			if d := files["data"]; d.uid != UID {
				t.Errorf("/data owned by %d, want %d", d.uid, UID)
			}
			pl, _ := built.PlatformImage(p)
			if int64(len(bin.body)) != pl.BinarySize {
				t.Errorf("binary size %d, record says %d", len(bin.body), pl.BinarySize)
			}
			// The image stays small next to its binary: the bound is 1.3x.
			if ratio := float64(pl.ImageSize) / float64(pl.BinarySize); ratio > 1.3 {
				t.Errorf("image %d bytes for a %d-byte binary (%.2fx)", pl.ImageSize, pl.BinarySize, ratio)
			}
			if p.Architecture == runtime.GOARCH {
				// The binary is static and version-stamped: run it straight out of the layer.
				path := filepath.Join(t.TempDir(), "hello")
				if err := os.WriteFile(path, bin.body, 0o755); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(path, "--name", "test").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "hello test from v1.2.3-test" {
					t.Errorf("running the image's binary: %q, %v", out, err)
				}
			}
			checkSBOM(t, pl.SBOM)
		})
	}
}

type fileEntry struct {
	body []byte
	mode int64
	uid  int
}

// extract reads every layer of img, checking that each entry carries the build's timestamp.
func extract(t *testing.T, img v1.Image, created time.Time) map[string]fileEntry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]fileEntry{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !h.ModTime.Equal(created) {
				t.Errorf("%s: mtime %s, want %s", h.Name, h.ModTime, created)
			}
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimSuffix(h.Name, "/")] = fileEntry{body: body, mode: h.Mode, uid: h.Uid}
		}
		rc.Close()
	}
	return files
}

func checkSBOM(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	var doc spdxDocument
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("SBOM is not JSON: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.CreationInfo.Created != "2026-01-02T03:04:05Z" {
		t.Errorf("SBOM header: %s created %s", doc.SPDXVersion, doc.CreationInfo.Created)
	}
	names := map[string]string{}
	for _, p := range doc.Packages {
		names[p.Name] = p.VersionInfo
	}
	if _, ok := names["github.com/mitosis-dev/mitosis/platform"]; !ok {
		t.Errorf("SBOM lacks the main module: %v", names)
	}
	if v := names["github.com/spf13/pflag"]; !strings.HasPrefix(v, "v") {
		t.Errorf("SBOM lacks the pflag dependency with its version: %v", names)
	}
	if names["stdlib"] != strings.TrimPrefix(runtime.Version(), "go") {
		t.Logf("SBOM stdlib %q (test binary's Go is %s)", names["stdlib"], runtime.Version())
	}
}

// TestBuildSkipsUnchangedInputs builds a throwaway module: an unchanged tree is a cache hit,
// a changed source rebuilds, a changed test file does not; Progress hears of the builds
// only.
func TestBuildSkipsUnchangedInputs(t *testing.T) {
	t.Setenv("GOWORK", "off")
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/tiny\n\ngo 1.26\n")
	write("cmd/tiny/main.go", "package main\n\nfunc main() { println(\"one\") }\n")
	write("cmd/tiny/main_test.go", "package main\n")
	var progress bytes.Buffer
	opts := Options{Root: root, Dir: filepath.Join(root, ".mitosis", "images"), Platforms: []v1.Platform{HostPlatform()}, Progress: &progress}
	tiny := Spec{Name: "tiny", Package: "./cmd/tiny"}

	first := buildOne(t, opts, tiny)
	if first.Cached {
		t.Fatal("first build came from the cache")
	}
	if got := progress.String(); !strings.Contains(got, "building 1 image(s) for 1 platform(s): tiny") || !strings.Contains(got, "compiled in") ||
		!strings.Contains(got, "  tiny: compiling for "+HostPlatform().OS) ||
		!regexp.MustCompile(`(?m)^  tiny: compiled for `+HostPlatform().OS+`/\S+ \([0-9.]+m?s\)$`).MatchString(got) || !regexp.MustCompile(`(?m)^  tiny: built \([0-9.]+m?s\)$`).MatchString(got) {
		t.Errorf("progress of a build: %q", got)
	}
	progress.Reset()
	again := buildOne(t, opts, tiny)
	if !again.Cached || again.Index != first.Index {
		t.Fatalf("unchanged inputs: cached=%v index %s, want the cached %s", again.Cached, again.Index, first.Index)
	}
	if progress.Len() > 0 {
		t.Errorf("a cache hit said %q", progress.String())
	}
	write("cmd/tiny/main_test.go", "package main\n\n// a test-only change\n")
	if img := buildOne(t, opts, tiny); !img.Cached {
		t.Error("a test-file change rebuilt the image")
	}
	write("cmd/tiny/main.go", "package main\n\nfunc main() { println(\"two\") }\n")
	changed := buildOne(t, opts, tiny)
	if changed.Cached || changed.Index == first.Index {
		t.Errorf("a source change: cached=%v index %s (was %s)", changed.Cached, changed.Index, first.Index)
	}
	loaded, err := Load(changed.Dir)
	if err != nil || loaded.Index != changed.Index {
		t.Errorf("Load: %+v, %v", loaded, err)
	}
}

// TestGitStampFollowsTheImagesOwnCommits: each image is stamped with the last commit that
// touched its inputs, so a commit elsewhere in the repository leaves it (and its digest) alone.
func TestGitStampFollowsTheImagesOwnCommits(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	t.Setenv("GOWORK", "off")
	root := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(name, body string) {
		t.Helper()
		_ = os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/two\n\ngo 1.26\n")
	write("cmd/a/main.go", "package main\n\nfunc main() { println(\"a\") }\n")
	write("cmd/b/main.go", "package main\n\nfunc main() { println(\"b\") }\n")
	run("init", "-q")
	run("add", ".")
	t.Setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
	run("commit", "-q", "-m", "one", "--date", "2026-01-01T00:00:00Z")
	first := run("rev-parse", "HEAD")

	opts := Options{Root: root, Dir: filepath.Join(root, ".images"), Platforms: []v1.Platform{HostPlatform()}, GitStamp: true}
	specs := []Spec{{Name: "a", Package: "./cmd/a"}, {Name: "b", Package: "./cmd/b"}}
	ctx := context.Background()
	before, err := Build(ctx, opts, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if before[0].Revision != first || !before[0].Created.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("stamp of a: %s at %s, want %s at 2026-01-01", before[0].Revision, before[0].Created, first)
	}

	write("cmd/b/main.go", "package main\n\nfunc main() { println(\"b2\") }\n")
	run("commit", "-q", "-am", "two", "--date", "2026-01-02T00:00:00Z")
	second := run("rev-parse", "HEAD")
	after, err := Build(ctx, opts, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if !after[0].Cached || after[0].Index != before[0].Index || after[0].Revision != first {
		t.Errorf("a commit touching only b changed a: cached=%v revision %s", after[0].Cached, after[0].Revision)
	}
	if after[1].Cached || after[1].Revision != second {
		t.Errorf("b after its own commit: cached=%v revision %s, want %s", after[1].Cached, after[1].Revision, second)
	}

	// Two images of one package, by tags: a commit to the file only d compiles leaves c's
	// stamp, and so c's image, as they were.
	write("cmd/cd/main.go", "package main\n\nfunc main() { println(part()) }\n")
	write("cmd/cd/c.go", "//go:build with_c\n\npackage main\n\nfunc part() string { return \"c\" }\n")
	write("cmd/cd/d.go", "//go:build with_d\n\npackage main\n\nfunc part() string { return \"d\" }\n")
	run("add", ".")
	run("commit", "-q", "-m", "three", "--date", "2026-01-03T00:00:00Z")
	third := run("rev-parse", "HEAD")
	tagged := []Spec{{Name: "c", Package: "./cmd/cd", Tags: []string{"with_c"}}, {Name: "d", Package: "./cmd/cd", Tags: []string{"with_d"}}}
	before, err = Build(ctx, opts, tagged...)
	if err != nil {
		t.Fatal(err)
	}
	write("cmd/cd/d.go", "//go:build with_d\n\npackage main\n\nfunc part() string { return \"d2\" }\n")
	run("commit", "-q", "-am", "four", "--date", "2026-01-04T00:00:00Z")
	fourth := run("rev-parse", "HEAD")
	after, err = Build(ctx, opts, tagged...)
	if err != nil {
		t.Fatal(err)
	}
	if !after[0].Cached || after[0].Index != before[0].Index || after[0].Revision != third {
		t.Errorf("a commit to d's own file changed c: cached=%v revision %s, want %s", after[0].Cached, after[0].Revision, third)
	}
	if after[1].Cached || after[1].Revision != fourth {
		t.Errorf("d after a commit to its file: cached=%v revision %s, want %s", after[1].Cached, after[1].Revision, fourth)
	}
}

// TestTagsLinkOnlyWhatTheyChoose: two images of one main package with different build tags
// link different code; a change to code only one of them links leaves the other's image as
// it was, also when the changed package is a dependency of both (the binary holds no build
// ID, which would hash every dependency's sources).
func TestTagsLinkOnlyWhatTheyChoose(t *testing.T) {
	t.Setenv("GOWORK", "off")
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		_ = os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/tags\n\ngo 1.26\n")
	write("lib/lib.go", "package lib\n\nfunc A() string { return \"a-one\" }\n\nfunc B() string { return \"b-one\" }\n")
	write("cmd/app/main.go", "package main\n\nfunc main() { println(part()) }\n")
	write("cmd/app/a.go", "//go:build with_a\n\npackage main\n\nimport \"example.com/tags/lib\"\n\nfunc part() string { return lib.A() }\n")
	write("cmd/app/b.go", "//go:build with_b\n\npackage main\n\nimport \"example.com/tags/lib\"\n\nfunc part() string { return lib.B() }\n")
	opts := Options{Root: root, Dir: filepath.Join(root, ".images"), Platforms: []v1.Platform{HostPlatform()}}
	specs := []Spec{{Name: "a", Package: "./cmd/app", Tags: []string{"with_a"}}, {Name: "b", Package: "./cmd/app", Tags: []string{"with_b"}}}
	ctx := context.Background()
	before, err := Build(ctx, opts, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if before[0].Index == before[1].Index {
		t.Fatal("the two tag sets made one image")
	}
	write("lib/lib.go", "package lib\n\nfunc A() string { return \"a-two\" }\n\nfunc B() string { return \"b-one\" }\n")
	after, err := Build(ctx, opts, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Index == before[0].Index {
		t.Error("a's image did not change with the code it links")
	}
	if after[1].Index != before[1].Index {
		t.Errorf("b's image changed (%s, was %s) with code it does not link", after[1].Index, before[1].Index)
	}
	// A file only b's tags compile: a's image is a cache hit, not even compiled again.
	var progress bytes.Buffer
	opts.Progress = &progress
	write("cmd/app/b.go", "//go:build with_b\n\npackage main\n\nimport \"example.com/tags/lib\"\n\nfunc part() string { return \"b: \" + lib.B() }\n")
	third, err := Build(ctx, opts, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if !third[0].Cached || third[0].Index != after[0].Index {
		t.Errorf("a file a does not compile rebuilt a: cached=%v index %s (was %s)", third[0].Cached, third[0].Index, after[0].Index)
	}
	if third[1].Cached || third[1].Index == after[1].Index {
		t.Errorf("b's own file changed, b's image did not: cached=%v", third[1].Cached)
	}
	if got := progress.String(); strings.Contains(got, "  a: ") || !strings.Contains(got, "building 1 image(s) for 1 platform(s): b") {
		t.Errorf("progress of b's rebuild: %q", got)
	}
}

// TestListCacheFollowsThePackageGraph: a build keeps the package graph go list reported, and
// the next build uses it only while it holds: an edit that keeps a package's files and imports
// keeps it (and the edit still rebuilds the image), a new import, a new file or a go.mod
// change lists again, and the new dependency's sources then count for the image.
func TestListCacheFollowsThePackageGraph(t *testing.T) {
	t.Setenv("GOWORK", "off")
	root := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		_ = os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/graph\n\ngo 1.26\n")
	write("lib/lib.go", "package lib\n\nfunc A() string { return \"a\" }\n")
	write("other/other.go", "package other\n\nfunc B() string { return \"b\" }\n")
	write("cmd/app/main.go", "package main\n\nimport \"example.com/graph/lib\"\n\nfunc main() { println(lib.A()) }\n")
	opts := Options{Root: root, Dir: filepath.Join(root, ".images"), Platforms: []v1.Platform{HostPlatform()}}
	app := Spec{Name: "app", Package: "./cmd/app"}
	ctx := context.Background()
	cached := func() bool {
		t.Helper()
		o := opts
		if err := o.defaults(); err != nil {
			t.Fatal(err)
		}
		goenv, err := readGoEnv(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		pl := platformString(HostPlatform())
		list, ok := cachedList(o, listKey(o, goenv, "", pl, []Spec{app}), goenv, "", pl, time.Now())
		if ok && len(list) == 0 {
			t.Fatal("the list cache held no package")
		}
		return ok
	}
	first := buildOne(t, opts, app)
	if !cached() {
		t.Fatal("a build left no package graph for the next")
	}

	// An edit inside a function: the same files and imports, the graph holds; the image is
	// rebuilt all the same.
	write("lib/lib.go", "package lib\n\nfunc A() string { return \"a2\" }\n")
	if !cached() {
		t.Error("an edit that keeps the files and imports listed the packages again")
	}
	second := buildOne(t, opts, app)
	if second.Cached || second.Index == first.Index {
		t.Fatalf("an edit of a dependency: cached=%v index %s (was %s)", second.Cached, second.Index, first.Index)
	}

	// A new import: the graph changed, and the new dependency's sources count from now on.
	write("lib/lib.go", "package lib\n\nimport \"example.com/graph/other\"\n\nfunc A() string { return \"a3\" + other.B() }\n")
	if cached() {
		t.Fatal("a new import kept the old package graph")
	}
	third := buildOne(t, opts, app)
	write("other/other.go", "package other\n\nfunc B() string { return \"b2\" }\n")
	if fourth := buildOne(t, opts, app); fourth.Cached || fourth.Index == third.Index {
		t.Errorf("an edit of the newly imported package: cached=%v index %s (was %s)", fourth.Cached, fourth.Index, third.Index)
	}
	if !cached() {
		t.Error("the graph was not kept after the new import's build")
	}

	// A new file in a package of the graph, and a go.mod change: listed again.
	write("lib/more.go", "package lib\n\nfunc C() string { return \"c\" }\n")
	if cached() {
		t.Error("a new file in a package of the graph kept the old graph")
	}
	buildOne(t, opts, app)
	if !cached() {
		t.Fatal("the graph was not kept after the new file's build")
	}
	write("go.mod", "module example.com/graph\n\ngo 1.26\n\n// a comment\n")
	if cached() {
		t.Error("a go.mod change kept the old graph")
	}
}
