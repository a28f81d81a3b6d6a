// Command shipping runs the shipping context (shop/shipping): it consumes order-paid events
// (durable consumer "shipping", shared by its replicas), ships each order once and publishes
// order-shipped; it also serves the shipping port over gRPC. It is one of the microservices;
// the monolith runs the very same shipping in process.
//
// Configuration, all from the environment:
//
//	SHOP_NATS_URL     NATS server holding the state and the events (required)
//	SHOP_GRPC_ADDR    listen address (default 127.0.0.1:9106)
//	SHOP_LOG_LEVEL    debug, info (default), warn or error
//	OTEL_*            OpenTelemetry (see platform/telemetry)
package main

import (
	"context"
	"time"

	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/services/shippingrpc"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/shipping"
)

func main() { servicehost.Main("shipping", nil, wire) }

func wire(ctx context.Context, p *servicehost.Process) ([]string, error) {
	shipments, err := p.Bucket(ctx, shipping.ShipmentsBucket)
	if err != nil {
		return nil, err
	}
	bus, err := p.Bus(ctx)
	if err != nil {
		return nil, err
	}
	svc := shipping.New(shipments, bus, time.Now)
	if err := p.Subscribe(ctx, "shipping", []string{events.OrderPaidSubject}, shipping.HandleOrderPaid(svc)); err != nil {
		return nil, err
	}
	shippingrpc.Register(p.GRPC(), svc)
	return []string{shippingrpc.ServiceName}, nil
}
