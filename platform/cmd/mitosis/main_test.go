package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/mitosis-dev/mitosis/platform/cgroup"
	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(wd))) // platform/cmd/mitosis -> the repository
}

// TestMain removes the CLI's binary that runBinary built, if it did.
func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := cliBinaryDir(); err == nil {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

// runCLI runs the CLI in this process: its commands' logic, under the race detector when the
// tests run with it.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// cliBinaryDir is a folder for the CLI's binary; made once per test run.
var cliBinaryDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "mitosis-cli-") })

// cliBinary is this package built with go build, once per test run, without the race
// detector whatever the tests run with.
var cliBinary = sync.OnceValues(func() (string, error) {
	dir, err := cliBinaryDir()
	if err != nil {
		return "", err
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mitosis")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = wd
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

// runBinary runs the CLI as a user does: its binary in a process of its own, within ctx.
// The tests that build images and bring stacks up run it so: under the race detector,
// compressing, hashing and unpacking the images' layers takes a test process seven or eight
// times as long as the CLI (building a split's six images: 104 s against 13 s; bringing it
// up as processes, which unpacks their binaries: 20 s against 3 s), and the runtimes'
// own tests (podmanrt, processrt) run those paths under the race detector already.
// Its process stacks take any free ports (MITOSIS_ANY_PORTS): test packages run at once, and
// two ups that both find 4222 free would race for it.
func runBinary(ctx context.Context, t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	bin, err := cliBinary()
	if err != nil {
		t.Fatalf("build the CLI: %v", err)
	}
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "MITOSIS_ANY_PORTS=true")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	case err != nil:
		t.Fatalf("mitosis %s: %v", strings.Join(args, " "), err)
	}
	return exitOK, out.String(), errOut.String()
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, cmd := range []string{"build", "up", "down", "status", "logs", "push", "events", "advise"} {
		code, out, _ := runCLI(t, cmd, "--help")
		if code != exitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, "mitosis "+cmd) {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, out)
		}
	}
	if code, out, _ := runCLI(t, "--help"); code != exitOK || !strings.Contains(out, "Exit codes") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func TestBadUsageExits2(t *testing.T) {
	root := repoRoot(t)
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"status", "--no-such-flag"},
		{"up", "--runtime", "kubernetes", "--root", root},
		{"build", "-t", "microliths", "--root", root, "--state", t.TempDir()},
		{"push", "--root", root, "--state", t.TempDir()},
		{"up", "extra-argument", "--root", root},
	} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut)
		}
	}
	// Budget modes: each mistake exits 2 and says what to do.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "--budget", "elastic"}, `--budget: unknown budget mode "elastic": want per-service, shared, measured`},
		{[]string{"up", "-t", "services@bogus"}, `unknown budget mode "bogus"`},
		{[]string{"down", "-t", "monolith@shared,monolith@shared"}, "monolith-shared is asked for twice"},
		{[]string{"up", "-t", "services@measured"}, "no calibration of services"},
		{[]string{"build", "-t", "monolith", "--budget", "measured"}, "loadtest calibrate -edges monolith"},
		{[]string{"up", "-t", "monolith@shared", "--edges", "monolith-shared"}, `--edges "monolith-shared": want name=host:port`},
		// Splits that are no placement of the seven contexts: each names what is wrong.
		{[]string{"up", "--split", "catalog+inventory,cart+orders+payments,shipping+notify+warehouse"}, `unknown context "warehouse"`},
		{[]string{"up", "--split", "catalog+inventory,cart+orders+payments+inventory,shipping+notify"}, "inventory is in two groups: catalog+inventory and"},
		{[]string{"up", "--split", "catalog+inventory,cart+orders,shipping+notify"}, "no group holds payments: every context runs somewhere"},
		{[]string{"up", "--split", "catalog+inventory,,cart+orders+payments,shipping+notify"}, "empty group"},
		{[]string{"down", "--split", "catalog+inventory,cart+orders,shipping+notify"}, "no group holds payments"},
	} {
		args := append(tc.args, "--root", root, "--state", t.TempDir(), "--runtime", "process", "--stack", stacktest.StackName(t))
		if code, _, errOut := runCLI(t, args...); code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d saying %q:\n%s", tc.args, code, exitUsage, tc.want, errOut)
		}
	}
}

