package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/manifests"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// deployCmd is `deploy`: `deploy render` writes deploy/ and compose/ from the topology
// (platform/manifests), `deploy check` fails when the checked-in files differ from what it
// renders.
//
// It reads the global -t (--topology), --split and --edge when they are given on the command
// line, never MITOSIS_TOPOLOGY or MITOSIS_SPLIT, so that what the repository ships does not
// depend on the environment.
func (a *app) deployCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Render or check the Kubernetes, ECS and compose files of a topology",
		Long: `deploy renders what mitosis ships for other orchestrators from the topologies that
mitosis up runs. For each architecture: its kustomize overlay deploy/k8s/overlays/<arch> (on
the base deploy/k8s/base, NATS), its Fargate task and service definitions deploy/ecs/<arch>,
and its compose file compose/<arch>/compose.yaml, profile <arch> (monolith and services share
compose/compose.yaml, one profile each); with the services, the EKS overlay production; and
the ECR repositories, the ADOT collector's configuration (deploy/adot) and the checkout saga
as a Step Functions state machine (deploy/stepfunctions).

Without -t or --split: every topology file of topologies/ (monolith, services, hybrid...),
the files checked in. With -t NAMES|FILE (names of topologies/, or paths to topology files,
comma-separated) or --split GROUPS (an architecture named split, its edge at --edge): those
architectures only, into a folder of their own (render --out, check --dir).`,
	}
	cmd.AddCommand(a.deployRenderCmd(), a.deployCheckCmd())
	return cmd
}

// deploySelection is what -t, --split and --edge name, when given on the command line.
func deploySelection(cmd *cobra.Command) manifests.Selection {
	var s manifests.Selection
	given := func(name string) string {
		if f := cmd.Flag(name); f != nil && f.Changed {
			return f.Value.String()
		}
		return ""
	}
	s.Topologies, s.Split, s.Edge = given("topology"), given("split"), given("edge")
	return s
}

// deployTarget is the topology a command renders, and the folder it works in: the
// repository for the shipped topology, unless dir names another; a selection's must be named
// (flag says by which flag), since the repository holds the shipped topology.
func (a *app) deployTarget(cmd *cobra.Command, dir, flag string) (topology.Topology, string, error) {
	root := a.root
	sel := deploySelection(cmd)
	if sel.Empty() {
		t, err := manifests.Shipped(filepath.Join(root, "topologies"))
		if dir == "" {
			dir = root
		}
		return t, dir, err
	}
	if abs, err := filepath.Abs(dir); dir == "" || (err == nil && abs == root) {
		return topology.Topology{}, "", fmt.Errorf("-t and --split render into a folder of their own: give %s DIR, not the repository "+
			"(it holds the topologies of topologies/, rendered without -t)", flag)
	}
	t, err := manifests.Select(root, sel)
	return t, dir, err
}

func deployedArchs(t topology.Topology) string {
	var names []string
	for _, a := range t.Archs {
		names = append(names, a.Name)
	}
	return strings.Join(names, ", ")
}

func (a *app) deployRenderCmd() *cobra.Command {
	var opts manifests.Options
	var out string
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write deploy/ and compose/ from the topology",
		Long: `render writes every generated file under the repository (or --out) and removes the
generated files the topology no longer has there. The checked-in files use placeholder AWS
values; --account, --region and --tag write your own (into --out, say, to keep the
repository's files as they are). -t NAMES|FILE and --split render those architectures only,
into --out:

  mitosis deploy render -t hybrid --out /tmp/hybrid
  mitosis deploy render -t ./my-split.yaml --out /tmp/mine
  mitosis deploy render --split 'edge+catalog,cart+orders,inventory+payments+shipping+notify' --out /tmp/split`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			t, dir, err := a.deployTarget(cmd, out, "--out")
			if err != nil {
				return err
			}
			files, err := manifests.Files(t, opts)
			if err != nil {
				return err
			}
			if err := manifests.Write(dir, files); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rendered %d files of %s into %s in %s\n", len(files), deployedArchs(t), dir, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder to write into (default the repository; required with -t or --split)")
	cmd.Flags().StringVar(&opts.Account, "account", "", "AWS account ID of ECR, IAM roles and secrets (default the placeholder 123456789012)")
	cmd.Flags().StringVar(&opts.Region, "region", "", "AWS region (default us-east-1)")
	cmd.Flags().StringVar(&opts.Tag, "tag", "", "image tag in ECR, as given to mitosis push --tag (default latest)")
	return cmd
}

func (a *app) deployCheckCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Fail when deploy/ or compose/ differ from what the topology renders",
		Long: `check renders the topology again and fails when a generated file in the repository (or
--dir) differs, is missing or is no longer rendered. With -t or --split, it checks what
render -t ... --out DIR wrote: give the same -t or --split, and --dir DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, dir, err := a.deployTarget(cmd, dir, "--dir")
			if err != nil {
				return err
			}
			files, err := manifests.Files(t, manifests.Options{})
			if err != nil {
				return err
			}
			drift, err := manifests.Check(dir, files)
			if err != nil {
				return err
			}
			for _, d := range drift {
				fmt.Fprintln(cmd.ErrOrStderr(), d)
			}
			if len(drift) > 0 {
				fix := "run `mitosis deploy render` and commit"
				if !deploySelection(cmd).Empty() {
					fix = "render them again with the same -t or --split and --out " + dir
				}
				return fmt.Errorf("%d generated file(s) in %s differ from the topology: %s", len(drift), dir, fix)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deploy/ and compose/ in %s match %s (%d files)\n", dir, deployedArchs(t), len(files))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "folder to check (default the repository; required with -t or --split)")
	return cmd
}
