package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
)

// TestRollAgainstAProcessStack brings a fresh stack up as processes with mitosis (the
// monolith, and a split whose catalog has two replicas), and runs a short `loadtest roll`
// of the catalog against it: each roll remakes the service that runs the catalog and
// nothing else, the load runs through it, the replicated catalog rolls without a failed
// request, and the report has the section in its three files. About 1.5 minutes with a warm
// build cache on 2 cores (go test -run TestRollAgainstAProcessStack ./loadtest/cmd/loadtest);
// it needs the Podman bindings' build tags in GOFLAGS, as the Makefile sets them, to build
// mitosis.
func TestRollAgainstAProcessStack(t *testing.T) {
	if testing.Short() {
		t.Skip("brings a stack up; -short skips it")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "mitosis")
	build := exec.Command("go", "build", "-o", bin, "./platform/cmd/mitosis")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./platform/cmd/mitosis (GOFLAGS needs the Podman bindings' tags, as the Makefile sets them): %v\n%s", err, out)
	}
	state := t.TempDir()
	stackName := stacktest.StackName(t)
	// Any port, picked by the process runtime after its build: loadtest roll finds the edges
	// by name in the stack's status. Every other port too: other packages' stacks start at
	// the same time.
	upArgs := []string{"--runtime", "process", "--any-ports", "--collector-edge", "none", "-t", "monolith", "--monolith-edge", stacktest.AnyPort,
		"--split", "catalog*2,cart+inventory+payments+orders+shipping+notify", "--edge", stacktest.AnyPort}
	mitosis := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--root", root, "--stack", stackName, "--state", state}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mitosis %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { mitosis("down", "--volumes") })
	start := time.Now()
	mitosis(append([]string{"up"}, upArgs...)...)
	t.Logf("stack up in %s", time.Since(start).Round(time.Millisecond))

	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	start = time.Now()
	err = rollCmd(t.Context(), []string{"-edges", "monolith,split", "-context", "catalog",
		"-rate", "20", "-before", "2s", "-after", "2s", "-pause", "0s", "-users", "40", "-mitosis", bin,
		"-up-args", "--root " + root + " " + strings.Join(upArgs, " "), "-state", state, "-stack", stackName, "-out", out}, &stdout, &stderr)
	t.Logf("loadtest roll in %s:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	if err != nil {
		t.Fatalf("loadtest roll: %v\n%s", err, stdout.String())
	}
	dirs, err := filepath.Glob(filepath.Join(out, "*", "report.json"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("reports %v (%v), want one", dirs, err)
	}
	data, err := os.ReadFile(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Roll == nil || rep.Roll.Context != "catalog" || len(rep.Roll.Archs) != 2 || len(rep.Warnings) != 0 {
		t.Fatalf("roll section %+v, warnings %v", rep.Roll, rep.Warnings)
	}
	for _, a := range rep.Roll.Archs {
		want := map[string][]string{"monolith": {"monolith/monolith"}, "split": {"split/catalog-1", "split/catalog-2"}}[a.Arch]
		if a.Error != "" || !slices.Equal(a.Up.Remade, want) || a.During.Requests == 0 || a.Before.Requests == 0 || a.RollS <= 0 {
			t.Errorf("%s: remade %v (want %v), %d requests before and %d during a roll of %.1f s, error %q",
				a.Arch, a.Up.Remade, want, a.Before.Requests, a.During.Requests, a.RollS, a.Error)
		}
		if !strings.Contains(a.Up.Command, "--env "+a.Arch+"/catalog:"+rollEnv+"=") {
			t.Errorf("%s: command %q does not roll the catalog", a.Arch, a.Up.Command)
		}
		t.Logf("%s: remade %v in %.1f s; %d requests during the roll, %d failed (%v), p99 during %.2f ms",
			a.Arch, a.Up.Remade, a.RollS, a.During.Requests, a.Failed, a.During.Errors, a.During.Latency.P99)
		if a.Arch == "split" && a.Failed != 0 {
			t.Errorf("the catalog's two replicas rolled with %d failed requests (%v %v), want none", a.Failed, a.During.Errors, a.After.Errors)
		}
	}
	for _, f := range []string{"report.md", "report.html"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(dirs[0]), f))
		if err != nil || !strings.Contains(string(b), "Deploy blast radius: rolling catalog") || strings.Contains(string(b), "<script") {
			t.Errorf("%s: %v, want the roll's section and no script:\n%s", f, err, b)
		}
	}
}
