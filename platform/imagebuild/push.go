package imagebuild

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushOptions say where images go.
type PushOptions struct {
	// Repo is the destination prefix: "registry/prefix", e.g.
	// 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mitosis; each image goes to Repo/<name>.
	Repo string
	// Tags given to each pushed index; default the image's version.
	Tags []string
	// Insecure allows plain HTTP (and unverified TLS) to the registry; registries on localhost
	// and 127.0.0.1 are reached over HTTP without it.
	Insecure bool
	// Keychain resolves credentials; default the Docker config and its credential helpers
	// (docker-credential-ecr-login for ECR).
	Keychain authn.Keychain
}

// Push copies an image's whole index (every platform) to a registry under each tag, and
// returns the references pushed, by digest.
func Push(ctx context.Context, img Image, opts PushOptions) ([]string, error) {
	if opts.Repo == "" {
		return nil, fmt.Errorf("push %s: no destination repository", img.Name)
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	tags := opts.Tags
	if len(tags) == 0 {
		tags = []string{img.Version}
	}
	var nameOpts []name.Option
	if opts.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	idx, err := img.OCIIndex()
	if err != nil {
		return nil, err
	}
	var pushed []string
	for _, tag := range tags {
		ref, err := name.NewTag(strings.TrimSuffix(opts.Repo, "/")+"/"+img.Name+":"+tag, nameOpts...)
		if err != nil {
			return pushed, fmt.Errorf("push %s: %w", img.Name, err)
		}
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(opts.Keychain)); err != nil {
			return pushed, fmt.Errorf("push %s: %w", ref, err)
		}
		pushed = append(pushed, ref.Context().Digest(img.Index).String())
	}
	return pushed, nil
}
