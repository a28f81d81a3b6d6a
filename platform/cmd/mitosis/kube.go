package main

import (
	"cmp"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/kube"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// kubeCmd is `kube`: render an overlay, play it on Podman (platform/kube), take it down,
// load images.
func (a *app) kubeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kube",
		Short: "Render the Kubernetes manifests, or run them on Podman with kube play",
		Long: `kube works with deploy/k8s, rendered from the topology that mitosis up runs.

  kube render --arch services    the overlay as plain YAML (what kubectl kustomize builds)
  kube play   --arch both        builds and loads the images, runs the overlays on Podman
                                 through kube play, waits for the edges' /readyz (both:
                                 monolith and services; --arch hybrid, any of topologies/)
  kube down                      removes what kube play made
  kube load                      loads the images into Podman as localhost/mitosis/<name>:latest,
                                 the names compose.yaml and the manifests use

kube play adapts what Podman cannot play (see platform/kube ForPodman): no Services (peers
find each other by DNS aliases), one replica, no in-container probes, only the edge
published, on 127.0.0.1. Its objects are named <prefix>-<arch>-<service>, --prefix
defaulting to <stack>-k8s, so they never meet mitosis up's.`,
	}
	cmd.AddCommand(a.kubeRenderCmd(), a.kubePlayCmd(), a.kubeDownCmd(), a.kubeLoadCmd())
	return cmd
}

func (a *app) kubeRenderCmd() *cobra.Command {
	var arch, output string
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print an overlay as plain YAML",
		Long: `render prints the objects of deploy/k8s/overlays/<arch> as kubectl kustomize builds them,
rendered from the topology: --arch monolith, services, hybrid (any topology of topologies/),
or production (the services on EKS: a 3-node NATS, the ADOT collector, ECR images).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := kube.Shipped(a.root)
			if err != nil {
				return err
			}
			objs, err := manifests.KubeOf(t, arch, manifests.Options{})
			if err != nil {
				return err
			}
			b, err := manifests.MarshalObjects(objs)
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return os.WriteFile(output, b, 0o644)
		},
	}
	cmd.Flags().StringVar(&arch, "arch", topology.Services, "overlay: monolith, services, hybrid (any topology of topologies/) or production")
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (default standard output)")
	return cmd
}

func (a *app) kubePlayCmd() *cobra.Command {
	var arch, prefix, repo, tag string
	var dryRun bool
	var readyTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "play",
		Short: "Run an architecture's overlay (monolith, services, hybrid...) on Podman with kube play",
		Long: `play builds what changed (this machine's platform), loads the images into Podman,
makes a network with DNS per architecture and plays each workload of the overlay into it,
and the stack's renewer (no network; it renews the identities of <state>/pki/<prefix> in
place), then waits until the edge answers /readyz on its published port (--monolith-edge,
--services-edge, or the topology file's edge: 127.0.0.1:8082 for the hybrid). Playing again
replaces the pods and keeps NATS's volume. --dry-run prints what it would play instead, the
admin token replaced by a placeholder naming where it comes from; --tag plays images kube
load put into Podman, without building. kube down removes it all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return kube.PlayStack(cmd.Context(), kube.StackOptions{Root: a.root, State: a.state, Socket: a.socket,
				Prefix: cmp.Or(prefix, a.stack+"-k8s"), Arch: arch,
				Edges: map[string]string{topology.Monolith: a.monolithEdge, topology.Services: a.servicesEdge},
				Repo:  repo, Tag: tag, DryRun: dryRun, ReadyTimeout: readyTimeout, Progress: cmd.OutOrStdout(), Logger: a.logger()})
		},
	}
	cmd.Flags().StringVar(&arch, "arch", topology.Both, "monolith, services, hybrid (any topology of topologies/) or both (monolith and services)")
	cmd.Flags().StringVar(&prefix, "prefix", "", "prefix of every name and the label of everything made (default <stack>-k8s)")
	cmd.Flags().StringVar(&repo, "repo", manifests.LocalRepo, "local repository of the images")
	cmd.Flags().StringVar(&tag, "tag", "", "play the images Podman holds as <repo>/<name>:<tag> (see kube load) instead of building")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the YAML each workload would be played with (the admin token as a placeholder), and stop")
	cmd.Flags().DurationVar(&readyTimeout, "ready-timeout", 90*time.Second, "how long the edge may take to answer /readyz")
	return cmd
}

func (a *app) kubeDownCmd() *cobra.Command {
	var arch, prefix string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove what kube play made: pods, containers, volumes, networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			full, err := kube.Shipped(a.root)
			if err != nil {
				return err
			}
			list, err := kube.Archs(full, arch)
			if err != nil {
				return err
			}
			if arch == topology.Both {
				list = nil // every architecture played under the prefix, the hybrid too
			}
			prefix := cmp.Or(prefix, a.stack+"-k8s")
			conn, err := kube.Connect(cmd.Context(), a.socket)
			if err != nil {
				return err
			}
			removed, err := kube.Down(cmd.Context(), conn, prefix, list)
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s (prefix %s) in %s\n", removed, prefix, time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().StringVar(&arch, "arch", topology.Both, "monolith, services, hybrid (any topology of topologies/), or both: every architecture played under the prefix")
	cmd.Flags().StringVar(&prefix, "prefix", "", "what kube play was given (default <stack>-k8s)")
	return cmd
}

func (a *app) kubeLoadCmd() *cobra.Command {
	var tag string
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load the built images into Podman as localhost/mitosis/<name>:latest",
		Long: `load builds what changed (this machine's platform), loads every image into Podman and
names each localhost/mitosis/<name>:<tag> as well, the name compose/compose.yaml and
deploy/k8s use; then, for example:

  SHOP_ADMIN_TOKEN=$(cat .mitosis/admin-token) DOCKER_HOST=unix:///run/podman/podman.sock \
    docker-compose -f compose/compose.yaml -p mitosis --profile monolith up -d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The renewer's too: the compose files run it.
			t, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
			if err != nil {
				return err
			}
			imgs, err := kube.BuildImages(cmd.Context(), t, kube.ImagesOptions{Root: a.root, State: a.state, Socket: a.socket, Logger: a.logger()})
			if err != nil {
				return err
			}
			conn, err := kube.Connect(cmd.Context(), a.socket)
			if err != nil {
				return err
			}
			refs, err := kube.TagAs(cmd.Context(), conn, imgs, manifests.LocalRepo, tag)
			for _, r := range refs {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&tag, "tag", "latest", "the tag to give")
	return cmd
}
