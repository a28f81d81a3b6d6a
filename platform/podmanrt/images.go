package podmanrt

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
)

// LoadImage puts the host platform's image of img into Podman under img.Ref, unless an image
// with the same ID already has that name. It reports whether it loaded anything.
func (r *Runtime) LoadImage(ctx context.Context, img imagebuild.Image) (bool, error) {
	c, cancel := r.with(ctx)
	defer cancel()
	pl, ok := img.PlatformImage(imagebuild.HostPlatform())
	if !ok {
		return false, fmt.Errorf("image %s was not built for %s", img.Name, imagebuild.HostPlatform().String())
	}
	if got, err := images.GetImage(c, img.Ref, nil); err == nil && got != nil && "sha256:"+got.ID == pl.ID {
		return false, nil
	}
	v1img, err := img.OCIImage(imagebuild.HostPlatform())
	if err != nil {
		return false, err
	}
	ref, err := name.NewTag(img.Ref)
	if err != nil {
		return false, fmt.Errorf("image %s: %w", img.Name, err)
	}
	// A docker-archive stream: Podman's load API takes it whole and keeps the tag.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(ref, v1img, pw)) }()
	report, err := images.Load(c, pr)
	_ = pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return false, fmt.Errorf("load %s into podman: %w", img.Ref, err)
	}
	r.logger.Debug("image loaded", "ref", img.Ref, "names", strings.Join(report.Names, ","))
	got, err := images.GetImage(c, img.Ref, nil)
	if err != nil {
		return false, fmt.Errorf("loaded %s, but podman does not find it: %w", img.Ref, err)
	}
	if "sha256:"+got.ID != pl.ID {
		return false, fmt.Errorf("loaded %s: podman has ID %s, the build says %s", img.Ref, got.ID, pl.ID)
	}
	r.pruneImages(c, img.Ref)
	return true, nil
}

// pruneImages removes the other tags of ref's repository that no container uses: every
// rebuild loads a new tag, and without this they pile up. An image in use is refused by
// Podman (no force) and stays.
func (r *Runtime) pruneImages(c context.Context, ref string) {
	repo := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo = ref[:i]
	}
	list, err := images.List(c, new(images.ListOptions).WithFilters(map[string][]string{"reference": {repo}}))
	if err != nil {
		return
	}
	for _, im := range list {
		for _, tag := range im.RepoTags {
			if tag == ref || !strings.HasPrefix(tag, repo+":") {
				continue
			}
			if _, errs := images.Remove(c, []string{tag}, nil); len(errs) == 0 {
				r.logger.Debug("old image removed", "ref", tag)
			}
		}
	}
}
