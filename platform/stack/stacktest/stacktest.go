// Package stacktest holds what the runtimes' tests share: a checkout through the public API
// of a running stack (API.md), a free loopback address, a test stack name, and polling.
package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mitosis-dev/mitosis/platform/imagebuild"
	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
	"github.com/mitosis-dev/mitosis/platform/tracecompare/checkouttrace"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
)

// FreeAddr returns a loopback address a test can serve on: nothing listens on it and no
// container's published port forwards it elsewhere (at the time of the call). Its port lies
// below the kernel's ephemeral range (net.ipv4.ip_local_port_range), from which the kernel
// takes every port it hands out, to a connection or a bind of port 0 (Podman's host ports,
// every other test's servers): only another choice like this one can take it before the test
// binds it. Picked from that range, the monolith's edge was taken in CI during the seconds
// its up spent starting NATS first. Where a runtime binds the edge, AnyPort makes the choice
// and the bind one step.
func FreeAddr(t *testing.T) string {
	t.Helper()
	if low := ephemeralLow(); low > belowEphemeral {
		for range 50 {
			at := net.JoinHostPort("127.0.0.1", strconv.Itoa(belowEphemeral+mrand.IntN(low-belowEphemeral)))
			if stack.CheckPort(at) != nil {
				continue
			}
			if l, err := net.Listen("tcp", at); err == nil {
				_ = l.Close()
				return at
			}
		}
	}
	port, err := stack.FreePort(nil)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// belowEphemeral is where FreeAddr's ports start: above the well-known ports the stack
// publishes (8080, 8081, 16686...).
const belowEphemeral = 20000

// ephemeralLow is the first port of the kernel's ephemeral range, 0 when unknown.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, _ := strconv.Atoi(f[0])
	return low
}

// AnyPort is the edge address to give a topology whose runtime is to pick the port: Podman
// and the process runtime bind port 0 to a free port when they start the edge, the choice
// and the bind one step. FreeAddr's port, picked by the test, can be taken by another
// process in the meantime (an image or binary build runs between), and the up then fails
// with "address already in use". EdgeAddr says afterwards where the edge is.
const AnyPort = "127.0.0.1:0"

// EdgeAddr returns where arch's edge answers on the host, as rt's status says
// (stack.EdgeAddr): for an edge given as AnyPort.
func EdgeAddr(t *testing.T, rt stack.Runtime, topo topology.Topology, arch string) string {
	t.Helper()
	sts, err := rt.Status(t.Context())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	addr, err := stack.EdgeAddr(topo, sts, arch)
	if err != nil {
		t.Fatalf("%v: %+v", err, sts)
	}
	return addr
}

// StackName returns a stack name of the form mitosis-test-<random>, so that a test's objects
// never collide with the real stack's or another test's. MITOSIS_TEST_STACK_PREFIX replaces
// mitosis-test- (people sharing one Podman tell their tests' objects apart by it).
func StackName(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := os.Getenv("MITOSIS_TEST_STACK_PREFIX")
	if prefix == "" {
		prefix = "mitosis-test-"
	}
	return prefix + hex.EncodeToString(b)
}

// Get returns the status code of GET url.
func Get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// Checkout stocks sku-0001, fills user's cart and checks out with the approving test card,
// through the public API at base, and returns the order's ID.
func Checkout(t *testing.T, base, token, user string) string {
	t.Helper()
	id, _ := CheckoutTraced(t, base, token, user)
	return id
}

