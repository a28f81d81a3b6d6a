package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Repo is the local repository of the images the suites run: apart from the real stack's
// (localhost/mitosis), so a run never replaces what `mitosis up` runs.
const Repo = "localhost/mitosis-it"

// ImagesOptions say where the images come from and go.
type ImagesOptions struct {
	Root   string // the repository root (the Go workspace)
	Dir    string // the build's cache; default <os.TempDir()>/mitosis-it-images (kept across runs: unchanged inputs are not rebuilt)
	Logger *slog.Logger
}

// ImagesReport says what BuildImages did and how long it took.
type ImagesReport struct {
	Build, Load   time.Duration
	Built, Loaded int // images compiled, images loaded into Podman (the rest were up to date)
}

// BuildImages builds every image of every shipped topology (topologies/: NATS, and the host's
// image of each of their groups) for this machine's platform with the platform's image
// build, and loads each into Podman unless Podman already holds it under the same ID. The
// result maps image names to images; Image.Ref is the local reference to run.
func BuildImages(ctx context.Context, rt *podmanrt.Runtime, opts ImagesOptions) (map[string]imagebuild.Image, ImagesReport, error) {
	var rep ImagesReport
	if opts.Dir == "" {
		opts.Dir = filepath.Join(os.TempDir(), "mitosis-it-images")
	}
	dir := filepath.Join(opts.Root, "topologies")
	files, err := topology.Available(dir)
	if err != nil {
		return nil, rep, err
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	topo, err := topology.Get(strings.Join(names, ","), topology.Options{Dir: dir, Collector: topology.NoCollector, NoRenewer: true}) // its stacks run architectures alone
	if err != nil {
		return nil, rep, err
	}
	var specs []imagebuild.Spec
	for _, im := range topo.Images() {
		specs = append(specs, imagebuild.Spec{Name: im.Name, Package: im.Package, Tags: im.Tags})
	}
	start := time.Now()
	built, err := imagebuild.Build(ctx, imagebuild.Options{
		Root:      opts.Root,
		Dir:       opts.Dir,
		Platforms: []v1.Platform{imagebuild.HostPlatform()},
		Repo:      Repo,
		Stored:    true, // the tests' images never leave the machine
		Logger:    opts.Logger,
	}, specs...)
	if err != nil {
		return nil, rep, fmt.Errorf("build images: %w", err)
	}
	rep.Build = time.Since(start)
	start = time.Now()
	out := make(map[string]imagebuild.Image, len(built))
	for _, img := range built {
		if !img.Cached {
			rep.Built++
		}
		loaded, err := rt.LoadImage(ctx, img)
		if err != nil {
			return nil, rep, err
		}
		if loaded {
			rep.Loaded++
		}
		out[img.Name] = img
	}
	rep.Load = time.Since(start)
	return out, rep, nil
}
