//go:build !remote

package podmanstats

import (
	"context"
	"errors"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/stack"
)

// Available reports whether this build can reach Podman at all: not without the build tags.
const Available = false

var errNoBindings = errors.New("built without the podman bindings (build tags: remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp)")

// Status fails: this binary was built without the podman bindings' tags.
func Status(context.Context, string) ([]stack.Status, error) { return nil, errNoBindings }

// Runtime fails: this binary was built without the podman bindings' tags.
func Runtime(context.Context, string) (stack.Runtime, error) { return nil, errNoBindings }

// Sampler is not available in this build.
type Sampler struct{}

// New fails: this binary was built without the podman bindings' tags.
func New(context.Context, string, string) (*Sampler, error) {
	return nil, errNoBindings
}

// Describe implements loadtest.ResourceSampler.
func (*Sampler) Describe() string { return "" }

// Sample implements loadtest.ResourceSampler.
func (*Sampler) Sample(context.Context) (map[string]loadtest.Usage, error) {
	return nil, errors.New("podman stats unavailable")
}

// Processes is not available in this build.
func (*Sampler) Processes(context.Context) ([]loadtest.Proc, error) {
	return nil, errNoBindings
}

// Limits is not available in this build.
func (*Sampler) Limits(context.Context) (loadtest.Limits, error) {
	return loadtest.Limits{}, errors.New("podman unavailable")
}
