package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/telemetry/telemetrytest"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
)

// startMetrics sets telemetry up with a Prometheus endpoint on a free loopback port and
// returns its address; shutdown runs when the test ends, unless the test ran it.
func startMetrics(t *testing.T) (addr string, shutdown telemetry.Shutdown) {
	t.Helper()
	var bound net.Addr
	shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "edge", Architecture: telemetry.Services,
		MetricsAddr: "127.0.0.1:0", MetricsListening: func(a net.Addr) { bound = a }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	if bound == nil {
		t.Fatal("Setup did not say where /metrics listens")
	}
	return bound.String(), shutdown
}

// /metrics answers with the HTTP server's requests (whatever Host header they came with,
// folded into one series per method, status and route), the Go runtime's and the process's
// metrics, and the resource as target_info; shutdown closes the port.
func TestPrometheusEndpointServesBoundedSeries(t *testing.T) {
	clearEnv(t)
	addr, shutdown := startMetrics(t)

	h := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}), "http")
	srv := httptest.NewServer(h)
	defer srv.Close()
	const hosts = 20
	for i := range hosts {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "client-" + strconv.Itoa(i) + ".example:" + strconv.Itoa(1000+i) // what any client may send
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/missing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	cpuBefore := processCPU(t)
	fams := telemetrytest.Scrape(t, addr)
	cpuAfter := processCPU(t)
	const dur = "http_server_request_duration_seconds"
	if n, _ := fams.Sum(dur, map[string]string{"http_request_method": "GET", "http_response_status_code": "200"}); n != hosts {
		t.Errorf("%s{status 200}: %v requests, want %d", dur, n, hosts)
	}
	if n, _ := fams.Sum(dur, map[string]string{"http_response_status_code": "404"}); n != 1 {
		t.Errorf("%s{status 404}: %v requests, want 1", dur, n)
	}
	if got := len(fams.Labels(dur)); got != 2 {
		t.Errorf("%s has %d series, want 2 (one per status): %v", dur, got, fams.Labels(dur))
	}
	for _, l := range fams.Labels(dur) {
		for _, k := range []string{"server_address", "server_port"} {
			if _, ok := l[k]; ok {
				t.Errorf("%s carries %s, which any client sets: %v", dur, k, l)
			}
		}
	}
	for _, name := range []string{"http_server_request_body_size_bytes", "http_server_response_body_size_bytes"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s is exported; the views drop it", name)
		}
	}
	for _, name := range []string{"go_goroutine_count", "go_memory_used_bytes", "go_processor_limit", "process_resident_memory_bytes"} {
		if n, ok := fams.Sum(name, nil); !ok || n <= 0 {
			t.Errorf("%s: %v (found %v), want a positive value", name, n, ok)
		}
	}
	// The process's CPU is what the kernel counts for it, in clock ticks (10 ms): a test
	// run alone may have used less than one, so the figure is held to the process's own
	// count around the scrape rather than to being positive.
	const tick = 0.01
	if n, ok := fams.Sum("process_cpu_seconds_total", nil); !ok || n < cpuBefore-2*tick || n > cpuAfter+2*tick {
		t.Errorf("process_cpu_seconds_total: %v (found %v), want between %.3f and %.3f, the process's own count", n, ok, cpuBefore, cpuAfter)
	}
	if got := fams.LabelValues("target_info", "service_name"); !slices.Equal(got, []string{"edge"}) {
		t.Errorf("target_info service_name = %v, want [edge]", got)
	}

	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("/metrics still accepts connections after shutdown")
	}
}

// A counter the shop records reaches the endpoint under Prometheus's name for it, and a
// scrape sees what was recorded before it, not a stale copy.
func TestPrometheusEndpointReadsCurrentValues(t *testing.T) {
	clearEnv(t)
	addr, _ := startMetrics(t)
	c, err := otel.GetMeterProvider().Meter("test").Int64Counter("test.things", metric.WithUnit("{thing}"))
	if err != nil {
		t.Fatal(err)
	}
	for want := range 3 {
		c.Add(context.Background(), int64(want+1))
		total := (want + 1) * (want + 2) / 2
		if n, _ := telemetrytest.Scrape(t, addr).Sum("test_things_total", nil); n != float64(total) {
			t.Fatalf("after adding %d: test_things_total = %v, want %d", want+1, n, total)
		}
	}
}

// An address already taken fails Setup and installs nothing; no address serves nothing.
func TestPrometheusEndpointAddress(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := otel.GetMeterProvider()
	_, _, err = telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "x", MetricsAddr: ln.Addr().String()})
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Setup on a taken address: %v, want a listen error", err)
	}
	if otel.GetMeterProvider() != before {
		t.Error("a failed Setup left its meter provider installed")
	}
	called := false
	shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "x", MetricsListening: func(net.Addr) { called = true }})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if called {
		t.Error("no MetricsAddr, yet a metrics endpoint listens")
	}
	if got := fmt.Sprintf("%T", otel.GetMeterProvider()); got != "noop.MeterProvider" {
		t.Errorf("meter provider with no exporter and no endpoint: %s, want the no-op one", got)
	}
}

// With both a Prometheus endpoint and OTLP, a measurement reaches both, each once (the OTLP
// push reads the Prometheus reader's aggregation: see periodicReader), and what is measured
// before shutdown is pushed at shutdown; the resource names the service.
func TestMetricsReachPrometheusAndOTLP(t *testing.T) {
	clearEnv(t)
	c := startCollector(t)
	t.Setenv("OTEL_METRICS_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+c.HTTPAddr())
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000") // only shutdown pushes
	addr, shutdown := startMetrics(t)
	h, err := otel.GetMeterProvider().Meter("test").Float64Histogram("test.wait", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	for range n {
		h.Record(context.Background(), 0.002)
	}
	if got, _ := telemetrytest.Scrape(t, addr).Sum("test_wait_seconds", nil); got != n {
		t.Errorf("Prometheus: test_wait_seconds count = %v, want %d", got, n)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := (tracecollect.Client{BaseURL: "http://" + c.QueryAddr()}).Metrics(t.Context(), tracecollect.MetricQuery{Names: []string{"test.wait"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Series) != 1 || len(out.Series[0].Points) != 1 {
		t.Fatalf("OTLP: %+v, want one series of one point", out.Series)
	}
	s := out.Series[0]
	if p := s.Points[0]; p.Count != n || s.Resource["service.name"] != "edge" || s.Temporality != "cumulative" {
		t.Errorf("OTLP: %+v, want %d measurements of service edge, cumulative", s, n)
	}
	// The runtime's metrics, observed at each collection, are pushed too.
	rt, err := (tracecollect.Client{BaseURL: "http://" + c.QueryAddr()}).Metrics(t.Context(), tracecollect.MetricQuery{Names: []string{"go.goroutine.count"}})
	if err != nil || len(rt.Series) != 1 {
		t.Errorf("OTLP: go.goroutine.count: %d series, %v; want one", len(rt.Series), err)
	}
}

// processCPU is the CPU time, user and system, this process has used, in seconds.
func processCPU(t *testing.T) float64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
