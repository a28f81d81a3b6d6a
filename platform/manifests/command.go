package manifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

// Command returns `deploy`: `deploy render` writes deploy/ and compose/ from the topology,
// `deploy check` fails when the checked-in files differ from what it renders.
func Command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Render or check the Kubernetes, ECS and compose files from the topology",
		Long: `deploy renders what mitosis ships for other orchestrators from the topology that
mitosis up runs: deploy/k8s (kustomize base and overlays monolith, services, production),
deploy/ecs (Fargate task and service definitions, ECR repositories), deploy/adot (the
collector configuration for X-Ray) and compose/compose.yaml.`,
	}
	cmd.AddCommand(renderCmd(), checkCmd())
	return cmd
}

func renderCmd() *cobra.Command {
	var opts Options
	var out string
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write deploy/ and compose/ from the topology",
		Long: `render writes every generated file under the repository (or --out) and removes the
generated files the topology no longer has. The checked-in files use placeholder AWS
values; --account, --region and --tag write your own (into --out, say, to keep the
repository's files as they are).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			if out == "" {
				root, err := RepoRoot(cmd)
				if err != nil {
					return err
				}
				out = root
			}
			files, err := Files(opts)
			if err != nil {
				return err
			}
			if err := Write(out, files); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rendered %d files into %s in %s\n", len(files), out, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder to write into (default the repository)")
	cmd.Flags().StringVar(&opts.Account, "account", "", "AWS account ID of ECR, IAM roles and secrets (default the placeholder 123456789012)")
	cmd.Flags().StringVar(&opts.Region, "region", "", "AWS region (default us-east-1)")
	cmd.Flags().StringVar(&opts.Tag, "tag", "", "image tag in ECR, as given to mitosis push --tag (default latest)")
	return cmd
}

func checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Fail when deploy/ or compose/ differ from what the topology renders",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			root, err := RepoRoot(cmd)
			if err != nil {
				return err
			}
			files, err := Files(Options{})
			if err != nil {
				return err
			}
			drift, err := Check(root, files)
			if err != nil {
				return err
			}
			for _, d := range drift {
				fmt.Fprintln(cmd.ErrOrStderr(), d)
			}
			if len(drift) > 0 {
				return fmt.Errorf("%d generated file(s) differ from the topology: run `mitosis deploy render` and commit", len(drift))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deploy/ and compose/ match the topology (%d files)\n", len(files))
			return nil
		},
	}
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
