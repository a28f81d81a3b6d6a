package imagebuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// formatVersion changes whenever the image layout this package writes changes, so that every
// cached image is rebuilt.
const formatVersion = "mitosis-imagebuild/1"

// ldflags strips the symbol table and DWARF (the build info debug/buildinfo reads survives),
// leaves the build ID out, and stamps the version into main.version when the main package
// declares it. Without a build ID the binary is what its linked code makes it: a build ID is
// a hash of every package it depends on, so a change to code a binary does not link (another
// context's implementation, in another group's image) would still change it.
func ldflags(version string) string {
	return "-s -w -buildid= -X main.version=" + version
}

// buildEnv is the environment of `go build` for one platform: the caller's, with cgo off so the
// binary is static and runs on an empty base, and without GOFLAGS: the caller's flags (the
// Podman bindings' build tags, for one) are not the images', and an image must not differ
// with the shell it was built from. Build flags are this package's, and fixed. Unless the
// caller sets GOGC or GOMEMLIMIT, the compiler and linker run with the collector held back
// (buildGC): a link of an image's binary spends a good part of its CPU collecting garbage
// it could keep.
func buildEnv(goos, goarch string) []string {
	env := make([]string, 0, len(os.Environ())+5)
	tuned := false
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOFLAGS":
			continue
		case "GOGC", "GOMEMLIMIT":
			tuned = tuned || v != ""
		}
		env = append(env, kv)
	}
	if !tuned {
		env = append(env, buildGC...)
	}
	return append(env, "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
}

// buildGC is the collector's setting of every go list, compile and link of an image build:
// none until a process holds 1 GiB, then as much as keeps it there. Measured 2026-12-07 (2
// cores): the two builds after an edit of orders' saga (the monolith's and orders' binaries,
// side by side) 2.65-2.97 s against 3.14-3.38 s with Go's default (GOGC=100), 5.0-5.5 CPU-s
// against 5.9-6.4; a first build of platform/cmd/nats-server into an empty cache 45.9 s
// against 54.2 s, its largest process 1.05 GB against 1.14 GB (GOGC=off alone: 2.5 GB).
var buildGC = []string{"GOGC=off", "GOMEMLIMIT=1GiB"}

// listedPackage is the part of `go list -json` the inputs' hash needs.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	CgoFiles   []string
	EmbedFiles []string
	SFiles     []string
	Module     *struct {
		Path    string
		Version string
		Sum     string
		GoMod   string
		Replace *struct {
			Path    string
			Version string
			Sum     string
		}
	}
	Imports []string // read by the list cache (listcache.go)
	Deps    []string
	Error   *struct{ Err string }
}

// specInputs is what a spec's image is made from, apart from its stamp and platforms.
type specInputs struct {
	hash  string   // sources, module versions, go.mod/go.sum/go.work, Go version, flags, base
	paths []string // git pathspecs of those sources, relative to Options.Root
}

