package loadtest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

func TestParseEdges(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Edge
	}{
		{"", nil},
		{"monolith=127.0.0.1:8080, hybrid", []Edge{{Arch: "monolith", URL: "http://127.0.0.1:8080"}, {Arch: "hybrid"}}},
		{"both,split-2=http://127.0.0.1:8083/", []Edge{{Arch: "monolith"}, {Arch: "services"}, {Arch: "split-2", URL: "http://127.0.0.1:8083"}}},
		{"hybrid,monolith", []Edge{{Arch: "hybrid"}, {Arch: "monolith"}}},
		{"services,services@shared,services@measured=127.0.0.1:8083", []Edge{{Arch: "services"}, {Arch: "services-shared"},
			{Arch: "services-measured", URL: "http://127.0.0.1:8083"}}},
	} {
		got, err := ParseEdges(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseEdges(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"monolith=http://a,monolith=http://b", "named twice"},
		{"both,services", "named twice"},
		{"my arch=http://127.0.0.1:1", "letters, digits and '-'"},
		{"a/b", "letters, digits and '-'"},
		{"=http://127.0.0.1:1", "letters, digits and '-'"},
		{"hybrid=", "empty URL"},
		{"services@elastic", `unknown budget mode "elastic"`},
		{"services-shared,services@shared", "named twice"},
	} {
		if _, err := ParseEdges(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseEdges(%q): %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

// edgeServer answers GET /readyz as an edge does, and 404 elsewhere.
func edgeServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// monitorServer is NATS' monitor: HTTP, but no /readyz.
func monitorServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// silentPort accepts connections and closes them, as a gRPC server does an HTTP/1 request.
func silentPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func topologiesDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRootForTest(t), "topologies")
}

// The edges of what the runtimes report: from the topology file where there is one (the
// monolith's edge is its service monolith, the hybrid's its gateway), by asking GET /readyz
// where there is none (a --split); in the order monolith, services, then by name; the
// collector and architectures without a ready edge left out, with the reason.
func TestEdgesFromStatus(t *testing.T) {
	dir := topologiesDir(t)
	running := func(arch, svc, addr string) stack.Status {
		return stack.Status{Arch: arch, Service: svc, State: "running", Health: stack.Ready, Addr: addr}
	}
	mono, gw, split, zeta := edgeServer(t), edgeServer(t), edgeServer(t), edgeServer(t)
	rows := []stack.Status{
		running(topology.Telemetry, "collector", edgeServer(t)),
		running("zeta", "nats", monitorServer(t)),
		running("zeta", "edge-catalog-cart-inventory-payments-orders-shipping-notify", zeta),
		running("split", "cart-orders", silentPort(t)),
		running("split", "nats", monitorServer(t)),
		running("split", "edge-catalog", split),
		running(topology.Services, "catalog", silentPort(t)),
		running(topology.Services, "gateway", gw),
		{Arch: "hybrid", Service: "gateway", State: "exited", Health: stack.Unready, Detail: "see hybrid/gateway.log"},
		running("hybrid", "catalog-inventory", silentPort(t)),
		running("broken", "cart-orders", silentPort(t)),
		running(topology.Monolith, "nats", monitorServer(t)),
		running(topology.Monolith, "monolith", mono),
	}
	// services@shared: its edge is where the services' file puts it, though another of its
	// services answers GET /readyz too.
	shared := &stack.Budget{Placement: topology.Services, Mode: topology.Shared}
	sharedGW := edgeServer(t)
	for _, r := range []stack.Status{running("services-shared", "catalog", edgeServer(t)), running("services-shared", "gateway", sharedGW)} {
		r.Budget = shared
		rows = append(rows, r)
	}
	// The hybrid's placement once more, up under another name, its gateway running but not
	// ready yet: a run waits for it (ErrEdgeUnready), not for the exited one.
	rows = append(rows, stack.Status{Arch: "hybrid-late", Service: "gateway", State: "running", Health: stack.Unready, Addr: silentPort(t),
		Detail: "GET /readyz: 503", Budget: &stack.Budget{Placement: "hybrid", Mode: topology.PerService}})
	edges, skipped := EdgesFromStatus(context.Background(), rows, dir)
	want := []Edge{
		{Arch: "monolith", URL: "http://" + mono, Service: "monolith"},
		{Arch: "services", URL: "http://" + gw, Service: "gateway"},
		{Arch: "services-shared", URL: "http://" + sharedGW, Service: "gateway"},
		{Arch: "split", URL: "http://" + split, Service: "edge-catalog"},
		{Arch: "zeta", URL: "http://" + zeta, Service: "edge-catalog-cart-inventory-payments-orders-shipping-notify"},
	}
	if !slices.Equal(edges, want) {
		t.Errorf("edges\n%+v\nwant\n%+v", edges, want)
	}
	if len(skipped) != 3 || !strings.HasPrefix(skipped[0].String(), "broken: none of its running services answers GET /readyz") ||
		!strings.HasPrefix(skipped[1].String(), "hybrid: its edge gateway is exited, unready (see hybrid/gateway.log)") ||
		skipped[2].String() != "hybrid-late: its edge gateway is running, unready (GET /readyz: 503)" {
		t.Fatalf("skipped %q: want broken (no edge), hybrid (its edge exited) and hybrid-late (its edge unready), by name", skipped)
	}
	for i, want := range []bool{false, false, true} {
		if got := errors.Is(skipped[i].Err, ErrEdgeUnready); got != want {
			t.Errorf("%s: ErrEdgeUnready %v, want %v", skipped[i], got, want)
		}
	}
	if edges, skipped := EdgesFromStatus(context.Background(), nil, dir); edges != nil || skipped != nil {
		t.Errorf("nothing up: %v, %v", edges, skipped)
	}
}

// A run waits for an architecture whose edge runs but is not ready yet, asking the status
// again until it is, and leaves it out once the wait has passed; it does not wait for an
// edge that has exited.
func TestAwaitEdges(t *testing.T) {
	ctx := context.Background()
	dir := topologiesDir(t)
	gw := edgeServer(t)
	var calls, readyFrom int
	state := "running"
	ask := func(ctx context.Context) ([]Edge, []Skip) {
		calls++
		health := stack.Unready
		if calls >= readyFrom {
			health = stack.Ready
		}
		return EdgesFromStatus(ctx, []stack.Status{{Arch: topology.Services, Service: "gateway", State: state, Health: health, Addr: gw}}, dir)
	}
	var told []Skip
	waiting := func(p []Skip) { told = append(told, p...) }

	calls, readyFrom = 0, 3
	edges, skipped := AwaitEdges(ctx, time.Minute, 10*time.Millisecond, ask, waiting)
	if want := []Edge{{Arch: topology.Services, URL: "http://" + gw, Service: "gateway"}}; !slices.Equal(edges, want) || skipped != nil || calls != 3 {
		t.Errorf("ready at the third status: %v, left out %v, after %d statuses; want %v at the third", edges, skipped, calls, want)
	}
	if len(told) != 1 || told[0].Arch != topology.Services {
		t.Errorf("told of %v, want the services once", told)
	}

	calls, readyFrom = 0, 1<<30
	start := time.Now()
	edges, skipped = AwaitEdges(ctx, 100*time.Millisecond, 10*time.Millisecond, ask, nil)
	if len(edges) != 0 || len(skipped) != 1 || !errors.Is(skipped[0].Err, ErrEdgeUnready) || calls < 2 || time.Since(start) > 10*time.Second {
		t.Errorf("never ready: %v, left out %v, after %d statuses in %s; want it left out, unready, after the wait", edges, skipped, calls, time.Since(start))
	}

	calls, state = 0, "exited"
	if edges, skipped = AwaitEdges(ctx, time.Minute, 10*time.Millisecond, ask, nil); len(edges) != 0 || len(skipped) != 1 || calls != 1 {
		t.Errorf("exited: %v, left out %v, after %d statuses; want it left out at once", edges, skipped, calls)
	}
}

// Edges asked for by name take their URL from what is up; with a URL, their service (for the
// traces) from what is up at that URL, else from their topology file.
func TestResolveEdges(t *testing.T) {
	dir := topologiesDir(t)
	up := []Edge{{Arch: "monolith", URL: "http://127.0.0.1:8080", Service: "monolith"}, {Arch: "services", URL: "http://127.0.0.1:8081", Service: "gateway"}}
	asked := []Edge{{Arch: "services"}, {Arch: "monolith", URL: "http://127.0.0.1:9999"}, {Arch: "hybrid", URL: "http://127.0.0.1:8082"},
		{Arch: "split", URL: "http://127.0.0.1:8083"}}
	got, err := ResolveEdges(asked, up, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Edge{up[1], {Arch: "monolith", URL: "http://127.0.0.1:9999", Service: "monolith"}, {Arch: "hybrid", URL: "http://127.0.0.1:8082", Service: "gateway"},
		{Arch: "split", URL: "http://127.0.0.1:8083"}}
	if !slices.Equal(got, want) {
		t.Errorf("resolved %+v, want %+v", got, want)
	}
	if _, err := ResolveEdges([]Edge{{Arch: "hybrid"}}, up, dir); err == nil || !strings.Contains(err.Error(), "hybrid is not up") {
		t.Errorf("a name alone that is not up: %v", err)
	}
}

func TestCompareArchs(t *testing.T) {
	got := []string{"split", "services", "hybrid", "monolith", "a-split"}
	slices.SortFunc(got, CompareArchs)
	if want := []string{"monolith", "services", "a-split", "hybrid", "split"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
