// Command catalog serves the catalog context (shop/catalog) over gRPC: products on JetStream,
// reads from the in-memory view the catalog keeps current by watching its bucket. It is one
// of the microservices; the monolith runs the very same catalog in process.
//
// Configuration, all from the environment:
//
//	SHOP_NATS_URL     NATS server holding the state (required; a service never embeds NATS)
//	SHOP_GRPC_ADDR    listen address (default 127.0.0.1:9101)
//	SHOP_RPC_TIMEOUT  deadline of a call to a peer made without one (default 10s)
//	SHOP_LOG_LEVEL    debug, info (default), warn or error
//	OTEL_*            OpenTelemetry (see platform/telemetry)
package main

import (
	"context"
	"fmt"

	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/catalog"
)

func main() { servicehost.Main("catalog", nil, wire) }

func wire(ctx context.Context, p *servicehost.Process) ([]string, error) {
	products, err := p.Bucket(ctx, catalog.ProductsBucket)
	if err != nil {
		return nil, err
	}
	// The view follows the bucket for the life of the process, not of ctx.
	svc, err := catalog.New(p.Life(), products, p.Logger())
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	catalogrpc.Register(p.GRPC(), svc)
	return []string{catalogrpc.ServiceName}, nil
}