// CheckoutTraced is Checkout that also returns the checkout's trace ID, from the response's
// traceresponse header (API.md).
func CheckoutTraced(t *testing.T, base, token, user string) (orderID, traceID string) {
	t.Helper()
	var last http.Header
	do := func(method, path, body string, headers ...string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = resp.Header
		return resp.StatusCode, string(b)
	}
	if code, body := do("POST", "/v1/admin/inventory/sku-0001", `{"add": 100}`, "Authorization", "Bearer "+token); code != 200 {
		t.Fatalf("add stock: %d %s", code, body)
	}
	if code, body := do("POST", "/v1/carts/"+user+"/items", `{"product_id":"sku-0001","quantity":2}`); code/100 != 2 {
		t.Fatalf("add to cart: %d %s", code, body)
	}
	code, body := do("POST", "/v1/checkout", `{"user_id":"`+user+`","email":"ada@example.com",
		"address":{"street":"1 Loop Rd","city":"Springfield","postal_code":"12345","country":"US"},
		"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvv":"123"}}`, "Idempotency-Key", "checkout-"+user)
	if code/100 != 2 {
		t.Fatalf("checkout: %d %s", code, body)
	}
	var order struct{ ID, Status string }
	if err := json.Unmarshal([]byte(body), &order); err != nil || order.ID == "" || order.Status != "paid" {
		t.Fatalf("checkout answered %s (%v)", body, err)
	}
	// traceresponse: version-traceid-spanid-flags.
	if f := strings.Split(last.Get("traceresponse"), "-"); len(f) == 4 {
		traceID = f[1]
	}
	return order.ID, traceID
}

// Orders returns the body of GET /v1/users/<user>/orders.
func Orders(t *testing.T, base, user string) string {
	t.Helper()
	resp, err := http.Get(base + "/v1/users/" + user + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// WaitFor polls cond until it holds, failing the test after timeout with cond's last word.
func WaitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling a runtime: there is no event to wait on
	}
	t.Fatalf("not within %s: %s", timeout, last)
}

// CheckoutTrace reports whether the collector at base holds trace id as the whole trace of a
// checkout in arch (checkouttrace.Check: edge, every call, both events and their
// consumers, no orphan), touching exactly the services in want, sorted.
func CheckoutTrace(ctx context.Context, base, id, arch string, want []string) (bool, string) {
	if id == "" {
		return false, "the checkout's response had no traceresponse"
	}
	td, err := tracecollect.Client{BaseURL: base}.Trace(ctx, id)
	if err != nil {
		return false, err.Error()
	}
	trs, err := tracecompare.FromOTLP(td)
	if err != nil || len(trs) != 1 {
		return false, fmt.Sprintf("%d traces (%v)", len(trs), err)
	}
	if err := checkouttrace.Check(trs[0], arch); err != nil {
		return false, fmt.Sprintf("trace %s: %v", id, err)
	}
	got := tracecompare.Analyze(trs[0]).Services
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return false, fmt.Sprintf("trace %s touches %v, want %v", id, got, want)
	}
	return true, ""
}

// BuildImages builds the images of topo from the repository at root, for this machine, into
// a folder named after name under the system's temporary folder, tagged localhost/<name>/...
// The folder outlives the test so that a second run reuses it: that is what the inputs' hash
// is for.
func BuildImages(t *testing.T, root string, topo topology.Topology, name string) map[string]imagebuild.Image {
	t.Helper()
	var specs []imagebuild.Spec
	for _, im := range topo.Images() {
		if _, err := os.Stat(filepath.Join(root, im.Package)); err != nil {
			t.Skipf("%s does not exist yet", im.Package)
		}
		specs = append(specs, imagebuild.Spec{Name: im.Name, Package: im.Package, Tags: im.Tags})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	built, err := imagebuild.Build(ctx, imagebuild.Options{
		Root:      root,
		Dir:       filepath.Join(os.TempDir(), name+"-images"),
		Platforms: []v1.Platform{imagebuild.HostPlatform()},
		Repo:      "localhost/" + name,
		GitStamp:  true,
		Stored:    true, // they never leave the machine; compressing them is most of a build under -race
	}, specs...)
	if err != nil {
		t.Fatalf("build images: %v", err)
	}
	t.Logf("images built or found in %s", time.Since(start).Round(time.Millisecond))
	out := map[string]imagebuild.Image{}
	for _, img := range built {
		out[img.Name] = img
	}
	return out
}

// RandomSplit draws a placement of the shop's contexts, and of the edge, for --split: from
// MITOSIS_SPLIT_SEED when set, else from a seed it logs. Tests that run one in every run
// exercise, over time, every split, not just the shipped ones; a failing one runs again with
// its seed.
func RandomSplit(t testing.TB) string {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MITOSIS_SPLIT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MITOSIS_SPLIT_SEED=%q: not a number", v)
		}
		seed = s
	}
	split := drawSplit(seed)
	t.Logf("the random split is %s (MITOSIS_SPLIT_SEED=%d draws it again)", split, seed)
	return split
}

