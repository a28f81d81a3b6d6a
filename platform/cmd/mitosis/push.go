package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
)

func (a *app) pushCmd() *cobra.Command {
	var opts imagebuild.PushOptions
	cmd := &cobra.Command{
		Use:   "push --to REGISTRY/PREFIX [image...]",
		Short: "Copy the topology's images (every platform) to an OCI registry",
		Long: `push builds what changed, then copies each image's index (every platform) to
REGISTRY/PREFIX/<image>:<tag>, for example
123456789012.dkr.ecr.eu-west-1.amazonaws.com/mitosis. Credentials come from the Docker
config and its credential helpers (docker-credential-ecr-login for ECR). Registries on
localhost and 127.0.0.1 are reached over plain HTTP; --insecure allows it elsewhere.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Repo == "" {
				return usageError{errors.New("push needs --to REGISTRY/PREFIX")}
			}
			t, err := a.topology()
			if err != nil {
				return err
			}
			imgs, err := a.build(cmd.Context(), t, args, false, false)
			if err != nil {
				return err
			}
			for _, im := range t.Images() {
				img, ok := imgs[im.Name]
				if !ok {
					continue
				}
				refs, err := imagebuild.Push(cmd.Context(), img, opts)
				if err != nil {
					return err
				}
				for _, r := range refs {
					a.say("pushed %s", r)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Repo, "to", os.Getenv("MITOSIS_PUSH_TO"), "destination REGISTRY/PREFIX [MITOSIS_PUSH_TO]")
	cmd.Flags().StringSliceVar(&opts.Tags, "tag", nil, "tags to push (default the version)")
	cmd.Flags().BoolVar(&opts.Insecure, "insecure", false, "allow plain HTTP to the registry")
	cmd.Flags().StringSliceVar(&a.platforms, "platform", nil, "platforms to build (default linux/amd64,linux/arm64) [MITOSIS_PLATFORMS]")
	return cmd
}
