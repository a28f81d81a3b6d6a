package kube

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/natsauth"
	"github.com/mitosis-dev/mitosis/platform/podmanrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Command returns `kube`: render an overlay, play it on Podman, take it down, load images.
//
// It reads the CLI's global flags when it is mounted under them (--root, --state, --stack,
// --socket, --monolith-edge, --services-edge, --verbose) and their defaults otherwise.
func Command() *cobra.Command {
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
	cmd.AddCommand(renderCmd(), playCmd(), downCmd(), loadCmd())
	return cmd
}

// env is what the commands read from the CLI's global flags.
type env struct {
	root, state, stack, socket string
	logger                     *slog.Logger
}

func flagOr(cmd *cobra.Command, name, def string) string {
	if f := cmd.Flag(name); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return def
}

func envOf(cmd *cobra.Command) (env, error) {
	root, err := manifests.RepoRoot(cmd)
	if err != nil {
		return env{}, err
	}
	e := env{
		root:   root,
		state:  flagOr(cmd, "state", os.Getenv("MITOSIS_STATE")),
		stack:  flagOr(cmd, "stack", stack.DefaultName),
		socket: flagOr(cmd, "socket", podmanrt.Socket()),
	}
	if e.state == "" {
		e.state = filepath.Join(root, ".mitosis")
	}
	level := slog.LevelWarn
	if flagOr(cmd, "verbose", "false") == "true" {
		level = slog.LevelDebug
	}
	e.logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	return e, nil
}

// shipped is the topology of the repository's deploy files: every file of its topologies/.
func shipped(e env) (topology.Topology, error) {
	return manifests.Shipped(filepath.Join(e.root, "topologies"))
}

// edge is where an architecture's edge is published: the CLI's --monolith-edge or
// --services-edge, or its topology file's edge (hybrid: 127.0.0.1:8082).
func edge(cmd *cobra.Command, t topology.Topology, arch string) string {
	switch arch {
	case topology.Monolith:
		return flagOr(cmd, arch+"-edge", topology.MonolithEdge)
	case topology.Services:
		return flagOr(cmd, arch+"-edge", topology.ServicesEdge)
	}
	for _, a := range t.Archs {
		if a.Name == arch {
			return a.Edge
		}
	}
	return ""
}

// target is what play and down act on: the environment, the shipped topology, the
// architectures --arch names, and the objects' name prefix (--prefix, default <stack>-k8s).
func target(cmd *cobra.Command, arch, prefix string) (env, topology.Topology, []string, string, error) {
	e, err := envOf(cmd)
	if err != nil {
		return env{}, topology.Topology{}, nil, "", err
	}
	t, err := shipped(e)
	if err != nil {
		return env{}, topology.Topology{}, nil, "", err
	}
	list, err := archs(t, arch)
	if err != nil {
		return env{}, topology.Topology{}, nil, "", err
	}
	// Only the chosen architectures' images are needed: playing the monolith must not
	// require the hybrid's images to be loaded.
	t.Archs = slices.DeleteFunc(slices.Clone(t.Archs), func(a topology.Arch) bool { return !slices.Contains(list, a.Name) })
	if prefix == "" {
		prefix = e.stack + "-k8s"
	}
	return e, t, list, prefix, nil
}

// archs reads --arch for play and down: both (monolith and services), or one architecture
// of the shipped topology.
func archs(t topology.Topology, arch string) ([]string, error) {
	if arch == topology.Both || arch == "" {
		return []string{topology.Monolith, topology.Services}, nil
	}
	var names []string
	for _, a := range t.Archs {
		if a.Name == arch {
			return []string{arch}, nil
		}
		names = append(names, a.Name)
	}
	return nil, fmt.Errorf("--arch %q: want %s or %s", arch, strings.Join(names, ", "), topology.Both)
}

// dryRunToken and dryRunRequestKey stand for the secrets in what play --dry-run prints (%s:
// the file that holds it).
const (
	dryRunToken      = "<the admin token: $SHOP_ADMIN_TOKEN, else the content of %s>"
	dryRunRequestKey = "<the request key: $SHOP_REQUEST_KEY, else the content of %s>"
)

