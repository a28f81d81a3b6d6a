// Command notify runs the notify context (shop/notify): it consumes order-paid and
// order-shipped events (durable consumer "notify", shared by its replicas) and records one
// notification per order and kind; it serves the notify port over gRPC, which the gateway
// lists notifications through. It is one of the microservices; the monolith runs the very
// same notify in process.
//
// Configuration, all from the environment:
//
//	SHOP_NATS_URL     NATS server holding the state and the events (required)
//	SHOP_GRPC_ADDR    listen address (default 127.0.0.1:9107)
//	SHOP_LOG_LEVEL    debug, info (default), warn or error
//	OTEL_*            OpenTelemetry (see platform/telemetry)
package main

import (
	"context"
	"time"

	"github.com/mitosis-dev/mitosis/services/notifyrpc"
	"github.com/mitosis-dev/mitosis/services/servicehost"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/notify"
)

func main() { servicehost.Main("notify", nil, wire) }

func wire(ctx context.Context, p *servicehost.Process) ([]string, error) {
	notifications, err := p.Bucket(ctx, notify.NotificationsBucket)
	if err != nil {
		return nil, err
	}
	svc := notify.New(notifications, time.Now)
	subjects := []string{events.OrderPaidSubject, events.OrderShippedSubject}
	if err := p.Subscribe(ctx, "notify", subjects, notify.Handler(svc)); err != nil {
		return nil, err
	}
	notifyrpc.Register(p.GRPC(), svc)
	return []string{notifyrpc.ServiceName}, nil
}
