package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// MetricsPath is where the Prometheus endpoint answers on Options.MetricsAddr.
const MetricsPath = "/metrics"

// metricViews keep every stream of the instrumentation this project uses to attributes of
// bounded cardinality, and drop what costs a record per request for little use.
//
// otelhttp stamps its server metrics with server.address and server.port from the request's
// Host header, which any client sets to whatever it likes: one series per value would let a
// client grow the process's memory (and every scrape) at will, up to the SDK's cardinality
// limit, after which real series fold into an overflow one. The views keep the method, the
// status, the route and the error type. otelgrpc's are already bounded by the methods a
// server has (a client's unknown method is one more series per name it invents, on ports
// that are never public); the view keeps the same keys, and the peer's address on client
// calls (the dial target: one per peer). The request and response body size histograms of
// otelhttp cost two more records per request and say little the duration does not.
func metricViews() []sdkmetric.View {
	httpScope := instrumentation.Scope{Name: otelhttp.ScopeName}
	grpcScope := instrumentation.Scope{Name: otelgrpc.ScopeName}
	drop := sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}}
	return []sdkmetric.View{
		sdkmetric.NewView(sdkmetric.Instrument{Scope: httpScope, Name: "http.server.request.body.size"}, drop),
		sdkmetric.NewView(sdkmetric.Instrument{Scope: httpScope, Name: "http.server.response.body.size"}, drop),
		sdkmetric.NewView(sdkmetric.Instrument{Scope: httpScope}, sdkmetric.Stream{AttributeFilter: attribute.NewAllowKeysFilter(
			"http.request.method", "http.response.status_code", "http.route", "error.type")}),
		sdkmetric.NewView(sdkmetric.Instrument{Scope: grpcScope}, sdkmetric.Stream{AttributeFilter: attribute.NewAllowKeysFilter(
			"rpc.system.name", "rpc.method", "rpc.response.status_code", "error.type", "server.address")}),
	}
}

// prometheusEndpoint is the Prometheus side of a meter provider: the reader that turns its
// metrics into Prometheus's on each scrape, and the HTTP server that answers the scrapes.
type prometheusEndpoint struct {
	reader sdkmetric.Reader
	srv    *http.Server
	ln     net.Listener
	done   chan struct{}
}

// newPrometheus listens on addr and prepares a registry of its own (never Prometheus's
// global one) holding OpenTelemetry's metrics, and the process's CPU, memory and file
// descriptors as Prometheus's process collector reads them from /proc at each scrape.
func newPrometheus(addr string, logger *slog.Logger) (*prometheusEndpoint, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("prometheus process collector: %w", err)
	}
	reader, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = reader.Shutdown(context.Background())
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// A scrape gathers every series at once: two at a time is plenty for Prometheus and
		// a person with curl, and bounds what a flood of scrapes costs the process.
		MaxRequestsInFlight: 2,
		Timeout:             10 * time.Second,
	}))
	return &prometheusEndpoint{reader: reader, ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}, nil
}

// serve answers scrapes in the background until shutdown.
func (p *prometheusEndpoint) serve() {
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.srv.ErrorLog.Printf("metrics endpoint stopped: %v", err)
		}
	}()
}

// close stops a server that never served (Setup failed after newPrometheus).
func (p *prometheusEndpoint) close() {
	_ = p.ln.Close()
	_ = p.reader.Shutdown(context.Background())
}

// shutdown stops answering, letting a scrape in flight finish until ctx ends.
func (p *prometheusEndpoint) shutdown(ctx context.Context) error {
	err := p.srv.Shutdown(ctx)
	<-p.done
	return err
}

// startRuntimeMetrics reports the Go runtime's metrics (memory, GC goal, goroutines,
// GOMAXPROCS) through mp. They are observed when a reader collects, not on any request's
// path.
func startRuntimeMetrics(mp *sdkmetric.MeterProvider) error {
	if err := runtime.Start(runtime.WithMeterProvider(mp)); err != nil {
		return fmt.Errorf("runtime metrics: %w", err)
	}
	return nil
}

// periodicReader pushes to e every OTEL_METRIC_EXPORT_INTERVAL. With a Prometheus endpoint
// beside it, and e cumulative as Prometheus is (OTLP's default), it sends what the
// Prometheus reader aggregated rather than aggregate every measurement a second time: the
// SDK keeps one pipeline per reader, and each measurement costs every pipeline its
// attribute filter, series lookup and bucket search, and each series its memory. The second
// pipeline was about 20,000 instructions of a traced checkout's 6.8 million (monolith's
// BenchmarkCheckoutTracing/tracing=on-all under cachegrind, by function); what remains of
// a measurement's cost is the SDK's per-call attribute work, paid once whatever the readers.
func periodicReader(e sdkmetric.Exporter, prom *prometheusEndpoint) sdkmetric.Reader {
	if prom == nil || !cumulative(e) {
		return sdkmetric.NewPeriodicReader(e)
	}
	return sdkmetric.NewPeriodicReader(dropAll{e}, sdkmetric.WithProducer(collected{prom.reader}))
}

// cumulative reports whether e wants every instrument kind cumulative.
func cumulative(e sdkmetric.Exporter) bool {
	for _, k := range []sdkmetric.InstrumentKind{sdkmetric.InstrumentKindCounter, sdkmetric.InstrumentKindUpDownCounter,
		sdkmetric.InstrumentKindHistogram, sdkmetric.InstrumentKindGauge, sdkmetric.InstrumentKindObservableCounter,
		sdkmetric.InstrumentKindObservableUpDownCounter, sdkmetric.InstrumentKindObservableGauge} {
		if e.Temporality(k) != metricdata.CumulativeTemporality {
			return false
		}
	}
	return true
}

// dropAll is an exporter whose reader aggregates nothing of its own: what it exports comes
// from its producer.
type dropAll struct{ sdkmetric.Exporter }

func (dropAll) Aggregation(sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.AggregationDrop{}
}

// collected produces what another reader of the same meter provider holds.
type collected struct{ reader sdkmetric.Reader }

func (c collected) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	var rm metricdata.ResourceMetrics
	if err := c.reader.Collect(ctx, &rm); err != nil {
		return nil, err
	}
	return rm.ScopeMetrics, nil
}
