package host_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/host"
	"github.com/mitosis-dev/mitosis/services/host/hosttest"
	"github.com/mitosis-dev/mitosis/shop/apitest"
	"github.com/mitosis-dev/mitosis/shop/events"
)

// A host set up as Main sets it up serves /metrics at SHOP_METRICS_ADDR; after real requests
// to its edge, calls to its gRPC port and checkouts through JetStream, a scrape over
// 127.0.0.1 finds each of them counted: the HTTP server's requests by route, the gRPC
// server's calls by method, the calls between its contexts, the store's round trips by
// bucket, operation and outcome, the events' publishes, and the Go runtime.
func TestMetricsEndpointCountsRequestsCallsAndRoundTrips(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "none") // nothing leaves the test: metrics are scraped
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	ns := hosttest.StartNATS(t)
	env := map[string]string{"SHOP_NATS_URL": ns.URL(), "SHOP_GRPC_ADDR": "127.0.0.1:0", host.MetricsAddrEnv: "127.0.0.1:0"}
	whole := bounded.Everything().String()
	only := map[string]string{"SHOP_GROUP": whole, host.TLSDirEnv: hosttest.IdentityDir(t, "monolith")} // for ConfigFrom alone
	cfg, err := host.ConfigFrom(func(k string) string { return only[k] + env[k] }, bounded.Group{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsAddr != "127.0.0.1:0" {
		t.Fatalf("MetricsAddr = %q from %s", cfg.MetricsAddr, host.MetricsAddrEnv)
	}
	opts := host.TelemetryOptions(cfg, "test")
	var metricsAddr string
	opts.MetricsListening = func(a net.Addr) { metricsAddr = a.String() }
	shutdown, _, err := telemetry.Setup(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) }) // after the host stops: cleanups run last first

	h := hosttest.Start(t, whole, env)
	c := apitest.NewClient(apitest.Target{BaseURL: h.BaseURL, AdminToken: hosttest.Token})
	const checkouts = 3
	var productID string
	for range checkouts {
		productID = checkout(t, c).Items[0].ProductID
	}
	c.Product(t, productID)

	// As the gateway calls it: an identity the access table lets call CatalogService/Get.
	conn, err := grpc.NewClient(h.GRPCAddr, grpc.WithTransportCredentials(hosttest.Security(t, "gateway").ClientCredentials("catalog")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	const grpcGets = 2
	for range grpcGets {
		if _, err := catalogrpc.NewClient(conn).Get(t.Context(), productID); err != nil {
			t.Fatal(err)
		}
	}

	// A server records a call once it has answered it: the client may have its answer a
	// moment before. So each count is polled for, with a deadline.
	fams := telemetrytest.Scrape(t, metricsAddr)
	atLeast := func(name string, labels map[string]string, want float64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, found := fams.Sum(name, labels)
			if found && got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%s%v = %v (found %v), want at least %v; series: %v", name, labels, got, found, want, fams.Labels(name))
				return
			}
			time.Sleep(20 * time.Millisecond) // between scrapes, polling with a deadline
			fams = telemetrytest.Scrape(t, metricsAddr)
		}
	}
	atLeast("http_server_request_duration_seconds",
		map[string]string{"http_request_method": "POST", "http_route": "/v1/checkout", "http_response_status_code": "201"}, checkouts)
	atLeast("http_server_request_duration_seconds",
		map[string]string{"http_request_method": "GET", "http_route": "/v1/products/{id}", "http_response_status_code": "200"}, 1)
	atLeast("rpc_server_call_duration_seconds",
		map[string]string{"rpc_method": "mitosis.catalog.v1.CatalogService/Get", "rpc_response_status_code": "OK"}, grpcGets)
	atLeast("mitosis_call_duration_seconds", map[string]string{"rpc_method": "mitosis.orders.v1.OrdersService/Checkout"}, checkouts)
	// Each checkout records its saga and charges once at least: JetStream round trips.
	atLeast("db_client_operation_duration_seconds",
		map[string]string{"db_system_name": "nats_kv", "db_collection_name": "orders_sagas", "db_operation_name": "Create", "mitosis_kv_outcome": "ok"}, checkouts)
	atLeast("db_client_operation_duration_seconds",
		map[string]string{"db_collection_name": "payments_charges", "mitosis_kv_outcome": "ok"}, checkouts)
	// Each checkout publishes its order-paid event: one more round trip.
	atLeast("messaging_client_operation_duration_seconds",
		map[string]string{"messaging_destination_name": events.OrderPaidSubject, "messaging_operation_name": "send"}, checkouts)
	atLeast("go_goroutine_count", nil, 1)
	atLeast("go_memory_used_bytes", nil, 1)
	if got := fams.LabelValues("target_info", "service_name"); len(got) != 1 || got[0] != cfg.Name {
		t.Errorf("target_info service_name = %v, want [%s]", got, cfg.Name)
	}
	// Every label value of the store's metric is one of a few: no key, user or ID in it.
	for _, key := range []string{"db_operation_name", "mitosis_kv_outcome"} {
		if vals := fams.LabelValues("db_client_operation_duration_seconds", key); len(vals) == 0 || len(vals) > 5 {
			t.Errorf("db_client_operation_duration_seconds %s takes %v", key, vals)
		}
	}
}
