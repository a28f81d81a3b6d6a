package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/platform/manifests"
)

// kubeCLI runs `mitosis --root <the repository> --state <a folder of the test's> --monolith-edge
// 127.0.0.1:18990 kube args...` in this process (a later --state wins): its output, and an
// error holding its standard error when it fails.
func kubeCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"--root", repoRoot(t), "--state", t.TempDir(), "--monolith-edge", "127.0.0.1:18990", "kube"}, args...)...)
	if code != exitOK {
		return out + errOut, fmt.Errorf("exit %d: %s", code, errOut)
	}
	return out + errOut, nil
}

func TestRenderPrintsTheOverlay(t *testing.T) {
	shipped, err := manifests.Shipped(filepath.Join(repoRoot(t), "topologies"))
	if err != nil {
		t.Fatal(err)
	}
	overlays := manifests.Overlays(shipped)
	if !slices.Contains(overlays, "hybrid") {
		t.Errorf("overlays %v: the hybrid is shipped", overlays)
	}
	for _, overlay := range overlays {
		out, err := kubeCLI(t, "render", "--arch", overlay)
		if err != nil {
			t.Fatalf("render %s: %v", overlay, err)
		}
		objs, err := manifests.Kube(overlay, manifests.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := manifests.MarshalObjects(objs)
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("render --arch %s prints something else than the overlay", overlay)
		}
	}
	if _, err := kubeCLI(t, "render", "--arch", "nonsense"); err == nil {
		t.Error("render --arch nonsense succeeded")
	}
}

func TestPlayDryRun(t *testing.T) {
	state := t.TempDir()
	out, err := kubeCLI(t, "play", "--arch", "monolith", "--dry-run", "--prefix", "dry", "--state", state)
	if err != nil {
		t.Fatalf("play --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"# kube play --network dry-monolith:alias=nats",
		"# kube play --network dry-monolith:alias=monolith",
		"name: dry-monolith-monolith",
		"hostIP: 127.0.0.1",
		"hostPort: 18990",
		"image: localhost/mitosis/monolith:latest",
		"imagePullPolicy: Never",
		// The stack's renewer, with no network, on the prefix's PKI folder.
		"# kube play --network none",
		"name: dry-monolith-renewer",
		"image: localhost/mitosis/renewer:latest",
		"path: " + filepath.Join(state, "pki", "dry"),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	// Any architecture of topologies/, on its file's edge.
	out, err = kubeCLI(t, "play", "--arch", "hybrid", "--dry-run", "--prefix", "dry")
	if err != nil {
		t.Fatalf("play --arch hybrid --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"# kube play --network dry-hybrid:alias=nats",
		"# kube play --network dry-hybrid:alias=catalog-inventory",
		"# kube play --network dry-hybrid:alias=gateway",
		"name: dry-hybrid-cart-payments-orders",
		"hostPort: 8082",
		"value: catalog-inventory:9101",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run of the hybrid lacks %q:\n%s", want, out)
		}
	}
	for _, arch := range []string{"production", "nonsense"} {
		if out, err := kubeCLI(t, "play", "--arch", arch, "--dry-run"); err == nil {
			t.Errorf("play --arch %s succeeded:\n%s", arch, out)
		}
	}
}

// A dry run prints where the admin token comes from, never the token: neither
// SHOP_ADMIN_TOKEN's nor the state's, and it makes none.
func TestPlayDryRunPrintsNoAdminToken(t *testing.T) {
	const fromEnv, fromFile = "env-token-7f3a9c1e5b", "file-token-2d8e4b6a0c"
	for _, tc := range []struct {
		name, env, file string
	}{
		{"from SHOP_ADMIN_TOKEN", fromEnv, ""},
		{"from the state", "", fromFile},
		{"none yet", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SHOP_ADMIN_TOKEN", tc.env)
			state := t.TempDir()
			tokenFile := filepath.Join(state, "admin-token")
			if tc.file != "" {
				if err := os.WriteFile(tokenFile, []byte(tc.file+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := kubeCLI(t, "play", "--dry-run", "--prefix", "dry", "--state", state)
			if err != nil {
				t.Fatalf("play --dry-run: %v\n%s", err, out)
			}
			for _, secret := range []string{fromEnv, fromFile} {
				if strings.Contains(out, secret) {
					t.Errorf("the dry run prints the admin token %q:\n%s", secret, out)
				}
			}
			// Both architectures' edges (the monolith, the gateway) take the token.
			placeholder := "- name: SHOP_ADMIN_TOKEN\n          value: '<the admin token: $SHOP_ADMIN_TOKEN, else the content of " + tokenFile + ">'"
			if n := strings.Count(out, placeholder); n != 2 || !strings.Contains(out, "name: dry-monolith-monolith") || !strings.Contains(out, "name: dry-services-gateway") {
				t.Errorf("the placeholder %q appears %d times, want once per edge:\n%s", placeholder, n, out)
			}
			if _, err := os.Stat(tokenFile); (tc.file == "") != os.IsNotExist(err) {
				t.Errorf("token file after the dry run: %v (there was one before: %v)", err, tc.file != "")
			}
		})
	}
}
