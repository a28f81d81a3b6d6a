package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// deploy runs `mitosis --root <the repository> deploy args...` in this process: its output,
// and an error holding its standard error when it fails.
func deploy(t *testing.T, args ...string) (string, error) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"--root", repoRoot(t), "deploy"}, args...)...)
	if code != exitOK {
		return out + errOut, fmt.Errorf("exit %d: %s", code, errOut)
	}
	return out + errOut, nil
}

func TestDeployCommands(t *testing.T) {
	if out, err := deploy(t, "check"); err != nil {
		t.Fatalf("deploy check on the repository: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if out, err := deploy(t, "check", "--dir", dir); err == nil || !strings.Contains(out, "compose/compose.yaml: missing") ||
		!strings.Contains(out, "compose/hybrid/compose.yaml: missing") {
		t.Errorf("deploy check of an empty folder: %v\n%s", err, out)
	}
	if out, err := deploy(t, "render", "--out", dir); err != nil || !strings.Contains(out, "rendered") {
		t.Fatalf("deploy render: %v\n%s", err, out)
	}
	if out, err := deploy(t, "check", "--dir", dir); err != nil {
		t.Errorf("deploy check after render: %v\n%s", err, out)
	}
	// A user's own account and region go into their own folder.
	mine := filepath.Join(dir, "mine")
	if out, err := deploy(t, "render", "--out", mine, "--account", "210987654321", "--region", "eu-west-1", "--tag", "v1.2.3"); err != nil {
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

// TestDeployRendersASelection: -t and --split (with --edge) render their architectures into
// a folder of their own, which check then finds whole, and an edit in it is drift.
func TestDeployRendersASelection(t *testing.T) {
	for _, sel := range [][]string{
		{"-t", "hybrid"},
		{"--split", "edge+catalog,cart+orders,inventory+payments+shipping+notify", "--edge", "127.0.0.1:18100"},
	} {
		dir := t.TempDir()
		if out, err := deploy(t, append([]string{"render", "--out", dir}, sel...)...); err != nil || !strings.Contains(out, "rendered") {
			t.Fatalf("deploy render %v: %v\n%s", sel, err, out)
		}
		if out, err := deploy(t, append([]string{"check", "--dir", dir}, sel...)...); err != nil {
			t.Fatalf("deploy check %v after render: %v\n%s", sel, err, out)
		}
		matches, err := filepath.Glob(filepath.Join(dir, "deploy/k8s/overlays/*/kustomization.yaml"))
		if err != nil || len(matches) != 1 {
			t.Fatalf("deploy render %v: overlays %v (%v), want the one architecture's", sel, matches, err)
		}
		if err := os.WriteFile(matches[0], []byte("# edited\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := deploy(t, append([]string{"check", "--dir", dir}, sel...)...); err == nil || !strings.Contains(out, "kustomization.yaml: differs") {
			t.Errorf("deploy check %v after an edit: %v\n%s", sel, err, out)
		}
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
		out, err := deploy(t, args...)
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
