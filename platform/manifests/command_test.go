package manifests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// run runs `deploy args...` as the CLI mounts it, under a root with the global --root flag.
func run(t *testing.T, root string, args ...string) (string, error) {
	t.Helper()
	cli := &cobra.Command{Use: "mitosis", SilenceUsage: true, SilenceErrors: true}
	cli.PersistentFlags().String("root", root, "")
	cli.AddCommand(Command())
	var out bytes.Buffer
	cli.SetOut(&out)
	cli.SetErr(&out)
	cli.SetArgs(append([]string{"deploy"}, args...))
	err := cli.Execute()
	return out.String(), err
}

func TestDeployCommands(t *testing.T) {
	if out, err := run(t, repoRoot(t), "check"); err != nil {
		t.Fatalf("deploy check on the repository: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := run(t, dir, "check"); err == nil || !strings.Contains(out, "compose/compose.yaml: missing") {
		t.Errorf("deploy check of an empty folder: %v\n%s", err, out)
	}
	if out, err := run(t, dir, "render"); err != nil || !strings.Contains(out, "rendered") {
		t.Fatalf("deploy render: %v\n%s", err, out)
	}
	if out, err := run(t, dir, "check"); err != nil {
		t.Errorf("deploy check after render: %v\n%s", err, out)
	}
	// A user's own account and region go into their own folder.
	mine := filepath.Join(dir, "mine")
	if out, err := run(t, dir, "render", "--out", mine, "--account", "210987654321", "--region", "eu-west-1", "--tag", "v1.2.3"); err != nil {
		t.Fatalf("deploy render --out: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(mine, "deploy/ecs/services/cart-task.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "210987654321.dkr.ecr.eu-west-1.amazonaws.com/mitosis/shop:v1.2.3") {
		t.Errorf("the user's registry is not in the task definition:\n%s", b)
	}
	b, err = os.ReadFile(filepath.Join(mine, "deploy/k8s/overlays/production/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "newName: 210987654321.dkr.ecr.eu-west-1.amazonaws.com/mitosis/shop") {
		t.Errorf("the user's registry is not in the production overlay:\n%s", b)
	}
}
