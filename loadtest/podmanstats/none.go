//go:build !remote

package podmanstats

import (
	"context"
	"errors"

	"github.com/mitosis-dev/mitosis/loadtest"
)

// Available reports whether this build can reach Podman at all: not without the build tags.
const Available = false

// Sampler is not available in this build.
type Sampler struct{}

// New fails: this binary was built without the podman bindings' tags.
func New(context.Context, string, string) (*Sampler, error) {
	return nil, errors.New("built without the podman bindings (build tags: remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp)")
}

// Describe implements loadtest.ResourceSampler.
func (*Sampler) Describe() string { return "" }

// Sample implements loadtest.ResourceSampler.
func (*Sampler) Sample(context.Context) (map[string]loadtest.Usage, error) {
	return nil, errors.New("podman stats unavailable")
}

// Limits is not available in this build.
func (*Sampler) Limits(context.Context) (loadtest.Limits, error) {
	return loadtest.Limits{}, errors.New("podman unavailable")
}
