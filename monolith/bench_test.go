package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/propagators/aws/xray"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
)

// startBench builds the monolith's real wiring (embedded JetStream on disk) without a socket:
// the benchmarks measure the shop, not the kernel's loopback.
func startBench(b *testing.B) http.Handler {
	b.Helper()
	cfg := config{DataDir: b.TempDir(), AdminToken: testToken}
	m, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.close)
	return m.handler
}

func serve(b *testing.B, h http.Handler, method, path, body string, header map[string]string, want int) {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
}

// cpuTime is the CPU time (user + system) this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perCore reports requests per CPU-second: what one core running only the shop serves. It is
// computed from the CPU time the process used (HTTP handler, domain, embedded JetStream and
// its disk writes all included), so it holds when the machine is busy with something else,
// unlike a wall-clock rate. The wall-clock rate per GOMAXPROCS is reported beside it.
func perCore(b *testing.B, wall time.Time, cpu time.Duration) {
	if used := cpuTime() - cpu; used > 0 {
		b.ReportMetric(float64(b.N)/used.Seconds(), "req/cpu-s")
	}
	b.ReportMetric(float64(b.N)/time.Since(wall).Seconds()/float64(runtime.GOMAXPROCS(0)), "req/s/core")
}

// BenchmarkProductList: GET /v1/products (first page of 20) through the HTTP handler.
func BenchmarkProductList(b *testing.B) {
	h := startBench(b)
	b.ReportAllocs()
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, h, http.MethodGet, "/v1/products", "", nil, http.StatusOK)
		}
	})
	perCore(b, t0, c0)
}

// BenchmarkProductGet: GET /v1/products/{id} through the HTTP handler.
func BenchmarkProductGet(b *testing.B) {
	h := startBench(b)
	b.ReportAllocs()
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serve(b, h, http.MethodGet, "/v1/products/sku-0042", "", nil, http.StatusOK)
		}
	})
	perCore(b, t0, c0)
}

// BenchmarkCheckout: add one item to a fresh user's cart, then POST /v1/checkout, through the
// HTTP handler on JetStream; the cart add is counted in, so the figure is conservative.
func BenchmarkCheckout(b *testing.B) { benchCheckout(b) }

func benchCheckout(b *testing.B) {
	h := startBench(b)
	admin := map[string]string{"Authorization": "Bearer " + testToken}
	// Buyers spread over the whole seed catalog, as real traffic does; every buyer of one
	// product contends for one stock record (optimistic concurrency), which is a different
	// measurement (see the no-oversell tests).
	const products = 50
	for p := 1; p <= products; p++ {
		serve(b, h, http.MethodPost, fmt.Sprintf("/v1/admin/inventory/sku-%04d", p), `{"add": 1000000}`, admin, http.StatusOK)
	}
	var n atomic.Int64
	// Checkouts wait on the store most of the time; 8 per core keep the CPU busy.
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			user := fmt.Sprintf("bench-%d", i)
			item := fmt.Sprintf(`{"product_id":"sku-%04d","quantity":1}`, 1+i%products)
			serve(b, h, http.MethodPost, "/v1/carts/"+user+"/items", item, nil, http.StatusOK)
			body := fmt.Sprintf(`{"user_id":%q,"email":"b@example.com","address":{"street":"1 Main St","city":"Springfield","postal_code":"12345","country":"US"},"card":{"number":"4242424242424242","exp_month":12,"exp_year":2099,"cvv":"123"}}`, user)
			serve(b, h, http.MethodPost, "/v1/checkout", body, map[string]string{"Idempotency-Key": user}, http.StatusCreated)
		}
	})
	perCore(b, t0, c0)
}

// BenchmarkCheckoutTracing is BenchmarkCheckout with tracing off (no SDK: OpenTelemetry's
// no-op globals) and on: "on-discard" samples every span into a batch span processor that
// drops the batches (the instrumentation alone); "on-otlp" is the production setup
// (telemetry.Setup, every span sampled, batch OTLP/HTTP export of traces and metrics) to a
// sink that reads and drops the requests, standing for a collector in another process;
// "on-otlp-10pct" is the same with a parent-based 10% trace ID ratio sampler. Compare their
// req/cpu-s.
func BenchmarkCheckoutTracing(b *testing.B) {
	b.Run("off", benchCheckout)
	b.Run("on-discard", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithBatcher(discard{}, sdktrace.WithMaxQueueSize(8192)), sdktrace.WithIDGenerator(xray.NewIDGenerator()))
		prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(xray.Propagator{}, propagation.TraceContext{}, propagation.Baggage{}))
		b.Cleanup(func() {
			_ = tp.Shutdown(context.Background())
			otel.SetTracerProvider(prevTP)
			otel.SetTextMapPropagator(prevProp)
		})
		benchCheckout(b)
	})
	setup := func(b *testing.B, sampler, arg string) {
		sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK) // an empty body is an empty export response
		}))
		b.Cleanup(sink.Close)
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
		b.Setenv("OTEL_TRACES_SAMPLER", sampler)
		b.Setenv("OTEL_TRACES_SAMPLER_ARG", arg)
		shutdown, _, err := telemetry.Setup(context.Background(), telemetry.Options{ServiceName: "monolith", Architecture: telemetry.Monolith,
			LogLevel: slog.LevelWarn, LogOutput: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = shutdown(context.Background()) })
	}
	b.Run("on-otlp", func(b *testing.B) {
		setup(b, "always_on", "")
		benchCheckout(b)
	})
	b.Run("on-otlp-10pct", func(b *testing.B) {
		setup(b, "parentbased_traceidratio", "0.1")
		benchCheckout(b)
	})
}

// discard is a span exporter that drops everything.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