// TestSharedBudgetThroughTheCLI: the monolith placement as processes, per service and under
// a shared budget on an edge of its own (--edges); status says each one's mode and whether
// the machine let it be enforced; down -t monolith@shared removes that one and its group.
func TestSharedBudgetThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds images and runs the monolith")
	}
	_, cgErr := cgroup.Open(cgroup.DefaultRoot)
	common := []string{"--runtime", "process", "--root", repoRoot(t), "--state", t.TempDir(), "--stack", stacktest.StackName(t)}
	t.Cleanup(func() { runBinary(context.Background(), t, append([]string{"down", "--volumes"}, common...)...) })
	up := append([]string{"up", "-t", "monolith,monolith@shared", "--monolith-edge", stacktest.AnyPort,
		"--edges", "monolith-shared=" + stacktest.AnyPort, "--collector-edge", "none", "--cpus", "1.25", "--memory", "512"}, common...)
	if code, out, errOut := runBinary(t.Context(), t, up...); code != exitOK {
		t.Fatalf("up: exit %d\n%s\n%s", code, out, errOut)
	} else if !strings.Contains(out, "monolith-shared: http://") || !strings.Contains(out, "(budget shared)") || !strings.Contains(out, "(budget per-service)") {
		t.Errorf("up said:\n%s", out)
	}
	code, out, errOut := runBinary(t.Context(), t, append([]string{"status"}, common...)...)
	want := []string{
		"budget process monolith-shared: shared: 1.25 CPUs and 512 MiB for the whole architecture, enforced (cgroup v",
		"budget process monolith: per-service: 1.25 CPUs and 512 MiB shared out among its services, NOT ENFORCED (the process runtime sets no limits per process",
	}
	if cgErr != nil {
		want[0] = "budget process monolith-shared: shared: 1.25 CPUs and 512 MiB for the whole architecture, NOT ENFORCED (no cgroup could be made: "
	}
	for _, w := range want {
		if code != exitOK || !strings.Contains(out, w) {
			t.Errorf("status: exit %d, want a line with %q\n%s\n%s", code, w, out, errOut)
		}
	}
	code, out, errOut = runBinary(t.Context(), t, append([]string{"down", "-t", "monolith@shared"}, common...)...)
	wantDown := "removed 2 processes, 1 cgroup"
	if cgErr != nil {
		wantDown = "removed 2 processes\n"
	}
	if code != exitOK || !strings.Contains(out, wantDown) {
		t.Errorf("down -t monolith@shared: exit %d, want %q\n%s\n%s", code, wantDown, out, errOut)
	}
	if code, out, _ := runBinary(t.Context(), t, append([]string{"status"}, common...)...); code != exitOK || strings.Contains(out, "monolith-shared") {
		t.Errorf("status after down -t monolith@shared: exit %d\n%s", code, out)
	}
}

// TestPushCopiesTheIndexToARegistry pushes the NATS image (both platforms) to
// go-containerregistry's in-memory registry on 127.0.0.1 and reads it back.
func TestPushCopiesTheIndexToARegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	state := t.TempDir()
	code, out, errOut := runBinary(t.Context(), t, "push", "--to", host+"/mitosis", "--tag", "test", "-t", "monolith",
		"--root", repoRoot(t), "--state", state, "nats-server")
	if code != exitOK {
		t.Fatalf("push: exit %d\n%s\n%s", code, out, errOut)
	}
	img, err := imagebuild.Load(filepath.Join(state, "images", "nats-server"))
	if err != nil {
		t.Fatal(err)
	}
	want := host + "/mitosis/nats-server@" + img.Index
	if !strings.Contains(out, "pushed "+want) {
		t.Errorf("push said %q, want it to name %s", out, want)
	}
	ref, err := name.ParseReference(host + "/mitosis/nats-server:test")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil || d.String() != img.Index {
		t.Errorf("registry has %s (%v), build has %s", d, err, img.Index)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Errorf("%d manifests in the pushed index, want 2", len(im.Manifests))
	}
	for _, m := range im.Manifests {
		if _, err := remote.Image(ref.Context().Digest(m.Digest.String())); err != nil {
			t.Errorf("%s: %v", m.Platform, err)
		}
	}
}
