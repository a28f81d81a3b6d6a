// Package telemetry sets up OpenTelemetry once per binary, the same way in the monolith and
// in every service, so that their traces join: resource attributes (service name and
// version, architecture), X-Ray compatible trace IDs, W3C tracecontext + baggage + X-Ray
// propagation, exporters chosen by the standard OTEL_* variables, OTel metrics, a slog logger
// that stamps every line with the trace and span of its context, and a shutdown that flushes.
//
// It installs OpenTelemetry's global providers and propagator: the instrumentation
// (otelhttp, otelgrpc, shop/traced, shop/natsjs) reads them when it is built, so Setup comes
// first in main. It is not the instrumentation itself, nor a collector (tracecollect is).
//
// Spans go to OTLP through a batching processor of this package that writes their protobuf
// encoding itself (otlpspans.go: it costs a fraction of the SDK's processor and exporter),
// and to X-Ray through the SDK's batch span processor. Both read OTEL_BSP_* as the SDK does.
//
// Metrics go to OTLP (OTEL_METRICS_EXPORTER) and, where the binary is given an address
// (Options.MetricsAddr), to Prometheus's scrapes of /metrics there (OpenTelemetry's Prometheus
// exporter, on a registry of the binary's own), with the Go runtime's (contrib's runtime
// instrumentation) and the process's. Views keep every stream's attributes bounded
// (metrics.go). With neither, the meter provider is a no-op and no request pays for metrics.
//
// Configuration (environment), beyond what the SDK and exporters read themselves
// (OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, OTEL_METRIC_EXPORT_INTERVAL...):
//
//	OTEL_SDK_DISABLED                   true: no SDK at all (no spans, no trace headers)
//	OTEL_SERVICE_NAME                   overrides Options.ServiceName
//	OTEL_RESOURCE_ATTRIBUTES            extra resource attributes
//	OTEL_EXPORTER_OTLP_ENDPOINT         where OTLP goes (http://host:4318, or :4317 for grpc);
//	                                    unset (and no per-signal endpoint): the specification's
//	                                    default, http://localhost:4318 (grpc: :4317)
//	OTEL_PROPAGATORS                    comma-separated: xray, tracecontext, baggage, none
//	                                    (default DefaultPropagators)
//	OTEL_EXPORTER_OTLP_PROTOCOL         http/protobuf (default) or grpc; per signal with
//	                                    OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL
//	OTEL_TRACES_EXPORTER                comma-separated: otlp, xray, none (default otlp, as the
//	                                    specification says)
//	OTEL_METRICS_EXPORTER               otlp or none (default otlp): where metrics are pushed;
//	                                    Prometheus scrapes Options.MetricsAddr whatever it says
//	OTEL_METRICS_EXEMPLAR_FILTER        as the SDK reads it; unset means always_off here (the
//	                                    SDK's trace_based costs on every traced request)
//	AWS_XRAY_DAEMON_ADDRESS             the X-Ray daemon for the xray exporter (127.0.0.1:2000)
//
// With no exporter the SDK still makes spans (IDs, sampling, propagation): the response
// headers that name a request's trace, and the trace IDs in the logs, work everywhere.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/mitosis-dev/mitosis/platform/xray"
)

// Architectures, the values of the mitosis.architecture resource attribute.
const (
	Monolith = "monolith"
	Services = "services"
)

// ArchitectureKey is the resource attribute naming the architecture a span was made in.
const ArchitectureKey = attribute.Key("mitosis.architecture")

// Options describe the binary.
type Options struct {
	ServiceName  string // service.name, unless OTEL_SERVICE_NAME is set
	Architecture string // Monolith or Services
	Version      string // service.version; "" means the main module's version, else "dev"
	LogLevel     slog.Level
	LogOutput    io.Writer // where the JSON log goes; nil means os.Stdout
	// MetricsAddr is where Prometheus scrapes the binary's metrics (MetricsPath, host:port;
	// port 0 picks one): HTTP and gRPC server and client calls, calls between colocated
	// contexts, store round trips, the Go runtime and the process. "" serves none. It is
	// independent of OTEL_METRICS_EXPORTER, which says where metrics are pushed.
	MetricsAddr string
	// MetricsListening, if set, learns the address MetricsAddr was bound to.
	MetricsListening func(net.Addr)
}

// Shutdown flushes every span and metric still buffered, stops the exporters and puts back
// the global providers that Setup replaced. Call it once the work that makes spans is over
// (requests drained, consumers stopped), with a deadline.
type Shutdown func(ctx context.Context) error

