package inventoryrpc_test

import (
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/services/inventoryrpc"
	"github.com/mitosis-dev/mitosis/shop/inventory"
	"github.com/mitosis-dev/mitosis/shop/inventory/inventorytest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestConformance runs the inventory's suite through client -> TCP on 127.0.0.1 -> server ->
// the real inventory on JetStream. The suite's clock drives the server-side implementation.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	inventorytest.Run(t, func(t *testing.T, now func() time.Time) inventory.Service {
		impl := inventory.New(srv.Bucket(t, "stock"), srv.Bucket(t, "reservations"), now, 5*time.Minute)
		conn := rpctest.Serve(t, inventoryrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { inventoryrpc.Register(s, impl) })
		return inventoryrpc.NewClient(conn)
	})
}