// inputsHashes computes, for each spec, a hash of everything its image depends on: the
// sources of its package and of every workspace package it imports, the versions of every
// module dependency, the go.mod/go.sum/go.work files, the Go version, the build flags and the
// base layer's contents. One `go list` per set of build tags and platform covers every spec:
// tags and platform choose the files (and so the dependencies), and only the files a build
// compiles count, so that a change to a file that only other groups link (a context's
// server, built with its tag) rebuilds only their images. The stamp (version, revision,
// time) and the platforms are added by Build.
func inputsHashes(ctx context.Context, opts Options, ca []byte, specs []Spec) (map[string]specInputs, error) {
	byTags := map[string][]Spec{}
	for _, s := range specs {
		byTags[strings.Join(s.Tags, ",")] = append(byTags[strings.Join(s.Tags, ",")], s)
	}
	type listing struct{ tags, platform string }
	pkgs := map[listing]map[string]*listedPackage{} // import path -> package
	byDir := map[listing]map[string]*listedPackage{}
	var lists []listing
	for _, tags := range sortedKeys(byTags) {
		for _, p := range opts.Platforms {
			lists = append(lists, listing{tags, platformString(p)})
		}
	}
	goenv, err := readGoEnv(ctx, opts.Root)
	if err != nil {
		return nil, err
	}
	listed := make([][]*listedPackage, len(lists))
	errs := make([]error, len(lists))
	var wg sync.WaitGroup
	for i, l := range lists {
		wg.Go(func() { listed[i], errs[i] = listDeps(ctx, opts, goenv, l.tags, l.platform, byTags[l.tags]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, l := range lists {
		pkgs[l], byDir[l] = map[string]*listedPackage{}, map[string]*listedPackage{}
		for _, p := range listed[i] {
			pkgs[l][p.ImportPath] = p
			byDir[l][p.Dir] = p
		}
	}

	common := sha256.New()
	fmt.Fprintf(common, "%s\n%s\n", formatVersion, goenv["GOVERSION"])
	fmt.Fprintf(common, "ldflags=%s\ntrimpath buildvcs=false cgo=0\n", ldflags("<version>"))
	goenv.write(common, fileEnv)
	fmt.Fprintf(common, "source=%s\nrepo=%s\n", opts.Source, opts.Repo)
	fmt.Fprintf(common, "ca=%x\n", sha256.Sum256(ca))
	if opts.Stored {
		fmt.Fprintln(common, "stored") // only then: a compressed build's hash stays what it was
	}
	for _, f := range []string{"go.work", "go.work.sum"} {
		if err := hashFile(common, filepath.Join(opts.Root, f), f, true); err != nil {
			return nil, err
		}
	}
	commonSum := common.Sum(nil)

	hashes := make(map[string]specInputs, len(specs))
	files := map[string][]byte{} // folder and file names -> hash of those files, shared between specs and listings
	for _, s := range specs {
		tags := strings.Join(s.Tags, ",")
		h := sha256.New()
		h.Write(commonSum)
		fmt.Fprintf(h, "spec=%s %s tags=%s\n", s.Name, s.Package, tags)
		goMods := map[string]bool{}
		var paths []string
		for _, pl := range opts.Platforms {
			l := listing{tags, platformString(pl)}
			pkgs, byDir := pkgs[l], byDir[l]
			root, ok := byDir[filepath.Join(opts.Root, s.Package)]
			if !ok {
				return nil, fmt.Errorf("image %s: go list did not report package %s", s.Name, s.Package)
			}
			fmt.Fprintf(h, "platform %s\n", l.platform)
			deps := append([]string{root.ImportPath}, root.Deps...)
			sort.Strings(deps)
			for _, path := range deps {
				p, ok := pkgs[path]
				if !ok || p.Standard {
					continue // the standard library is covered by the Go version
				}
				if m := p.Module; m != nil && m.Version != "" && (m.Replace == nil || m.Replace.Version != "") {
					// A module from the module cache is immutable: its version (and sum) says it all.
					fmt.Fprintf(h, "pkg %s from %s@%s %s\n", path, m.Path, m.Version, m.Sum)
					continue
				}
				if p.Module != nil && p.Module.GoMod != "" {
					goMods[p.Module.GoMod] = true
				}
				names := slices.Concat(p.GoFiles, p.CgoFiles, p.EmbedFiles, p.SFiles)
				sort.Strings(names)
				// The stamp follows the commits that touched these very files: a commit to
				// a file only another group's tags compile does not restamp (and so
				// rebuild) this image. (A commit that only deletes a file is not among
				// them: the image is rebuilt all the same, by the hash, with the stamp of
				// the files' last commit.)
				if rel, err := filepath.Rel(opts.Root, p.Dir); err == nil && !strings.HasPrefix(rel, "..") {
					for _, n := range names {
						paths = append(paths, ":(literal)"+filepath.ToSlash(filepath.Join(rel, n)))
					}
				}
				// The same folder and files hash the same in every listing: read them once.
				key := p.Dir + "\x00" + strings.Join(names, "\x00")
				sum, ok := files[key]
				if !ok {
					fh := sha256.New()
					for _, n := range names {
						if err := hashFile(fh, filepath.Join(p.Dir, n), n, false); err != nil {
							return nil, err
						}
					}
					sum = fh.Sum(nil)
					files[key] = sum
				}
				fmt.Fprintf(h, "pkg %s files %x\n", path, sum)
			}
		}
		slices.Sort(paths)
		paths = slices.Compact(paths)
		for _, gm := range sortedKeys(goMods) {
			rel, _ := filepath.Rel(opts.Root, gm)
			if err := hashFile(h, gm, rel, false); err != nil {
				return nil, err
			}
			sumFile := strings.TrimSuffix(gm, ".mod") + ".sum"
			if err := hashFile(h, sumFile, rel+".sum", true); err != nil {
				return nil, err
			}
			if !strings.HasPrefix(rel, "..") {
				paths = append(paths, ":(literal)"+filepath.ToSlash(rel), ":(literal)"+filepath.ToSlash(strings.TrimSuffix(rel, ".mod")+".sum"))
			}
		}
		paths = append(paths, ":(literal)go.work", ":(literal)go.work.sum")
		hashes[s.Name] = specInputs{hash: hex.EncodeToString(h.Sum(nil)), paths: paths}
	}
	return hashes, nil
}

// listDeps lists the packages of specs and their dependencies, as built with tags for
// platform (os/arch): from the list cache when its record still holds, else with go list,
// whose answer is recorded for the next build.
func listDeps(ctx context.Context, opts Options, goenv goEnvironment, tags, platform string, specs []Spec) ([]*listedPackage, error) {
	start := time.Now()
	key := listKey(opts, goenv, tags, platform, specs)
	if list, ok := cachedList(opts, key, goenv, tags, platform, start); ok {
		opts.Logger.Debug("package graph from the list cache", "tags", tags, "platform", platform, "took", time.Since(start))
		return list, nil
	}
	list, err := goList(ctx, opts, tags, platform, specs)
	if err != nil {
		return nil, err
	}
	roots := map[string]bool{}
	byDir := map[string]string{}
	for _, p := range list {
		byDir[p.Dir] = p.ImportPath
	}
	for _, s := range specs {
		roots[byDir[filepath.Join(opts.Root, s.Package)]] = true
	}
	rec, err := newListRecord(opts, key, list, roots, start)
	if err == nil {
		err = saveListRecord(opts, rec)
	}
	if err != nil {
		// The build goes on: the next one lists again.
		opts.Logger.Warn("list cache not written", "err", err)
	}
	opts.Logger.Debug("package graph listed", "tags", tags, "platform", platform, "took", time.Since(start))
	return list, nil
}

// goList lists the packages of specs and their dependencies, as built with tags for platform
// (os/arch).
func goList(ctx context.Context, opts Options, tags, platform string, specs []Spec) ([]*listedPackage, error) {
	args := []string{"list", "-deps", "-json=ImportPath,Dir,Standard,GoFiles,CgoFiles,EmbedFiles,SFiles,Module,Imports,Deps,Error"}
	if tags != "" {
		args = append(args, "-tags="+tags)
	}
	for _, s := range specs {
		args = append(args, s.Package)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = opts.Root
	goos, goarch, _ := strings.Cut(platform, "/")
	cmd.Env = buildEnv(goos, goarch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w\n%s", strings.Join(args[3:], " "), err, stderr.Bytes())
	}
	var list []*listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("package %s: %s", p.ImportPath, p.Error.Err)
		}
		list = append(list, &p)
	}
	return list, nil
}

// hashFile writes a file's name and contents into h; a missing optional file counts as absent.
func hashFile(h io.Writer, path, name string, optional bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		fmt.Fprintf(h, "absent %s\n", name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("hash inputs: %w", err)
	}
	fmt.Fprintf(h, "file %s %d\n", name, len(b))
	h.Write(b)
	return nil
}

// fileEnv are the Go settings that choose which files a package compiles, and listEnv those
// that also choose where packages are found: what a build's and a listing's hashes take in.
var (
	fileEnv = []string{"GOEXPERIMENT", "GOAMD64", "GOARM64"}
	listEnv = append(slices.Clone(fileEnv), "GOWORK", "GO111MODULE", "GOTOOLCHAIN", "GOPATH", "GOMODCACHE")
)

// goEnvironment is `go env` in a folder: the environment's variables as the go command
// resolves them, `go env -w` settings included, which os.Getenv does not see.
type goEnvironment map[string]string

// readGoEnv reads GOVERSION and listEnv, once per build.
func readGoEnv(ctx context.Context, dir string) (goEnvironment, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"env", "-json", "GOVERSION"}, listEnv...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	env := goEnvironment{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	return env, nil
}

// write writes keys' values to h, one line each.
func (e goEnvironment) write(h io.Writer, keys []string) {
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, e[k])
	}
}

// compile builds every spec for every platform with one `go build` per platform and stamped
// version, and returns name -> platform -> binary path, and a cleanup that removes them.
// It also returns when each binary's first build began.
func compile(ctx context.Context, opts Options, specs []Spec, versions map[string]string) (map[string]map[string]string, map[string]time.Time, func(), error) {
	tmp, err := os.MkdirTemp("", "mitosis-build-")
	if err != nil {
		return nil, nil, func() {}, fmt.Errorf("build dir: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	// One go build per version and set of tags: both are the same for every binary it makes.
	type key struct{ version, tags string }
	groups := map[key][]Spec{}
	var keys []key
	for _, s := range specs {
		k := key{versions[s.Name], strings.Join(s.Tags, ",")}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], s)
	}
	// The builds run side by side, as many as there are CPUs: each links its own binary (one
	// per group of contexts), on packages the first compiles for all.
	bins := map[string]map[string]string{}
	started := map[string]time.Time{}
	var mu sync.Mutex
	errs := make([]error, len(keys))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			built := map[string]map[string]string{}
			began := map[string]time.Time{}
			errs[i] = compileGroup(ctx, opts, groups[k], k.version, k.tags, filepath.Join(tmp, strconv.Itoa(i)), built, began)
			mu.Lock()
			defer mu.Unlock()
			maps.Copy(bins, built)
			maps.Copy(started, began)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, cleanup, err
	}
	return bins, started, cleanup, nil
}