// Setup installs OpenTelemetry for the binary described by opts and returns its shutdown and
// its logger. On error nothing is installed.
func Setup(ctx context.Context, opts Options) (Shutdown, *slog.Logger, error) {
	out := opts.LogOutput
	if out == nil {
		out = os.Stdout
	}
	name := opts.ServiceName
	if v := os.Getenv("OTEL_SERVICE_NAME"); v != "" {
		name = v
	}
	logger := slog.New(LogHandler(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: opts.LogLevel}))).With(slog.String("service", name))

	prevTP, prevMP, prevProp, prevEH := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator(), otel.GetErrorHandler()
	restore := func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
		otel.SetTextMapPropagator(prevProp)
		otel.SetErrorHandler(prevEH)
	}
	prop, err := Propagator()
	if err != nil {
		return nil, nil, err
	}
	otel.SetTextMapPropagator(prop)
	otel.SetErrorHandler(quietErrors(logger, time.Now, time.Minute))

	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		if opts.MetricsAddr != "" {
			logger.Warn("OTEL_SDK_DISABLED=true: no metrics endpoint", "metrics_addr", opts.MetricsAddr)
		}
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
		return func(context.Context) error { restore(); return nil }, logger, nil
	}

	res, err := newResource(ctx, name, opts)
	if err != nil {
		restore()
		return nil, nil, err
	}
	processors, err := spanProcessors(ctx)
	if err != nil {
		restore()
		return nil, nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithIDGenerator(xray.NewIDGenerator())}
	for _, p := range processors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(p))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)

	mp, mpShutdown, err := meterProvider(ctx, res, opts, logger)
	if err != nil {
		_ = tp.Shutdown(ctx)
		restore()
		return nil, nil, err
	}
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	logger.Debug("telemetry set up", "trace_exporters", len(processors), "resource", res.Attributes())

	shutdown := func(ctx context.Context) error {
		defer restore()
		return errors.Join(tp.Shutdown(ctx), mpShutdown(ctx))
	}
	return shutdown, logger, nil
}

func newResource(ctx context.Context, name string, opts Options) (*resource.Resource, error) {
	version := opts.Version
	if version == "" {
		version = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(name), semconv.ServiceVersion(version), semconv.ServiceNamespace("mitosis")}
	if opts.Architecture != "" {
		attrs = append(attrs, ArchitectureKey.String(opts.Architecture))
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the code.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(),
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithProcessPID())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	return res, nil
}

// The specification's default OTLP endpoints. The Go exporters' own default is the same host
// and port over HTTPS, which no local collector (nor a sidecar) speaks.
const (
	defaultHTTPEndpoint = "http://localhost:4318"
	defaultGRPCEndpoint = "http://localhost:4317"
)

// otlpEndpointSet reports whether an OTLP endpoint is configured for signal ("TRACES" or
// "METRICS").
func otlpEndpointSet(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

func otlpProtocol(signal string) string {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "http/protobuf"
}

// exporterNames reads OTEL_<SIGNAL>_EXPORTER; unset means otlp, as the specification says,
// to OTEL_EXPORTER_OTLP_ENDPOINT or, without one, the exporters' own default
// (http://localhost:4318, or localhost:4317 for grpc: where a sidecar collector listens).
func exporterNames(signal string) []string {
	v := os.Getenv("OTEL_" + signal + "_EXPORTER")
	if v == "" {
		return []string{"otlp"}
	}
	var names []string
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.TrimSpace(strings.ToLower(n)); n != "" && n != "none" {
			names = append(names, n)
		}
	}
	return names
}

