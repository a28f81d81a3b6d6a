// Command inventory serves the inventory context (shop/inventory) over gRPC, its stock and
// reservations on JetStream, and releases expired reservations in the background (every
// replica may: a release is a conditional write, so two replicas never release one twice).
// It is one of the microservices; the monolith runs the very same inventory in process.
//
// Configuration, all from the environment:
//
//	SHOP_NATS_URL         NATS server holding the state (required; a service never embeds NATS)
//	SHOP_GRPC_ADDR        listen address (default 127.0.0.1:9103)
//	SHOP_RESERVATION_TTL  how long stock stays reserved for a checkout that never finishes (default 5m)
//	SHOP_LOG_LEVEL        debug, info (default), warn or error
//	OTEL_*                OpenTelemetry (see platform/telemetry)
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/inventory"
)

func main() { servicehost.Main("inventory", nil, wire) }

// sweepEvery is how often expired reservations are looked for (as in the monolith).
const sweepEvery = 5 * time.Second

func wire(ctx context.Context, p *servicehost.Process) ([]string, error) {
	ttl := 5 * time.Minute
	if v := os.Getenv("SHOP_RESERVATION_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("SHOP_RESERVATION_TTL=%q: want a positive duration such as 5m", v)
		}
		ttl = d
	}
	stock, err := p.Bucket(ctx, inventory.StockBucket)
	if err != nil {
		return nil, err
	}
	reservations, err := p.Bucket(ctx, inventory.ReservationsBucket)
	if err != nil {
		return nil, err
	}
	svc := inventory.New(stock, reservations, time.Now, ttl)
	p.Go(func(ctx context.Context) { inventory.RunSweeper(ctx, svc, sweepEvery, p.Logger()) })
	inventoryrpc.Register(p.GRPC(), svc)
	return []string{inventoryrpc.ServiceName}, nil
}
