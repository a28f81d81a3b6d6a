package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
)

func (a *app) buildCmd() *cobra.Command {
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "build [image...]",
		Short: "Build the topology's images (all, or those named) for every platform",
		Long: `build compiles each binary of the topology (CGO off, -trimpath, stripped, version
stamped) for every platform and assembles its OCI image on an empty base: CA certificates,
user 65532, the binary as entrypoint, OCI labels. Each image is an OCI layout in
<state>/images/<name>/oci with an SPDX SBOM per platform beside it. Images whose inputs
(sources, go.sum, flags) did not change are not rebuilt; --force rebuilds them.

Timestamps come from SOURCE_DATE_EPOCH, else the last commit's time, so the same sources
give the same digests.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.topology()
			if err != nil {
				return err
			}
			start := time.Now()
			imgs, err := a.build(cmd.Context(), t, args, force, false)
			if err != nil {
				return err
			}
			if asJSON {
				var list []imagebuild.Image
				for _, im := range t.Images() {
					if img, ok := imgs[im.Name]; ok {
						list = append(list, img)
					}
				}
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tBUILD\tREF\tPLATFORMS\tBINARY\tIMAGE SIZE\tINDEX")
			for _, im := range t.Images() {
				img, ok := imgs[im.Name]
				if !ok {
					continue
				}
				what := "built"
				if img.Cached {
					what = "cached"
				}
				var plats []string
				var bin, size int64
				for _, p := range img.Platforms {
					plats = append(plats, p.Platform)
					if p.Platform == "linux/"+imagebuild.HostPlatform().Architecture || bin == 0 {
						bin, size = p.BinarySize, p.ImageSize
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", img.Name, what, img.Ref, strings.Join(plats, ","),
					mib(bin), mib(size), img.Index[:19])
			}
			_ = tw.Flush()
			a.say("build took %s; images in %s", time.Since(start).Round(time.Millisecond), filepath.Join(a.state, "images"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even when the inputs did not change")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the images as JSON")
	cmd.Flags().StringSliceVar(&a.platforms, "platform", nil, "platforms to build (default linux/amd64,linux/arm64) [MITOSIS_PLATFORMS]")
	return cmd
}