func compileGroup(ctx context.Context, opts Options, specs []Spec, version, tags, tmp string, bins map[string]map[string]string, started map[string]time.Time) error {
	// go build -o DIR names each binary after its package directory.
	byBase := map[string]string{}
	for _, s := range specs {
		base := filepath.Base(filepath.Clean(s.Package))
		if other, dup := byBase[base]; dup {
			return fmt.Errorf("images %s and %s: packages share the directory name %q", other, s.Name, base)
		}
		byBase[base] = s.Name
	}
	names := slices.Sorted(maps.Values(byBase)) // the images, in the order progress names them
	for _, p := range opts.Platforms {
		dir := filepath.Join(tmp, p.OS+"-"+p.Architecture)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("build dir: %w", err)
		}
		args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + ldflags(version), "-tags=" + tags, "-o", dir + string(filepath.Separator)}
		for _, s := range specs {
			args = append(args, s.Package)
		}
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = opts.Root
		cmd.Env = buildEnv(p.OS, p.Architecture)
		var stderr bytes.Buffer
		cmd.Stdout = &stderr
		cmd.Stderr = &stderr
		opts.Logger.Info("go build", "platform", p.String(), "tags", tags, "packages", args[7:])
		for _, n := range names {
			if _, ok := started[n]; !ok {
				started[n] = time.Now()
			}
			opts.progress("  %s: compiling for %s", n, p.String())
		}
		began := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build for %s: %w\n%s", p.String(), err, stderr.Bytes())
		}
		// Said as each build ends, not once all have: a first build compiles for minutes.
		for _, n := range names {
			opts.progress("  %s: compiled for %s (%s)", n, p.String(), time.Since(began).Round(100*time.Millisecond))
		}
		for base, name := range byBase {
			path := filepath.Join(dir, base)
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("image %s: go build wrote no binary %s", name, path)
			}
			if bins[name] == nil {
				bins[name] = map[string]string{}
			}
			bins[name][platformString(p)] = path
		}
	}
	return nil
}
