// Command monolith serves the shop's public HTTP API with every bounded context in one
// process: the host (services/host) with every context and the edge, in-process calls
// between contexts, one event stream, and NATS JetStream embedded (or reached through
// SHOP_NATS_URL) for state. It is one end of mitosis's range of architectures; the other is
// one process per context (services/shop), and any split in between runs from the same
// host and the same shop/ code.
//
// Configuration, all from the environment (services/host.ConfigFrom has every variable):
//
//	SHOP_ADDR         listen address (default 127.0.0.1:8080)
//	SHOP_DATA_DIR     embedded JetStream's files (default .mitosis/data)
//	SHOP_NATS_URL     use this NATS server instead of the embedded one
//	SHOP_ADMIN_TOKEN  bearer token of the admin routes (unset: admin routes answer 401)
//	SHOP_METRICS_ADDR where Prometheus scrapes /metrics (unset: nowhere; make run: 127.0.0.1:9464)
//	SHOP_LOG_LEVEL    debug, info (default), warn or error
//	OTEL_*            OpenTelemetry: where traces go, sampling... (see platform/telemetry);
//	                  with none set, OTLP to http://localhost:4318, as the specification says;
//	                  OTEL_TRACES_EXPORTER=none for none
package main

import (
	"github.com/mitosis-dev/mitosis/services/bounded"
	"github.com/mitosis-dev/mitosis/services/host"
)

// version is stamped by the build from git (-X main.version=...: the Makefile, the image build).
var version = "dev"

func main() { host.Main(bounded.Everything(), version) }
