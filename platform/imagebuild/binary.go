package imagebuild

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BuildBinary compiles s's binary for the host's platform into dir, as Build compiles it for
// s's image (the same go build flags, tags and environment, version "dev"), and returns its
// path: for tests that run an image's binary without a container (a fake Lambda Runtime
// API in front of it, say) and must run what the image would.
func BuildBinary(ctx context.Context, root, dir string, s Spec) (string, error) {
	opts := Options{Root: root, Dir: dir, Platforms: []v1.Platform{HostPlatform()}}
	if err := opts.defaults(); err != nil {
		return "", err
	}
	bins := map[string]map[string]string{}
	if err := compileGroup(ctx, opts, []Spec{s}, "dev", strings.Join(s.Tags, ","), dir, bins, map[string]time.Time{}); err != nil {
		return "", fmt.Errorf("build the binary of image %s: %w", s.Name, err)
	}
	return bins[s.Name][platformString(HostPlatform())], nil
}
