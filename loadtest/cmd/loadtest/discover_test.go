package main

import (
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/loadtest/podmanstats"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// mainEnv, set, makes this test binary the loadtest command itself (see TestMain), so that a
// test sees what a run prints and how it exits.
const mainEnv = "LOADTEST_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) != "" {
		main() // exits 1 on an error
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// idleProcess starts a process that uses no CPU until the test ends (cat blocked on a pipe
// nobody writes to) and returns its PID: a process a sampler may watch and read zero of.
func idleProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cat: %v", err)
	}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// podmanStack makes in Podman what platform/podmanrt makes of one service of stackName's
// architecture arch: a pod publishing its port on 127.0.0.1 (which conmon then holds) and a
// running container in it with the stack's labels. It returns the published address. The
// container runs the pod's own pause image, which Podman builds itself, so no image is
// fetched. It skips without Podman, unless REQUIRE_CONTAINERS=1.
func podmanStack(t *testing.T, stackName, arch string) string {
	t.Helper()
	podman := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("podman", args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	if err := exec.Command("podman", "info").Run(); err != nil {
		if os.Getenv("REQUIRE_CONTAINERS") == "1" {
			t.Fatalf("podman: %v (REQUIRE_CONTAINERS=1)", err)
		}
		t.Skipf("no Podman here: %v", err)
	}
	pod := stackName + "-" + arch
	labels := []string{"--label", stack.LabelStack + "=" + stackName, "--label", stack.LabelArch + "=" + arch}
	podman(append([]string{"pod", "create", "--name", pod, "-p", "127.0.0.1::8080"}, labels...)...)
	t.Cleanup(func() { _ = exec.Command("podman", "pod", "rm", "-f", pod).Run() })
	image := podman("container", "inspect", "--format", "{{.ImageName}}", podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod))
	podman(append(append([]string{"run", "-d", "--pod", pod, "--name", pod + "-edge"}, labels...), "--label", stack.LabelService+"="+arch, image)...)
	_, addr, ok := strings.Cut(podman("port", pod+"-edge", "8080"), "127.0.0.1:")
	if !ok {
		t.Fatalf("podman port %s-edge 8080: no address on 127.0.0.1", pod)
	}
	return "http://127.0.0.1:" + addr
}

// With -resources auto, each architecture is measured by the sampler that sees its
// processes, and the run says which: the process runtime's records first (though a process
// listens on the edge too), then the pods Podman labels with the stack, the process on the
// edge's port only when neither knows the architecture. A Podman stack whose API cannot be
// read is not measured by its port, which conmon holds: that read zero CPU, as if requests
// cost nothing (issue 18); nor is a Podman stack by a build without the Podman bindings.
func TestDiscoverAuto(t *testing.T) {
	withPodman := os.Getenv("REQUIRE_CONTAINERS") == "1" || exec.Command("podman", "info").Run() == nil
	for _, tc := range []struct {
		name   string
		podman bool
		// setup makes the stack's records and returns the architecture's edge.
		setup   func(t *testing.T, state, stackName, arch string) string
		sampler string // "" for none
		runtime string
		said    string
	}{
		{"a process-runtime stack", false, func(t *testing.T, state, stackName, arch string) string {
			edge := httpEdge(t)
			processRecordOf(t, state, stackName, arch, "monolith", idleProcess(t), topology.Probe{Kind: topology.HTTP, Port: 8080, Path: "/readyz"}, edgePort(t, edge))
			return edge
		}, "process", "process", "the process sampler, /proc of the 1 processes mitosis' process runtime started"},
		{"a Podman stack", true, func(t *testing.T, _, stackName, arch string) string {
			return podmanStack(t, stackName, arch)
		}, podmanSampler(), podmanRuntime(), podmanSaid()},
		{"a Podman stack whose API is out of reach", true, func(t *testing.T, _, stackName, arch string) string {
			edge := podmanStack(t, stackName, arch)
			// After the podman command made the stack: it reads CONTAINER_HOST too.
			t.Setenv("CONTAINER_HOST", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
			return edge
		}, "", "unknown", "resources: not measured (" + func() string {
			if podmanstats.Available {
				return "podman: "
			}
			return "by port: port "
		}()},
		{"no records", false, func(t *testing.T, _, _, _ string) string { return httpEdge(t) },
			"port", "local", "the port sampler, /proc of the process listening on 127.0.0.1:"},
		{"no records, nothing listening", false, func(t *testing.T, _, _, _ string) string { return deadURL(t) },
			"", "unknown", "resources: not measured ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.podman && !withPodman {
				t.Skip("no Podman here (REQUIRE_CONTAINERS=1 requires it)")
			}
			state, stackName, arch := t.TempDir(), stacktest.StackName(t), topology.Monolith
			edge := tc.setup(t, state, stackName, arch)
			a, info := &loadtest.Arch{Name: arch, BaseURL: edge}, loadtest.ArchInfo{Name: arch, BaseURL: edge}
			sampler := discover(t.Context(), "auto", state, stackName, filepath.Join("..", "..", "..", "topologies"), arch, edge, a, &info)
			line := resourcesLine(sampler, info)
			t.Log(line)
			if sampler != tc.sampler || info.Runtime != tc.runtime || (a.Sampler == nil) != (tc.sampler == "") {
				t.Errorf("picked %q (runtime %q, sampler %v), want %q (runtime %q)", sampler, info.Runtime, a.Sampler, tc.sampler, tc.runtime)
			}
			if !strings.Contains(line, tc.said) {
				t.Errorf("said %q, want it to say %q", line, tc.said)
			}
			if tc.podman && sampler == "" && !strings.Contains(line, "conmon") {
				t.Errorf("said %q, want it to name the port's holder, conmon", line)
			}
		})
	}
}

