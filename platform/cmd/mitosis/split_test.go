package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/pods"

	"github.com/mitosis-dev/mitosis/platform/podmanrt/podmanrttest"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestSplitBesideTheMonolithThroughTheCLI runs the command the placement issue names, as
// processes and as Podman pods, beside the monolith in the same stack: `up --split
// 'catalog+inventory,cart+orders+payments,shipping+notify' --edge 127.0.0.1:<port>`. The
// split's edge is ready and serves a product and a checkout through the public API; then
// `down --split ...` removes the split, all of it, and nothing of the monolith, which still
// answers from the same processes (the same PIDs; the same pods and containers, started
// when they were). The two runs share a state folder: Podman's loads the images the
// processes' build made.
func TestSplitBesideTheMonolithThroughTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the split's images and runs it beside the monolith")
	}
	state := t.TempDir()
	for _, rt := range []string{"process", "podman"} {
		t.Run(rt, func(t *testing.T) { splitBesideTheMonolith(t, rt, state) })
	}
}

func splitBesideTheMonolith(t *testing.T, runtime, state string) {
	const split = "catalog+inventory,cart+orders+payments,shipping+notify"
	var conn context.Context // Podman's API, to tell its pods apart
	if runtime == "podman" {
		conn = podmanrttest.Require(t)
	}
	common := []string{"--runtime", runtime, "--root", repoRoot(t), "--state", state, "--stack", stacktest.StackName(t), "--collector-edge", "none"}
	t.Cleanup(func() { runBinary(context.Background(), t, append([]string{"down", "--volumes"}, common...)...) })

	code, out, errOut := runBinary(t.Context(), t, append([]string{"up", "-t", topology.Monolith, "--monolith-edge", stacktest.AnyPort}, common...)...)
	if code != exitOK {
		t.Fatalf("up -t monolith: exit %d\n%s\n%s", code, out, errOut)
	}
	monolith := "http://" + edgeSaid(t, out, topology.Monolith)

	// The edge is a port picked here, as a user would give it: the split's images are built
	// first, so that up binds it moments after it was found free, not a build later.
	code, out, errOut = runBinary(t.Context(), t, append([]string{"build", "--split", split, "--platform", "linux/" + goruntime.GOARCH}, common...)...)
	if code != exitOK {
		t.Fatalf("build --split: exit %d\n%s\n%s", code, out, errOut)
	}
	// Podman's run finds the images the processes' run built in the same state folder, and
	// builds nothing unless it runs alone.
	if runtime == "process" || strings.Contains(out+errOut, "building ") {
		checkBuildProgress(t, out+errOut)
	}
	edge := stacktest.FreeAddr(t)
	code, out, errOut = runBinary(t.Context(), t, append([]string{"up", "--split", split, "--edge", edge}, common...)...)
	if code != exitOK {
		t.Fatalf("up --split: exit %d\n%s\n%s", code, out, errOut)
	}
	if got := edgeSaid(t, out, topology.SplitName); got != edge {
		t.Errorf("up says the split's edge is %s, want %s", got, edge)
	}
	base := "http://" + edge
	if code := stacktest.Get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("the split's GET /readyz: %d", code)
	}
	if code, body := getBody(t, base+"/v1/products/sku-0001"); code != http.StatusOK || !strings.Contains(body, `"sku-0001"`) {
		t.Errorf("the split's GET /v1/products/sku-0001: %d %s", code, body)
	}
	token, err := stack.AdminToken(state)
	if err != nil {
		t.Fatal(err)
	}
	if id := stacktest.Checkout(t, base, token, "split-user"); !strings.Contains(stacktest.Orders(t, base, "split-user"), id) {
		t.Errorf("order %s is not in split-user's orders", id)
	}

	before := statusRows(t, common)
	splitRuns, monolithRuns := running(t, conn, before, topology.SplitName), running(t, conn, before, topology.Monolith)
	// NATS and one host per group: the three groups and the edge alone.
	if len(splitRuns) != 5 || len(monolithRuns) != 2 {
		t.Fatalf("status before down: %d of the split running, %d of the monolith, want 5 and 2: %+v", len(splitRuns), len(monolithRuns), before)
	}

	code, out, errOut = runBinary(t.Context(), t, append([]string{"down", "--split", split}, common...)...)
	if want := map[string]string{"process": "removed 5 processes", "podman": "removed 5 pods, 10 containers, 1 network"}[runtime]; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("down --split: exit %d, want %q\n%s\n%s", code, want, out, errOut)
	}
	for name, id := range splitRuns {
		if gone(t, conn, name, id) {
			continue
		}
		t.Errorf("%s of the split (%s) is still there after its down", name, id)
	}
	after := statusRows(t, common)
	if got := running(t, conn, after, topology.SplitName); len(got) != 0 {
		t.Errorf("status after down --split still lists the split: %+v", after)
	}
	if got := running(t, conn, after, topology.Monolith); !maps.Equal(got, monolithRuns) {
		t.Errorf("the monolith ran as %v, runs as %v after the split's down", monolithRuns, got)
	}
	if code, body := getBody(t, monolith+"/v1/products/sku-0001"); code != http.StatusOK || !strings.Contains(body, `"sku-0001"`) {
		t.Errorf("the monolith's GET /v1/products/sku-0001 after the split's down: %d %s", code, body)
	}
	stacktest.Checkout(t, monolith, token, "monolith-user")
}

