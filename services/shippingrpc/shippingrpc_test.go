package shippingrpc_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/shippingrpc"
	"github.com/mitosis-dev/mitosis/shop/events"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/shipping"
	"github.com/mitosis-dev/mitosis/shop/shipping/shippingtest"
)

// TestConformance runs the shipping suite through client -> TCP on 127.0.0.1 -> server ->
// the real shipping on JetStream, publishing to the suite's recorder from the server side.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	shippingtest.Run(t, func(t *testing.T, pub events.Publisher) shipping.Service {
		impl := shipping.New(srv.Bucket(t, "shipments"), pub, time.Now)
		conn := rpctest.Serve(t, shippingrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { shippingrpc.Register(s, impl) })
		return shippingrpc.NewClient(conn)
	})
}
