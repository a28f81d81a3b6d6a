package catalogrpc_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/mitosis-dev/mitosis/services/catalogrpc"
	"github.com/mitosis-dev/mitosis/services/internal/rpctest"
	"github.com/mitosis-dev/mitosis/shop/catalog"
	"github.com/mitosis-dev/mitosis/shop/catalog/catalogtest"
	"github.com/mitosis-dev/mitosis/shop/natsjs/natsjstest"
)

// TestConformance runs the catalog's suite through client -> TCP on 127.0.0.1 -> server ->
// the real catalog on JetStream.
func TestConformance(t *testing.T) {
	srv := natsjstest.New(t)
	catalogtest.Run(t, func(t *testing.T) catalog.Service {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		impl, err := catalog.New(ctx, srv.Bucket(t, "products"), nil)
		if err != nil {
			t.Fatalf("catalog.New: %v", err)
		}
		conn := rpctest.Serve(t, catalogrpc.ServiceConfig, func(s grpc.ServiceRegistrar) { catalogrpc.Register(s, impl) })
		return catalogrpc.NewClient(conn)
	})
}