func renderCmd() *cobra.Command {
	var arch, output string
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print an overlay as plain YAML",
		Long: `render prints the objects of deploy/k8s/overlays/<arch> as kubectl kustomize builds them,
rendered from the topology: --arch monolith, services, hybrid (any topology of topologies/),
or production (the services on EKS: a 3-node NATS, the ADOT collector, ECR images).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := envOf(cmd)
			if err != nil {
				return err
			}
			t, err := shipped(e)
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

func playCmd() *cobra.Command {
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
			start := time.Now()
			e, t, list, prefix, err := target(cmd, arch, prefix)
			if err != nil {
				return err
			}
			// The stack's renewer plays beside the overlays, as compose runs it: identities
			// are host folders here too. Its image is built and loaded with theirs, and it
			// gets the CA's files (stack.Identities).
			renewer := topology.NewRenewer()
			t.Renewer = &renewer
			// A dry run prints what it would play, which others may read (a terminal, a CI
			// log, a ticket): the secret's place, not the secret. Nor does it make one.
			token := fmt.Sprintf(dryRunToken, filepath.Join(e.state, "admin-token"))
			requestKey := fmt.Sprintf(dryRunRequestKey, filepath.Join(e.state, "request-key"))
			if !dryRun {
				if token, err = stack.AdminToken(e.state); err != nil {
					return err
				}
				if requestKey, err = stack.RequestKey(e.state); err != nil {
					return err
				}
			}
			refs := map[string]string{}
			switch {
			case dryRun && tag == "":
				for _, im := range t.Images() {
					refs[im.Name] = manifests.Image(im.Name)
				}
			case tag != "":
				// What kube load (or a test) put into Podman: no build.
				for _, im := range t.Images() {
					refs[im.Name] = repo + "/" + im.Name + ":" + tag
				}
			default:
				imgs, err := BuildImages(cmd.Context(), t, ImagesOptions{Root: e.root, State: e.state, Repo: repo, Socket: e.socket, Logger: e.logger})
				if err != nil {
					return err
				}
				refs = Refs(imgs)
				fmt.Fprintf(cmd.OutOrStdout(), "images built and loaded (%s)\n", time.Since(start).Round(time.Millisecond))
			}
			var conn = cmd.Context()
			if !dryRun {
				if conn, err = Connect(cmd.Context(), e.socket); err != nil {
					return err
				}
				if err := Loaded(cmd.Context(), conn, refs); err != nil {
					return err
				}
			}
			// The services' identities, in the state folder under the prefix's name (a stack of
			// its own); a dry run names where they would be.
			pki := stack.PKIDir(e.state, prefix)
			tls := map[string]string{}
			for _, id := range t.Identities() {
				tls[id] = filepath.Join(pki, id)
			}
			if !dryRun {
				if tls, err = stack.Identities(prefix, t, stack.UpOptions{PKI: pki}, &[2]int{imagebuild.UID, imagebuild.UID}); err != nil {
					return err
				}
			}
			// The NATS users of the overlays' base (every shipped architecture's), their
			// passwords kept beside the identities; a dry run names them.
			full, err := shipped(e)
			if err != nil {
				return err
			}
			natsPW := map[string]string{}
			for _, u := range natsauth.Users(full) {
				natsPW[u] = "<the NATS password of " + u + ": the content of " + filepath.Join(pki, "nats-"+u) + ">"
			}
			if !dryRun {
				if natsPW, err = natsauth.Passwords(pki, natsauth.Users(full)); err != nil {
					return err
				}
			}
			for _, a := range list {
				ad := Adapt{Prefix: prefix, Edge: edge(cmd, t, a), Images: refs, AdminToken: token, RequestKey: requestKey, TLS: tls, NATSPasswords: natsPW, PKI: pki}
				if dryRun {
					if err := printWorkloads(cmd.OutOrStdout(), a, ad); err != nil {
						return err
					}
					continue
				}
				p, err := Play(cmd.Context(), conn, PlayOptions{Adapt: ad, Overlay: a, ReadyTimeout: readyTimeout, Progress: cmd.OutOrStdout(), Logger: e.logger})
				if err != nil {
					return fmt.Errorf("%w\n(mitosis kube down --prefix %s removes what was made)", err, prefix)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: http://%s (%d pods; network %s)\n", a, p.Edge, len(p.Pods), p.Network)
			}
			if !dryRun {
				fmt.Fprintf(cmd.OutOrStdout(), "played in %s; admin token: SHOP_ADMIN_TOKEN or %s; kube down --prefix %s removes it\n",
					time.Since(start).Round(time.Millisecond), filepath.Join(e.state, "admin-token"), prefix)
			}
			return nil
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

func printWorkloads(w io.Writer, arch string, ad Adapt) error {
	objs, err := manifests.Kube(arch, manifests.Options{})
	if err != nil {
		return err
	}
	ws, err := ForPodman(arch, objs, ad)
	if err != nil {
		return err
	}
	for _, wl := range ws {
		b, err := wl.YAML()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "# kube play --network %s\n---\n%s", playNetwork(wl, NetworkName(ad.Prefix, arch)), b)
	}
	return nil
}

func downCmd() *cobra.Command {
	var arch, prefix string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove what kube play made: pods, containers, volumes, networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			e, _, list, prefix, err := target(cmd, arch, prefix)
			if err != nil {
				return err
			}
			if arch == topology.Both {
				list = nil // every architecture played under the prefix, the hybrid too
			}
			conn, err := Connect(cmd.Context(), e.socket)
			if err != nil {
				return err
			}
			removed, err := Down(cmd.Context(), conn, prefix, list)
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s (prefix %s) in %s\n", removed, prefix, time.Since(start).Round(time.Millisecond))
			return err
		},
	}
	cmd.Flags().StringVar(&arch, "arch", topology.Both, "monolith, services, hybrid (any topology of topologies/), or both: every architecture played under the prefix")
	cmd.Flags().StringVar(&prefix, "prefix", "", "what kube play was given (default <stack>-k8s)")
	return cmd
}

func loadCmd() *cobra.Command {
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
			e, err := envOf(cmd)
			if err != nil {
				return err
			}
			// The renewer's too: the compose files run it.
			t, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
			if err != nil {
				return err
			}
			imgs, err := BuildImages(cmd.Context(), t, ImagesOptions{Root: e.root, State: e.state, Socket: e.socket, Logger: e.logger})
			if err != nil {
				return err
			}
			conn, err := Connect(cmd.Context(), e.socket)
			if err != nil {
				return err
			}
			refs, err := TagAs(cmd.Context(), conn, imgs, manifests.LocalRepo, tag)
			for _, r := range refs {
				fmt.Fprintln(cmd.OutOrStdout(), r)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&tag, "tag", "latest", "the tag to give")
	return cmd
}
