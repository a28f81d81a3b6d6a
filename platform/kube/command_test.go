package kube

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mitosis-dev/mitosis/platform/manifests"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cli := &cobra.Command{Use: "mitosis", SilenceUsage: true, SilenceErrors: true}
	cli.PersistentFlags().String("root", filepath.Dir(filepath.Dir(wd)), "")
	cli.PersistentFlags().String("state", t.TempDir(), "")
	cli.PersistentFlags().String("monolith-edge", "127.0.0.1:18990", "")
	cli.AddCommand(Command())
	var out bytes.Buffer
	cli.SetOut(&out)
	cli.SetErr(&out)
	cli.SetArgs(append([]string{"kube"}, args...))
	err = cli.Execute()
	return out.String(), err
}

func TestRenderPrintsTheOverlay(t *testing.T) {
	for _, overlay := range manifests.Overlays() {
		out, err := run(t, "render", "--arch", overlay)
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
	if _, err := run(t, "render", "--arch", "nonsense"); err == nil {
		t.Error("render --arch nonsense succeeded")
	}
}

func TestPlayDryRun(t *testing.T) {
	out, err := run(t, "play", "--arch", "monolith", "--dry-run", "--prefix", "dry")
	if err != nil {
		t.Fatalf("play --dry-run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"# kube play --network dry-monolith:alias=nats",
		"# kube play --network dry-monolith:alias=monolith",
		"name: dry-monolith-monolith",
		"hostIP: 127.0.0.1",
		"hostPort: 18990",
		"image: localhost/mitosis/shop:latest",
		"imagePullPolicy: Never",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if _, err := run(t, "play", "--arch", "production", "--dry-run"); err == nil {
		t.Error("play --arch production succeeded")
	}
}
