package manifests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/topology"
)

// run runs `deploy args...` as the CLI mounts it: under its global --root (the repository),
// -t, --split and --edge.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cli := &cobra.Command{Use: "mitosis", SilenceUsage: true, SilenceErrors: true}
	pf := cli.PersistentFlags()
	pf.String("root", repoRoot(t), "")
	pf.StringP("topology", "t", topology.Both, "")
	pf.String("split", "", "")
	pf.String("edge", "", "")
	cli.AddCommand(Command())
	var out bytes.Buffer
	cli.SetOut(&out)
	cli.SetErr(&out)
	cli.SetArgs(append([]string{"deploy"}, args...))
	err := cli.Execute()
	return out.String(), err
}

func TestDeployCommands(t *testing.T) {
	if out, err := run(t, "check"); err != nil {
		t.Fatalf("deploy check on the repository: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := run(t, "check", "--dir", dir); err == nil || !strings.Contains(out, "compose/compose.yaml: missing") ||
		!strings.Contains(out, "compose/hybrid/compose.yaml: missing") {
		t.Errorf("deploy check of an empty folder: %v\n%s", err, out)
	}
	if out, err := run(t, "render", "--out", dir); err != nil || !strings.Contains(out, "rendered") {
		t.Fatalf("deploy render: %v\n%s", err, out)
	}
	if out, err := run(t, "check", "--dir", dir); err != nil {
		t.Errorf("deploy check after render: %v\n%s", err, out)
	}
	// A user's own account and region go into their own folder.
	mine := filepath.Join(dir, "mine")
	if out, err := run(t, "render", "--out", mine, "--account", "210987654321", "--region", "eu-west-1", "--tag", "v1.2.3"); err != nil {
		t.Fatalf("deploy render --out: %v\n%s", err, out)
	}
	for f, image := range map[string]string{"deploy/ecs/services/cart-task.json": "cart", "deploy/ecs/hybrid/catalog-inventory-task.json": "catalog-inventory"} {
		b, err := os.ReadFile(filepath.Join(mine, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "210987654321.dkr.ecr.eu-west-1.amazonaws.com/mitosis/"+image+":v1.2.3") {
			t.Errorf("the user's registry is not in %s:\n%s", f, b)
		}
	}
	b, err := os.ReadFile(filepath.Join(mine, "deploy/k8s/overlays/production/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "newName: 210987654321.dkr.ecr.eu-west-1.amazonaws.com/mitosis/cart") {
		t.Errorf("the user's registry is not in the production overlay:\n%s", b)
	}
}

// TestDeploySelectionNeedsAFolder: the repository holds the shipped topologies, so a
// selection is rendered and checked elsewhere, and says so.
func TestDeploySelectionNeedsAFolder(t *testing.T) {
	for _, args := range [][]string{
		{"render", "-t", "hybrid"},
		{"render", "--split", "catalog+cart+inventory+payments+orders+shipping+notify"},
		{"check", "-t", "hybrid"},
		{"render", "-t", "hybrid", "--out", repoRoot(t)},
	} {
		out, err := run(t, args...)
		flag := "--out"
		if args[0] == "check" {
			flag = "--dir"
		}
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("deploy %s: %v (want an error asking for %s)\n%s", strings.Join(args, " "), err, flag, out)
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot(t), "deploy/k8s/overlays/split")); err == nil {
		t.Error("deploy render --split wrote into the repository")
	}
}