// spanProcessors returns a batching processor per exporter OTEL_TRACES_EXPORTER names.
func spanProcessors(ctx context.Context) ([]sdktrace.SpanProcessor, error) {
	var out []sdktrace.SpanProcessor
	names := exporterNames("TRACES")
	var cfg batchConfig
	if len(names) > 0 {
		cfg = batchConfigFromEnv()
	}
	for _, n := range names {
		var p sdktrace.SpanProcessor
		var err error
		switch n {
		case "otlp":
			switch proto := otlpProtocol("TRACES"); proto {
			case "grpc":
				var opts []otlptracegrpc.Option
				if !otlpEndpointSet("TRACES") {
					opts = append(opts, otlptracegrpc.WithEndpointURL(defaultGRPCEndpoint))
				}
				p, err = newBatcher(ctx, otlptracegrpc.NewClient(opts...), cfg)
			case "http/protobuf":
				var opts []otlptracehttp.Option
				if !otlpEndpointSet("TRACES") {
					opts = append(opts, otlptracehttp.WithEndpointURL(defaultHTTPEndpoint+"/v1/traces"))
				}
				p, err = newBatcher(ctx, otlptracehttp.NewClient(opts...), cfg)
			default:
				err = fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want grpc or http/protobuf", proto)
			}
		case "xray":
			var e *xray.Exporter
			if e, err = xray.New(os.Getenv("AWS_XRAY_DAEMON_ADDRESS")); err == nil {
				p = sdktrace.NewBatchSpanProcessor(e, sdktrace.WithMaxQueueSize(cfg.maxQueue))
			}
		default:
			err = fmt.Errorf("OTEL_TRACES_EXPORTER: unknown exporter %q (want otlp, xray or none)", n)
		}
		if err != nil {
			for _, done := range out {
				_ = done.Shutdown(ctx)
			}
			return nil, fmt.Errorf("trace exporter %s: %w", n, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// meterProvider returns the SDK's meter provider exporting over OTLP and answering
// Prometheus's scrapes on opts.MetricsAddr, or a no-op one when neither is asked for:
// measuring what nobody reads costs for nothing.
func meterProvider(ctx context.Context, res *resource.Resource, opts Options, logger *slog.Logger) (metric.MeterProvider, func(context.Context) error, error) {
	var exporters []sdkmetric.Exporter
	for _, n := range exporterNames("METRICS") {
		if n != "otlp" {
			return nil, nil, fmt.Errorf("OTEL_METRICS_EXPORTER: unknown exporter %q (want otlp or none; Prometheus scrapes the binary's metrics address instead)", n)
		}
		var e sdkmetric.Exporter
		var err error
		switch p := otlpProtocol("METRICS"); p {
		case "grpc":
			var opts []otlpmetricgrpc.Option
			if !otlpEndpointSet("METRICS") {
				opts = append(opts, otlpmetricgrpc.WithEndpointURL(defaultGRPCEndpoint))
			}
			e, err = otlpmetricgrpc.New(ctx, opts...)
		case "http/protobuf":
			var opts []otlpmetrichttp.Option
			if !otlpEndpointSet("METRICS") {
				opts = append(opts, otlpmetrichttp.WithEndpointURL(defaultHTTPEndpoint+"/v1/metrics"))
			}
			e, err = otlpmetrichttp.New(ctx, opts...)
		default:
			err = fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want grpc or http/protobuf", p)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("metric exporter: %w", err)
		}
		exporters = append(exporters, e)
	}
	var readers []sdkmetric.Option
	var prom *prometheusEndpoint
	if opts.MetricsAddr != "" {
		var err error
		if prom, err = newPrometheus(opts.MetricsAddr, logger); err != nil {
			return nil, nil, err
		}
	}
	// The periodic readers come first: the provider shuts its readers down in order, and
	// their last push may read the Prometheus reader (periodicReader).
	for _, e := range exporters {
		readers = append(readers, sdkmetric.WithReader(periodicReader(e, prom)))
	}
	if prom != nil {
		readers = append(readers, sdkmetric.WithReader(prom.reader))
	}
	if len(readers) == 0 {
		return metricnoop.NewMeterProvider(), func(context.Context) error { return nil }, nil
	}
	for _, v := range metricViews() {
		readers = append(readers, sdkmetric.WithView(v))
	}
	if os.Getenv("OTEL_METRICS_EXEMPLAR_FILTER") == "" {
		// The SDK's default keeps a traced measurement's trace as an exemplar, with the
		// attributes the views filtered out: a cost on every request, and on Prometheus's
		// side labels longer than it takes. The variable turns them back on.
		readers = append(readers, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	mp := sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
	if err := startRuntimeMetrics(mp); err != nil {
		if prom != nil {
			prom.close()
		}
		_ = mp.Shutdown(ctx)
		return nil, nil, err
	}
	if prom == nil {
		return mp, mp.Shutdown, nil
	}
	prom.serve()
	logger.Info("metrics endpoint listening", "addr", prom.ln.Addr().String(), "path", MetricsPath)
	if opts.MetricsListening != nil {
		opts.MetricsListening(prom.ln.Addr())
	}
	return mp, func(ctx context.Context) error {
		return errors.Join(prom.shutdown(ctx), mp.Shutdown(ctx))
	}, nil
}

// LogHandler wraps h so that every record logged with a context inside a span carries
// trace_id and span_id (W3C hex, as the collector's query API and the traceresponse header
// spell them).
func LogHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// ShutdownTimeout is how long a main gives Shutdown: enough to export a full queue to a
// collector that answers, not so long that a stop hangs on one that does not.
const ShutdownTimeout = 10 * time.Second