// running names what runs each of arch's status lines, by the line's name: a process's PID,
// or a pod's ID with its containers' IDs and the times they started (conn, Podman's API, is
// nil for processes). The same identities before and after another placement's down mean
// that it left them alone: not stopped, restarted or made again.
func running(t *testing.T, conn context.Context, rows []stack.Status, arch string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range rows {
		if r.Arch != arch {
			continue
		}
		if conn == nil {
			if r.PID > 0 {
				out[r.Name] = strconv.Itoa(r.PID)
			}
			continue
		}
		pod, err := pods.Inspect(conn, r.Name, nil)
		if err != nil {
			t.Fatalf("inspect pod %s: %v", r.Name, err)
		}
		id := []string{pod.ID}
		for _, c := range pod.Containers {
			data, err := containers.Inspect(conn, c.ID, nil)
			if err != nil {
				t.Fatalf("inspect container %s of pod %s: %v", c.ID, r.Name, err)
			}
			id = append(id, c.ID+"@"+data.State.StartedAt.Format(time.RFC3339Nano))
		}
		slices.Sort(id[1:])
		out[r.Name] = strings.Join(id, " ")
	}
	return out
}

// gone tells whether what running named name, with id, no longer exists: the process has
// ended (a zombie its parent, the CLI run by this test, has not collected counts as ended),
// or the pod is removed.
func gone(t *testing.T, conn context.Context, name, id string) bool {
	t.Helper()
	if conn == nil {
		return !alive(id)
	}
	exists, err := pods.Exists(conn, name, nil)
	if err != nil {
		t.Fatalf("does pod %s exist: %v", name, err)
	}
	return !exists
}

// edgeSaid is the address up said arch's edge answers at ("<arch>: http://<addr> (budget ...").
func edgeSaid(t *testing.T, out, arch string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(arch) + `: http://(\S+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up did not say where %s's edge is:\n%s", arch, out)
	}
	return m[1]
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// statusRows are `status --json`'s lines; every one must be running and ready, and, as
// runBinary asks for any ports, none may hold its own port number (4222, 9101...).
func statusRows(t *testing.T, common []string) []stack.Status {
	t.Helper()
	code, out, errOut := runBinary(t.Context(), t, append([]string{"status", "--json"}, common...)...)
	if code != exitOK {
		t.Fatalf("status: exit %d\n%s\n%s", code, out, errOut)
	}
	var rows []stack.Status
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, r := range rows {
		for port, addr := range r.Ports {
			if strings.HasSuffix(addr, ":"+strconv.Itoa(port)) {
				t.Errorf("%s/%s serves %d on its own number %s under MITOSIS_ANY_PORTS", r.Arch, r.Service, port, addr)
			}
		}
	}
	return rows
}

// alive tells whether the process pid runs: it exists and is not a zombie waiting for its
// parent (this test's process, which started it through the CLI) to collect it.
func alive(pid string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// checkBuildProgress: a build says what it builds before it starts, and then, for each image
// as it goes, that it compiles it and that it is done (built, or unchanged), with its time:
// a first build takes minutes, which a user must not sit through in silence.
func checkBuildProgress(t *testing.T, out string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^building \d+ image\(s\) for 1 platform\(s\): `).MatchString(out) {
		t.Errorf("the build does not say what it builds:\n%s", out)
	}
	compiling := regexp.MustCompile(`(?m)^  (\S+): compiling for linux/`).FindAllStringSubmatch(out, -1)
	if len(compiling) == 0 {
		t.Errorf("the build names no image as it compiles it:\n%s", out)
	}
	for _, m := range compiling {
		done := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(m[1]) + `: (built|unchanged, the same binary) \([0-9.]+m?s\)$`)
		if !done.MatchString(out) {
			t.Errorf("the build says it compiles %s, never that it is done:\n%s", m[1], out)
		}
	}
}