// partitions are the partitions of the contexts, in topology.Partitions's order: made once,
// as a test may draw many.
var partitions = sync.OnceValue(func() [][][]string { return topology.Partitions(bounded.Names()) })

// drawSplit is the placement seed draws: one of the partitions of the contexts, each as
// likely as any other (drawn by its index: a draw context by context, each joining a group
// or making one, would favour few groups, the one of all seven 13 times more often than the
// average), then the edge, alone or in one of its groups, each as likely.
func drawSplit(seed uint64) string {
	rng := mrand.New(mrand.NewPCG(seed, seed))
	parts := partitions()
	p := parts[rng.IntN(len(parts))]
	groups := make([]string, len(p))
	for i, g := range p {
		groups[i] = strings.Join(g, "+")
	}
	if i := rng.IntN(len(groups) + 1); i < len(groups) {
		groups[i] = bounded.EdgeName + "+" + groups[i]
	}
	return strings.Join(groups, ",")
}

// ImageBinary builds the binary of the topology's image name from the repository at root,
// as its image has it (imagebuild.BuildBinary), into a folder of t's, and returns its path:
// for a test that runs an image's binary without a container.
func ImageBinary(t *testing.T, root, name string) string {
	t.Helper()
	top, err := topology.Get(topology.Both, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(top.Images(), func(im topology.Image) bool { return im.Name == name })
	if i < 0 {
		t.Fatalf("the topology has no image %q", name)
	}
	im := top.Images()[i]
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	bin, err := imagebuild.BuildBinary(ctx, root, t.TempDir(), imagebuild.Spec{Name: im.Name, Package: im.Package, Tags: im.Tags})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// StartMonolith runs the monolith's binary, built as for its image (ImageBinary), on a free
// loopback port with tracing off and its store on a NATS server of the test's (an image's
// binary embeds none), until t ends (SIGTERM, then SIGKILL
// after 20 s). It returns the edge's URL once /readyz answers 200, and the process's PID.
func StartMonolith(t *testing.T, root, adminToken string) (baseURL string, pid int) {
	t.Helper()
	top, err := topology.Get(topology.Monolith, topology.Options{Collector: topology.NoCollector})
	if err != nil {
		t.Fatal(err)
	}
	svc, ok := top.Archs[0].Service(topology.Monolith)
	if !ok {
		t.Fatal("the monolith's topology has no service monolith")
	}
	bin := ImageBinary(t, root, svc.Image)
	ns := hosttest.StartNATS(t)
	addr := FreeAddr(t) // right before the start: the build above takes seconds
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "SHOP_GROUP="+svc.Group, "SHOP_ADDR="+addr, "SHOP_DATA_DIR="+t.TempDir(),
		"SHOP_ADMIN_TOKEN="+adminToken, "SHOP_NATS_URL="+ns.URL(), bounded.RequestKeyEnv+"=stacktest-request-key",
		"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none") // not to a collector this machine may run
	logs, err := os.Create(filepath.Join(t.TempDir(), "monolith.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logs.Close()
	})
	baseURL = "http://" + addr
	// A host that cannot build its group leaves a connection waiting in its listen backlog
	// (services/host): each probe gives up, so the deadline below is reached and says why.
	probe := &http.Client{Timeout: 2 * time.Second}
	ready := func() bool {
		resp, err := probe.Get(baseURL + "/readyz")
		if err != nil {
			return false // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	deadline := time.Now().Add(time.Minute)
	for !ready() {
		select {
		case <-done:
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("the monolith exited before it was ready:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("%s/readyz not 200 within a minute:\n%s", baseURL, b)
		}
		time.Sleep(100 * time.Millisecond) // polling a starting process: there is no event to wait on
	}
	return baseURL, cmd.Process.Pid
}
