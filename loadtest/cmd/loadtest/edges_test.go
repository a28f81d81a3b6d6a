package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/loadtest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// shopEdge answers GET /readyz as an edge does, and 404 elsewhere; it returns its port.
func shopEdge(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// notAnEdge answers HTTP, 404 on every path (as NATS' monitor does): it returns its port.
func notAnEdge(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// processRecord writes what platform/processrt records of a service it started, for this
// test's own process: processrt's Status then finds it alive and runs its probe on port.
func processRecord(t *testing.T, state, stackName, arch, service string, probe topology.Probe, port int) {
	t.Helper()
	processRecordOf(t, state, stackName, arch, service, os.Getpid(), probe, port)
}

// processRecordOf is processRecord for the process pid.
func processRecordOf(t *testing.T, state, stackName, arch, service string, pid int, probe topology.Probe, port int) {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Skipf("no /proc/%d/exe: %v", pid, err)
	}
	rec := map[string]any{
		"arch": arch, "service": service, "pid": pid, "binary": exe,
		"ports": map[string]int{strconv.Itoa(probe.Port): port}, "hash": "test", "probe": probe, "started": time.Now(),
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(state, "run", stackName, arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, service+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Without -edges, a run drives every architecture up: those the process runtime reports
// (its records, read by platform/processrt's Status as `mitosis status` does), and the
// well-known edges that answer though no runtime knows them (`make run`), monolith and
// services first. -edges and the shorthands choose and order; when nothing is up anywhere,
// the well-known edges are tried.
func TestChooseEdgesFromTheProcessRuntime(t *testing.T) {
	root := repoRoot()
	state := t.TempDir()
	stackName := "lt-edges-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	edge := topology.Probe{Kind: topology.HTTP, Port: topology.EdgePort, Path: "/readyz"}
	natsProbe := topology.Probe{Kind: topology.HTTP, Port: 8222, Path: "/healthz"}
	mono, hybrid, split, byHand := shopEdge(t), shopEdge(t), shopEdge(t), shopEdge(t)
	processRecord(t, state, stackName, "monolith", "monolith", edge, mono)
	processRecord(t, state, stackName, "monolith", "nats", natsProbe, notAnEdge(t))
	processRecord(t, state, stackName, "hybrid", "gateway", edge, hybrid)
	processRecord(t, state, stackName, "split", "edge-catalog", edge, split)
	processRecord(t, state, stackName, "split", "cart-orders", topology.Probe{Kind: topology.TCP, Port: 9102}, notAnEdge(t))
	url := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

	var said []string
	say := func(format string, a ...any) { said = append(said, fmt.Sprintf(format, a...)) }
	c := edgeChoice{state: state, stack: stackName, topologies: filepath.Join(root, "topologies"),
		defaults: []loadtest.Edge{{Arch: "monolith", URL: deadURL(t), Service: "monolith"}, {Arch: "services", URL: url(byHand), Service: "gateway"}}}
	ctx := context.Background()
	choose := func(c edgeChoice) []loadtest.Edge {
		t.Helper()
		got, err := c.choose(ctx, say)
		if err != nil {
			t.Fatalf("choose(%+v): %v", c, err)
		}
		return got
	}

	want := []loadtest.Edge{
		{Arch: "monolith", URL: url(mono), Service: "monolith"},
		{Arch: "services", URL: url(byHand), Service: "gateway"},
		{Arch: "hybrid", URL: url(hybrid), Service: "gateway"},
		{Arch: "split", URL: url(split), Service: "edge-catalog"},
	}
	if got := choose(c); !slices.Equal(got, want) {
		t.Errorf("default edges\n%+v\nwant\n%+v", got, want)
	}

	leave := c
	leave.shorthands = []loadtest.Edge{{Arch: "services"}}
	if got := choose(leave); !slices.Equal(got, slices.Delete(slices.Clone(want), 1, 2)) {
		t.Errorf("-services \"\": %+v, want the services left out", got)
	}

	asked := c
	asked.edges = "split,monolith"
	asked.shorthands = []loadtest.Edge{{Arch: "hybrid", URL: url(hybrid)}}
	if got := choose(asked); !slices.Equal(got, []loadtest.Edge{want[2], want[3], want[0]}) {
		t.Errorf("-edges split,monolith after a shorthand: %+v", got)
	}

	for _, bad := range []struct{ edges, want string }{
		{"monolith,nosuch", "nosuch is not up"},
		{"hybrid=http://127.0.0.1:1,hybrid", "named twice"},
	} {
		bc := c
		bc.edges = bad.edges
		if _, err := bc.choose(ctx, say); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("-edges %s: %v, want %q", bad.edges, err, bad.want)
		}
	}

	// Nothing up anywhere: the well-known edges, which then fail to answer in the run.
	empty := c
	empty.state = t.TempDir()
	empty.defaults = []loadtest.Edge{{Arch: "monolith", URL: deadURL(t)}, {Arch: "services", URL: deadURL(t)}}
	said = nil
	if got := choose(empty); !slices.Equal(got, empty.defaults) {
		t.Errorf("nothing up: %+v, want the well-known edges", got)
	}
	if !slices.ContainsFunc(said, func(s string) bool { return strings.Contains(s, "trying those") }) {
		t.Errorf("nothing up, and nothing said: %q", said)
	}
}
