package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/processrt"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
)

// state holds the binaries (built once, by the process runtime, with go build) and every
// test's stack, in a folder TestMain removes.
var state string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mitosis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	state = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const testToken = "e2e-admin-token"

// running is a stack of real processes (platform/processrt) started by a test.
type running struct {
	t     *testing.T
	rt    *processrt.Runtime
	topo  topology.Topology
	opts  stack.UpOptions
	edges map[string]string // base URL of each architecture's edge
	done  bool
}

// up runs the architectures of names (topologies/ files, comma-separated) and split, if
// not "", as processes on free loopback ports, each with its own NATS, until t ends. env is
// added to every process's environment. Their warnings and errors go to t's log at the end,
// but for lines holding any of quiet, which the test expects.
func up(t *testing.T, names, split string, env map[string]string, quiet ...string) *running {
	t.Helper()
	// Any port: the process runtime picks each edge's after its build, right before the start.
	opts := topology.Options{Split: split, Collector: topology.NoCollector, Edges: map[string]string{},
		MonolithEdge: stacktest.AnyPort, ServicesEdge: stacktest.AnyPort}
	for _, n := range strings.Split(names, ",") {
		opts.Edges[n] = stacktest.AnyPort
	}
	opts.Edges[topology.SplitName] = stacktest.AnyPort
	topo, err := topology.Get(names, opts)
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, topo: topo, edges: map[string]string{},
		rt: processrt.New(processrt.Options{Root: root, State: state, Stack: stacktest.StackName(t), AnyPorts: true}),
		opts: stack.UpOptions{AdminToken: testToken, RequestKey: "e2e-request-key", ReadyTimeout: 2 * time.Minute, Env: env,
			PKI: filepath.Join(t.TempDir(), "pki")}}
	t.Cleanup(func() {
		r.logs(quiet)
		if err := r.stop(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	r.up()
	for _, a := range topo.Archs {
		r.edges[a.Name] = "http://" + stacktest.EdgeAddr(t, r.rt, topo, a.Name)
	}
	return r
}

// security is what a test presents to call a process of the stack directly over gRPC: the
// identity name's certificate (a process name, bounded.Group.Name, or identity.Tooling).
func (r *running) security(name string) host.Security {
	r.t.Helper()
	sec, err := host.Secure(filepath.Join(r.opts.PKI, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return sec
}

// up starts what is not running (again), and returns once everything is ready.
func (r *running) up() {
	r.t.Helper()
	var progress strings.Builder
	r.opts.Progress = &progress
	start := time.Now()
	if err := r.rt.Up(r.t.Context(), r.topo, r.opts); err != nil {
		r.t.Fatalf("up %s: %v\n%s", r.topo.Name, err, progress.String())
	}
	r.t.Logf("%s ready in %s", r.topo.Name, time.Since(start).Round(time.Millisecond))
}

// stop stops every process (SIGTERM: they drain and flush) and removes them; idempotent.
func (r *running) stop() error {
	if r.done {
		return nil
	}
	r.done = true
	_, err := r.rt.Down(context.WithoutCancel(r.t.Context()), stack.DownOptions{Volumes: true})
	return err
}

// killer finds the process of arch that runs the context name and returns what kills it
// (SIGKILL, as a crash): found beforehand, so that the kill lands when its caller means,
// not a status call later.
func (r *running) killer(arch, name string) func() {
	r.t.Helper()
	a := r.arch(arch)
	var svc string
	for _, s := range a.Services {
		if g, err := bounded.ParseGroup(s.Group); err == nil && (slices.Contains(g.Contexts, name) || (name == bounded.EdgeName && g.Edge)) {
			svc = s.Name
		}
	}
	sts, err := r.rt.Status(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	for _, st := range sts {
		if st.Arch == arch && st.Service == svc && st.PID > 0 {
			return func() {
				r.t.Helper()
				if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
					r.t.Fatalf("kill %s/%s: %v", arch, svc, err)
				}
				r.t.Logf("killed %s/%s (pid %d), which runs %s", arch, svc, st.PID, name)
			}
		}
	}
	r.t.Fatalf("no running process of %s runs %s", arch, name)
	return nil
}

func (r *running) arch(name string) topology.Arch {
	r.t.Helper()
	for _, a := range r.topo.Archs {
		if a.Name == name {
			return a
		}
	}
	r.t.Fatalf("no architecture %s", name)
	return topology.Arch{}
}

// logs passes the processes' warnings and errors to the test log, but for the expected ones.
func (r *running) logs(quiet []string) {
	var sb strings.Builder
	if err := r.rt.Logs(context.WithoutCancel(r.t.Context()), stack.LogsOptions{}, &sb); err != nil {
		r.t.Logf("logs: %v", err)
		return
	}
	sc := bufio.NewScanner(strings.NewReader(sb.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `"level":"WARN"`) && !strings.Contains(line, `"level":"ERROR"`) && !strings.Contains(line, `"msg":"recovered interrupted`) {
			continue
		}
		if !slices.ContainsFunc(quiet, func(q string) bool { return strings.Contains(line, q) }) {
			r.t.Log(line)
		}
	}
}
