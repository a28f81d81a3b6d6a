package podmanrt_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mitosis-dev/mitosis/platform/stack/stacktest"
	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
	"github.com/mitosis-dev/mitosis/platform/topology"
)

// TestMonolithPodServesMetricsOnLoopback: in Podman, the monolith's and NATS's metrics ports
// are published on 127.0.0.1 (status says at which port), and a scrape there after a
// checkout finds the edge's requests and the checkout's JetStream round trips, counted inside
// the container, and NATS's JetStream API requests.
func TestMonolithPodServesMetricsOnLoopback(t *testing.T) {
	topo, rt, _, edge := monolithStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := rt.Up(ctx, topo, upOptions(t, io.Discard)); err != nil {
		t.Fatalf("up: %v", err)
	}
	base := "http://" + edge
	stacktest.Checkout(t, base, "test-token", "ada")
	if code := stacktest.Get(t, base+"/v1/products"); code != http.StatusOK {
		t.Fatalf("GET /v1/products: %d", code)
	}

	sts, err := rt.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addr, natsAddr string
	for _, s := range sts {
		switch s.Service {
		case "nats":
			natsAddr = s.Ports[topology.MetricsPort]
		case "monolith":
			addr = s.Ports[topology.MetricsPort]
		}
	}
	if !strings.HasPrefix(natsAddr, "127.0.0.1:") {
		t.Errorf("NATS's metrics port is published at %q, want 127.0.0.1:<port>", natsAddr)
	} else if n, _ := telemetrytest.Scrape(t, natsAddr).Sum("nats_jetstream_api_requests_total", nil); n < 1 {
		t.Errorf("NATS counts %v JetStream API requests after a checkout", n)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("the monolith's metrics port is published at %q, want 127.0.0.1:<port>", addr)
	}
	fams := telemetrytest.Scrape(t, addr)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"http_server_request_duration_seconds", map[string]string{"http_route": "/v1/checkout", "http_response_status_code": "201"}},
		{"http_server_request_duration_seconds", map[string]string{"http_route": "/v1/products"}},
		{"db_client_operation_duration_seconds", map[string]string{"db_collection_name": "orders_sagas", "db_operation_name": "Create"}},
		{"go_goroutine_count", nil},
	} {
		if n, ok := fams.Sum(c.name, c.labels); !ok || n < 1 {
			t.Errorf("%s%v = %v (found %v), want at least 1", c.name, c.labels, n, ok)
		}
	}
}
