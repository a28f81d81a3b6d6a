// Command cart serves the cart context (shop/cart) over gRPC, its carts on JetStream. It is
// one of the microservices; the monolith runs the very same cart in process.
//
// Configuration, all from the environment:
//
//	SHOP_NATS_URL     NATS server holding the state (required; a service never embeds NATS)
//	SHOP_GRPC_ADDR    listen address (default 127.0.0.1:9102)
//	SHOP_LOG_LEVEL    debug, info (default), warn or error
//	OTEL_*            OpenTelemetry (see platform/telemetry)
package main

import (
	"context"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/cart"
)

func main() { servicehost.Main("cart", nil, wire) }

func wire(ctx context.Context, p *servicehost.Process) ([]string, error) {
	carts, err := p.Bucket(ctx, cart.CartsBucket)
	if err != nil {
		return nil, err
	}
	cartrpc.Register(p.GRPC(), cart.New(carts))
	return []string{cartrpc.ServiceName}, nil
}
