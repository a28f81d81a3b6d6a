package kube

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containers/podman/v4/pkg/bindings/images"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// ImagesOptions say how BuildImages builds: as `mitosis up` does, for this machine only.
type ImagesOptions struct {
	Root   string // the repository (the Go workspace)
	State  string // the state folder; images go to <State>/images, or images-<repo> for another Repo
	Repo   string // local repository prefix; default manifests.LocalRepo
	Socket string // Podman API; default podmanrt.Socket()
	Logger *slog.Logger
	// Stored builds uncompressed layers (imagebuild.Options.Stored): for tests, whose images
	// never leave the machine.
	Stored bool
}

// BuildImages builds (or finds cached) the images of the topology's architectures for this
// machine's platform with the platform's image build, and loads each into Podman unless it
// holds it already. It returns, by image name, the reference to run.
func BuildImages(ctx context.Context, t topology.Topology, opts ImagesOptions) (map[string]imagebuild.Image, error) {
	if opts.Repo == "" {
		opts.Repo = manifests.LocalRepo
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(opts.State, "images")
	if opts.Repo != manifests.LocalRepo {
		// The cache records each image's reference: another repository, another cache.
		dir += "-" + strings.NewReplacer("/", "_", ":", "_").Replace(opts.Repo)
	}
	stamp, err := imagebuild.StampFrom(ctx, opts.Root)
	if err != nil {
		return nil, err
	}
	var specs []imagebuild.Spec
	for _, im := range t.Images() {
		specs = append(specs, imagebuild.Spec{Name: im.Name, Package: im.Package, Tags: im.Tags})
	}
	built, err := imagebuild.Build(ctx, imagebuild.Options{
		Root:      opts.Root,
		Dir:       dir,
		Platforms: []v1.Platform{imagebuild.HostPlatform()},
		Version:   stamp.Version,
		Source:    stamp.Source,
		Created:   stamp.Created,
		GitStamp:  true,
		Repo:      opts.Repo,
		Stored:    opts.Stored,
		Logger:    opts.Logger,
	}, specs...)
	if err != nil {
		return nil, err
	}
	rt, err := podmanrt.Connect(ctx, podmanrt.Options{Socket: opts.Socket, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	out := map[string]imagebuild.Image{}
	for _, img := range built {
		if _, err := rt.LoadImage(ctx, img); err != nil {
			return nil, err
		}
		out[img.Name] = img
	}
	return out, nil
}

// Refs maps image names to their references.
func Refs(imgs map[string]imagebuild.Image) map[string]string {
	out := map[string]string{}
	for name, img := range imgs {
		out[name] = img.Ref
	}
	return out
}

// TagAs gives every loaded image a second name, <repo>/<name>:<tag>, the one compose.yaml and
// the checked-in manifests use (localhost/mitosis/<name>:latest). A later `mitosis up` that
// loads a new build drops tags no container uses, so tag again after building.
func TagAs(ctx context.Context, conn context.Context, imgs map[string]imagebuild.Image, repo, tag string) ([]string, error) {
	c, cancel := with(conn, ctx)
	defer cancel()
	var refs []string
	for _, name := range sortedNames(imgs) {
		img := imgs[name]
		if err := images.Tag(c, img.Ref, tag, repo+"/"+name, nil); err != nil {
			return refs, fmt.Errorf("tag %s as %s/%s:%s: %w", img.Ref, repo, name, tag, err)
		}
		refs = append(refs, repo+"/"+name+":"+tag)
	}
	return refs, nil
}

// Untag removes the names TagAs gave (the images stay under their own).
func Untag(ctx context.Context, conn context.Context, names []string, repo, tag string) error {
	c, cancel := with(conn, ctx)
	defer cancel()
	var errs []string
	for _, name := range names {
		if err := images.Untag(c, repo+"/"+name+":"+tag, tag, repo+"/"+name, nil); err != nil && !isNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("untag: %s", strings.Join(errs, "; "))
	}
	return nil
}

func sortedNames(imgs map[string]imagebuild.Image) []string {
	return slices.Sorted(maps.Keys(imgs))
}

// Loaded fails unless Podman holds every reference: kube play must never pull.
func Loaded(ctx context.Context, conn context.Context, refs map[string]string) error {
	c, cancel := with(conn, ctx)
	defer cancel()
	var missing []string
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		if ok, err := images.Exists(c, refs[name], nil); err != nil || !ok {
			missing = append(missing, refs[name])
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("podman does not hold %s (mitosis kube load puts them there)", strings.Join(missing, ", "))
	}
	return nil
}
