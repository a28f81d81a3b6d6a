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
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: lvl})).With("service", "collector")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := tracecollect.Start(cfg)
	if err != nil {
		cfg.Logger.Error("collector stopped", "err", err)
		os.Exit(1)
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(closeCtx); err != nil {
		cfg.Logger.Warn("shutdown", "err", err)
	}
	cfg.Logger.Info("stopped")
}
