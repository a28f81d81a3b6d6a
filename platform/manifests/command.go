package manifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// Command returns `deploy`: `deploy render` writes deploy/ and compose/ from the topology,
// `deploy check` fails when the checked-in files differ from what it renders.
//
// It reads the CLI's global -t (--topology), --split and --edge when they are given on the
// command line, and --root; never MITOSIS_TOPOLOGY or MITOSIS_SPLIT, so that what the
// repository ships does not depend on the environment.
func Command() *cobra.Command {
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
	cmd.AddCommand(renderCmd(), checkCmd())
	return cmd
}

// selection is what the CLI's -t, --split and --edge name, when given on the command line.
func selection(cmd *cobra.Command) Selection {
	var s Selection
	given := func(name string) string {
		if f := cmd.Flag(name); f != nil && f.Changed {
			return f.Value.String()
		}
		return ""
	}
	s.Topologies, s.Split, s.Edge = given("topology"), given("split"), given("edge")
	return s
}

// target is the topology a command renders, and the folder it works in: the repository for
// the shipped topology, unless dir names another; a selection's must be named (flag says by
// which flag), since the repository holds the shipped topology.
func target(cmd *cobra.Command, dir, flag string) (topology.Topology, string, error) {
	root, err := RepoRoot(cmd)
	if err != nil {
		return topology.Topology{}, "", err
	}
	sel := selection(cmd)
	if sel.Empty() {
		t, err := Shipped(filepath.Join(root, "topologies"))
		if dir == "" {
			dir = root
		}
		return t, dir, err
	}
	if abs, err := filepath.Abs(dir); dir == "" || (err == nil && abs == root) {
		return topology.Topology{}, "", fmt.Errorf("-t and --split render into a folder of their own: give %s DIR, not the repository "+
			"(it holds the topologies of topologies/, rendered without -t)", flag)
	}
	t, err := Select(root, sel)
	return t, dir, err
}

func archNames(t topology.Topology) string {
	var names []string
	for _, a := range t.Archs {
		names = append(names, a.Name)
	}
	return strings.Join(names, ", ")
}

func renderCmd() *cobra.Command {
	var opts Options
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
			t, dir, err := target(cmd, out, "--out")
			if err != nil {
				return err
			}
			files, err := Files(t, opts)
			if err != nil {
				return err
			}
			if err := Write(dir, files); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rendered %d files of %s into %s in %s\n", len(files), archNames(t), dir, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder to write into (default the repository; required with -t or --split)")
	cmd.Flags().StringVar(&opts.Account, "account", "", "AWS account ID of ECR, IAM roles and secrets (default the placeholder 123456789012)")
	cmd.Flags().StringVar(&opts.Region, "region", "", "AWS region (default us-east-1)")
	cmd.Flags().StringVar(&opts.Tag, "tag", "", "image tag in ECR, as given to mitosis push --tag (default latest)")
	return cmd
}

func checkCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Fail when deploy/ or compose/ differ from what the topology renders",
		Long: `check renders the topology again and fails when a generated file in the repository (or
--dir) differs, is missing or is no longer rendered. With -t or --split, it checks what
render -t ... --out DIR wrote: give the same -t or --split, and --dir DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, dir, err := target(cmd, dir, "--dir")
			if err != nil {
				return err
			}
			files, err := Files(t, Options{})
			if err != nil {
				return err
			}
			drift, err := Check(dir, files)
			if err != nil {
				return err
			}
			for _, d := range drift {
				fmt.Fprintln(cmd.ErrOrStderr(), d)
			}
			if len(drift) > 0 {
				fix := "run `mitosis deploy render` and commit"
				if !selection(cmd).Empty() {
					fix = "render them again with the same -t or --split and --out " + dir
				}
				return fmt.Errorf("%d generated file(s) in %s differ from the topology: %s", len(drift), dir, fix)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deploy/ and compose/ in %s match %s (%d files)\n", dir, archNames(t), len(files))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "folder to check (default the repository; required with -t or --split)")
	return cmd
}

// RepoRoot is the repository a command works in: the --root flag when the CLI has one and it
// is set, else MITOSIS_ROOT, else the folder holding go.work, from the current one up.
func RepoRoot(cmd *cobra.Command) (string, error) {
	root := ""
	if f := cmd.Flag("root"); f != nil {
		root = f.Value.String()
	}
	if root == "" {
		root = os.Getenv("MITOSIS_ROOT")
	}
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				root = dir
				break
			}
			if filepath.Dir(dir) == dir {
				return "", errors.New("no go.work here or above: run inside the repository, or pass --root")
			}
		}
	}
	return filepath.Abs(root)
}
