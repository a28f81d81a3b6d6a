package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// `loadtest calibrate` against a placement run under another name and mode
// (monolith@shared, as processes): it finds the placement from the process runtime and writes
// the placement's calibration, which says what it measured.
func TestCalibrateCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the monolith placement")
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := calibrate(ctx, []string{"-edges", "monolith,services"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "name the one architecture") {
		t.Errorf("two architectures: %v", err)
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	state, name := t.TempDir(), stacktest.StackName(t)
	if err := calibrate(ctx, []string{"-edges", "monolith", "-state", state, "-stack", name}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "bring it up with mitosis up -t monolith") {
		t.Errorf("nothing up: %v", err)
	}
	const arch, token = "monolith-shared", "cal-token"
	topo, err := topology.Get("monolith@shared", topology.Options{Edges: map[string]string{arch: stacktest.AnyPort},
		Collector: topology.NoCollector, Dir: filepath.Join(root, "topologies")})
	if err != nil {
		t.Fatal(err)
	}
	rt := processrt.New(processrt.Options{Root: root, State: filepath.Join(state, "run"), Stack: name, AnyPorts: true})
	t.Cleanup(func() { _, _ = rt.Down(context.Background(), stack.DownOptions{Volumes: true}) })
	if err := rt.Up(ctx, topo, stack.UpOptions{AdminToken: token, RequestKey: "k", ReadyTimeout: time.Minute, Progress: &errOut}); err != nil {
		t.Fatalf("up: %v\n%s", err, errOut.String())
	}
	if err := os.WriteFile(filepath.Join(state, "admin-token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	err = calibrate(ctx, []string{"-edges", arch, "-rate", "20", "-duration", "3s", "-warmup", "1s", "-users", "20",
		"-state", state, "-stack", name, "-resources", "process"}, &out, &errOut)
	if err != nil {
		t.Fatalf("calibrate: %v\n%s", err, errOut.String())
	}
	c, err := topology.ReadCalibration(filepath.Join(state, "calibration"), topology.Monolith)
	if err != nil {
		t.Fatal(err)
	}
	if c.Arch != arch || c.Mode != topology.Shared || c.Runtime != "process" || c.Split != topo.Archs[0].Split || len(c.Services) != 2 ||
		c.Budget == nil || c.Budget.CPUs != topology.DefaultCPUs {
		t.Errorf("calibration %+v", c)
	}
	if !strings.Contains(out.String(), "mitosis up -t monolith@measured") || !strings.Contains(out.String(), "nats") {
		t.Errorf("calibrate said:\n%s", out.String())
	}
	t.Logf("%s", out.String())
}
