package cartrpc_test

import (
	"testing"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/cartrpc"
	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/shop/cart"
	"github.com/mitosis-dev/mitosis/shop/cart/carttest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestConformance runs the cart's suite through client -> TCP on 127.0.0.1 -> server -> the
// real cart on JetStream.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	carttest.Run(t, func(t *testing.T) cart.Service {
		impl := cart.New(srv.Bucket(t, "carts"))
		conn := rpctest.Serve(t, cartrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { cartrpc.Register(s, impl) })
		return cartrpc.NewClient(conn)
	})
}
