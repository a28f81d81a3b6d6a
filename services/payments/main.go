// Command payments serves the payments context (shop/payments) over gRPC, its charges on
// JetStream. It is one of the microservices; the monolith runs the very same payments in
// process.
//
// Configuration, all from the environment:
//
//	SHOP_NATS_URL     NATS server holding the state (required; a service never embeds NATS)
//	SHOP_GRPC_ADDR    listen address (default 127.0.0.1:9104)
//	SHOP_LOG_LEVEL    debug, info (default), warn or error
//	OTEL_*            OpenTelemetry (see platform/telemetry)
package main

import (
	"context"
	"time"

	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/payments"
)

func main() { servicehost.Main("payments", nil, wire) }

func wire(ctx context.Context, p *servicehost.Process) ([]string, error) {
	charges, err := p.Bucket(ctx, payments.ChargesBucket)
	if err != nil {
		return nil, err
	}
	paymentsrpc.Register(p.GRPC(), payments.New(charges, time.Now))
	return []string{paymentsrpc.ServiceName}, nil
}
