// Command collector is mitosis's trace collector (package tracecollect): OTLP/gRPC and
// OTLP/HTTP receivers, a bounded in-memory store, and the query APIs of a Jaeger v2 query
// service (api_v3 under /api/v3, and the JSON API the Jaeger UI and Grafana's Jaeger data
// source read under /api), with pages beside them (the latest traces at /, a search at
// /search, a trace's waterfall at /trace/{id}, the side-by-side comparison at /compare), and
// the last minutes of the OTLP metrics it receives at /api/otlp/metrics. Every pod of the
// stack exports to it (OTEL_EXPORTER_OTLP_ENDPOINT), and `mitosis traces compare` reads from
// it, the load test too. It stops on SIGINT or SIGTERM, finishing the exports in flight.
//
// Usage:
//
//	collector [-grpc 127.0.0.1:4317] [-http 127.0.0.1:4318] [-query 127.0.0.1:16686] [-max-spans 100000]
//	          [-max-bytes 134217728] [-metric-window 10m] [-max-metric-bytes 25165824]
//	          [-metrics 127.0.0.1:9464]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/mitosis-dev/mitosis/platform/telemetry"
	"github.com/mitosis-dev/mitosis/platform/tracecollect"
	"github.com/mitosis-dev/mitosis/platform/tracecompare"
)

// version is stamped by the build from git (-X main.version=...: the Makefile, the image build).
var version = "dev"

func main() {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	cfg := tracecollect.Config{Routes: tracecompare.Routes}
	fs.StringVar(&cfg.GRPCAddr, "grpc", tracecollect.DefaultGRPCAddr, "OTLP/gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http", tracecollect.DefaultHTTPAddr, "OTLP/HTTP listen address")
	fs.StringVar(&cfg.QueryAddr, "query", tracecollect.DefaultQueryAddr, "query APIs (Jaeger's /api/v3 and /api) and pages listen address")
	fs.IntVar(&cfg.MaxSpans, "max-spans", tracecollect.DefaultMaxSpans, "spans kept in memory; the oldest traces go first")
	fs.IntVar(&cfg.MaxBytes, "max-bytes", tracecollect.DefaultMaxBytes, "bytes of memory the kept spans may take (an estimate); the oldest traces go first")
	fs.DurationVar(&cfg.MetricWindow, "metric-window", tracecollect.DefaultMetricWindow, "how long received metrics are kept (served at "+tracecollect.MetricsPath+")")
	fs.IntVar(&cfg.MaxMetricBytes, "max-metric-bytes", tracecollect.DefaultMaxMetricBytes, "bytes of memory the kept metrics may take (an estimate); the oldest points go first")
	metricsAddr := fs.String("metrics", "", "where Prometheus scrapes the collector's own metrics (/metrics); empty: nowhere")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println(version)
		return
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintln(os.Stderr, "collector: -log-level:", err)
		os.Exit(2)
	}
	// The collector exports nothing over OTLP, unless told to: by default it would send its
	// own metrics to localhost:4318, which is itself.
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, "none")
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	shutdown, logger, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "collector", Version: version, LogLevel: lvl, MetricsAddr: *metricsAddr})
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("bad telemetry configuration", "err", err)
		os.Exit(2)
	}
	cfg.Logger = logger
	c, err := tracecollect.Start(cfg)
	if err != nil {
		cfg.Logger.Error("collector stopped", "err", err)
		os.Exit(1)
	}
	if err := c.Instrument(otel.GetMeterProvider()); err != nil {
		cfg.Logger.Warn("collector metrics", "err", err)
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := errors.Join(c.Close(closeCtx), shutdown(closeCtx)); err != nil {
		cfg.Logger.Warn("shutdown", "err", err)
	}
	cfg.Logger.Info("stopped")
}
