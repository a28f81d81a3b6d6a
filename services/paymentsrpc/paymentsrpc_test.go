package paymentsrpc_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/paymentsrpc"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
	"github.com/mitosis-dev/mitosis/shop/payments"
	"github.com/mitosis-dev/mitosis/shop/payments/paymentstest"
)

// TestConformance runs the payments suite through client -> TCP on 127.0.0.1 -> server ->
// the real payments on JetStream: every decline must come back as its own sentinel.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	paymentstest.Run(t, func(t *testing.T, now func() time.Time) payments.Service {
		impl := payments.New(srv.Bucket(t, "charges"), now)
		conn := rpctest.Serve(t, paymentsrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { paymentsrpc.Register(s, impl) })
		return paymentsrpc.NewClient(conn)
	})
}