// podmanSampler, podmanRuntime and podmanSaid are what discover makes of a Podman stack in
// this build: the podman sampler with the bindings, else nothing, as the port is conmon's.
func podmanSampler() string {
	if podmanstats.Available {
		return "podman"
	}
	return ""
}

func podmanRuntime() string {
	if podmanstats.Available {
		return "podman"
	}
	return "unknown"
}

func podmanSaid() string {
	if podmanstats.Available {
		return "the podman sampler, the cgroups' CPU counters"
	}
	return "no Podman bindings for -resources podman"
}

// httpEdge is a loopback HTTP server of this test's process, as `make run` runs an edge.
func httpEdge(t *testing.T) string {
	t.Helper()
	return "http://127.0.0.1:" + strconv.Itoa(shopEdge(t))
}

func edgePort(t *testing.T, edge string) int {
	t.Helper()
	u, err := url.Parse(edge)
	if err != nil {
		t.Fatal(err)
	}
	_, p, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A run whose sampler reads zero CPU over the whole run (here, the process runtime's record
// of the monolith names an idle process, not the monolith that serves) writes its report
// without CPU and exits non-zero, saying which samplers see the serving processes, rather
// than report requests that cost nothing.
func TestRunRefusesZeroCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs the monolith")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	const token = "zero-cpu-token"
	edge, _ := stacktest.StartMonolith(t, root, token)
	state, stackName, out := t.TempDir(), stacktest.StackName(t), t.TempDir()
	processRecordOf(t, state, stackName, topology.Monolith, "monolith", idleProcess(t), topology.Probe{Kind: topology.HTTP, Port: 8080, Path: "/readyz"}, edgePort(t, edge))
	cmd := exec.Command(os.Args[0], "-edges", "monolith="+edge, "-state", state, "-stack", stackName, "-out", out,
		"-rates", "10", "-step", "2s", "-warmup", "0", "-pause", "0", "-repeats", "1", "-search", "0", "-users", "10",
		"-collector", "", "-trace-share", "-1")
	cmd.Env = append(os.Environ(), mainEnv+"=1", "SHOP_ADMIN_TOKEN="+token)
	said, err := cmd.CombinedOutput()
	t.Logf("loadtest:\n%s", said)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("the run ended with %v, want a non-zero exit", err)
	}
	for _, want := range []string{"monolith: resources: the process sampler", "the CPU of monolith read zero over the whole run", errZeroCPU.Error()} {
		if !strings.Contains(string(said), want) {
			t.Errorf("the run did not say %q", want)
		}
	}
	reports, _ := filepath.Glob(filepath.Join(out, "*", "report.json"))
	if len(reports) != 1 {
		t.Fatalf("reports written: %v, want one", reports)
	}
	if b, err := os.ReadFile(reports[0]); err != nil || !strings.Contains(string(b), "CPU read zero") {
		t.Errorf("the report does not say the CPU read zero (%v)", err)
	}
}
